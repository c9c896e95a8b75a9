//! A stack's plan and the one runner that executes it.
//!
//! A [`Plan`] holds one [`Step`] per [`Component`], in [`Component::ALL`]
//! order: absent from the spec, in the spec but unresolvable as written, or
//! a boxed Score to run. [`Plan::run`] executes the steps in that order; a
//! step runs only when every component it [depends on](Component::depends_on)
//! passed its smoke probe (or is absent), so independent components start
//! together. It removes what absent components left behind and runs the
//! Scores' follow-up checks once every step is Ready.
//!
//! The runner never names a component: everything component-specific is
//! in the Scores and in `Component`'s matches.

use crate::component::Component;
use crate::resources;
use crate::score::{InterpretError, Outcome, Published, Score, Units};
use crate::topology::KubernetesTopology;

/// A component that is in the spec but cannot be deployed as written, and
/// why (the reason becomes its condition's `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: &'static str,
    pub message: String,
}

/// What the plan says about one component.
pub enum Step<T> {
    Absent,
    Unresolved(Unresolved),
    Run(Box<dyn Score<T>>),
}

/// One step per component, in dependency order.
pub struct Plan<T> {
    steps: Vec<(Component, Step<T>)>,
}

impl<T: KubernetesTopology> Plan<T> {
    /// `step(component)` for every component in [`Component::ALL`] order:
    /// a plan cannot miss a component or run them out of order.
    pub fn new(mut step: impl FnMut(Component) -> Step<T>) -> Self {
        Plan {
            steps: Component::ALL.into_iter().map(|c| (c, step(c))).collect(),
        }
    }

    /// Whether no component is in the spec.
    pub fn is_empty(&self) -> bool {
        self.steps.iter().all(|(_, s)| matches!(s, Step::Absent))
    }

    /// Runs the plan. `deployed(component)` says whether an absent
    /// component may still have objects (it has a status entry): only
    /// those are listed for removal, so an idle stack lists nothing.
    pub async fn run(
        &self,
        topology: &T,
        namespace: &str,
        stack: &str,
        deployed: impl Fn(Component) -> bool,
    ) -> Run {
        let mut reports: Vec<(Component, StepReport)> = Vec::with_capacity(self.steps.len());
        for (component, step) in &self.steps {
            let component = *component;
            // The first dependency that is present and not Ready (ALL puts
            // dependencies first, so their reports exist already).
            let blocked_on = component
                .depends_on()
                .iter()
                .copied()
                .find(|d| reports.iter().any(|(c, report)| c == d && !report.ready()));
            let report = match (step, blocked_on) {
                (Step::Absent, _) => StepReport::Absent {
                    removed: if deployed(component) {
                        resources::remove_component(topology, namespace, stack, component).await
                    } else {
                        Ok(Vec::new())
                    },
                },
                (_, Some(on)) => StepReport::Waiting { on },
                (Step::Unresolved(u), None) => StepReport::Unresolved(u.clone()),
                (Step::Run(score), None) => {
                    StepReport::Ran(score.create_interpret().execute(topology).await)
                }
            };
            reports.push((component, report));
        }
        let blocked_by = reports.iter().find(|(_, r)| !r.ready()).map(|(c, _)| *c);
        if blocked_by.is_none() {
            for ((_, step), (_, report)) in self.steps.iter().zip(reports.iter_mut()) {
                if let Step::Run(score) = step
                    && let Some(check) = score.follow_up()
                {
                    *report = StepReport::Ran(check.execute(topology).await);
                }
            }
        }
        Run { reports }
    }
}

/// What happened to one step.
#[derive(Debug)]
pub enum StepReport {
    /// Not in the spec; what it left behind was removed (or removing it
    /// failed).
    Absent {
        removed: Result<Vec<String>, InterpretError>,
    },
    /// An earlier step is not Ready yet; this one was not touched.
    Waiting {
        on: Component,
    },
    Unresolved(Unresolved),
    Ran(Result<Outcome, InterpretError>),
}

impl StepReport {
    /// Whether the step leaves later steps free to run.
    pub fn ready(&self) -> bool {
        match self {
            StepReport::Absent { .. } => true,
            StepReport::Ran(Ok(outcome)) => outcome.probe.passed(),
            StepReport::Ran(Err(_)) | StepReport::Waiting { .. } | StepReport::Unresolved(_) => {
                false
            }
        }
    }
}

/// Every step's report, in dependency order.
#[derive(Debug)]
pub struct Run {
    pub reports: Vec<(Component, StepReport)>,
}

impl Run {
    /// What the components that ran to the end published, merged in
    /// dependency order; `None` when none did.
    pub fn published(&self) -> Option<Published> {
        let mut merged: Option<Published> = None;
        for (_, report) in &self.reports {
            if let StepReport::Ran(Ok(Outcome {
                published: Some(p), ..
            })) = report
            {
                let m = merged.get_or_insert_with(Published::default);
                m.endpoints.extend(p.endpoints.iter().cloned());
                m.certificates.extend(p.certificates.iter().cloned());
                m.recheck_at = match (m.recheck_at, p.recheck_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        merged
    }

    /// The units a component reported, if it ran.
    pub fn units(&self, component: Component) -> Option<Units> {
        self.reports.iter().find_map(|(c, r)| match r {
            StepReport::Ran(Ok(outcome)) if *c == component => outcome.units,
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::score::ProbeOutcome;

    fn outcome(passed: bool) -> StepReport {
        StepReport::Ran(Ok(Outcome::probe_only(
            if passed {
                ProbeOutcome::Passed {
                    latency: Duration::ZERO,
                    message: "ok".into(),
                }
            } else {
                ProbeOutcome::Failed {
                    reason: "R",
                    message: "no".into(),
                    latency: Duration::ZERO,
                }
            },
            None,
        )))
    }

    #[test]
    fn only_absent_and_passed_steps_let_later_steps_run() {
        assert!(
            StepReport::Absent {
                removed: Ok(Vec::new())
            }
            .ready()
        );
        assert!(outcome(true).ready());
        assert!(!outcome(false).ready());
        assert!(
            !StepReport::Waiting {
                on: Component::Nats
            }
            .ready()
        );
        assert!(
            !StepReport::Unresolved(Unresolved {
                reason: "AudienceUnknown",
                message: String::new()
            })
            .ready()
        );
    }
}
