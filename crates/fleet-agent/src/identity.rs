//! Who this agent is: what ping, info and heartbeats report.

use chrono::{DateTime, Utc};
use fleet_proto::AgentId;
use std::collections::BTreeMap;
use std::time::Instant;

/// The agent's identity and start time. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub id: AgentId,
    /// Version of the agent software.
    pub version: &'static str,
    pub labels: BTreeMap<String, String>,
    pub started_at: DateTime<Utc>,
    started: Instant,
}

impl AgentIdentity {
    pub fn new(id: AgentId, labels: BTreeMap<String, String>) -> Self {
        AgentIdentity {
            id,
            version: env!("CARGO_PKG_VERSION"),
            labels,
            started_at: Utc::now(),
            started: Instant::now(),
        }
    }

    /// Milliseconds since start (monotonic clock, immune to clock jumps).
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
