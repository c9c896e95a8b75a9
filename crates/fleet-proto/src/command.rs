//! The commands an agent serves, and the types each one exchanges.

use crate::{InfoReply, PingReply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::str::FromStr;

/// A command of protocol v1. The name is the last subject token:
/// `fleet.agent.<id>.cmd.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Liveness round trip: id, version, uptime, timestamp.
    Ping,
    /// Identity and state: labels, capabilities, connection statistics.
    Info,
}

impl Command {
    /// Every command of this protocol version, in a stable order (the
    /// agent's `capabilities`).
    pub const ALL: &'static [Command] = &[Command::Ping, Command::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Info => "info",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command name this protocol version does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command {name:?}; known commands: ping, info")]
pub struct UnknownCommand {
    pub name: String,
}

impl FromStr for Command {
    type Err = UnknownCommand;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCommand {
                name: s.to_string(),
            })
    }
}

/// Ties a command to its argument and reply types, so that a requester
/// cannot send `info` and decode the reply as a `PingReply`.
pub trait CommandSpec {
    const COMMAND: Command;
    type Args: Serialize + DeserializeOwned + Default + Send + Sync;
    type Reply: Serialize + DeserializeOwned + Send;
}

/// Arguments of `ping` (none in v1; an object so fields can be added).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PingArgs {}

/// Arguments of `info` (none in v1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InfoArgs {}

/// Marker for the `ping` command.
pub struct PingCommand;
impl CommandSpec for PingCommand {
    const COMMAND: Command = Command::Ping;
    type Args = PingArgs;
    type Reply = PingReply;
}

/// Marker for the `info` command.
pub struct InfoCommand;
impl CommandSpec for InfoCommand {
    const COMMAND: Command = Command::Info;
    type Args = InfoArgs;
    type Reply = InfoReply;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Command::ALL {
            assert_eq!(c.as_str().parse::<Command>(), Ok(*c));
        }
    }

    #[test]
    fn unknown_name_is_reported() {
        let err = "reboot".parse::<Command>().unwrap_err();
        assert_eq!(err.name, "reboot");
        assert!(err.to_string().contains("\"reboot\""), "{err}");
    }
}
