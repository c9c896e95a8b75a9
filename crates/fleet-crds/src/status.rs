//! The status contract (docs/adr/0011-status-contract.md).
//!
//! * `observedGeneration` is written in every status patch;
//! * conditions are `metav1.Condition`s in a `listType=map` list keyed by
//!   `type`, each with its own `observedGeneration`;
//! * `Ready`, `Reconciling`, `Stalled`, `Paused` plus one `<Component>Ready`
//!   condition per component present in the spec;
//! * `components` holds the last probe result of each component;
//! * nothing in here changes unless something really changed (no probe
//!   timestamps, no latencies), so an idle stack's status is never rewritten.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const PAUSED: &str = "Paused";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FleetStackStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Last probe result per component (`nats`, `identity`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentsStatus>,
    /// Where clients connect: one entry per exposed listener, with the CA
    /// certificate a device needs to verify it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// The certificates the stack serves, with their expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateStatus>,
}

/// A way in for clients (docs/adr/0061-exposing-nats-outside-the-cluster.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// What listens there: `nats` (client port) or `nats-websocket`.
    pub name: String,
    /// URL a client dials, e.g. `tls://192.0.2.7:30422` or
    /// `wss://nats.example.com:30443`.
    pub url: String,
    /// PEM of the CA that signs the server certificate (public; a device
    /// trusts it to verify the server). Absent with TLS disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

/// One server certificate the reconciler keeps.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// The Secret holding it (`tls.crt`, `tls.key`, `ca.crt`).
    pub secret: String,
    /// Expiry, RFC 3339 (`notAfter` of the certificate).
    pub not_after: String,
    /// When the reconciler renews it (a third of its lifetime before
    /// `notAfter`), RFC 3339.
    pub renew_after: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Whether the last smoke probe passed.
    pub ready: bool,
    /// CamelCase reason (`ProbeSucceeded`, `ProbeFailed`, `RollingOut`...).
    pub reason: String,
    pub message: String,
    /// Generation of the spec the probe ran against.
    #[serde(default)]
    pub observed_generation: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentsStatus {
    /// `spec.agents.replicas`.
    pub desired: i32,
    /// Agents that answered the last smoke probe's NATS ping.
    pub ready: i32,
    /// Agents the operator runtime reports connected (their FleetAgents);
    /// absent without `spec.operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<i32>,
    /// `ready/desired`, for the printer column.
    pub summary: String,
}

impl AgentsStatus {
    pub fn new(desired: i32, ready: i32) -> Self {
        AgentsStatus {
            desired,
            ready,
            connected: None,
            summary: format!("{ready}/{desired}"),
        }
    }

    pub fn with_connected(mut self, connected: Option<i32>) -> Self {
        self.connected = connected;
        self
    }
}

/// Condition list schema: `metav1.Condition` items, `listType=map` keyed by
/// `type`, so server-side apply merges conditions by type. Shared by
/// FleetStack, FleetAgent and FleetCommand.
pub(crate) fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "maxLength": 316},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string", "maxLength": 1024},
                "message": {"type": "string", "maxLength": 32768}
            }
        }
    })
}

/// The three values a condition's status takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondStatus {
    True,
    False,
    Unknown,
}

impl CondStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CondStatus::True => "True",
            CondStatus::False => "False",
            CondStatus::Unknown => "Unknown",
        }
    }
}

/// Looks a condition up by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition, keeping `lastTransitionTime` unless the status flips
/// (the rule that keeps status writes from retriggering reconciles).
/// Conditions stay sorted by type so the list is deterministic.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: CondStatus,
    reason: &str,
    message: &str,
    generation: i64,
    now: &Time,
) {
    let last_transition_time = match find_condition(conditions, type_) {
        Some(old) if old.status == status.as_str() => old.last_transition_time.clone(),
        _ => now.clone(),
    };
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: Some(generation),
        last_transition_time,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Removes a condition (e.g. `Reconciling` once the work is done).
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Whether a condition is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("valid"))
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            READY,
            CondStatus::False,
            "ProbeFailed",
            "a",
            1,
            &t(10),
        );
        set_condition(
            &mut c,
            READY,
            CondStatus::False,
            "ProbeFailed",
            "b",
            2,
            &t(20),
        );
        let ready = find_condition(&c, READY).expect("ready");
        assert_eq!(ready.last_transition_time, t(10));
        assert_eq!(ready.message, "b");
        assert_eq!(ready.observed_generation, Some(2));
        set_condition(
            &mut c,
            READY,
            CondStatus::True,
            "ProbeSucceeded",
            "",
            2,
            &t(30),
        );
        assert_eq!(
            find_condition(&c, READY)
                .expect("ready")
                .last_transition_time,
            t(30)
        );
    }

    #[test]
    fn conditions_stay_sorted_and_unique() {
        let mut c = Vec::new();
        set_condition(&mut c, READY, CondStatus::Unknown, "R", "", 1, &t(1));
        set_condition(&mut c, "NatsReady", CondStatus::Unknown, "R", "", 1, &t(1));
        set_condition(&mut c, READY, CondStatus::True, "R", "", 1, &t(1));
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec!["NatsReady", "Ready"]);
        remove_condition(&mut c, READY);
        assert!(!is_true(&c, READY));
    }
}
