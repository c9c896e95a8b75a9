//! NATS subjects of the fleet. Everything an agent does lives under
//! `fleet.agent.<id>.`:
//!
//! - `fleet.agent.<id>.cmd.<command>`: request/reply commands to one agent;
//! - `fleet.agent.<id>.heartbeat`: the agent's periodic heartbeat.
//!
//! Building subjects only from an [`AgentId`] and a [`Command`] keeps typos
//! and invalid tokens out of the code base; permissions in the NATS config
//! (or the auth callout) can then be written against the same prefixes.

use crate::{AgentId, Command};

/// First two tokens of every agent subject.
pub const AGENT_PREFIX: &str = "fleet.agent";

/// Every agent's heartbeat, for the operator: `fleet.agent.*.heartbeat`.
pub const ALL_HEARTBEATS: &str = "fleet.agent.*.heartbeat";

/// Every command to every agent: `fleet.agent.*.cmd.>` (auditing, permissions).
pub const ALL_COMMANDS: &str = "fleet.agent.*.cmd.>";

/// `fleet.agent.<id>.cmd.<command>`: where a requester sends `command`.
pub fn command_subject(agent: &AgentId, command: Command) -> String {
    format!("{AGENT_PREFIX}.{agent}.cmd.{}", command.as_str())
}

/// `fleet.agent.<id>.cmd.>`: what an agent subscribes to. The full wildcard
/// (not `*`) means a request for `cmd.a.b` still reaches the agent and gets an
/// "unknown command" reply instead of a silent NoResponders.
pub fn command_wildcard(agent: &AgentId) -> String {
    format!("{AGENT_PREFIX}.{agent}.cmd.>")
}

/// `fleet.agent.<id>.heartbeat`
pub fn heartbeat_subject(agent: &AgentId) -> String {
    format!("{AGENT_PREFIX}.{agent}.heartbeat")
}

/// `fleet.agent.<id>.>`: everything about one agent (permissions of that
/// agent's NATS user).
pub fn agent_wildcard(agent: &AgentId) -> String {
    format!("{AGENT_PREFIX}.{agent}.>")
}

/// The command part of a command subject addressed to `agent`:
/// `fleet.agent.a1.cmd.ping` -> `Some("ping")`. `None` when the subject is
/// not a command subject for that agent. The command name is returned as
/// text, not as a [`Command`], so the caller can report unknown names.
pub fn command_name<'a>(agent: &AgentId, subject: &'a str) -> Option<&'a str> {
    let rest = subject.strip_prefix(AGENT_PREFIX)?.strip_prefix('.')?;
    let rest = rest.strip_prefix(agent.as_str())?.strip_prefix(".cmd.")?;
    (!rest.is_empty()).then_some(rest)
}

/// The agent id of a heartbeat subject: `fleet.agent.a1.heartbeat` -> `a1`.
/// The operator uses it on messages received through [`ALL_HEARTBEATS`].
pub fn heartbeat_agent(subject: &str) -> Option<AgentId> {
    let rest = subject.strip_prefix(AGENT_PREFIX)?.strip_prefix('.')?;
    let id = rest.strip_suffix(".heartbeat")?;
    AgentId::new(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AgentId {
        AgentId::new(s).unwrap()
    }

    #[test]
    fn builds_subjects() {
        let a = id("agent-0");
        assert_eq!(
            command_subject(&a, Command::Ping),
            "fleet.agent.agent-0.cmd.ping"
        );
        assert_eq!(
            command_subject(&a, Command::Info),
            "fleet.agent.agent-0.cmd.info"
        );
        assert_eq!(command_wildcard(&a), "fleet.agent.agent-0.cmd.>");
        assert_eq!(heartbeat_subject(&a), "fleet.agent.agent-0.heartbeat");
        assert_eq!(agent_wildcard(&a), "fleet.agent.agent-0.>");
    }

    #[test]
    fn extracts_command_names() {
        let a = id("a1");
        assert_eq!(command_name(&a, "fleet.agent.a1.cmd.ping"), Some("ping"));
        assert_eq!(command_name(&a, "fleet.agent.a1.cmd.x.y"), Some("x.y"));
        assert_eq!(command_name(&a, "fleet.agent.a1.cmd."), None);
        assert_eq!(command_name(&a, "fleet.agent.a2.cmd.ping"), None);
        assert_eq!(command_name(&a, "fleet.agent.a10.cmd.ping"), None);
        assert_eq!(command_name(&a, "fleet.agent.a1.heartbeat"), None);
        assert_eq!(command_name(&a, "other.agent.a1.cmd.ping"), None);
    }

    #[test]
    fn extracts_heartbeat_agent() {
        assert_eq!(heartbeat_agent("fleet.agent.a1.heartbeat"), Some(id("a1")));
        assert_eq!(heartbeat_agent("fleet.agent.a.b.heartbeat"), None);
        assert_eq!(heartbeat_agent("fleet.agent.a1.cmd.ping"), None);
        assert_eq!(heartbeat_agent("fleet.agent..heartbeat"), None);
    }
}
