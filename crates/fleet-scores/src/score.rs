//! The Score and Interpret traits and what an Interpret returns.

use std::time::Duration;

use crate::topology::{Topology, TopologyError};

/// A typed, declarative description of one component's desired state.
pub trait Score<T: Topology> {
    type Interpret: Interpret<T>;
    /// Component name: label value, status key (`nats`) and condition
    /// prefix (`NatsReady`).
    fn component(&self) -> &'static str;
    fn create_interpret(&self) -> Self::Interpret;
}

/// Executes a Score against a Topology: apply, prune, probe.
pub trait Interpret<T: Topology>: Send + Sync {
    fn execute(&self, topology: &T)
    -> impl Future<Output = Result<Outcome, InterpretError>> + Send;
}

/// What one execution did and what its smoke probe found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub component: &'static str,
    /// `Kind/name` of every object written (server-side apply or create).
    pub written: Vec<String>,
    /// Objects whose live copy already matched the desired state.
    pub unchanged: usize,
    /// `Kind/name` of objects deleted because they are no longer desired.
    pub deleted: Vec<String>,
    pub probe: ProbeOutcome,
    /// `(ready, desired)` units for components made of many (agents: how
    /// many answered the probe out of how many the spec asks for).
    pub units: Option<(i32, i32)>,
}

/// Result of a component's smoke probe.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutcome {
    Passed {
        latency: Duration,
        /// What passed, for the component's status (`3/3 agents answered`);
        /// deterministic like `Failed::message`.
        message: String,
    },
    Failed {
        /// CamelCase, stable: ends up in the condition's `reason`.
        reason: &'static str,
        /// Names the component and the address; deterministic (no
        /// timestamps or latencies) so status does not churn.
        message: String,
        latency: Duration,
    },
}

impl ProbeOutcome {
    pub fn passed(&self) -> bool {
        matches!(self, ProbeOutcome::Passed { .. })
    }

    pub fn latency(&self) -> Duration {
        match self {
            ProbeOutcome::Passed { latency, .. } | ProbeOutcome::Failed { latency, .. } => *latency,
        }
    }
}

/// An Interpret could not do its job (as opposed to a probe that ran and
/// failed, which is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum InterpretError {
    #[error("building desired {kind} {name}: {source}")]
    Build {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
    #[error("{verb} {kind} {namespace}/{name} failed: {source}")]
    Api {
        verb: &'static str,
        kind: String,
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error(
        "{kind} {namespace}/{name} exists but is not managed by fleet-reconciler; rename or delete it"
    )]
    NotOwned {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("Secret {namespace}/{name} key {key} is not valid UTF-8")]
    SecretEncoding {
        namespace: String,
        name: String,
        key: String,
    },
    /// Never includes the value.
    #[error("Secret {namespace}/{name} key {key} does not hold a valid {expected}")]
    SecretInvalid {
        namespace: String,
        name: String,
        key: String,
        expected: &'static str,
    },
    #[error("Secret {namespace}/{name} was created and deleted concurrently twice; retrying later")]
    SecretRace { namespace: String, name: String },
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

impl InterpretError {
    /// Short CamelCase label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            InterpretError::Build { .. } => "BuildFailed",
            InterpretError::Api { .. } => "ApiError",
            InterpretError::NotOwned { .. } => "NotOwned",
            InterpretError::SecretEncoding { .. } | InterpretError::SecretInvalid { .. } => {
                "SecretInvalid"
            }
            InterpretError::SecretRace { .. } => "SecretRace",
            InterpretError::Topology(_) => "TopologyError",
        }
    }
}
