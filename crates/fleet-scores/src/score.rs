//! The Score and Interpret traits and what an Interpret returns.

use std::time::Duration;

use crate::component::Component;
use crate::topology::{Topology, TopologyError};

/// A typed, declarative description of one component's desired state.
///
/// Object-safe, so a stack's plan is a list of boxed Scores that one
/// runner iterates (`crate::plan`), as Harmony's `Vec<Box<dyn Score>>`.
pub trait Score<T: Topology>: Send + Sync {
    /// Which component this Score deploys (label value, status key,
    /// condition).
    fn component(&self) -> Component;
    /// The Interpret that applies and probes this Score. It borrows the
    /// Score: nothing is copied.
    fn create_interpret(&self) -> Box<dyn Interpret<T> + '_>;
    /// A check that can only pass once every component of the stack is
    /// Ready (the operator's "every agent connected", which needs the
    /// agents deployed after it; docs/adr/0052). The runner executes it
    /// after the last step and its outcome replaces this Score's.
    fn follow_up(&self) -> Option<Box<dyn Interpret<T> + '_>> {
        None
    }
}

/// Executes a Score against a Topology: apply, prune, probe.
#[async_trait::async_trait]
pub trait Interpret<T: Topology>: Send + Sync {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError>;
}

/// How many of a component's units are ready out of how many it should
/// have (agents: answered the ping / replicas; operator: FleetAgents
/// connected / agents expected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    pub ready: i32,
    pub desired: i32,
}

/// What one execution did and what its smoke probe found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `Kind/name` of every object written (server-side apply or create).
    pub written: Vec<String>,
    /// Objects whose live copy already matched the desired state.
    pub unchanged: usize,
    /// `Kind/name` of objects deleted because they are no longer desired.
    pub deleted: Vec<String>,
    pub probe: ProbeOutcome,
    /// For components made of many units.
    pub units: Option<Units>,
    /// What the component publishes in the stack's status besides its
    /// condition (`None`: nothing, or nothing new: status keeps what it had).
    pub published: Option<Published>,
}

/// Endpoints and certificates a component reports for `status.endpoints`
/// and `status.certificates`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub endpoints: Vec<fleet_crds::Endpoint>,
    pub certificates: Vec<fleet_crds::CertificateStatus>,
    /// Unix time by which the stack must be reconciled again (a
    /// certificate's renewal time), however long the probe interval.
    pub recheck_at: Option<i64>,
}

impl Outcome {
    /// An outcome of a step that wrote nothing (a check, or a refusal
    /// before anything was applied).
    pub fn probe_only(probe: ProbeOutcome, units: Option<Units>) -> Self {
        Outcome {
            written: Vec::new(),
            unchanged: 0,
            deleted: Vec::new(),
            probe,
            units,
            published: None,
        }
    }

    /// This outcome with `published`.
    pub fn publishing(mut self, published: Published) -> Self {
        self.published = Some(published);
        self
    }
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
    /// The spec produced something a checker refused before it was
    /// applied (nats-server -t on the merged nats.conf): Stalled, the
    /// field named, nothing rolls.
    #[error("{0}")]
    Refused(fleet_crds::SpecError),
    /// The merged nats.conf could not be checked at all.
    #[error(transparent)]
    NatsCheck(#[from] crate::nats::server_check::CheckError),
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
            InterpretError::Refused(_) => "InvalidSpec",
            InterpretError::NatsCheck(_) => "NatsConfigUncheckable",
        }
    }
}
