//! `kubectl fleet ping <selector>`: a FleetCommand `Ping` for the agents the
//! selector matches (by the labels they report, like every FleetCommand;
//! ADR 0051), then the per-agent results once it finished.
//!
//! The plugin does not talk to NATS: the operator runtime executes the
//! command, so the plugin needs only API rights (create/get/delete
//! FleetCommands) and works from anywhere kubectl works.

use fleet_crds::fleet_command::{COMPLETE, FAILED};
use fleet_crds::{
    AgentOutcome, AgentResult, CommandSummary, FleetCommand, FleetCommandName, FleetCommandSpec,
    find_condition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::core::Selector;
use serde::Serialize;

use crate::table::{Cell, Colour, Style, Table};

/// Prefix of the generated FleetCommand names (`generateName`).
pub const NAME_PREFIX: &str = "kubectl-fleet-ping-";
/// Marks the FleetCommands this plugin created.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-fleet");

/// The FleetCommand to create.
pub fn command(namespace: &str, selector: Selector, timeout_seconds: i32) -> FleetCommand {
    FleetCommand {
        metadata: ObjectMeta {
            generate_name: Some(NAME_PREFIX.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
            ..Default::default()
        },
        spec: FleetCommandSpec {
            selector: selector.into(),
            command: FleetCommandName::Ping,
            timeout_seconds,
        },
        status: None,
    }
}

/// Whether the operator finished this generation (Complete or Failed True
/// for the current generation).
pub fn finished(cmd: &FleetCommand) -> bool {
    let generation = cmd.metadata.generation;
    cmd.status.as_ref().is_some_and(|s| {
        [COMPLETE, FAILED].iter().any(|t| {
            find_condition(&s.conditions, t).is_some_and(|c| {
                c.status == "True" && (generation.is_none() || c.observed_generation == generation)
            })
        })
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PingView {
    pub namespace: String,
    /// The FleetCommand (deleted afterwards unless `--keep`).
    pub command: String,
    pub selector: String,
    /// True when every selected agent answered (the command's `Complete`).
    pub succeeded: bool,
    /// `Failed`'s reason and message when the command failed.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub summary: CommandSummary,
    pub results: Vec<AgentResult>,
    /// Results the operator left out of the status (more than 100 agents).
    pub truncated: i32,
}

impl PingView {
    pub fn new(cmd: &FleetCommand, selector: &str) -> Self {
        let status = cmd.status.clone().unwrap_or_default();
        let failed = find_condition(&status.conditions, FAILED).filter(|c| c.status == "True");
        PingView {
            namespace: cmd.namespace().unwrap_or_default(),
            command: cmd.name_any(),
            selector: selector.to_string(),
            succeeded: failed.is_none(),
            reason: failed.map(|c| c.reason.clone()),
            message: failed.map(|c| c.message.clone()),
            summary: status.summary.unwrap_or_default(),
            results: status.results,
            truncated: status.truncated,
        }
    }

    /// The process exit code: 0 when every selected agent answered, 3 when
    /// any failed or timed out (or the command itself failed).
    pub fn exit_code(&self) -> i32 {
        if self.succeeded && self.summary.failed == 0 && self.summary.timed_out == 0 {
            0
        } else {
            3
        }
    }

    pub fn render(&self, style: Style) -> String {
        let mut out = String::new();
        if !self.results.is_empty() {
            let mut t = Table::new(&["agent", "result", "rtt", "version", "message"]);
            for r in &self.results {
                let outcome = match r.outcome {
                    AgentOutcome::Succeeded => Cell::coloured("Succeeded", Colour::Green),
                    AgentOutcome::Failed => Cell::coloured("Failed", Colour::Red),
                    AgentOutcome::TimedOut => Cell::coloured("TimedOut", Colour::Red),
                };
                t.row(vec![
                    r.agent_id.clone().into(),
                    outcome,
                    Cell::or_none(r.duration_millis.map(|ms| format!("{ms}ms"))),
                    Cell::or_none(r.version.clone()),
                    r.message.clone().into(),
                ]);
            }
            out.push_str(&t.render(style));
            out.push('\n');
        }
        let s = &self.summary;
        let mut line = format!(
            "{} selected, {} succeeded, {} failed, {} timed out",
            s.selected, s.succeeded, s.failed, s.timed_out
        );
        if self.truncated > 0 {
            line.push_str(&format!(" ({} results not shown)", self.truncated));
        }
        if s.selected == 0 && self.succeeded {
            line = format!(
                "No FleetAgent in {} matches {:?}",
                self.namespace, self.selector
            );
        }
        let colour = if self.exit_code() == 0 {
            Colour::Green
        } else {
            Colour::Red
        };
        out.push_str(&Cell::coloured(line, colour).render(style));
        out.push('\n');
        if let (Some(reason), Some(message)) = (&self.reason, &self.message) {
            out.push_str(&format!("{reason}: {message}\n"));
        }
        out
    }
}
