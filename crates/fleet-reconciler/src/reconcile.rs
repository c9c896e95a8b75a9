//! One reconciliation of one FleetStack:
//! validate -> (paused? stop) -> stamp Reconciling -> run the Scores in
//! dependency order, each blocking on its smoke probe -> delete what absent
//! components left behind -> write status (only if it changed) -> Events on
//! transitions -> requeue (probe interval when Ready, backoff otherwise).

use std::sync::Arc;
use std::time::Duration;

use fleet_crds::{AgentsStatus, FleetStack, FleetStackStatus, validate_name, validate_spec};
use fleet_scores::server::StepReport;
use fleet_scores::{
    Interpret, InterpretError, K8sTopology, KubernetesTopology, ProbeOutcome, Score,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
    },
};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::resolve;
use crate::status::{self, ComponentResult, ComponentState};

/// Shared by every reconciliation.
pub struct Context {
    pub client: Client,
    pub topology: K8sTopology,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("writing status of FleetStack {namespace}/{name}: {source}")]
    WriteStatus {
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("listing FleetStacks in namespace {namespace}: {source}")]
    ListStacks {
        namespace: String,
        source: Box<kube::Error>,
    },
    #[error("FleetStack {namespace}/{name} has no uid yet")]
    NoUid { namespace: String, name: String },
    #[error("removing objects of component {component} of FleetStack {namespace}/{name}: {source}")]
    Prune {
        namespace: String,
        name: String,
        component: &'static str,
        source: Box<InterpretError>,
    },
}

impl ReconcileError {
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::WriteStatus { .. } => "StatusWriteFailed",
            ReconcileError::NoUid { .. } => "NoUid",
            ReconcileError::ListStacks { .. } => "ListFailed",
            ReconcileError::Prune { .. } => "PruneFailed",
        }
    }
}

/// The condition each component's status sets.
fn condition_of(component: &str) -> &'static str {
    match component {
        "nats" => "NatsReady",
        "identity" => "IdentityReady",
        "callout" => "CalloutReady",
        "operator" => "OperatorReady",
        _ => "AgentsReady",
    }
}

pub async fn reconcile(
    stack: Arc<FleetStack>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.start();
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let key = format!("{namespace}/{name}");
    if stack.meta().deletion_timestamp.is_some() {
        // Children go with it through ownerReferences (garbage collection).
        ctx.backoff.reset(&key);
        return Ok(Action::await_change());
    }
    let generation = stack.meta().generation.unwrap_or(0);
    let live = stack.status.clone().unwrap_or_default();

    let valid = match (validate_name(&name), validate_spec(&stack.spec)) {
        (Ok(()), spec) => spec,
        (Err(e), Ok(())) => Err(vec![e]),
        (Err(e), Err(mut rest)) => {
            rest.insert(0, e);
            Err(rest)
        }
    };
    if let Err(errors) = valid {
        let new = status::invalid_spec(&live, generation, &errors, &now());
        write_status(&ctx, &stack, &live, &new).await?;
        ctx.metrics.error("InvalidSpec");
        ctx.metrics.set_ready(&namespace, &name, false);
        // Nothing to retry until the spec changes.
        return Ok(Action::await_change());
    }
    if let Some(conflict) = operator_conflict(&ctx, &stack).await? {
        let new = status::invalid_spec(&live, generation, &[conflict], &now());
        write_status(&ctx, &stack, &live, &new).await?;
        ctx.metrics.error("InvalidSpec");
        ctx.metrics.set_ready(&namespace, &name, false);
        // Resolved by a change to the *other* stack, which does not wake
        // this one: look again now and then.
        return Ok(Action::requeue(Duration::from_secs(15)));
    }
    if stack.spec.paused {
        let new = status::paused(&live, generation, &now());
        write_status(&ctx, &stack, &live, &new).await?;
        return Ok(Action::await_change());
    }

    let mut current = live.clone();
    // A stack that was Stalled on an invalid spec and is valid now without a
    // new generation (another stack's conflict went away) must be stamped
    // again: nothing later clears an InvalidSpec Stalled.
    let stale_invalid = fleet_crds::find_condition(&live.conditions, fleet_crds::STALLED)
        .is_some_and(|c| c.status == "True" && c.reason == "InvalidSpec");
    if live.observed_generation != Some(generation) || stale_invalid {
        let stamped = status::progressing(&live, generation, &now());
        write_status(&ctx, &stack, &live, &stamped).await?;
        current = stamped;
    }

    let owner = stack
        .controller_owner_ref(&())
        .ok_or_else(|| ReconcileError::NoUid {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    let run = run_components(&stack, &ctx, owner, &current).await?;
    let results = run.results;

    // Agents that answered the smoke probe, out of the desired replicas (0
    // answered while the probe could not run, e.g. NATS not Ready yet), and
    // how many the operator runtime reports connected.
    let agents = stack.spec.agents.as_ref().map(|a| {
        let (ready, desired) = run.agents_answered.unwrap_or((0, a.replicas));
        AgentsStatus::new(desired, ready).with_connected(run.agents_connected)
    });
    let deadline =
        Duration::from_secs(u64::try_from(stack.spec.probe.ready_deadline_seconds).unwrap_or(600));
    let new = status::finished(&current, generation, &results, agents, deadline, &now());
    write_status(&ctx, &stack, &current, &new).await?;

    let ready = results.iter().all(|r| r.state == ComponentState::Ready);
    ctx.metrics.set_ready(&namespace, &name, ready);
    if ready {
        ctx.backoff.reset(&key);
        let interval = u64::try_from(stack.spec.probe.interval_seconds).unwrap_or(30);
        Ok(Action::requeue(Duration::from_secs(interval)))
    } else {
        if let Some(failed) = results.iter().find(|r| r.state != ComponentState::Ready) {
            ctx.metrics.error(&failed.reason);
        }
        // Right after a new generation the pods are still starting; the
        // StatefulSet's status change wakes us, but kube-proxy and the
        // Endpoints may lag it, and by then the exponential backoff would
        // make us wait 8-16 s. Probe every 2 s during that window without
        // advancing the backoff, which starts at 1 s once the window is over.
        let delay = if converging_recently(&new, &now(), STARTUP_WINDOW) {
            STARTUP_RETRY
        } else {
            ctx.backoff.next(&key)
        };
        Ok(Action::requeue(delay))
    }
}

/// FleetAgents and FleetCommands live in the stack's namespace, so only one
/// stack per namespace may run the operator runtime: two would both run
/// every FleetCommand and overwrite each other's results. The oldest stack
/// (then the first by name) keeps it; the others are refused naming it.
async fn operator_conflict(
    ctx: &Context,
    stack: &FleetStack,
) -> Result<Option<fleet_crds::SpecError>, ReconcileError> {
    if stack.spec.operator.is_none() {
        return Ok(None);
    }
    let namespace = stack.namespace().unwrap_or_default();
    let api: Api<FleetStack> = Api::namespaced(ctx.client.clone(), &namespace);
    let others =
        api.list(&Default::default())
            .await
            .map_err(|source| ReconcileError::ListStacks {
                namespace: namespace.clone(),
                source: Box::new(source),
            })?;
    let key = |s: &FleetStack| {
        (
            s.meta().creation_timestamp.clone().map(|t| t.0),
            s.name_any(),
        )
    };
    let first = others
        .items
        .iter()
        .filter(|s| s.spec.operator.is_some() && s.meta().deletion_timestamp.is_none())
        .min_by_key(|s| key(s));
    Ok(first
        .filter(|s| s.name_any() != stack.name_any())
        .map(|s| fleet_crds::SpecError {
            path: "spec.operator".into(),
            message: format!(
                "FleetStack {} already runs the operator runtime in namespace {namespace}; \
                 FleetAgents and FleetCommands are per namespace, so only one stack per \
                 namespace may set spec.operator",
                s.name_any()
            ),
        }))
}

/// Backoff for errors that stopped a reconciliation before its status
/// could say why.
pub fn error_policy(stack: Arc<FleetStack>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        stack.namespace().unwrap_or_default(),
        stack.name_any()
    );
    ctx.metrics.error(error.reason());
    let delay = ctx.backoff.next(&key);
    warn!(stack = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// How long after a generation is stamped probes retry quickly.
const STARTUP_WINDOW: Duration = Duration::from_secs(60);
// 1 s: a pod that just turned Ready is usually reachable a second later (kube-proxy
// and cluster DNS catch up); shorter retries mostly add GETs for every starting stack.
const STARTUP_RETRY: Duration = Duration::from_secs(1);

/// Whether `Reconciling=True` and it turned True less than `window` ago.
fn converging_recently(status: &FleetStackStatus, now: &Time, window: Duration) -> bool {
    fleet_crds::find_condition(&status.conditions, fleet_crds::RECONCILING)
        .filter(|c| c.status == "True")
        .map(|c| now.0.duration_since(c.last_transition_time.0))
        .is_some_and(|elapsed| elapsed.as_secs() >= 0 && elapsed.unsigned_abs() < window)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// What running the components found.
#[derive(Default)]
struct ComponentsRun {
    results: Vec<ComponentResult>,
    /// (answered the ping, desired) from the agents' smoke probe.
    agents_answered: Option<(i32, i32)>,
    /// FleetAgents connected, from the operator's inventory probe.
    agents_connected: Option<i32>,
}

/// Runs `FleetServerScore` (NATS -> identity -> callout -> operator, each
/// blocking on its smoke probe), then the agents, and deletes what
/// components absent from the spec left behind.
///
/// The operator's probe has two parts: `/readyz` inside the server run, and
/// "every expected agent is connected", which can only pass once the agents
/// run: once everything is Ready the FleetAgent check runs on its own and
/// its result replaces the first (docs/adr/0052).
async fn run_components(
    stack: &FleetStack,
    ctx: &Context,
    owner: OwnerReference,
    current: &FleetStackStatus,
) -> Result<ComponentsRun, ReconcileError> {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let r = resolve::StackRef::new(stack, owner);
    let mut run = ComponentsRun::default();

    let mut steps = resolve::server(stack, &r)
        .run_steps(&ctx.topology, None)
        .await;
    let blocked_by = steps
        .iter()
        .find(|(_, report)| !report.ready())
        .map(|(component, _)| *component);
    let agents_report = match (resolve::agents(stack, &r), blocked_by) {
        (None, _) => StepReport::Absent,
        (Some(_), Some(on)) => StepReport::Waiting { on },
        (Some(Err(unresolved)), None) => StepReport::Unresolved(unresolved),
        (Some(Ok(score)), None) => StepReport::Ran(execute(ctx, &score).await),
    };
    steps.push(("agents", agents_report));

    let all_ready = steps.iter().all(|(_, report)| report.ready());
    for (component, report) in steps {
        let condition = condition_of(component);
        let (result, units) = match report {
            StepReport::Absent => {
                prune_absent(ctx, &namespace, &name, component, current).await?;
                continue;
            }
            StepReport::Waiting { on } => (
                ComponentResult {
                    component,
                    condition,
                    state: ComponentState::Waiting,
                    reason: "DependencyNotReady".into(),
                    message: format!("waiting for {on} to be Ready"),
                },
                None,
            ),
            StepReport::Unresolved(u) => (
                ComponentResult {
                    component,
                    condition,
                    state: ComponentState::ProbeFailed,
                    reason: u.reason.into(),
                    message: u.message,
                },
                None,
            ),
            StepReport::Ran(result) => record(ctx, component, condition, result),
        };
        if component == "agents" {
            run.agents_answered = units;
        }
        run.results.push(result);
    }

    if all_ready
        && let Some(score) = resolve::operator(stack, &r)
        && !score.expected_agents.is_empty()
    {
        // Its objects were applied and /readyz passed moments ago in the
        // server run: only the FleetAgent check is left.
        let result = fleet_scores::operator::inventory(
            ctx.topology.client(),
            &namespace,
            &score.expected_agents,
            std::time::Instant::now(),
            score.probe_timeout,
        )
        .await
        .map(|(probe, units)| fleet_scores::Outcome {
            component: fleet_scores::operator::COMPONENT,
            written: Vec::new(),
            unchanged: 0,
            deleted: Vec::new(),
            probe,
            units: Some(units),
        });
        let (result, units) = record(ctx, "operator", "OperatorReady", result);
        run.agents_connected = units.map(|(connected, _)| connected);
        if let Some(slot) = run.results.iter_mut().find(|x| x.component == "operator") {
            *slot = result;
        }
    }
    Ok(run)
}

async fn execute<S: Score<K8sTopology>>(
    ctx: &Context,
    score: &S,
) -> Result<fleet_scores::Outcome, InterpretError> {
    score.create_interpret().execute(&ctx.topology).await
}

/// Turns one Score's execution into a status entry (and metrics, logs).
fn record(
    ctx: &Context,
    component: &'static str,
    condition: &'static str,
    result: Result<fleet_scores::Outcome, InterpretError>,
) -> (ComponentResult, Option<(i32, i32)>) {
    match result {
        Ok(outcome) => {
            for w in outcome.written.iter().chain(&outcome.deleted) {
                ctx.metrics.child_write(w);
            }
            if !outcome.written.is_empty() || !outcome.deleted.is_empty() {
                info!(component, written = ?outcome.written, deleted = ?outcome.deleted, "applied");
            } else {
                debug!(component, unchanged = outcome.unchanged, "nothing to write");
            }
            ctx.metrics.probe(component, outcome.probe.latency());
            let result = match outcome.probe {
                ProbeOutcome::Passed { message, .. } => ComponentResult {
                    component,
                    condition,
                    state: ComponentState::Ready,
                    reason: "ProbeSucceeded".into(),
                    message,
                },
                ProbeOutcome::Failed {
                    reason, message, ..
                } => ComponentResult {
                    component,
                    condition,
                    state: ComponentState::ProbeFailed,
                    reason: reason.into(),
                    message,
                },
            };
            (result, outcome.units)
        }
        Err(e) => (
            ComponentResult {
                component,
                condition,
                state: ComponentState::ApplyFailed,
                reason: e.reason().into(),
                message: e.to_string(),
            },
            None,
        ),
    }
}

/// Deletes a component's objects once it left the spec. Only components
/// that have a `components` entry can have objects, which keeps idle stacks
/// from listing every kind for every absent component.
async fn prune_absent(
    ctx: &Context,
    namespace: &str,
    name: &str,
    component: &'static str,
    current: &FleetStackStatus,
) -> Result<(), ReconcileError> {
    if !current.components.contains_key(component) {
        return Ok(());
    }
    let kinds = owned_kinds(component, ctx.topology.serves_pdb_v1());
    let deleted = fleet_scores::apply::prune(
        ctx.topology.client(),
        namespace,
        name,
        component,
        &kinds,
        &Default::default(),
    )
    .await
    .map_err(|e| ReconcileError::Prune {
        namespace: namespace.into(),
        name: name.into(),
        component,
        source: Box::new(e),
    })?;
    for d in &deleted {
        ctx.metrics.child_write(d);
    }
    if !deleted.is_empty() {
        info!(stack = %format!("{namespace}/{name}"), component, ?deleted, "removed component left the spec");
    }
    Ok(())
}

/// The kinds a component's objects can have (what pruning lists).
fn owned_kinds(component: &str, pdb_v1: bool) -> Vec<kube::core::ApiResource> {
    match component {
        "identity" => fleet_scores::zitadel::owned_kinds(pdb_v1),
        "callout" => fleet_scores::callout::owned_kinds(pdb_v1),
        "operator" => fleet_scores::operator::owned_kinds(pdb_v1),
        _ => fleet_scores::apply::owned_kinds(pdb_v1),
    }
}

/// Writes `new` if it differs from `old` (server-side apply on the status
/// subresource, same field manager), then publishes Events for transitions.
async fn write_status(
    ctx: &Context,
    stack: &FleetStack,
    old: &FleetStackStatus,
    new: &FleetStackStatus,
) -> Result<(), ReconcileError> {
    if status::same(old, new) {
        return Ok(());
    }
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let api: Api<FleetStack> = Api::namespaced(ctx.client.clone(), &namespace);
    let body = serde_json::json!({
        "apiVersion": "fleet.nationtech.io/v1alpha1",
        "kind": "FleetStack",
        "status": new,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(fleet_scores::labels::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| ReconcileError::WriteStatus {
        namespace: namespace.clone(),
        name: name.clone(),
        source: Box::new(source),
    })?;
    let reference = stack.object_ref(&());
    for note in status::transitions(old, new) {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.clone(),
            note: Some(truncate(&note.note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(stack = %format!("{namespace}/{name}"), reason = %note.reason, error = %e, "could not publish event");
        }
    }
    Ok(())
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
