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

use std::time::Duration;

use fleet_crds::OperatorSpec;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ApiResource;

use crate::apply;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::topology::KubernetesTopology;
pub use objects::{COMPONENT, OperatorInput, OperatorNames, OperatorObjects, build, rules};
pub use probe::{AgentsCheck, check_agents, inventory, smoke_probe};

/// The fleet operator runtime of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetOperatorScore {
    pub stack: String,
    pub namespace: String,
    /// ownerReference to the FleetStack (controller=true).
    pub owner: OwnerReference,
    pub spec: OperatorSpec,
    pub probe_timeout: Duration,
    /// Agent ids (e.g. `demo-agent-0`) whose FleetAgent must say connected
    /// for the probe to pass; empty = only `/readyz` is probed.
    pub expected_agents: Vec<String>,
}

impl FleetOperatorScore {
    pub fn input(&self) -> OperatorInput {
        OperatorInput {
            stack: self.stack.clone(),
            namespace: self.namespace.clone(),
            owner: self.owner.clone(),
            spec: self.spec.clone(),
        }
    }
}

/// Kinds the operator component may own (orphan cleanup): the common ones
/// plus Deployment, Role and RoleBinding.
pub fn owned_kinds(pdb_v1: bool) -> Vec<ApiResource> {
    let mut kinds = apply::owned_kinds(pdb_v1);
    kinds.push(ApiResource::erase::<Deployment>(&()));
    kinds.push(ApiResource::erase::<Role>(&()));
    kinds.push(ApiResource::erase::<RoleBinding>(&()));
    kinds
}

impl<T: KubernetesTopology> Score<T> for FleetOperatorScore {
    type Interpret = OperatorInterpret;

    fn component(&self) -> &'static str {
        COMPONENT
    }

    fn create_interpret(&self) -> OperatorInterpret {
        OperatorInterpret {
            score: self.clone(),
        }
    }
}

pub struct OperatorInterpret {
    score: FleetOperatorScore,
}

impl<T: KubernetesTopology> Interpret<T> for OperatorInterpret {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = &self.score;
        let client = topology.client();
        let ordered = build(&s.input()).ordered()?;
        let (report, deleted) = apply::apply_and_prune(
            client,
            &s.namespace,
            &s.stack,
            COMPONENT,
            &ordered,
            &owned_kinds(topology.serves_pdb_v1()),
        )
        .await?;
        let service = OperatorNames::new(&s.stack).service;
        let (probe, units) = match topology.service_host(&s.namespace, &service).await {
            Ok(host) => {
                smoke_probe(
                    client,
                    &s.namespace,
                    &host,
                    objects::HTTP_PORT,
                    &s.expected_agents,
                    s.probe_timeout,
                )
                .await?
            }
            Err(e) => (
                ProbeOutcome::Failed {
                    reason: "ServiceUnreachable",
                    message: format!("operator: {e}"),
                    latency: Duration::ZERO,
                },
                (!s.expected_agents.is_empty())
                    .then(|| check_agents(&s.expected_agents, &[]).units()),
            ),
        };
        Ok(Outcome {
            component: COMPONENT,
            written: report.written,
            unchanged: report.unchanged,
            deleted,
            probe,
            units,
        })
    }
}
