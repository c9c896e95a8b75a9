//! `FleetCalloutScore`: the NATS auth-callout service of a FleetStack
//! (crates/fleet-callout).
//!
//! Pipeline: build desired objects (pure, [`objects::build`]) -> apply
//! ServiceAccount, Service, Deployment (unchanged ones skipped) -> delete
//! callout objects no longer desired -> smoke probe (`/readyz`).
//!
//! Requires FleetNatsScore with `auth.mode: Callout` to have run first: it
//! creates the write-once Secret holding the callout's NATS password and
//! seeds, and renders the matching `auth_callout` config.

pub mod agent_env;
pub mod objects;
pub mod probe;

use std::time::Duration;

use fleet_crds::CalloutSpec;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ApiResource;

use crate::apply;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::topology::KubernetesTopology;
pub use objects::{COMPONENT, CalloutInput, CalloutNames, CalloutObjects, CalloutOidc, build};
pub use probe::smoke_probe;

/// The auth callout of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetCalloutScore {
    pub stack: String,
    pub namespace: String,
    /// ownerReference to the FleetStack (controller=true).
    pub owner: OwnerReference,
    pub spec: CalloutSpec,
    pub oidc: CalloutOidc,
    pub probe_timeout: Duration,
}

impl FleetCalloutScore {
    pub fn input(&self) -> CalloutInput {
        CalloutInput {
            stack: self.stack.clone(),
            namespace: self.namespace.clone(),
            owner: self.owner.clone(),
            spec: self.spec.clone(),
            oidc: self.oidc.clone(),
        }
    }
}

/// Kinds the callout component may own (orphan cleanup): the common ones
/// plus Deployment.
pub fn owned_kinds(pdb_v1: bool) -> Vec<ApiResource> {
    let mut kinds = apply::owned_kinds(pdb_v1);
    kinds.push(ApiResource::erase::<Deployment>(&()));
    kinds
}

impl<T: KubernetesTopology> Score<T> for FleetCalloutScore {
    type Interpret = CalloutInterpret;

    fn component(&self) -> &'static str {
        COMPONENT
    }

    fn create_interpret(&self) -> CalloutInterpret {
        CalloutInterpret {
            score: self.clone(),
        }
    }
}

pub struct CalloutInterpret {
    score: FleetCalloutScore,
}

impl<T: KubernetesTopology> Interpret<T> for CalloutInterpret {
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
        let service = CalloutNames::new(&s.stack).service;
        let probe = match topology.service_host(&s.namespace, &service).await {
            Ok(host) => smoke_probe(&host, objects::HTTP_PORT, s.probe_timeout).await,
            Err(e) => ProbeOutcome::Failed {
                reason: "ServiceUnreachable",
                message: format!("callout: {e}"),
                latency: Duration::ZERO,
            },
        };
        Ok(Outcome {
            component: COMPONENT,
            written: report.written,
            unchanged: report.unchanged,
            deleted,
            probe,
            units: None,
        })
    }
}
