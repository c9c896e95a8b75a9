//! `FleetServerScore`: the server side of a FleetStack as one composite
//! Score: NATS -> identity -> callout -> operator, in dependency order,
//! each step blocking on its smoke probe (a step runs only when every step
//! before it passed). The reconciler runs it, then the agents.
//!
//! [`FleetServerScore::run_steps`] reports every step on its own (the
//! reconciler turns each into a status condition); the [`Score`] impl folds
//! them into one [`Outcome`] for callers that only need "deployed and
//! probed, or why not".

use std::time::Duration;

use crate::callout::FleetCalloutScore;
use crate::nats::FleetNatsScore;
use crate::operator::FleetOperatorScore;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::topology::KubernetesTopology;
use crate::zitadel::FleetZitadelScore;

/// A component that is in the spec but cannot be deployed as written, and
/// why (the reason becomes its condition's `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: &'static str,
    pub message: String,
}

/// The server-side components of one stack; `None` = not in the spec.
#[derive(Debug, Clone, Default)]
pub struct FleetServerScore {
    pub nats: Option<FleetNatsScore>,
    pub identity: Option<FleetZitadelScore>,
    pub callout: Option<Result<FleetCalloutScore, Unresolved>>,
    pub operator: Option<FleetOperatorScore>,
}

/// What happened to one step.
#[derive(Debug)]
pub enum StepReport {
    /// Not in the spec (the caller deletes what it left behind).
    Absent,
    /// An earlier step is not Ready yet; this one was not touched.
    Waiting {
        on: &'static str,
    },
    Unresolved(Unresolved),
    Ran(Result<Outcome, InterpretError>),
}

impl StepReport {
    /// Whether the step leaves later steps free to run.
    pub fn ready(&self) -> bool {
        match self {
            StepReport::Absent => true,
            StepReport::Ran(Ok(outcome)) => outcome.probe.passed(),
            _ => false,
        }
    }
}

/// Component names in the order the steps run.
pub const ORDER: [&str; 4] = ["nats", "identity", "callout", "operator"];

impl FleetServerScore {
    /// Runs the steps in [`ORDER`]. `blocked_by` lets a caller hold every
    /// step (e.g. something before the server is not Ready).
    pub async fn run_steps<T: KubernetesTopology>(
        &self,
        topology: &T,
        mut blocked_by: Option<&'static str>,
    ) -> Vec<(&'static str, StepReport)> {
        let mut reports = Vec::with_capacity(ORDER.len());
        for component in ORDER {
            let report = match (self.step(component), blocked_by) {
                (None, _) => StepReport::Absent,
                (Some(_), Some(on)) => StepReport::Waiting { on },
                (Some(step), None) => step.run(topology).await,
            };
            if !report.ready() {
                blocked_by.get_or_insert(component);
            }
            reports.push((component, report));
        }
        reports
    }

    fn step(&self, component: &str) -> Option<Step<'_>> {
        match component {
            "nats" => self.nats.as_ref().map(Step::Nats),
            "identity" => self.identity.as_ref().map(Step::Identity),
            "callout" => self.callout.as_ref().map(|c| match c {
                Ok(score) => Step::Callout(score),
                Err(u) => Step::Unresolved(u),
            }),
            "operator" => self.operator.as_ref().map(Step::Operator),
            _ => None,
        }
    }
}

enum Step<'a> {
    Nats(&'a FleetNatsScore),
    Identity(&'a FleetZitadelScore),
    Callout(&'a FleetCalloutScore),
    Operator(&'a FleetOperatorScore),
    Unresolved(&'a Unresolved),
}

impl Step<'_> {
    async fn run<T: KubernetesTopology>(&self, topology: &T) -> StepReport {
        match self {
            Step::Nats(s) => StepReport::Ran(execute(*s, topology).await),
            Step::Identity(s) => StepReport::Ran(execute(*s, topology).await),
            Step::Callout(s) => StepReport::Ran(execute(*s, topology).await),
            Step::Operator(s) => StepReport::Ran(execute(*s, topology).await),
            Step::Unresolved(u) => StepReport::Unresolved((*u).clone()),
        }
    }
}

async fn execute<S, T>(score: &S, topology: &T) -> Result<Outcome, InterpretError>
where
    S: Score<T>,
    T: KubernetesTopology,
{
    score.create_interpret().execute(topology).await
}

impl<T: KubernetesTopology> Score<T> for FleetServerScore {
    type Interpret = ServerInterpret;

    fn component(&self) -> &'static str {
        "server"
    }

    fn create_interpret(&self) -> ServerInterpret {
        ServerInterpret {
            score: self.clone(),
        }
    }
}

pub struct ServerInterpret {
    score: FleetServerScore,
}

impl<T: KubernetesTopology> Interpret<T> for ServerInterpret {
    /// The first error is returned; otherwise one Outcome with every
    /// step's writes and the first failed probe (prefixed by its component)
    /// or a pass naming the components.
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let mut folded = Outcome {
            component: "server",
            written: Vec::new(),
            unchanged: 0,
            deleted: Vec::new(),
            probe: ProbeOutcome::Passed {
                latency: Duration::ZERO,
                message: String::new(),
            },
            units: None,
        };
        let mut passed = Vec::new();
        let mut latency = Duration::ZERO;
        let mut failure = None;
        for (component, report) in self.score.run_steps(topology, None).await {
            match report {
                StepReport::Absent => {}
                StepReport::Ran(result) => {
                    let outcome = result?;
                    folded.written.extend(outcome.written);
                    folded.deleted.extend(outcome.deleted);
                    folded.unchanged += outcome.unchanged;
                    latency += outcome.probe.latency();
                    match outcome.probe {
                        ProbeOutcome::Passed { .. } => passed.push(component),
                        ProbeOutcome::Failed {
                            reason, message, ..
                        } => {
                            failure.get_or_insert((reason, message));
                        }
                    }
                }
                StepReport::Unresolved(u) => {
                    failure.get_or_insert((u.reason, u.message));
                }
                StepReport::Waiting { .. } => {}
            }
        }
        folded.probe = match failure {
            Some((reason, message)) => ProbeOutcome::Failed {
                reason,
                message,
                latency,
            },
            None => ProbeOutcome::Passed {
                latency,
                message: format!("server ready: {}", passed.join(", ")),
            },
        };
        Ok(folded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(passed: bool) -> StepReport {
        StepReport::Ran(Ok(Outcome {
            component: "x",
            written: vec![],
            unchanged: 0,
            deleted: vec![],
            probe: if passed {
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
            units: None,
        }))
    }

    #[test]
    fn only_absent_and_passed_steps_let_later_steps_run() {
        assert!(StepReport::Absent.ready());
        assert!(outcome(true).ready());
        assert!(!outcome(false).ready());
        assert!(!StepReport::Waiting { on: "nats" }.ready());
        assert!(
            !StepReport::Unresolved(Unresolved {
                reason: "AudienceUnknown",
                message: String::new()
            })
            .ready()
        );
    }
}
