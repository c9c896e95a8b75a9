//! One reconciliation of one FleetStack, as named steps:
//!
//! 1. **plan** (pure): validate the spec and resolve one step per
//!    component ([`resolve::plan`]);
//! 2. **gate**: refuse a second operator runtime in the namespace, honour
//!    `spec.paused`, stamp `Reconciling` for a new generation;
//! 3. **run**: the plan's runner applies and probes each component in
//!    dependency order and removes what absent components left behind;
//! 4. **status** (pure, [`status`]): computed from what ran, written only
//!    if it changed, Events on transitions;
//! 5. **requeue**: the probe interval when Ready, backoff otherwise.

use std::sync::Arc;
use std::time::Duration;

use fleet_crds::{
    AgentsStatus, FleetStack, FleetStackStatus, SpecError, validate_name, validate_spec,
};
use fleet_scores::plan::{Run, StepReport};
use fleet_scores::{Component, InterpretError, K8sTopology, ProbeOutcome, StackRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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
use crate::published;
use crate::resolve;
use crate::status::{self, ComponentResult, ComponentState};

/// Shared by every reconciliation.
pub struct Context {
    pub client: Client,
    pub topology: K8sTopology,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// Lifetimes of the certificates the NATS Score issues.
    pub cert_policy: fleet_scores::tls::CertPolicy,
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

pub async fn reconcile(
    stack: Arc<FleetStack>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let _timer = ctx.metrics.start(&namespace, &name);
    let key = format!("{namespace}/{name}");
    if stack.meta().deletion_timestamp.is_some() {
        // Children go with it through ownerReferences (garbage collection).
        ctx.backoff.reset(&key);
        return Ok(Action::await_change());
    }
    let generation = stack.meta().generation.unwrap_or(0);
    let live = stack.status.clone().unwrap_or_default();

    // 1. plan
    if let Err(errors) = validate(&stack) {
        // Nothing to retry until the spec changes.
        return stall(&ctx, &stack, &live, &errors, Action::await_change()).await;
    }
    let owner = stack
        .controller_owner_ref(&())
        .ok_or_else(|| ReconcileError::NoUid {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    let shared = resolve::Shared::new(&stack, StackRef::new(&stack, owner))
        .with_cert_policy(ctx.cert_policy.for_stack(stack.annotations()));
    let plan = resolve::plan(&stack, &shared);

    // 2. gate
    if let Some(conflict) = operator_conflict(&ctx, &stack).await? {
        // Resolved by a change to the *other* stack, which does not wake
        // this one: look again now and then.
        let again = Action::requeue(Duration::from_secs(15));
        return stall(&ctx, &stack, &live, &[conflict], again).await;
    }
    if stack.spec.paused {
        let new = status::paused(&live, generation, &now());
        write_status(&ctx, &stack, &live, &new).await?;
        return Ok(Action::await_change());
    }
    let current = stamp(&ctx, &stack, live).await?;

    // 3. run
    let run = plan
        .run(&ctx.topology, &namespace, &name, |c| {
            current.components.contains_key(c.name())
        })
        .await;
    // The API server refused one of our objects for a value that came
    // from the spec: nothing to retry until the spec changes.
    let refused = spec_errors(&run, |e| {
        fleet_scores::rejection::from_interpret_error(&name, e)
    });
    if !refused.is_empty() {
        return stall(&ctx, &stack, &current, &refused, Action::await_change()).await;
    }
    // A Secret the user named cannot serve: Stalled on its field, looked
    // at again on a timer (fixing the Secret does not wake the stack).
    let unusable = spec_errors(&run, |e| {
        fleet_scores::rejection::from_user_secret(&stack.spec, e)
    });
    if !unusable.is_empty() {
        let again = Action::requeue(probe_interval(&stack));
        return stall(&ctx, &stack, &current, &unusable, again).await;
    }
    // A workload accepted whose pods the API server refuses shows only in
    // FailedCreate Events; looked for only while something is not Ready.
    if !all_passed(&run) {
        match crate::pod_refusals::find(&ctx.client, &namespace, &name).await {
            Ok(refused) if !refused.is_empty() => {
                return stall(&ctx, &stack, &current, &refused, Action::await_change()).await;
            }
            Ok(_) => {}
            // The status still says what is not Ready; the Events are a
            // better reason, not a condition for reconciling.
            Err(error) => warn!(stack = %key, %error, "could not read FailedCreate events"),
        }
    }

    // 4. status
    let agents = stack.spec.agents.as_ref().map(|a| {
        // Answered the agents' probe (0 while it could not run, e.g. NATS
        // not Ready yet) and connected according to the operator runtime.
        let answered = run.units(Component::Agents).map_or(0, |u| u.ready);
        AgentsStatus::new(a.replicas, answered)
            .with_connected(run.units(Component::Operator).map(|u| u.ready))
    });
    let published = run.published();
    let results = results(&ctx, &stack, run)?;
    let deadline =
        Duration::from_secs(u64::try_from(stack.spec.probe.ready_deadline_seconds).unwrap_or(600));
    let now = now();
    let mut new = status::finished(&current, generation, &results, agents, deadline, &now);
    let now_unix = fleet_scores::tls::unix_now();
    published::publish(
        &mut new,
        &stack.spec,
        published.as_ref(),
        generation,
        &now,
        now_unix,
    );
    write_status(&ctx, &stack, &current, &new).await?;

    // 5. requeue, at the latest when a certificate is due for renewal
    let recheck = published
        .and_then(|p| p.recheck_at)
        .map(|at| Duration::from_secs(u64::try_from(at - now_unix).unwrap_or(0).max(1)));
    Ok(requeue(&ctx, &stack, &key, &results, recheck))
}

/// Whether every component present ran and its probe passed.
fn all_passed(run: &Run) -> bool {
    run.reports.iter().all(|(_, report)| report.ready())
}

/// The SpecErrors `of` finds in the failed steps of `run`.
fn spec_errors(run: &Run, of: impl Fn(&InterpretError) -> Option<SpecError>) -> Vec<SpecError> {
    run.reports
        .iter()
        .filter_map(|(_, report)| match report {
            StepReport::Ran(Err(e)) => of(e),
            _ => None,
        })
        .collect()
}

/// `spec.probe.intervalSeconds`.
fn probe_interval(stack: &FleetStack) -> Duration {
    Duration::from_secs(u64::try_from(stack.spec.probe.interval_seconds).unwrap_or(30))
}

/// Schema first, then what the schema cannot express; every error names
/// its field.
fn validate(stack: &FleetStack) -> Result<(), Vec<SpecError>> {
    match (validate_name(&stack.name_any()), validate_spec(&stack.spec)) {
        (Ok(()), spec) => spec,
        (Err(e), Ok(())) => Err(vec![e]),
        (Err(e), Err(mut rest)) => {
            rest.insert(0, e);
            Err(rest)
        }
    }
}

/// Reports a spec that cannot work: Stalled, naming the fields.
async fn stall(
    ctx: &Context,
    stack: &FleetStack,
    live: &FleetStackStatus,
    errors: &[SpecError],
    then: Action,
) -> Result<Action, ReconcileError> {
    let generation = stack.meta().generation.unwrap_or(0);
    let new = status::invalid_spec(live, generation, errors, &now());
    write_status(ctx, stack, live, &new).await?;
    ctx.metrics.error("InvalidSpec");
    ctx.metrics.set_ready(
        &stack.namespace().unwrap_or_default(),
        &stack.name_any(),
        false,
    );
    Ok(then)
}

/// Stamps `Reconciling` and the generation before any work, so no reader
/// takes the previous generation's Ready for this one.
async fn stamp(
    ctx: &Context,
    stack: &FleetStack,
    live: FleetStackStatus,
) -> Result<FleetStackStatus, ReconcileError> {
    let generation = stack.meta().generation.unwrap_or(0);
    // A stack Stalled on a refusal of this generation is not stamped again:
    // every wake-up (a pod, an Endpoint) would flip it to Reconciling and
    // back to Stalled, two writes and a Warning each time. If the refusal
    // is gone (another stack's conflict, a LimitRange removed),
    // `status::finished` replaces the Stalled by Ready or by Recovering.
    if live.observed_generation == Some(generation) {
        return Ok(live);
    }
    // A new generation starts with quick retries again.
    ctx.backoff.reset(&format!(
        "{}/{}",
        stack.namespace().unwrap_or_default(),
        stack.name_any()
    ));
    let stamped = status::progressing(&live, generation, &now());
    write_status(ctx, stack, &live, &stamped).await?;
    Ok(stamped)
}

/// When to look again: the probe interval when Ready, the retry policy
/// otherwise, and never later than `recheck` (a certificate's renewal).
fn requeue(
    ctx: &Context,
    stack: &FleetStack,
    key: &str,
    results: &[ComponentResult],
    recheck: Option<Duration>,
) -> Action {
    let at_most = |d: Duration| Action::requeue(recheck.map_or(d, |r| d.min(r)));
    let ready = results.iter().all(|r| r.state == ComponentState::Ready);
    ctx.metrics.set_ready(
        &stack.namespace().unwrap_or_default(),
        &stack.name_any(),
        ready,
    );
    if ready {
        ctx.backoff.reset(key);
        return at_most(probe_interval(stack));
    }
    if let Some(failed) = results.iter().find(|r| r.state != ComponentState::Ready) {
        ctx.metrics.error(&failed.reason);
    }
    let interval = probe_interval(stack);
    ctx.backoff.next(key);
    let delay = retry_delay(ctx.backoff.failures(key), interval);
    at_most(delay)
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

/// How many failed reconciles in a row retry after [`QUICK_RETRY`]: a
/// probe that fails right after its pod turned ready usually passes a
/// second later (kube-proxy and cluster DNS catch up). The wake-ups on
/// pods, endpoints and FleetAgents (lib.rs) cover the rest, so a stack that
/// stays stuck falls back to the backoff quickly: about 15 reconciles in
/// its first minute, then one per probe interval.
const QUICK_RETRIES: u32 = 8;
const QUICK_RETRY: Duration = Duration::from_secs(1);

/// The delay before the next reconcile of a stack that is not Ready (pure):
/// quick retries first, then the per-stack backoff after them, never
/// longer than one probe interval, so a recovered stack shows Ready within
/// one interval of the fault clearing (issue 13).
/// `failures` counts this one too.
fn retry_delay(failures: u32, interval: Duration) -> Duration {
    let delay = if failures <= QUICK_RETRIES {
        QUICK_RETRY
    } else {
        crate::backoff::delay_for(failures - QUICK_RETRIES - 1)
    };
    delay.min(interval.max(QUICK_RETRY))
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Turns every step's report into a status entry (and metrics, logs). A
/// failed removal of an absent component's objects fails the reconcile:
/// its status cannot say so, and it is retried with backoff.
fn results(
    ctx: &Context,
    stack: &FleetStack,
    run: Run,
) -> Result<Vec<ComponentResult>, ReconcileError> {
    let mut results = Vec::new();
    for (component, report) in run.reports {
        let result = |state, reason: &str, message: String| ComponentResult {
            component: component.name(),
            condition: component.condition(),
            state,
            reason: reason.to_string(),
            message,
        };
        results.push(match report {
            StepReport::Absent { removed } => {
                removed_absent(ctx, stack, component, removed)?;
                continue;
            }
            StepReport::Waiting { on } => result(
                ComponentState::Waiting,
                "DependencyNotReady",
                format!("waiting for {} to be Ready", on.name()),
            ),
            StepReport::Unresolved(u) => result(ComponentState::ProbeFailed, u.reason, u.message),
            StepReport::Ran(Err(e)) => {
                result(ComponentState::ApplyFailed, e.reason(), e.to_string())
            }
            StepReport::Ran(Ok(outcome)) => {
                let name = component.name();
                for w in outcome.written.iter().chain(&outcome.deleted) {
                    ctx.metrics.child_write(w);
                }
                if !outcome.written.is_empty() || !outcome.deleted.is_empty() {
                    info!(component = name, written = ?outcome.written, deleted = ?outcome.deleted, "applied");
                } else {
                    debug!(component = name, unchanged = outcome.unchanged, "nothing to write");
                }
                ctx.metrics.probe(name, outcome.probe.latency());
                match outcome.probe {
                    ProbeOutcome::Passed { message, .. } => {
                        result(ComponentState::Ready, "ProbeSucceeded", message)
                    }
                    ProbeOutcome::Failed {
                        reason, message, ..
                    } => result(ComponentState::of_failed_probe(reason), reason, message),
                }
            }
        });
    }
    Ok(results)
}

/// Records the removal of a component that left the spec.
fn removed_absent(
    ctx: &Context,
    stack: &FleetStack,
    component: Component,
    removed: Result<Vec<String>, InterpretError>,
) -> Result<(), ReconcileError> {
    let (namespace, name) = (stack.namespace().unwrap_or_default(), stack.name_any());
    match removed {
        Ok(deleted) => {
            for d in &deleted {
                ctx.metrics.child_write(d);
            }
            if !deleted.is_empty() {
                info!(stack = %format!("{namespace}/{name}"), component = component.name(), ?deleted, "removed component left the spec");
            }
            Ok(())
        }
        Err(e) => Err(ReconcileError::Prune {
            namespace,
            name,
            component: component.name(),
            source: Box::new(e),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_stack_retries_quickly_then_backs_off_to_the_probe_interval() {
        let interval = Duration::from_secs(30);
        let b = Backoff::default();
        let mut at = Duration::ZERO;
        let mut first_minute = 0;
        let mut delays = Vec::new();
        for _ in 0..40 {
            b.next("ns/s");
            let d = retry_delay(b.failures("ns/s"), interval);
            delays.push(d.as_secs());
            if at < Duration::from_secs(60) {
                first_minute += 1;
            }
            at += d;
        }
        assert_eq!(&delays[..8], &[1; 8], "quick retries first");
        assert_eq!(&delays[8..14], &[1, 2, 4, 8, 16, 30]);
        assert!(delays[14..].iter().all(|d| *d == 30), "{delays:?}");
        assert!(first_minute <= 16, "{first_minute} reconciles in minute 1");
        // A short probe interval caps the delay too.
        assert_eq!(
            retry_delay(20, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
