//! How results are printed: a table (the default) or the same view as JSON
//! or YAML (`-o json|yaml`), and whether tables get colours.

use serde::Serialize;

use crate::error::PluginError;
use crate::table::Style;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Encoded(Encoding),
}

/// A machine-readable format of the same view the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self, PluginError> {
        match s {
            "json" => Ok(Format::Encoded(Encoding::Json)),
            "yaml" => Ok(Format::Encoded(Encoding::Yaml)),
            "table" | "wide" => Ok(Format::Table),
            other => Err(PluginError::Usage(format!(
                "unknown output format {other:?} (allowed: json, yaml)"
            ))),
        }
    }
}

/// Colours only on a terminal and only while `NO_COLOR` is unset or empty
/// (<https://no-color.org>): a pipe, a file or a test never sees an escape
/// code.
pub fn style(stdout_is_tty: bool, no_color: Option<&std::ffi::OsStr>) -> Style {
    let disabled = no_color.is_some_and(|v| !v.is_empty());
    if stdout_is_tty && !disabled {
        Style::Colour
    } else {
        Style::Plain
    }
}

/// The style for this process's stdout.
pub fn detect_style() -> Style {
    use std::io::IsTerminal;
    style(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// `value` as JSON (pretty, newline-terminated) or YAML.
pub fn serialize<T: Serialize>(value: &T, encoding: Encoding) -> Result<String, PluginError> {
    match encoding {
        Encoding::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| PluginError::Encode(e.to_string())),
        Encoding::Yaml => {
            serde_yaml::to_string(value).map_err(|e| PluginError::Encode(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_tty_without_no_color() {
        assert_eq!(style(true, None), Style::Colour);
        assert_eq!(style(false, None), Style::Plain);
        assert_eq!(style(true, Some(OsStr::new("1"))), Style::Plain);
        // An empty NO_COLOR does not disable colours (no-color.org).
        assert_eq!(style(true, Some(OsStr::new(""))), Style::Colour);
    }

    #[test]
    fn formats_parse() {
        assert_eq!(
            Format::parse("json").unwrap(),
            Format::Encoded(Encoding::Json)
        );
        assert_eq!(
            Format::parse("yaml").unwrap(),
            Format::Encoded(Encoding::Yaml)
        );
        let err = Format::parse("xml").unwrap_err();
        assert!(err.to_string().contains("xml"), "{err}");
    }
}
