//! `FleetCommand`: a command (ping or info) sent by the fleet-operator to
//! every FleetAgent its selector matches, exactly once per generation
//! (docs/adr/0051-fleet-command-execution.md).
//!
//! Like a Job, it finishes with `Complete=True` (every selected agent
//! answered, or none was selected) or `Failed=True` (some agent failed or
//! timed out); `Reconciling=True` while it runs, so kstatus reports
//! InProgress until then.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::conditions_schema;

/// Condition types of a FleetCommand.
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";

/// Most per-agent results kept in the status; the rest are counted in
/// `status.truncated` (an object must stay far below etcd's 1.5 MiB).
pub const MAX_RESULTS: usize = 100;

/// A command for the agents a label selector matches.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[kube(
    group = "fleet.nationtech.io",
    version = "v1alpha1",
    kind = "FleetCommand",
    namespaced,
    status = "FleetCommandStatus",
    shortname = "fc",
    derive = "PartialEq",
    derive = "Default",
    doc = "A command (Ping or Info) the fleet-operator sends once per generation to the FleetAgents its selector matches.",
    printcolumn = r#"{"name":"Command","type":"string","jsonPath":".spec.command"}"#,
    printcolumn = r#"{"name":"Selected","type":"integer","jsonPath":".status.summary.selected"}"#,
    printcolumn = r#"{"name":"Succeeded","type":"integer","jsonPath":".status.summary.succeeded"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.summary.failed"}"#,
    printcolumn = r#"{"name":"TimedOut","type":"integer","jsonPath":".status.summary.timedOut"}"#,
    printcolumn = r#"{"name":"Complete","type":"string","jsonPath":".status.conditions[?(@.type==\"Complete\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FleetCommandSpec {
    /// Selects FleetAgents in this namespace by the labels the agents
    /// report (`status.labels`). `{}` selects every agent.
    pub selector: LabelSelector,
    pub command: FleetCommandName,
    /// How long each agent has to answer.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: i32,
}

/// The commands an agent serves (fleet protocol v1).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
pub enum FleetCommandName {
    /// Liveness round trip: version and uptime.
    #[default]
    Ping,
    /// Version, labels, capabilities and connection statistics.
    Info,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FleetCommandStatus {
    /// The generation that was (or is being) executed. Never executed twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<CommandSummary>,
    /// Per-agent outcomes, failures first, then by agent id; at most 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub results: Vec<AgentResult>,
    /// Results left out of `results` because of the cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated: i32,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CommandSummary {
    pub selected: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub timed_out: i32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentResult {
    pub agent_id: String,
    pub outcome: AgentOutcome,
    /// The answer in short (`version 0.1.0, up 42s`) or why there was none.
    pub message: String,
    /// Agent version from its reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Round-trip time of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_millis: Option<i64>,
}

#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum AgentOutcome {
    /// Declared first: failures sort before successes in `results`.
    Failed,
    /// No answer within the timeout (also: nobody subscribed for its subject).
    TimedOut,
    Succeeded,
}

fn default_timeout() -> i32 {
    10
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}
