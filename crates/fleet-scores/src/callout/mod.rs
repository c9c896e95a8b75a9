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
pub mod devices;
pub mod objects;
pub mod probe;

use fleet_crds::CalloutSpec;

use crate::component::Component;
use crate::resources::Resources;
use crate::score::{Interpret, InterpretError, Outcome, Score};
use crate::stack_ref::StackRef;
use crate::topology::KubernetesTopology;
pub use objects::{COMPONENT, CalloutInput, CalloutNames, CalloutObjects, CalloutOidc, build};
pub use probe::smoke_probe;

/// The auth callout of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetCalloutScore {
    pub stack: StackRef,
    pub spec: CalloutSpec,
    pub oidc: CalloutOidc,
}

impl FleetCalloutScore {
    pub fn input(&self) -> CalloutInput {
        CalloutInput {
            stack: self.stack.name.clone(),
            namespace: self.stack.namespace.clone(),
            owner: self.stack.owner.clone(),
            spec: self.spec.clone(),
            oidc: self.oidc.clone(),
            nats_tls: self.stack.nats_tls,
        }
    }
}

impl<T: KubernetesTopology> Score<T> for FleetCalloutScore {
    fn component(&self) -> Component {
        Component::Callout
    }

    fn create_interpret(&self) -> Box<dyn Interpret<T> + '_> {
        Box::new(CalloutInterpret { score: self })
    }
}

struct CalloutInterpret<'a> {
    score: &'a FleetCalloutScore,
}

#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for CalloutInterpret<'_> {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = self.score;
        let mut resources = Resources::new(topology, &s.stack, Component::Callout);
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
        let service = CalloutNames::new(&s.stack.name).service;
        let probe = probe::READYZ
            .probe_service(
                topology,
                &s.stack.namespace,
                &service,
                objects::HTTP_PORT,
                s.stack.probe_timeout,
            )
            .await;
        Ok(applied.outcome(probe, None))
    }
}
