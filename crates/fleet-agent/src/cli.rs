//! Command line of the `fleet-agent` binary.
//!
//! ```text
//! fleet-agent [run] [--config FILE]
//! fleet-agent enroll --url URL [--ca FILE] (--token TOKEN | --token-file FILE)
//!                    [--agent-id ID] [--state-dir DIR] [--config FILE]
//! fleet-agent rotate-key [--config FILE]
//! ```
//!
//! Every setting is also an environment variable (`fleet_agent::config`);
//! `--config FILE` (or `FLEET_AGENT_CONFIG`) names a file of `KEY=VALUE`
//! lines read first, the environment overriding it. `enroll` falls back to
//! `FLEET_NATS_URL`, `FLEET_NATS_CA_FILE`, `FLEET_ENROLL_TOKEN`,
//! `FLEET_AGENT_ID` (else the short hostname) and `FLEET_DEVICE_STATE_DIR`
//! (else [`DEFAULT_STATE_DIR`]). Prefer `--token-file` or the variable to
//! `--token`: a command line is visible to every user of the machine.

use std::collections::HashMap;
use std::path::PathBuf;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/fleet-agent";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run,
    Enroll(EnrollArgs),
    RotateKey,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnrollArgs {
    pub url: Option<String>,
    pub ca: Option<PathBuf>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub agent_id: Option<String>,
    pub state_dir: Option<PathBuf>,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub command: Command,
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("unknown command {0:?} (expected run, enroll or rotate-key)")]
    UnknownCommand(String),
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error("option {0} needs a value")]
    MissingValue(String),
}

pub const USAGE: &str = "usage:
  fleet-agent [run] [--config FILE]
  fleet-agent enroll --url URL [--ca FILE] (--token TOKEN | --token-file FILE)
                     [--agent-id ID] [--state-dir DIR] [--config FILE]
  fleet-agent rotate-key [--config FILE]";

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cli, CliError> {
    let mut rest = args.iter().peekable();
    let command = match rest.peek().map(|s| s.as_str()) {
        Some("run") => {
            rest.next();
            Command::Run
        }
        Some("enroll") => {
            rest.next();
            Command::Enroll(EnrollArgs::default())
        }
        Some("rotate-key") => {
            rest.next();
            Command::RotateKey
        }
        Some("help" | "--help" | "-h") => Command::Help,
        Some(other) if !other.starts_with('-') => {
            return Err(CliError::UnknownCommand(other.to_string()));
        }
        _ => Command::Run,
    };
    let mut cli = Cli {
        command,
        config: None,
    };
    while let Some(flag) = rest.next() {
        if matches!(flag.as_str(), "--help" | "-h") {
            cli.command = Command::Help;
            continue;
        }
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| CliError::MissingValue(flag.clone()))
        };
        match (&mut cli.command, flag.as_str()) {
            (_, "--config") => cli.config = Some(value()?.into()),
            (Command::Enroll(e), "--url") => e.url = Some(value()?),
            (Command::Enroll(e), "--ca") => e.ca = Some(value()?.into()),
            (Command::Enroll(e), "--token") => e.token = Some(value()?),
            (Command::Enroll(e), "--token-file") => e.token_file = Some(value()?.into()),
            (Command::Enroll(e), "--agent-id") => e.agent_id = Some(value()?),
            (Command::Enroll(e), "--state-dir") => e.state_dir = Some(value()?.into()),
            (Command::Run | Command::Enroll(_) | Command::RotateKey | Command::Help, other) => {
                return Err(CliError::UnknownOption(other.to_string()));
            }
        }
    }
    Ok(cli)
}

/// The variable lookup of the agent: the environment over the config file.
pub fn lookup(
    env: impl Fn(&str) -> Option<String>,
    file: Vec<(String, String)>,
) -> impl Fn(&str) -> Option<String> {
    let file: HashMap<String, String> = file.into_iter().collect();
    move |k| env(k).or_else(|| file.get(k).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_commands() {
        assert_eq!(parse(&[]).expect("run").command, Command::Run);
        let cli = parse(&args(&["--config", "/etc/fleet-agent/agent.conf"])).expect("run");
        assert_eq!(cli.command, Command::Run);
        assert_eq!(cli.config, Some("/etc/fleet-agent/agent.conf".into()));
        let cli = parse(&args(&[
            "enroll",
            "--url",
            "tls://n:4222",
            "--ca",
            "/ca.crt",
            "--token-file",
            "/t",
            "--agent-id",
            "gw-1",
        ]))
        .expect("enroll");
        assert_eq!(
            cli.command,
            Command::Enroll(EnrollArgs {
                url: Some("tls://n:4222".into()),
                ca: Some("/ca.crt".into()),
                token_file: Some("/t".into()),
                agent_id: Some("gw-1".into()),
                ..EnrollArgs::default()
            })
        );
        assert_eq!(
            parse(&args(&["rotate-key"])).expect("rotate").command,
            Command::RotateKey
        );
        assert_eq!(
            parse(&args(&["enrol"])),
            Err(CliError::UnknownCommand("enrol".into()))
        );
        assert_eq!(
            parse(&args(&["run", "--url", "x"])),
            Err(CliError::UnknownOption("--url".into()))
        );
        assert_eq!(
            parse(&args(&["enroll", "--token"])),
            Err(CliError::MissingValue("--token".into()))
        );
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let get = lookup(
            |k| (k == "A").then(|| "env".to_string()),
            vec![("A".into(), "file".into()), ("B".into(), "file".into())],
        );
        assert_eq!(get("A").as_deref(), Some("env"));
        assert_eq!(get("B").as_deref(), Some("file"));
        assert_eq!(get("C"), None);
    }
}
