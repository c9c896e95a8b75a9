//! Status transitions as pure functions of (old status, generation, what
//! happened, now). The reconciler writes the result only when it differs
//! from what is live, and everything in here is deterministic (no
//! timestamps except condition transitions), so an idle stack's status is
//! never rewritten. Contract: docs/adr/0011-status-contract.md.

use std::time::Duration;

use fleet_crds::{
    AgentsStatus, ComponentStatus, CondStatus, FleetStackStatus, PAUSED, READY, RECONCILING,
    STALLED, SpecError, find_condition, remove_condition, set_condition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Reasons this module writes (CamelCase, stable: tools key on them).
pub const PROGRESSING: &str = "Progressing";
/// A stack that was Ready for this generation lost readiness and the
/// reconciler is bringing it back (`Reconciling=True`, kstatus InProgress).
pub const RECOVERING: &str = "Recovering";
/// The spec deploys nothing (`spec: {}` or every section dropped as unknown
/// fields): `Stalled=True`, so Flux and kpt fail instead of waiting.
pub const NO_COMPONENTS: &str = "NoComponents";
/// Not Ready within `spec.probe.readyDeadlineSeconds`.
pub const TIMEOUT: &str = "Timeout";
pub const INVALID_SPEC: &str = "InvalidSpec";
/// A workload has not rolled out its current spec yet
/// (`fleet_scores::rollout::ROLLING_OUT`).
pub const ROLLING_OUT: &str = fleet_scores::rollout::ROLLING_OUT;
/// A write-once Secret that cannot be generated again is gone
/// (`fleet_scores::secret_loss::Refusal::REASON`): `Stalled=True`.
pub const SECRET_LOST: &str = fleet_scores::secret_loss::Refusal::REASON;

/// How one component's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentState {
    Ready,
    /// A workload of the component has not rolled out its current spec
    /// (probe reason `RollingOut`): progress, never a failure or a Warning.
    RollingOut,
    /// The smoke probe ran and failed.
    ProbeFailed,
    /// Applying objects failed (API error, foreign object in the way...).
    ApplyFailed,
    /// An earlier component in dependency order is not Ready.
    Waiting,
    /// The component refuses to go on until a person acts (probe reason
    /// `SecretLost`: a write-once Secret whose old values protect data is
    /// gone; docs/adr/0016). `Stalled=True`, never retried into Ready by
    /// waiting alone.
    Refused,
}

impl ComponentState {
    /// The state of a component whose probe did not pass with `reason`:
    /// `RollingOut` is progress, anything else a probe failure.
    pub fn of_failed_probe(reason: &str) -> Self {
        if reason == ROLLING_OUT {
            ComponentState::RollingOut
        } else if reason == SECRET_LOST {
            ComponentState::Refused
        } else {
            ComponentState::ProbeFailed
        }
    }

    /// The stack's `Ready` status and reason when this is the first
    /// component (in dependency order) that is not Ready. A rollout in
    /// progress is `Unknown` (nothing failed, the answer is not in yet);
    /// a check that ran and failed is `False`.
    fn ready_of_stack(self) -> (CondStatus, &'static str) {
        match self {
            ComponentState::Ready => (CondStatus::True, "Ready"),
            ComponentState::RollingOut => (CondStatus::Unknown, ROLLING_OUT),
            ComponentState::ProbeFailed => (CondStatus::False, "ProbeFailed"),
            ComponentState::ApplyFailed => (CondStatus::False, "ApplyFailed"),
            ComponentState::Waiting => (CondStatus::False, "DependencyNotReady"),
            ComponentState::Refused => (CondStatus::False, SECRET_LOST),
        }
    }

    /// The component's own `<Component>Ready` condition status.
    fn condition_status(self) -> CondStatus {
        match self {
            ComponentState::Ready => CondStatus::True,
            ComponentState::RollingOut => CondStatus::Unknown,
            ComponentState::ProbeFailed
            | ComponentState::ApplyFailed
            | ComponentState::Waiting
            | ComponentState::Refused => CondStatus::False,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentResult {
    /// Status key and label value (`nats`).
    pub component: &'static str,
    /// Condition type (`NatsReady`).
    pub condition: &'static str,
    pub state: ComponentState,
    /// Detailed CamelCase reason (`ConnectFailed`, `ProbeSucceeded`...).
    pub reason: String,
    pub message: String,
}

/// The status being computed for one generation at one instant: condition
/// changes without repeating the generation and the time at every call.
struct Next<'a> {
    s: FleetStackStatus,
    generation: i64,
    now: &'a Time,
}

impl<'a> Next<'a> {
    /// `old` with `observedGeneration` stamped.
    fn new(old: &FleetStackStatus, generation: i64, now: &'a Time) -> Self {
        let mut s = old.clone();
        s.observed_generation = Some(generation);
        Next { s, generation, now }
    }

    fn set(&mut self, type_: &str, status: CondStatus, reason: &str, message: &str) {
        set_condition(
            &mut self.s.conditions,
            type_,
            status,
            reason,
            message,
            self.generation,
            self.now,
        );
    }

    fn remove(&mut self, type_: &str) {
        remove_condition(&mut self.s.conditions, type_);
    }
}

/// `Reconciling=True`, `Ready=Unknown`, `observedGeneration`: stamped before
/// any work on a new generation, so Flux and `kubectl wait` wait for us.
pub fn progressing(old: &FleetStackStatus, generation: i64, now: &Time) -> FleetStackStatus {
    let mut next = Next::new(old, generation, now);
    let msg = format!("reconciling generation {generation}");
    // A new generation restarts the ready deadline, which is measured from
    // Reconciling's transition time.
    next.remove(RECONCILING);
    next.set(RECONCILING, CondStatus::True, PROGRESSING, &msg);
    next.set(READY, CondStatus::Unknown, PROGRESSING, &msg);
    next.remove(STALLED);
    next.remove(PAUSED);
    next.s
}

/// Invalid spec: `Stalled=True` (reason `InvalidSpec`, message listing the
/// field paths), `Ready=False`, no `Reconciling` (a terminal failure must
/// not look like progress, or Flux waits until its timeout).
pub fn invalid_spec(
    old: &FleetStackStatus,
    generation: i64,
    errors: &[SpecError],
    now: &Time,
) -> FleetStackStatus {
    let mut next = Next::new(old, generation, now);
    let msg = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    next.set(STALLED, CondStatus::True, INVALID_SPEC, &msg);
    next.set(READY, CondStatus::False, INVALID_SPEC, &msg);
    next.remove(RECONCILING);
    next.remove(PAUSED);
    next.s
}

/// `spec.paused`: a `Paused` condition and `Ready=Unknown` (reason
/// `Paused`), neither `Reconciling` nor `Stalled`. kstatus ignores `Ready`
/// on custom resources, so this reads Current (pausing is a desired state:
/// Flux `wait: true` and `kpt live apply` succeed); Argo CD shows Suspended.
/// `Ready` stays Unknown because nobody checked this generation: `kubectl
/// wait --for=condition=Ready` must not return on it
/// (wait for `condition=Paused` instead).
pub fn paused(old: &FleetStackStatus, generation: i64, now: &Time) -> FleetStackStatus {
    let mut next = Next::new(old, generation, now);
    next.set(
        PAUSED,
        CondStatus::True,
        "Paused",
        "spec.paused is true: the reconciler writes nothing to this stack's objects",
    );
    // No Ready while paused: nothing is asserted about the children, and
    // kstatus reads any Ready that is not True as InProgress, which would
    // make Flux `wait: true` and kpt time out on a paused stack.
    next.remove(READY);
    next.remove(RECONCILING);
    next.remove(STALLED);
    next.s
}

/// The status after the Scores ran. `results` has one entry per component
/// present in the spec, in dependency order; components absent from it lose
/// their condition and `components` entry.
///
/// kstatus (Flux, kpt) reads only `observedGeneration`, `Reconciling` and
/// `Stalled` on a custom resource, never `Ready`. So every not-Ready
/// outcome carries one of the two:
/// * converging a new generation: `Reconciling=True/Progressing` until
///   `ready_deadline` after it was stamped;
/// * a stack that lost readiness (it was Ready, or nothing is converging):
///   `Reconciling=True/Recovering`, deadline measured from that moment;
/// * past the deadline: `Stalled=True/Timeout`, `Reconciling` removed (the
///   reconciler keeps retrying; recovery clears it);
/// * no component at all: `Stalled=True/NoComponents`.
pub fn finished(
    current: &FleetStackStatus,
    generation: i64,
    results: &[ComponentResult],
    agents: Option<AgentsStatus>,
    ready_deadline: Duration,
    now: &Time,
) -> FleetStackStatus {
    let mut next = Next::new(current, generation, now);
    next.s.agents = agents;
    next.remove(PAUSED);

    // Component conditions: drop those of components no longer in the spec.
    let known: Vec<&str> = results.iter().map(|r| r.condition).collect();
    next.s.conditions.retain(|c| {
        !c.type_.ends_with("Ready") || c.type_ == READY || known.contains(&c.type_.as_str())
    });
    next.s
        .components
        .retain(|k, _| results.iter().any(|r| r.component == k));
    for r in results {
        next.set(
            r.condition,
            r.state.condition_status(),
            &r.reason,
            &r.message,
        );
        next.s.components.insert(
            r.component.to_string(),
            ComponentStatus {
                ready: r.state == ComponentState::Ready,
                reason: r.reason.clone(),
                message: r.message.clone(),
                observed_generation: generation,
            },
        );
    }

    if results.is_empty() {
        let msg = "the spec deploys no component: set at least spec.nats \
                   (fields the API server does not know, e.g. typos, are dropped)";
        next.set(READY, CondStatus::False, NO_COMPONENTS, msg);
        next.set(STALLED, CondStatus::True, NO_COMPONENTS, msg);
        next.remove(RECONCILING);
        return next.s;
    }

    // A refusal needs a person: it wins over any other failure, and is
    // Stalled at once (no deadline to wait for).
    if let Some(refused) = results.iter().find(|r| r.state == ComponentState::Refused) {
        let msg = prefixed(refused);
        next.set(READY, CondStatus::False, SECRET_LOST, &msg);
        next.set(STALLED, CondStatus::True, SECRET_LOST, &msg);
        next.remove(RECONCILING);
        return next.s;
    }

    let Some(failed) = results.iter().find(|r| r.state != ComponentState::Ready) else {
        let names: Vec<&str> = results.iter().map(|r| r.component).collect();
        let msg = format!("smoke probes passed: {}", names.join(", "));
        next.set(READY, CondStatus::True, "Ready", &msg);
        next.remove(RECONCILING);
        next.remove(STALLED);
        return next.s;
    };

    let (ready_status, reason) = failed.state.ready_of_stack();
    let msg = prefixed(failed);
    next.set(READY, ready_status, reason, &msg);

    let reconciling = find_condition(&current.conditions, RECONCILING)
        .filter(|c| c.status == CondStatus::True.as_str())
        .map(|c| (c.reason.clone(), c.last_transition_time.0));
    let timed_out_before = find_condition(&current.conditions, STALLED)
        .is_some_and(|c| c.status == CondStatus::True.as_str() && c.reason == TIMEOUT);
    let (phase, started) = match reconciling {
        Some((phase, started)) => (phase, Some(started)),
        // Already past the deadline: stays Stalled until it recovers.
        None if timed_out_before => (RECOVERING.to_string(), None),
        // Ready before (or nothing converging): it lost readiness now.
        None => (RECOVERING.to_string(), Some(now.0)),
    };
    let timed_out = match started {
        Some(started) => {
            let elapsed = now.0.duration_since(started);
            elapsed.as_secs() >= 0 && elapsed.unsigned_abs() >= ready_deadline
        }
        None => true,
    };
    if timed_out {
        next.remove(RECONCILING);
        let m = format!("not Ready within {}s: {msg}", ready_deadline.as_secs());
        next.set(STALLED, CondStatus::True, TIMEOUT, &m);
    } else {
        let m = if phase == RECOVERING {
            format!("lost readiness, recovering: {msg}")
        } else {
            format!("reconciling generation {generation}: {msg}")
        };
        next.set(RECONCILING, CondStatus::True, &phase, &m);
        next.remove(STALLED);
    }
    next.s
}

/// A component's message naming the component once (messages of Scores
/// usually already start with `nats: ...`).
fn prefixed(r: &ComponentResult) -> String {
    let prefix = format!("{}: ", r.component);
    if r.message.starts_with(&prefix) {
        r.message.clone()
    } else {
        format!("{prefix}{}", r.message)
    }
}

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// Events for the transitions between two statuses (and only for
/// transitions: an unchanged status emits nothing).
///
/// Warning only when something needs a person: a Ready stack degraded
/// (not by a new generation, not by a rollout) or `Stalled` appeared
/// (invalid spec, no component, deadline passed). Everything a normal
/// rollout goes through is a Normal event: the start of a generation, each
/// change of the `Ready` reason while reconciling (`RollingOut`, a probe
/// that cannot reach a pod yet...), `Ready`, `Paused` / `Resumed`.
pub fn transitions(old: &FleetStackStatus, new: &FleetStackStatus) -> Vec<EventNote> {
    let mut out = Vec::new();
    let get = |s: &FleetStackStatus, t: &str| {
        find_condition(&s.conditions, t)
            // Reconciling and Stalled count only while True.
            .filter(|c| (t != RECONCILING && t != STALLED) || c.status == CondStatus::True.as_str())
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let normal = |reason: &str, note: &str| EventNote {
        warning: false,
        reason: reason.to_string(),
        note: note.to_string(),
    };
    let (old_stalled, new_stalled) = (get(old, STALLED), get(new, STALLED));
    let mut warned = false;
    if let Some((_, reason, msg)) = &new_stalled
        && old_stalled.as_ref().map(|o| &o.1) != Some(reason)
    {
        out.push(EventNote {
            warning: true,
            reason: format!("Stalled{reason}"),
            note: msg.clone(),
        });
        warned = true;
    }

    // Warning conditions (plaintext NATS, a failing renewal): one Warning
    // when one turns True or changes its message.
    for type_ in crate::published::WARNING_CONDITIONS {
        if let Some((st, reason, msg)) = get(new, type_)
            && st == CondStatus::True.as_str()
            && get(old, type_).is_none_or(|o| o.0 != st || o.2 != msg)
        {
            out.push(EventNote {
                warning: true,
                reason,
                note: msg,
            });
        }
    }

    let (old_ready, new_ready) = (get(old, READY), get(new, READY));
    let (old_rec, new_rec) = (get(old, RECONCILING), get(new, RECONCILING));
    let true_ = CondStatus::True.as_str();
    if let Some((st, reason, msg)) = &new_ready {
        let was_ready = old_ready.as_ref().is_some_and(|o| o.0 == true_);
        // A new generation resets Ready to Unknown: a change a user made,
        // not a degradation.
        let new_generation = old.observed_generation != new.observed_generation;
        if st == true_ && !was_ready {
            out.push(normal("Ready", msg));
        } else if st != true_ && was_ready && !new_generation && reason != ROLLING_OUT {
            if !warned {
                out.push(EventNote {
                    warning: true,
                    reason: reason.clone(),
                    note: msg.clone(),
                });
                warned = true;
            }
        } else if st != true_
            && new_rec.is_some()
            && old_ready.as_ref().map(|o| &o.1) != Some(reason)
            && reason != PROGRESSING
        {
            // Progress while reconciling: RollingOut, a probe that cannot
            // reach a new pod yet... (Normal: nobody has to act).
            out.push(normal(reason, msg));
        }
    }
    if let Some((_, reason, msg)) = &new_rec
        && old_rec.as_ref().map(|o| &o.1) != Some(reason)
        && !warned
    {
        out.push(normal(reason, msg));
    }

    if get(new, PAUSED).is_some() && get(old, PAUSED).is_none() {
        out.push(normal("Paused", "spec.paused is true"));
    }
    if get(old, PAUSED).is_some() && get(new, PAUSED).is_none() {
        out.push(normal("Resumed", "spec.paused is false"));
    }
    out
}

/// Equality that ignores condition order (the API server may reorder).
pub fn same(a: &FleetStackStatus, b: &FleetStackStatus) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    a.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
    b.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kstatus::{KStatus, check_contract, compute};

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + s).expect("ts"))
    }

    fn nats(state: ComponentState) -> ComponentResult {
        let (reason, message) = match state {
            ComponentState::Ready => ("ProbeSucceeded", "msg"),
            ComponentState::RollingOut => {
                (ROLLING_OUT, "StatefulSet demo-nats: 1/3 replicas updated")
            }
            ComponentState::ProbeFailed | ComponentState::ApplyFailed | ComponentState::Waiting => {
                ("ConnectFailed", "msg")
            }
            ComponentState::Refused => {
                (SECRET_LOST, "Secret demo-zitadel-masterkey lost masterkey")
            }
        };
        ComponentResult {
            component: "nats",
            condition: "NatsReady",
            state,
            reason: reason.into(),
            message: message.into(),
        }
    }

    const DL: Duration = Duration::from_secs(600);

    /// `finished` for generation 1 with only nats, at `t(at)`.
    fn probed(s: &FleetStackStatus, state: ComponentState, at: i64) -> FleetStackStatus {
        finished(s, 1, &[nats(state)], None, DL, &t(at))
    }

    fn kstatus(s: &FleetStackStatus, generation: i64) -> KStatus {
        check_contract(Some(generation), s).unwrap_or_else(|e| panic!("{e}: {s:#?}"));
        compute(Some(generation), false, Some(s))
    }

    fn cond(s: &FleetStackStatus, t: &str) -> Option<(String, String)> {
        find_condition(&s.conditions, t).map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn pair(a: &str, b: &str) -> Option<(String, String)> {
        Some((a.into(), b.into()))
    }

    fn no_warnings(ev: &[EventNote]) -> bool {
        ev.iter().all(|e| !e.warning)
    }

    #[test]
    fn a_first_rollout_is_in_progress_then_current_with_normal_events_only() {
        let s0 = FleetStackStatus::default();
        let s1 = progressing(&s0, 1, &t(0));
        assert_eq!(kstatus(&s1, 1), KStatus::InProgress);
        let mut events = transitions(&s0, &s1);
        assert_eq!(events[0].reason, PROGRESSING);
        // The pods are still starting: rolling out, then a probe that cannot
        // resolve the new Service yet. Both progress, neither a Warning.
        let s2 = probed(&s1, ComponentState::RollingOut, 2);
        assert_eq!(kstatus(&s2, 1), KStatus::InProgress);
        assert_eq!(cond(&s2, READY), pair("Unknown", ROLLING_OUT));
        assert_eq!(cond(&s2, "NatsReady"), pair("Unknown", ROLLING_OUT));
        assert_eq!(cond(&s2, RECONCILING), pair("True", PROGRESSING));
        assert_eq!(
            find_condition(&s2.conditions, RECONCILING)
                .expect("r")
                .message,
            "reconciling generation 1: nats: StatefulSet demo-nats: 1/3 replicas updated"
        );
        events.extend(transitions(&s1, &s2));
        let s3 = probed(&s2, ComponentState::ProbeFailed, 5);
        assert_eq!(kstatus(&s3, 1), KStatus::InProgress);
        assert_eq!(cond(&s3, READY), pair("False", "ProbeFailed"));
        assert!(
            find_condition(&s3.conditions, READY)
                .expect("ready")
                .message
                .starts_with("nats: ")
        );
        events.extend(transitions(&s2, &s3));
        // Same failure again: identical status (no write, no event).
        let s3b = probed(&s3, ComponentState::ProbeFailed, 9);
        assert!(same(&s3, &s3b));
        assert!(transitions(&s3, &s3b).is_empty());
        let s4 = probed(&s3, ComponentState::Ready, 10);
        assert_eq!(kstatus(&s4, 1), KStatus::Current);
        assert!(find_condition(&s4.conditions, RECONCILING).is_none());
        events.extend(transitions(&s3, &s4));
        assert!(no_warnings(&events), "{events:#?}");
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, [PROGRESSING, ROLLING_OUT, "ProbeFailed", "Ready"]);
    }

    /// Issue 12 item 3: an outage of a Ready stack must not read Current.
    #[test]
    fn a_ready_stack_that_loses_readiness_recovers_in_progress_then_stalls() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let ready = probed(&s1, ComponentState::Ready, 10);
        let down = probed(&ready, ComponentState::ProbeFailed, 100);
        assert_eq!(kstatus(&down, 1), KStatus::InProgress);
        assert_eq!(cond(&down, READY), pair("False", "ProbeFailed"));
        assert_eq!(cond(&down, RECONCILING), pair("True", RECOVERING));
        // Ready's transition time is the flip, not the last probe.
        assert_eq!(
            find_condition(&down.conditions, READY)
                .expect("r")
                .last_transition_time,
            t(100)
        );
        // A Ready stack degraded: exactly one Warning, with the probe reason.
        let ev = transitions(&ready, &down);
        assert_eq!(ev.len(), 1, "{ev:#?}");
        assert!(ev[0].warning);
        assert_eq!(ev[0].reason, "ProbeFailed");
        // Still down before the deadline (measured from the loss): InProgress.
        let still = probed(&down, ComponentState::ProbeFailed, 100 + 599);
        assert_eq!(kstatus(&still, 1), KStatus::InProgress);
        assert!(transitions(&down, &still).is_empty());
        // Past it: Failed, one Warning naming the deadline.
        let late = probed(&still, ComponentState::ProbeFailed, 100 + 600);
        assert_eq!(kstatus(&late, 1), KStatus::Failed);
        assert_eq!(cond(&late, STALLED), pair("True", TIMEOUT));
        let ev = transitions(&still, &late);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].warning);
        assert_eq!(ev[0].reason, "StalledTimeout");
        // Stays Stalled (not Recovering again) while it keeps failing.
        let later = probed(&late, ComponentState::ProbeFailed, 2000);
        assert_eq!(kstatus(&later, 1), KStatus::Failed);
        assert!(transitions(&late, &later).is_empty());
        // Recovery clears it.
        let ok = probed(&later, ComponentState::Ready, 2100);
        assert_eq!(kstatus(&ok, 1), KStatus::Current);
        assert!(find_condition(&ok.conditions, STALLED).is_none());
        assert!(no_warnings(&transitions(&later, &ok)));
    }

    /// A pod of a Ready stack is replaced (eviction, node drain): the
    /// workload rolls out again. Progress, not a failure: no Warning.
    #[test]
    fn a_rollout_on_a_ready_stack_is_progress_without_warning() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let ready = probed(&s1, ComponentState::Ready, 10);
        let rolling = probed(&ready, ComponentState::RollingOut, 50);
        assert_eq!(kstatus(&rolling, 1), KStatus::InProgress);
        assert_eq!(cond(&rolling, READY), pair("Unknown", ROLLING_OUT));
        assert_eq!(cond(&rolling, RECONCILING), pair("True", RECOVERING));
        let ev = transitions(&ready, &rolling);
        assert!(no_warnings(&ev), "{ev:#?}");
        assert!(!ev.is_empty());
    }

    /// A spec change on a Ready stack: the new generation is stamped, the
    /// old pod terminates, nothing is Ready for the new generation until
    /// the rollout completes.
    #[test]
    fn a_new_generation_on_a_ready_stack_waits_for_its_rollout() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let ready = probed(&s1, ComponentState::Ready, 10);
        let g2 = progressing(&ready, 2, &t(100));
        assert_eq!(kstatus(&g2, 2), KStatus::InProgress);
        let ev = transitions(&ready, &g2);
        assert!(no_warnings(&ev), "{ev:#?}");
        let rolling = finished(
            &g2,
            2,
            &[nats(ComponentState::RollingOut)],
            None,
            DL,
            &t(101),
        );
        assert_eq!(kstatus(&rolling, 2), KStatus::InProgress);
        assert_eq!(cond(&rolling, RECONCILING), pair("True", PROGRESSING));
        let done = finished(
            &rolling,
            2,
            &[nats(ComponentState::Ready)],
            None,
            DL,
            &t(130),
        );
        assert_eq!(kstatus(&done, 2), KStatus::Current);
        // A rollout that never completes times out like any failure.
        let stuck = finished(
            &rolling,
            2,
            &[nats(ComponentState::RollingOut)],
            None,
            DL,
            &t(700),
        );
        assert_eq!(kstatus(&stuck, 2), KStatus::Failed);
        assert!(
            find_condition(&stuck.conditions, STALLED)
                .expect("stalled")
                .message
                .contains("1/3 replicas updated")
        );
    }

    #[test]
    fn a_failed_probe_with_reason_rolling_out_is_a_rollout() {
        assert_eq!(
            ComponentState::of_failed_probe(ROLLING_OUT),
            ComponentState::RollingOut
        );
        assert_eq!(
            ComponentState::of_failed_probe("ConnectFailed"),
            ComponentState::ProbeFailed
        );
    }

    #[test]
    fn a_lost_secret_is_stalled_at_once_and_clears_when_restored() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let ok = probed(&s1, ComponentState::Ready, 10);
        let lost = probed(&ok, ComponentState::Refused, 20);
        assert_eq!(
            ComponentState::of_failed_probe(SECRET_LOST),
            ComponentState::Refused
        );
        // Failed for kstatus well before the ready deadline: only a person
        // can act.
        assert_eq!(kstatus(&lost, 1), KStatus::Failed);
        assert_eq!(cond(&lost, STALLED), pair("True", SECRET_LOST));
        assert_eq!(cond(&lost, READY), pair("False", SECRET_LOST));
        let msg = &find_condition(&lost.conditions, STALLED)
            .expect("stalled")
            .message;
        assert!(
            msg.starts_with("nats: Secret demo-zitadel-masterkey"),
            "{msg}"
        );
        let ev = transitions(&ok, &lost);
        assert!(
            ev.iter()
                .any(|e| e.warning && e.reason == "StalledSecretLost"),
            "{ev:?}"
        );
        // The Secret restored from a backup: Ready again, Stalled gone.
        let back = probed(&lost, ComponentState::Ready, 30);
        assert_eq!(kstatus(&back, 1), KStatus::Current);
        assert_eq!(cond(&back, STALLED), None);
    }

    #[test]
    fn missing_the_ready_deadline_reports_stalled_timeout() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let late = probed(&s1, ComponentState::ProbeFailed, 601);
        assert_eq!(kstatus(&late, 1), KStatus::Failed);
        assert_eq!(cond(&late, STALLED), pair("True", TIMEOUT));
        // Recovery clears it.
        let ok = probed(&late, ComponentState::Ready, 700);
        assert_eq!(kstatus(&ok, 1), KStatus::Current);
    }

    #[test]
    fn invalid_spec_is_failed_not_in_progress() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let errs = vec![SpecError {
            path: "spec.agents.target".into(),
            message: "no".into(),
        }];
        let s2 = invalid_spec(&s1, 2, &errs, &t(1));
        assert_eq!(kstatus(&s2, 2), KStatus::Failed);
        assert!(
            find_condition(&s2.conditions, STALLED)
                .expect("s")
                .message
                .contains("spec.agents.target")
        );
        let ev = transitions(&s1, &s2);
        assert_eq!(ev.len(), 1, "one Warning: {ev:#?}");
        assert_eq!(ev[0].reason, "StalledInvalidSpec");
        assert!(ev[0].warning);
    }

    /// Issue 12 item 7: `spec: {}` (or every section dropped as unknown
    /// fields) deploys nothing and must say so where tools look.
    #[test]
    fn an_empty_spec_is_failed_no_components() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let s2 = finished(&s1, 1, &[], None, DL, &t(1));
        assert_eq!(kstatus(&s2, 1), KStatus::Failed);
        assert_eq!(cond(&s2, READY), pair("False", NO_COMPONENTS));
        assert_eq!(cond(&s2, STALLED), pair("True", NO_COMPONENTS));
        let ev = transitions(&s1, &s2);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, "StalledNoComponents");
        // Adding a component is a new generation: the stamp clears Stalled.
        let s3 = progressing(&s2, 2, &t(5));
        assert_eq!(kstatus(&s3, 2), KStatus::InProgress);
    }

    #[test]
    fn removed_components_lose_their_condition() {
        let s1 = probed(
            &progressing(&FleetStackStatus::default(), 1, &t(0)),
            ComponentState::Ready,
            0,
        );
        assert!(find_condition(&s1.conditions, "NatsReady").is_some());
        let s2 = finished(&s1, 2, &[], None, DL, &t(1));
        assert!(find_condition(&s2.conditions, "NatsReady").is_none());
        assert!(s2.components.is_empty());
    }

    /// Issue 12 item 4: paused is a desired state. kstatus Current (Flux
    /// `wait: true` and kpt succeed), Ready Unknown (nobody checked).
    #[test]
    fn paused_is_current_with_a_condition_and_an_event_once() {
        let s1 = probed(
            &progressing(&FleetStackStatus::default(), 1, &t(0)),
            ComponentState::Ready,
            0,
        );
        let p = paused(&s1, 2, &t(1));
        assert_eq!(kstatus(&p, 2), KStatus::Current);
        assert_eq!(cond(&p, READY), None, "no Ready while paused");
        let ev = transitions(&s1, &p);
        assert!(no_warnings(&ev));
        assert!(ev.iter().any(|e| e.reason == "Paused"));
        assert!(transitions(&p, &paused(&p, 2, &t(5))).is_empty());
        // Paused straight from a stack that was mid-rollout.
        let g = progressing(&FleetStackStatus::default(), 1, &t(0));
        assert_eq!(kstatus(&paused(&g, 2, &t(1)), 2), KStatus::Current);
    }
}
