//! A string that never shows itself in `Debug` or `Display`.

use serde::{Deserialize, Serialize};

/// Holds a password, token or seed. `Debug` prints `[REDACTED]` (or
/// `[EMPTY]`, which helps debugging without revealing anything), so a value
/// can sit inside structs that derive `Debug` and get logged.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call sites are easy to audit with grep.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("[EMPTY]")
        } else {
            f.write_str("[REDACTED]")
        }
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Secret::default()), "[EMPTY]");
        assert_eq!(s.expose(), "hunter2");
        // Serde keeps the wire format a plain string.
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"hunter2\"");
    }
}
