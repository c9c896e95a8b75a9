//! `FleetOperatorScore`: the fleet operator runtime of a FleetStack
//! (crates/fleet-operator): agent inventory (FleetAgents from NATS
//! heartbeats) and FleetCommand fan-out.
//!
//! Pipeline: build desired objects (pure, [`objects::build`]) -> apply
//! ServiceAccount, Role, RoleBinding, Service, Deployment (unchanged ones
//! skipped) -> delete operator objects no longer desired -> smoke probe
//! (`/readyz`, then every expected agent connected according to its
//! FleetAgent).
//!
//! Requires FleetNatsScore to have run first: it creates the write-once
//! Secret holding the `fleet` user's password the operator connects with.

pub mod objects;
pub mod probe;

use fleet_crds::OperatorSpec;

use crate::component::Component;
use crate::resources::Resources;
use crate::score::{Interpret, InterpretError, Outcome, Score};
use crate::stack_ref::StackRef;
use crate::topology::KubernetesTopology;
pub use objects::{COMPONENT, OperatorInput, OperatorNames, OperatorObjects, build, rules};
pub use probe::{AgentsCheck, check_agents, inventory, smoke_probe};

/// The fleet operator runtime of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetOperatorScore {
    pub stack: StackRef,
    pub spec: OperatorSpec,
    /// Agent ids (e.g. `demo-agent-0`) whose FleetAgent must say connected
    /// once every component is Ready (the follow-up check); empty = only
    /// `/readyz` is probed.
    pub expected_agents: Vec<String>,
    /// `spec.nats.replicas` (0 without NATS): servers whose metrics the
    /// operator serves.
    pub nats_servers: i32,
}

impl FleetOperatorScore {
    pub fn input(&self) -> OperatorInput {
        OperatorInput {
            stack: self.stack.name.clone(),
            namespace: self.stack.namespace.clone(),
            owner: self.stack.owner.clone(),
            spec: self.spec.clone(),
            nats_tls: self.stack.nats_tls,
            nats_servers: self.nats_servers,
        }
    }
}

impl<T: KubernetesTopology> Score<T> for FleetOperatorScore {
    fn component(&self) -> Component {
        Component::Operator
    }

    fn create_interpret(&self) -> Box<dyn Interpret<T> + '_> {
        Box::new(OperatorInterpret { score: self })
    }

    /// "Every expected agent connected" can only hold once the agents,
    /// deployed after the operator, run (docs/adr/0052).
    fn follow_up(&self) -> Option<Box<dyn Interpret<T> + '_>> {
        (!self.expected_agents.is_empty())
            .then(|| Box::new(InventoryCheck { score: self }) as Box<dyn Interpret<T> + '_>)
    }
}

/// Applies the runtime and probes `/readyz`.
struct OperatorInterpret<'a> {
    score: &'a FleetOperatorScore,
}

#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for OperatorInterpret<'_> {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = self.score;
        let mut resources = Resources::new(topology, &s.stack, Component::Operator);
        // Roll onto regenerated NATS credentials (docs/adr/0016).
        let hash = crate::nats::consumed_credentials_hash(
            topology.client(),
            &s.stack,
            &objects::CREDENTIAL_KEYS,
        )
        .await?;
        let ordered = build(&s.input())
            .with_credentials_hash(hash.as_deref())
            .ordered()?;
        resources.apply(&ordered).await?;
        let applied = resources.finish().await?;
        let service = OperatorNames::new(&s.stack.name).service;
        // `/readyz` only: "every agent connected" is the follow-up check,
        // once the agents (deployed next to the operator) run.
        let probe = probe::READYZ
            .probe_service(
                topology,
                &s.stack.namespace,
                &service,
                objects::HTTP_PORT,
                s.stack.probe_timeout,
            )
            .await;
        let units = None;
        Ok(applied.outcome(probe, units))
    }
}

/// The FleetAgent check alone: its objects were applied and `/readyz`
/// passed moments before, in the same run.
struct InventoryCheck<'a> {
    score: &'a FleetOperatorScore,
}

#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for InventoryCheck<'_> {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = self.score;
        let (probe, units) = inventory(
            topology.client(),
            &s.stack.namespace,
            &s.expected_agents,
            std::time::Instant::now(),
            s.stack.probe_timeout,
        )
        .await?;
        Ok(Outcome::probe_only(probe, Some(units)))
    }
}
