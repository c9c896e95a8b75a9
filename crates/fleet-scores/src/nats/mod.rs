//! `FleetNatsScore`: the NATS server of a FleetStack.
//!
//! Pipeline: build desired objects (pure, [`objects::build`]) -> apply
//! ServiceAccount -> ensure the write-once credentials Secret -> apply
//! ConfigMap, Services, PDB, StatefulSet (unchanged ones skipped) -> delete
//! NATS objects no longer desired (e.g. the PDB when replicas drops to 1)
//! -> smoke probe.

pub mod config;
pub mod objects;
pub mod probe;

use std::collections::BTreeSet;
use std::time::Duration;

use fleet_crds::NatsSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::apply::{self, ApplyReport};
use crate::labels;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::topology::KubernetesTopology;
use crate::write_once::{self, SecretWrite};
pub use objects::{COMPONENT, NatsInput, NatsNames, NatsObjects, build};
pub use probe::{ProbeTarget, smoke_probe};

/// Keys of the write-once credentials Secret.
pub const SYS_PASSWORD_KEY: &str = "sys-password";
pub const FLEET_PASSWORD_KEY: &str = "fleet-password";

/// The NATS component of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetNatsScore {
    pub stack: String,
    pub namespace: String,
    /// ownerReference to the FleetStack (controller=true).
    pub owner: OwnerReference,
    pub spec: NatsSpec,
    /// Deadline of one smoke probe.
    pub probe_timeout: Duration,
}

impl<T: KubernetesTopology> Score<T> for FleetNatsScore {
    type Interpret = NatsInterpret;

    fn component(&self) -> &'static str {
        COMPONENT
    }

    fn create_interpret(&self) -> NatsInterpret {
        NatsInterpret {
            score: self.clone(),
        }
    }
}

pub struct NatsInterpret {
    score: FleetNatsScore,
}

impl<T: KubernetesTopology> Interpret<T> for NatsInterpret {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = &self.score;
        let client = topology.client();
        let names = NatsNames::new(&s.stack);
        let objects = build(&NatsInput {
            stack: s.stack.clone(),
            namespace: s.namespace.clone(),
            owner: s.owner.clone(),
            spec: s.spec.clone(),
            pdb_v1: topology.serves_pdb_v1(),
        });
        let ordered = objects.ordered()?;
        let (service_account, rest) = ordered.split_at(1);

        let mut report = ApplyReport::default();
        apply::apply_in_order(client, &s.namespace, service_account, &mut report).await?;
        // Persisted before use: the StatefulSet referencing it comes later.
        let (creds, secret_write) = write_once::ensure_secret(
            client,
            &s.namespace,
            &names.credentials_secret,
            &labels::component_labels(&s.stack, COMPONENT),
            &s.owner,
            &[SYS_PASSWORD_KEY, FLEET_PASSWORD_KEY],
        )
        .await?;
        if secret_write != SecretWrite::Unchanged {
            report
                .written
                .push(format!("Secret/{}", names.credentials_secret));
        }
        apply::apply_in_order(client, &s.namespace, rest, &mut report).await?;

        // The desired set only changes when the spec does, and then some
        // object is written too; an idle reconcile skips the LIST calls.
        let deleted = if report.written.is_empty() {
            Vec::new()
        } else {
            let mut keep: BTreeSet<String> = ordered.iter().map(|o| o.key()).collect();
            keep.insert(format!("Secret/{}", names.credentials_secret));
            apply::prune(
                client,
                &s.namespace,
                &s.stack,
                COMPONENT,
                &apply::owned_kinds(topology.serves_pdb_v1()),
                &keep,
            )
            .await?
        };

        let probe = match (
            topology
                .service_host(&s.namespace, &names.client_service)
                .await,
            creds.get(SYS_PASSWORD_KEY),
        ) {
            (Ok(host), Some(password)) => {
                let target = ProbeTarget {
                    host,
                    client_port: config::CLIENT_PORT,
                    monitor_port: config::MONITOR_PORT,
                    user: config::SYS_USER.into(),
                    password: password.clone(),
                };
                smoke_probe(&target, s.probe_timeout).await
            }
            (Err(e), _) => ProbeOutcome::Failed {
                reason: "ServiceUnreachable",
                message: format!("nats: {e}"),
                latency: Duration::ZERO,
            },
            (_, None) => ProbeOutcome::Failed {
                reason: "CredentialsMissing",
                message: format!(
                    "nats: Secret {} has no {SYS_PASSWORD_KEY}",
                    names.credentials_secret
                ),
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
