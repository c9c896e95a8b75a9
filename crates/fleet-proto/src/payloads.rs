//! Reply payloads of the v1 commands and the heartbeat message.

use crate::AgentId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Reply to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReply {
    pub agent_id: AgentId,
    /// Version of the agent software (its crate version).
    pub version: String,
    /// Milliseconds since the agent process started.
    pub uptime_ms: u64,
    /// The agent's clock when it answered (RFC 3339, UTC).
    pub timestamp: DateTime<Utc>,
}

/// Reply to `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoReply {
    pub agent_id: AgentId,
    pub version: String,
    /// When the agent process started.
    pub started_at: DateTime<Utc>,
    /// Labels from the agent's configuration (for the operator's selection).
    pub labels: BTreeMap<String, String>,
    /// Command names this agent serves. Strings, not [`crate::Command`], so
    /// an older operator can read the list of a newer agent.
    pub capabilities: Vec<String>,
    pub connection: ConnectionStats,
}

/// The agent's view of its NATS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// Server the agent is connected to (`server_id` of its INFO).
    pub server_id: String,
    pub server_name: String,
    pub server_version: String,
    /// Successful connects since start; > 1 means the agent reconnected.
    pub connects: u64,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// Published by every agent on `fleet.agent.<id>.heartbeat` at its
/// configured interval. Encode and decode with
/// [`crate::encode_heartbeat`] / [`crate::decode_heartbeat`], which add and
/// check the protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Protocol version ([`crate::PROTOCOL_VERSION`]).
    pub v: u32,
    pub agent_id: AgentId,
    pub version: String,
    /// Increases by one per heartbeat from 0 at process start: a gap means
    /// lost heartbeats, a reset means the agent restarted.
    pub seq: u64,
    pub uptime_ms: u64,
    pub timestamp: DateTime<Utc>,
    /// Heartbeat interval the agent uses, so a watcher knows when one is late.
    pub interval_ms: u64,
    pub labels: BTreeMap<String, String>,
}
