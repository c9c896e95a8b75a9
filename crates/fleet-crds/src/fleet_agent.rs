//! `FleetAgent`: one object per agent seen on NATS, written only by the
//! fleet-operator runtime (docs/adr/0050-fleet-agent-inventory-writes.md).
//!
//! The spec holds the agent's identity; everything observed lives in the
//! status. The status changes only when something a user or a GitOps tool
//! acts on changes (connected flips, version, labels), never on every
//! heartbeat, so an idle fleet produces no API writes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::conditions_schema;

/// Label naming the FleetStack whose operator runtime wrote a FleetAgent
/// (its `FLEET_OWNER_STACK`). An operator runtime lists, adopts, deletes
/// and sends commands to only the FleetAgents carrying its own stack's
/// value, so several FleetStacks can share a namespace
/// (docs/adr/0050-fleet-agent-inventory-writes.md).
pub const STACK_LABEL: &str = "fleet.nationtech.io/stack";

/// An agent of the fleet, as reported by its heartbeats.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[kube(
    group = "fleet.nationtech.io",
    version = "v1alpha1",
    kind = "FleetAgent",
    namespaced,
    status = "FleetAgentStatus",
    shortname = "fa",
    derive = "PartialEq",
    derive = "Default",
    doc = "An agent of the fleet, maintained by the fleet-operator from the agent's NATS heartbeats.",
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".spec.agentId"}"#,
    printcolumn = r#"{"name":"Connected","type":"boolean","jsonPath":".status.connected"}"#,
    printcolumn = r#"{"name":"Approved","type":"boolean","priority":1,"jsonPath":".spec.approved","description":"Devices only: may connect (pod agents leave it empty)."}"#,
    printcolumn = r#"{"name":"Disabled","type":"boolean","priority":1,"jsonPath":".spec.disabled"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    // What a person reads off `kubectl get fleetagents`: connected (or
    // disconnected) since when. The Ready condition flips exactly when
    // `connected` does and keeps its transition time otherwise, so this
    // needs no write beyond the flip (ADR 0050: no write per heartbeat).
    // `lastHeartbeatTime` is only the latest heartbeat at the last write,
    // hours old on a healthy agent: shown with `-o wide` under that name.
    printcolumn = r#"{"name":"Since","type":"date","jsonPath":".status.conditions[?(@.type==\"Ready\")].lastTransitionTime","description":"When the agent last connected (Connected=true) or was declared disconnected (Connected=false)."}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Heartbeat-At-Last-Write","type":"date","priority":1,"jsonPath":".status.lastHeartbeatTime","description":"The latest heartbeat when the status was last written; not refreshed on every heartbeat (ADR 0050)."}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FleetAgentSpec {
    /// The agent's id on NATS (`fleet.agent.<agentId>.>`). The object name is
    /// derived from it; ids that are not valid object names (upper case,
    /// `_`) get a hash suffix, so this field is the authoritative id.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub agent_id: String,
    /// A device's public NKey (`U...`, 56 characters), recorded at
    /// enrollment: the device logs in by signing the server's nonce with the
    /// matching private key, which never leaves it. Absent for pod agents
    /// (docs/adr/0080-device-identity-enrollment-revocation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 56, max = 56), regex(pattern = r"^U[A-Z2-7]{55}$"))]
    pub public_key: Option<String>,
    /// A device may connect only while approved. Enrollment sets it from the
    /// token's `autoApprove`; a person or a GitOps commit approves the rest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approved: bool,
    /// True: the callout refuses the device and disconnects its live
    /// connection (within a second). Deleting the object does the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The FleetEnrollmentToken the device enrolled with (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_token: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FleetAgentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether heartbeats arrive: false once `missedHeartbeats` reached the
    /// operator's threshold.
    #[serde(default)]
    pub connected: bool,
    /// The latest heartbeat received when this status was written (receive
    /// time, operator clock). Not refreshed on every heartbeat: while
    /// `connected` is true, heartbeats keep arriving on time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    /// Agent software version from its heartbeat (absent when the agent
    /// reports none: Kubernetes 1.20 server-side apply turns `""` into
    /// `null` on custom resources, so empty strings are never written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Labels the agent reports (its `FLEET_AGENT_LABELS`); FleetCommand
    /// selectors match these. Labels with an empty value are left out (see
    /// `version`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Heartbeat interval the agent declares, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_millis: Option<i64>,
    /// Heartbeats missed in a row when this status was written.
    #[serde(default)]
    pub missed_heartbeats: i32,
    /// `Ready`: True while connected, False (reason `HeartbeatsMissed`) after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// FleetAgent object name for agent id `s` (a valid `fleet_proto::AgentId`):
/// kept as is when it already is a valid object name, else lower-cased,
/// `_` -> `-`, plus a hash of the exact id so `Agent_1` and `agent-1` never
/// share an object. Persisted: never change the result for an id.
pub fn agent_object_name(s: &str) -> String {
    let valid = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
    if valid {
        return s.to_string();
    }
    let cleaned: String = s
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    let hash = fnv1a(s.as_bytes());
    if cleaned.is_empty() {
        format!("agent-{hash:08x}")
    } else {
        format!("{cleaned}-{hash:08x}")
    }
}

/// 32-bit FNV-1a: stable across releases and platforms (unlike std's
/// hasher), which a persisted name needs.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}
