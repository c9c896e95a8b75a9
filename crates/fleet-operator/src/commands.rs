//! The FleetCommand controller: each generation is executed at most once
//! (docs/adr/0051-fleet-command-execution.md).
//!
//! 1. `status.observedGeneration == generation` and a terminal condition:
//!    done, nothing to do (restarts, resyncs and our own status writes
//!    land here).
//! 2. Otherwise stamp `observedGeneration` with `Reconciling=True` *before*
//!    sending anything. A generation found stamped but not finished was
//!    interrupted (crash, failover): it is reported `Failed/Interrupted`,
//!    not sent again; applying a new generation retries it.
//! 3. Select FleetAgents by their reported labels, among this operator's
//!    own FleetAgents only (`naming::agent_selector`: the stack label of
//!    `FLEET_OWNER_STACK`), send the command to all of them concurrently,
//!    write the summary, the bounded results and `Complete` or `Failed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_crds::fleet_command::{COMPLETE, FAILED, MAX_RESULTS};
use fleet_crds::{
    AgentOutcome, AgentResult, CommandSummary, CondStatus, FleetAgent, FleetCommand,
    FleetCommandName, FleetCommandStatus, RECONCILING, find_condition, set_condition,
};
use fleet_proto::AgentId;
use fleet_proto::client::{ClientError, info, ping};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::{Metrics, OutcomeLabels};
use crate::naming::{FIELD_MANAGER, agent_selector};

/// Agents contacted at the same time by one command.
const FANOUT_CONCURRENCY: usize = 512;

pub struct Context {
    pub commands: Api<FleetCommand>,
    pub agents: Api<FleetAgent>,
    /// Label selector of the FleetAgents this operator may command (its
    /// own stack's; [`agent_selector`]), applied before the user's selector.
    agent_selector: String,
    pub nats: async_nats::Client,
    pub metrics: Arc<Metrics>,
    /// Generations this process finished, by uid: the watch may hand us a
    /// stale copy (still showing our "running" stamp) after we finished.
    finished: Mutex<HashMap<String, i64>>,
}

impl Context {
    /// `owner_stack`: `FLEET_OWNER_STACK`; only FleetAgents labelled with it
    /// are commanded (without it: those with no stack label).
    pub fn new(
        commands: Api<FleetCommand>,
        agents: Api<FleetAgent>,
        owner_stack: Option<&str>,
        nats: async_nats::Client,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            commands,
            agents,
            agent_selector: agent_selector(owner_stack),
            nats,
            metrics,
            finished: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{verb} FleetCommand {namespace}/{name}: {source}")]
    Api {
        verb: &'static str,
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("listing FleetAgents for FleetCommand {namespace}/{name}: {source}")]
    ListAgents {
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    Controller::new(ctx.commands.clone(), watcher::Config::default())
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                warn!(error = %e, "FleetCommand reconcile");
            }
        })
        .await;
}

fn error_policy(_: Arc<FleetCommand>, e: &CommandError, _: Arc<Context>) -> Action {
    warn!(error = %e, "FleetCommand not finished; retrying");
    Action::requeue(Duration::from_secs(5))
}

fn is_terminal(status: &FleetCommandStatus, generation: i64) -> bool {
    [COMPLETE, FAILED].iter().any(|t| {
        find_condition(&status.conditions, t)
            .is_some_and(|c| c.status == "True" && c.observed_generation == Some(generation))
    })
}

async fn reconcile(cmd: Arc<FleetCommand>, ctx: Arc<Context>) -> Result<Action, CommandError> {
    let name = cmd.name_any();
    let namespace = cmd.namespace().unwrap_or_default();
    let generation = cmd.metadata.generation.unwrap_or(0);
    let uid = cmd.uid().unwrap_or_default();
    let api_err = |verb, e| CommandError::Api {
        verb,
        namespace: namespace.clone(),
        name: name.clone(),
        source: Box::new(e),
    };
    if ctx
        .finished
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        == Some(&generation)
    {
        return Ok(Action::await_change());
    }
    let status = cmd.status.clone().unwrap_or_default();
    if status.observed_generation == Some(generation) {
        if is_terminal(&status, generation) {
            return Ok(Action::await_change());
        }
        // Stamped but unfinished in our cache. Read the live object: only
        // an unfinished generation there was really interrupted.
        let live = ctx
            .commands
            .get_status(&name)
            .await
            .map_err(|e| api_err("reading", e))?;
        let live_status = live.status.unwrap_or_default();
        if live.metadata.generation == Some(generation)
            && live_status.observed_generation == Some(generation)
        {
            if !is_terminal(&live_status, generation) {
                let mut s = live_status;
                finish_conditions(
                    &mut s,
                    generation,
                    false,
                    "Interrupted",
                    "the operator stopped while this generation was running; it is not sent again (apply a new generation to retry)",
                );
                apply_status(&ctx, &name, &s)
                    .await
                    .map_err(|e| api_err("writing the status of", e))?;
                ctx.metrics
                    .commands
                    .get_or_create(&OutcomeLabels {
                        outcome: "interrupted",
                    })
                    .inc();
                warn!(command = %name, generation, "FleetCommand generation was interrupted");
            }
            return Ok(Action::await_change());
        }
    }

    // Stamp first: from here on, this generation never runs again.
    let mut s = FleetCommandStatus {
        observed_generation: Some(generation),
        conditions: status.conditions.clone(),
        ..Default::default()
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    set_condition(
        &mut s.conditions,
        RECONCILING,
        CondStatus::True,
        "Running",
        "sending the command to the selected agents",
        generation,
        &now,
    );
    // Messages are never empty: Kubernetes 1.20 server-side apply turns ""
    // into null on custom resources and then rejects the object.
    set_condition(
        &mut s.conditions,
        COMPLETE,
        CondStatus::False,
        "Running",
        "the command is running",
        generation,
        &now,
    );
    set_condition(
        &mut s.conditions,
        FAILED,
        CondStatus::False,
        "Running",
        "the command is running",
        generation,
        &now,
    );
    apply_status(&ctx, &name, &s)
        .await
        .map_err(|e| api_err("stamping", e))?;

    let selector = match Selector::try_from(cmd.spec.selector.clone()) {
        Ok(sel) => sel,
        Err(e) => {
            s.summary = Some(CommandSummary::default());
            finish_conditions(
                &mut s,
                generation,
                false,
                "InvalidSelector",
                &format!("spec.selector: {e}"),
            );
            apply_status(&ctx, &name, &s)
                .await
                .map_err(|e| api_err("writing the status of", e))?;
            ctx.remember(&uid, generation);
            ctx.metrics
                .commands
                .get_or_create(&OutcomeLabels { outcome: "failed" })
                .inc();
            return Ok(Action::await_change());
        }
    };
    // Our own stack's FleetAgents only: another FleetStack sharing the
    // namespace has its own NATS, its agents are not ours to command.
    let agents = ctx
        .agents
        .list(&ListParams::default().labels(&ctx.agent_selector))
        .await
        .map_err(|e| CommandError::ListAgents {
            namespace: namespace.clone(),
            name: name.clone(),
            source: Box::new(e),
        })?;
    let mut selected: Vec<AgentId> = agents
        .items
        .iter()
        .filter(|a| selector.matches(&a.status.clone().unwrap_or_default().labels))
        .filter_map(|a| AgentId::new(a.spec.agent_id.clone()).ok())
        .collect();
    selected.sort();
    selected.dedup();

    let timeout =
        Duration::from_secs(u64::try_from(cmd.spec.timeout_seconds.clamp(1, 300)).unwrap_or(10));
    let command = cmd.spec.command;
    info!(command = %name, generation, selected = selected.len(), ?command, "sending FleetCommand");
    let nats = ctx.nats.clone();
    let results: Vec<AgentResult> = futures::stream::iter(selected.clone())
        .map(|id| {
            let nats = nats.clone();
            async move { send(&nats, id, command, timeout).await }
        })
        .buffer_unordered(FANOUT_CONCURRENCY)
        .collect()
        .await;
    for r in &results {
        let outcome = match r.outcome {
            AgentOutcome::Succeeded => "succeeded",
            AgentOutcome::Failed => "failed",
            AgentOutcome::TimedOut => "timed_out",
        };
        ctx.metrics
            .command_agents
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
    let done = summarize(results, &namespace);
    s.summary = Some(done.summary);
    s.results = done.results;
    s.truncated = done.truncated;
    finish_conditions(&mut s, generation, done.ok, done.reason, &done.message);
    apply_status(&ctx, &name, &s)
        .await
        .map_err(|e| api_err("writing the status of", e))?;
    ctx.remember(&uid, generation);
    ctx.metrics
        .commands
        .get_or_create(&OutcomeLabels {
            outcome: if done.ok { "complete" } else { "failed" },
        })
        .inc();
    info!(command = %name, generation, message = %done.message, "FleetCommand finished");
    Ok(Action::await_change())
}

impl Context {
    fn remember(&self, uid: &str, generation: i64) {
        let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: old entries only matter for the few seconds a stale
        // watch event can lag behind.
        if finished.len() > 10_000 {
            finished.clear();
        }
        finished.insert(uid.to_string(), generation);
    }
}

async fn apply_status(
    ctx: &Context,
    name: &str,
    status: &FleetCommandStatus,
) -> Result<(), kube::Error> {
    let body = json!({
        "apiVersion": "fleet.nationtech.io/v1alpha1",
        "kind": "FleetCommand",
        "metadata": {"name": name},
        "status": status,
    });
    ctx.commands
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map(|_| ())
}

/// Sets the terminal conditions and drops `Reconciling`.
fn finish_conditions(
    s: &mut FleetCommandStatus,
    generation: i64,
    ok: bool,
    reason: &str,
    message: &str,
) {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let (complete, failed) = if ok {
        (CondStatus::True, CondStatus::False)
    } else {
        (CondStatus::False, CondStatus::True)
    };
    set_condition(
        &mut s.conditions,
        COMPLETE,
        complete,
        reason,
        message,
        generation,
        &now,
    );
    set_condition(
        &mut s.conditions,
        FAILED,
        failed,
        reason,
        message,
        generation,
        &now,
    );
    fleet_crds::remove_condition(&mut s.conditions, RECONCILING);
}

/// Sends one command to one agent and describes the outcome.
pub async fn send(
    nats: &async_nats::Client,
    id: AgentId,
    command: FleetCommandName,
    timeout: Duration,
) -> AgentResult {
    let started = Instant::now();
    let reply = match command {
        FleetCommandName::Ping => ping(nats, &id, timeout).await.map(|r| {
            (
                r.version.clone(),
                format!("pong: version {}, up {}s", r.version, r.uptime_ms / 1000),
            )
        }),
        FleetCommandName::Info => info(nats, &id, timeout).await.map(|r| {
            (
                r.version.clone(),
                format!(
                    "version {}, capabilities [{}], {} label(s), connected to {} ({} connect(s))",
                    r.version,
                    r.capabilities.join(", "),
                    r.labels.len(),
                    r.connection.server_name,
                    r.connection.connects
                ),
            )
        }),
    };
    let millis = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match reply {
        Ok((version, message)) => AgentResult {
            agent_id: id.to_string(),
            outcome: AgentOutcome::Succeeded,
            message,
            version: Some(version).filter(|v| !v.is_empty()),
            duration_millis: Some(millis),
        },
        Err(e) => AgentResult {
            agent_id: id.to_string(),
            outcome: match e {
                // No answer within the timeout, whether nobody listened
                // (no responders until the deadline) or nobody replied.
                ClientError::TimedOut { .. } | ClientError::NoResponders { .. } => {
                    AgentOutcome::TimedOut
                }
                _ => AgentOutcome::Failed,
            },
            message: truncate(&e.to_string(), 1024),
            version: None,
            duration_millis: None,
        },
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// What the final status says.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub summary: CommandSummary,
    pub results: Vec<AgentResult>,
    pub truncated: i32,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Counts, orders (failures first, then by id) and caps the results.
pub fn summarize(mut results: Vec<AgentResult>, namespace: &str) -> Summary {
    let count = |o: AgentOutcome, rs: &[AgentResult]| {
        i32::try_from(rs.iter().filter(|r| r.outcome == o).count()).unwrap_or(i32::MAX)
    };
    let summary = CommandSummary {
        selected: i32::try_from(results.len()).unwrap_or(i32::MAX),
        succeeded: count(AgentOutcome::Succeeded, &results),
        failed: count(AgentOutcome::Failed, &results),
        timed_out: count(AgentOutcome::TimedOut, &results),
    };
    results.sort_by(|a, b| (a.outcome, &a.agent_id).cmp(&(b.outcome, &b.agent_id)));
    let truncated = i32::try_from(results.len().saturating_sub(MAX_RESULTS)).unwrap_or(i32::MAX);
    results.truncate(MAX_RESULTS);
    let (ok, reason, message) = if summary.selected == 0 {
        (
            true,
            "NoAgentsSelected",
            format!(
                "the selector matched no FleetAgent in namespace {namespace}; nothing was sent"
            ),
        )
    } else if summary.succeeded == summary.selected {
        (
            true,
            "AllSucceeded",
            format!("{}/{} agents answered", summary.succeeded, summary.selected),
        )
    } else {
        (
            false,
            if summary.failed > 0 {
                "AgentsFailed"
            } else {
                "AgentsTimedOut"
            },
            format!(
                "{}/{} agents answered; {} failed, {} timed out",
                summary.succeeded, summary.selected, summary.failed, summary.timed_out
            ),
        )
    };
    Summary {
        summary,
        results,
        truncated,
        ok,
        reason,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, outcome: AgentOutcome) -> AgentResult {
        AgentResult {
            agent_id: id.into(),
            outcome,
            message: String::new(),
            version: None,
            duration_millis: None,
        }
    }

    #[test]
    fn empty_selection_completes_and_says_so() {
        let s = summarize(vec![], "ns1");
        assert!(s.ok);
        assert_eq!(s.reason, "NoAgentsSelected");
        assert!(s.message.contains("ns1"), "{}", s.message);
        assert_eq!(s.summary, CommandSummary::default());
    }

    #[test]
    fn failures_first_and_results_capped() {
        let mut rs: Vec<_> = (0..150)
            .map(|i| r(&format!("a{i:03}"), AgentOutcome::Succeeded))
            .collect();
        rs.push(r("z-timeout", AgentOutcome::TimedOut));
        rs.push(r("y-failed", AgentOutcome::Failed));
        let s = summarize(rs, "ns");
        assert!(!s.ok);
        assert_eq!(s.reason, "AgentsFailed");
        assert_eq!(s.results.len(), MAX_RESULTS);
        assert_eq!(s.truncated, 52);
        assert_eq!(s.results[0].agent_id, "y-failed");
        assert_eq!(s.results[1].agent_id, "z-timeout");
        assert_eq!(s.summary.selected, 152);
        assert_eq!(
            (s.summary.succeeded, s.summary.failed, s.summary.timed_out),
            (150, 1, 1)
        );
    }

    #[test]
    fn long_messages_are_cut_on_char_boundaries() {
        let s = "é".repeat(600);
        let t = truncate(&s, 1023);
        assert!(t.ends_with("...") && t.len() <= 1026);
    }
}
