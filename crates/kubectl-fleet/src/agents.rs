//! `kubectl fleet agents`: FleetAgents with what a person asks of them:
//! connected or not and since when, last heartbeat, version, labels, and
//! whether the agent is pending approval or disabled (when the API has
//! those fields, see [`generic::admission`]).
//!
//! The operator writes a FleetAgent only when something changes (ADR 0050),
//! so `lastHeartbeatTime` of a connected agent is old by design: while
//! connected, heartbeats arrive every interval, and the table says so
//! instead of showing the age of the last write.

use std::collections::BTreeMap;

use fleet_crds::{FleetAgent, READY, STACK_LABEL, find_condition};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;

use crate::age;
use crate::generic::{self, Admission};
use crate::table::{Cell, Colour, Style, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AgentState {
    Connected,
    Disconnected,
    /// Enrolled, waiting for approval.
    Pending,
    /// Revoked (`spec.disabled`).
    Disabled,
}

impl AgentState {
    fn cell(self) -> Cell {
        match self {
            AgentState::Connected => Cell::coloured("Connected", Colour::Green),
            AgentState::Disconnected => Cell::coloured("Disconnected", Colour::Red),
            AgentState::Pending => Cell::coloured("Pending", Colour::Yellow),
            AgentState::Disabled => Cell::coloured("Disabled", Colour::Yellow),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub namespace: String,
    pub name: String,
    pub agent_id: String,
    /// The FleetStack whose operator runtime keeps this FleetAgent.
    pub stack: Option<String>,
    pub state: AgentState,
    pub connected: bool,
    pub version: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339: when `connected` last flipped (the Ready condition's
    /// transition), i.e. connected since / disconnected since.
    pub since: Option<String>,
    /// RFC 3339, the latest heartbeat when the status was last written.
    pub last_heartbeat_time: Option<String>,
    pub heartbeat_interval_millis: Option<i64>,
    pub missed_heartbeats: i32,
}

impl AgentView {
    /// `raw` is the whole object as JSON (for fields newer than the typed
    /// API, [`generic`]).
    pub fn new(agent: &FleetAgent, raw: &Value) -> Self {
        let status = agent.status.clone().unwrap_or_default();
        let state = match (generic::admission(raw), status.connected) {
            (Admission::Disabled, _) => AgentState::Disabled,
            (Admission::Pending, _) => AgentState::Pending,
            (Admission::Admitted, true) => AgentState::Connected,
            (Admission::Admitted, false) => AgentState::Disconnected,
        };
        // A dedicated field, if the controller writes one, wins over the
        // Ready condition's transition time.
        let since = raw
            .pointer("/status/connectedSince")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                find_condition(&status.conditions, READY)
                    .map(|c| c.last_transition_time.0.to_string())
            });
        AgentView {
            namespace: agent.namespace().unwrap_or_default(),
            name: agent.name_any(),
            agent_id: agent.spec.agent_id.clone(),
            stack: agent.labels().get(STACK_LABEL).cloned(),
            state,
            connected: status.connected,
            version: status.version.clone(),
            labels: status.labels.clone(),
            since,
            last_heartbeat_time: status.last_heartbeat_time.as_ref().map(|t| t.0.to_string()),
            heartbeat_interval_millis: status.heartbeat_interval_millis,
            missed_heartbeats: status.missed_heartbeats,
        }
    }

    /// What the LAST-HEARTBEAT column says.
    fn last_heartbeat(&self, now: Timestamp) -> String {
        match (self.connected, self.heartbeat_interval_millis) {
            (true, Some(ms)) => format!("<{}", age::human((ms + 999) / 1000)),
            (true, None) | (false, _) => match &self.last_heartbeat_time {
                Some(t) => match t.parse::<Timestamp>() {
                    Ok(t) => format!("{} ago", age::human(now.as_second() - t.as_second())),
                    Err(_) => t.clone(),
                },
                None => String::new(),
            },
        }
    }
}

/// `k=v,k2=v2`, like `kubectl get --show-labels`.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The table; `with_namespace` adds kubectl's NAMESPACE column (`-A`).
pub fn render(agents: &[AgentView], with_namespace: bool, style: Style, now: Timestamp) -> String {
    let mut headers = vec![
        "agent",
        "state",
        "since",
        "last-heartbeat",
        "version",
        "stack",
        "labels",
    ];
    if with_namespace {
        headers.insert(0, "namespace");
    }
    let mut t = Table::new(&headers);
    for a in agents {
        let since = a
            .since
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .map(|t| age::human(now.as_second() - t.as_second()));
        let mut row = vec![
            a.agent_id.clone().into(),
            a.state.cell(),
            Cell::or_none(since),
            Cell::or_none(Some(a.last_heartbeat(now))),
            Cell::or_none(a.version.clone()),
            Cell::or_none(a.stack.clone()),
            Cell::or_none(Some(labels_text(&a.labels))),
        ];
        if with_namespace {
            row.insert(0, a.namespace.clone().into());
        }
        t.row(row);
    }
    t.render(style)
}

/// kubectl's message for an empty list.
pub fn none_found(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No FleetAgents found in {ns} namespace.\n"),
        None => "No FleetAgents found.\n".to_string(),
    }
}
