//! Agent ids: the one token of a subject that comes from configuration.
//!
//! An id ends up inside NATS subjects (`fleet.agent.<id>.cmd.ping`), so it
//! must be a single subject token: no `.` (it would split the token), no `*`
//! or `>` (wildcards), no whitespace or control characters (the protocol
//! separates fields with spaces). We accept the conservative set
//! `[A-Za-z0-9_-]`, which covers Kubernetes pod names (DNS labels) and
//! hostnames without dots, and is also safe in NATS permission strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest id accepted: 64, a DNS label plus one, which fits pod names (pod
/// hostnames are DNS labels) and Zitadel's numeric user ids, and is the same
/// bound the auth callout enforces (ADR 0030), so an id valid here is never
/// refused there.
pub const MAX_AGENT_ID_LEN: usize = 64;

/// A validated agent id. Constructing one is the only way to build a subject
/// for an agent, so a subject can never carry an invalid id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AgentId(String);

/// Why a string is not a valid agent id. Each variant carries the rejected
/// value (ids are not secret) so the message names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentIdError {
    #[error("agent id is empty")]
    Empty,
    #[error("agent id {id:?} is {len} bytes long; the maximum is {max}")]
    TooLong { id: String, len: usize, max: usize },
    #[error(
        "agent id {id:?} contains {ch:?} at byte {position}; only ASCII letters, digits, '-' and '_' are allowed (it becomes a NATS subject token)"
    )]
    InvalidChar {
        id: String,
        ch: char,
        position: usize,
    },
}

impl AgentId {
    /// Validates `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, AgentIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(AgentIdError::Empty);
        }
        if id.len() > MAX_AGENT_ID_LEN {
            // Keep the error readable when someone passes a whole document.
            let shown: String = id.chars().take(MAX_AGENT_ID_LEN).collect();
            return Err(AgentIdError::TooLong {
                id: format!("{shown}..."),
                len: id.len(),
                max: MAX_AGENT_ID_LEN,
            });
        }
        if let Some((position, ch)) = id
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(AgentIdError::InvalidChar { id, ch, position });
        }
        Ok(AgentId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgentId {
    type Err = AgentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentId::new(s)
    }
}

impl AsRef<str> for AgentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Deserialization validates too: an id read off the wire (a heartbeat, a
// reply) is as untrusted as one read from the environment.
impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AgentId::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_pod_names_and_hostnames() {
        for ok in ["agent-0", "fleet-agent-7d9f8c6b5-x2k4q", "A_b-9", "x"] {
            assert_eq!(AgentId::new(ok).expect(ok).as_str(), ok);
        }
        let max = "a".repeat(MAX_AGENT_ID_LEN);
        assert!(AgentId::new(max).is_ok());
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(AgentId::new(""), Err(AgentIdError::Empty));
    }

    #[test]
    fn rejects_too_long_with_length_in_message() {
        let err = AgentId::new("a".repeat(MAX_AGENT_ID_LEN + 1)).unwrap_err();
        assert!(matches!(
            err,
            AgentIdError::TooLong {
                len: 65,
                max: 64,
                ..
            }
        ));
        assert!(err.to_string().contains("65 bytes"), "{err}");
    }

    #[test]
    fn rejects_subject_syntax_and_whitespace() {
        for (bad, ch, pos) in [
            ("a.b", '.', 1),
            ("*", '*', 0),
            ("ab>", '>', 2),
            ("a b", ' ', 1),
            ("a\tb", '\t', 1),
            ("é", 'é', 0),
            ("a/b", '/', 1),
        ] {
            let err = AgentId::new(bad).unwrap_err();
            assert_eq!(
                err,
                AgentIdError::InvalidChar {
                    id: bad.to_string(),
                    ch,
                    position: pos
                },
                "{bad:?}"
            );
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn deserialization_validates() {
        let ok: AgentId = serde_json::from_str("\"agent-1\"").unwrap();
        assert_eq!(ok.as_str(), "agent-1");
        let err = serde_json::from_str::<AgentId>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("'.'"), "{err}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"agent-1\"");
    }
}
