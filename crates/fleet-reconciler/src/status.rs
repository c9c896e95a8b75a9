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

/// How one component's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentState {
    Ready,
    /// The smoke probe ran and failed.
    ProbeFailed,
    /// Applying objects failed (API error, foreign object in the way...).
    ApplyFailed,
    /// An earlier component in dependency order is not Ready.
    Waiting,
    /// The component is in the API but this reconciler cannot deploy it yet.
    NotImplemented,
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
    next.set(RECONCILING, CondStatus::True, "Progressing", &msg);
    next.set(READY, CondStatus::Unknown, "Progressing", &msg);
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
    next.set(STALLED, CondStatus::True, "InvalidSpec", &msg);
    next.set(READY, CondStatus::False, "InvalidSpec", &msg);
    next.remove(RECONCILING);
    next.remove(PAUSED);
    next.s
}

/// `spec.paused`: a `Paused` condition and `Ready=Unknown` (reason
/// `Paused`): nobody checked this generation, so claiming Ready=True for it
/// would let `kubectl wait` return on stale state.
pub fn paused(old: &FleetStackStatus, generation: i64, now: &Time) -> FleetStackStatus {
    let mut next = Next::new(old, generation, now);
    next.set(
        PAUSED,
        CondStatus::True,
        "Paused",
        "spec.paused is true: the reconciler writes nothing to this stack's objects",
    );
    next.set(READY, CondStatus::Unknown, "Paused", "spec.paused is true");
    next.remove(RECONCILING);
    next.remove(STALLED);
    next.s
}

/// The status after the Scores ran. `results` has one entry per component
/// present in the spec, in dependency order; components absent from it lose
/// their condition and `components` entry.
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
        let ok = r.state == ComponentState::Ready;
        let st = if ok {
            CondStatus::True
        } else {
            CondStatus::False
        };
        next.set(r.condition, st, &r.reason, &r.message);
        next.s.components.insert(
            r.component.to_string(),
            ComponentStatus {
                ready: ok,
                reason: r.reason.clone(),
                message: r.message.clone(),
                observed_generation: generation,
            },
        );
    }

    match results.iter().find(|r| r.state != ComponentState::Ready) {
        None => {
            let msg = if results.is_empty() {
                "no component in spec".to_string()
            } else {
                let names: Vec<&str> = results.iter().map(|r| r.component).collect();
                format!("smoke probes passed: {}", names.join(", "))
            };
            next.set(READY, CondStatus::True, "Ready", &msg);
            next.remove(RECONCILING);
            next.remove(STALLED);
        }
        Some(failed) => {
            let reason = match failed.state {
                ComponentState::ProbeFailed => "ProbeFailed",
                ComponentState::ApplyFailed => "ApplyFailed",
                ComponentState::NotImplemented => "NotImplemented",
                ComponentState::Waiting | ComponentState::Ready => "DependencyNotReady",
            };
            // Messages of Scores already name their component ("nats: ...").
            let prefix = format!("{}: ", failed.component);
            let msg = if failed.message.starts_with(&prefix) {
                failed.message.clone()
            } else {
                format!("{prefix}{}", failed.message)
            };
            next.set(READY, CondStatus::False, reason, &msg);
            // Still converging this generation: Reconciling stays until the
            // deadline, then the stack is reported Stalled (kstatus Failed)
            // while the reconciler keeps retrying. A stack that already
            // timed out keeps its Stalled message current.
            let started =
                find_condition(&next.s.conditions, RECONCILING).map(|c| c.last_transition_time.0);
            let timed_out = match started {
                Some(started) => {
                    let elapsed = now.0.duration_since(started);
                    elapsed.as_secs() >= 0 && elapsed.unsigned_abs() >= ready_deadline
                }
                None => find_condition(&next.s.conditions, STALLED)
                    .is_some_and(|c| c.reason == "Timeout"),
            };
            if timed_out {
                next.remove(RECONCILING);
                let m = format!("not Ready within {}s: {msg}", ready_deadline.as_secs());
                next.set(STALLED, CondStatus::True, "Timeout", &m);
            } else if started.is_some() {
                let m = format!("reconciling generation {generation}");
                next.set(RECONCILING, CondStatus::True, "Progressing", &m);
            }
        }
    }
    next.s
}

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// Events for the transitions between two statuses (and only for
/// transitions: an unchanged Ready=False emits nothing).
pub fn transitions(old: &FleetStackStatus, new: &FleetStackStatus) -> Vec<EventNote> {
    let mut out = Vec::new();
    let get = |s: &FleetStackStatus, t: &str| {
        find_condition(&s.conditions, t)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (old_ready, new_ready) = (get(old, READY), get(new, READY));
    if let Some((st, reason, msg)) = &new_ready {
        let flipped = old_ready.as_ref().map(|o| &o.0) != Some(st);
        if flipped && st == "True" {
            out.push(EventNote {
                warning: false,
                reason: "Ready".into(),
                note: msg.clone(),
            });
        } else if flipped && st == "False" {
            out.push(EventNote {
                warning: true,
                reason: reason.clone(),
                note: msg.clone(),
            });
        }
    }
    let (old_stalled, new_stalled) = (get(old, STALLED), get(new, STALLED));
    if let Some((_, reason, msg)) = &new_stalled
        && old_stalled.as_ref().map(|o| &o.1) != Some(reason)
    {
        out.push(EventNote {
            warning: true,
            reason: format!("Stalled{reason}"),
            note: msg.clone(),
        });
    }
    if get(new, PAUSED).is_some() && get(old, PAUSED).is_none() {
        out.push(EventNote {
            warning: false,
            reason: "Paused".into(),
            note: "spec.paused is true".into(),
        });
    }
    if get(old, PAUSED).is_some() && get(new, PAUSED).is_none() {
        out.push(EventNote {
            warning: false,
            reason: "Resumed".into(),
            note: "spec.paused is false".into(),
        });
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
        ComponentResult {
            component: "nats",
            condition: "NatsReady",
            state,
            reason: if state == ComponentState::Ready {
                "ProbeSucceeded"
            } else {
                "ConnectFailed"
            }
            .into(),
            message: "msg".into(),
        }
    }

    const DL: Duration = Duration::from_secs(600);

    /// `finished` for generation 1 with only nats, at `t(at)`.
    fn probed(s: &FleetStackStatus, state: ComponentState, at: i64) -> FleetStackStatus {
        finished(s, 1, &[nats(state)], None, DL, &t(at))
    }

    #[test]
    fn a_generation_goes_in_progress_then_current_and_obeys_the_contract() {
        let s0 = FleetStackStatus::default();
        let s1 = progressing(&s0, 1, &t(0));
        assert_eq!(compute(Some(1), false, Some(&s1)), KStatus::InProgress);
        check_contract(Some(1), &s1).expect("contract");
        let s2 = probed(&s1, ComponentState::ProbeFailed, 5);
        assert_eq!(compute(Some(1), false, Some(&s2)), KStatus::InProgress);
        check_contract(Some(1), &s2).expect("contract");
        let ready = find_condition(&s2.conditions, READY).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ProbeFailed")
        );
        assert!(ready.message.starts_with("nats: "));
        // Same failure again: identical status (no write, no event).
        let s2b = probed(&s2, ComponentState::ProbeFailed, 9);
        assert!(same(&s2, &s2b));
        assert!(transitions(&s2, &s2b).is_empty());
        let s3 = probed(&s2, ComponentState::Ready, 10);
        assert_eq!(compute(Some(1), false, Some(&s3)), KStatus::Current);
        check_contract(Some(1), &s3).expect("contract");
        assert!(find_condition(&s3.conditions, RECONCILING).is_none());
        let ev = transitions(&s2, &s3);
        assert_eq!(ev.len(), 1);
        assert!(!ev[0].warning);
        // Later the probe fails: Ready=False without Reconciling (same generation).
        let s4 = probed(&s3, ComponentState::ProbeFailed, 100);
        assert_eq!(compute(Some(1), false, Some(&s4)), KStatus::InProgress);
        assert!(find_condition(&s4.conditions, RECONCILING).is_none());
        assert!(transitions(&s3, &s4)[0].warning);
        // Ready's transition time is the flip, not the last probe.
        assert_eq!(
            find_condition(&s4.conditions, READY)
                .expect("r")
                .last_transition_time,
            t(100)
        );
    }

    #[test]
    fn missing_the_ready_deadline_reports_stalled_timeout() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let late = probed(&s1, ComponentState::ProbeFailed, 601);
        assert_eq!(compute(Some(1), false, Some(&late)), KStatus::Failed);
        check_contract(Some(1), &late).expect("contract");
        assert_eq!(
            find_condition(&late.conditions, STALLED)
                .expect("stalled")
                .reason,
            "Timeout"
        );
        // Recovery clears it.
        let ok = probed(&late, ComponentState::Ready, 700);
        assert_eq!(compute(Some(1), false, Some(&ok)), KStatus::Current);
    }

    #[test]
    fn invalid_spec_is_failed_not_in_progress() {
        let s1 = progressing(&FleetStackStatus::default(), 1, &t(0));
        let errs = vec![SpecError {
            path: "spec.agents.target".into(),
            message: "no".into(),
        }];
        let s2 = invalid_spec(&s1, 2, &errs, &t(1));
        assert_eq!(compute(Some(2), false, Some(&s2)), KStatus::Failed);
        check_contract(Some(2), &s2).expect("contract");
        assert!(
            find_condition(&s2.conditions, STALLED)
                .expect("s")
                .message
                .contains("spec.agents.target")
        );
        assert_eq!(transitions(&s1, &s2).len(), 2, "Ready False + Stalled");
    }

    #[test]
    fn removed_components_lose_their_condition() {
        let s1 = probed(&FleetStackStatus::default(), ComponentState::Ready, 0);
        assert!(find_condition(&s1.conditions, "NatsReady").is_some());
        let s2 = finished(&s1, 2, &[], None, DL, &t(1));
        assert!(find_condition(&s2.conditions, "NatsReady").is_none());
        assert!(s2.components.is_empty());
        assert_eq!(
            find_condition(&s2.conditions, READY).expect("r").status,
            "True"
        );
    }

    #[test]
    fn paused_adds_a_condition_and_an_event_once() {
        let s1 = probed(&FleetStackStatus::default(), ComponentState::Ready, 0);
        let p = paused(&s1, 2, &t(1));
        check_contract(Some(2), &p).expect("contract");
        assert_eq!(transitions(&s1, &p)[0].reason, "Paused");
        assert!(transitions(&p, &paused(&p, 2, &t(5))).is_empty());
    }
}
