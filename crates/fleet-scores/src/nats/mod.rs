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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fleet_crds::{NatsAuthMode, NatsSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::apply::{self, ApplyReport};
use crate::labels;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::secret::{self, Sensitive};
use crate::topology::KubernetesTopology;
use crate::write_once::{self, SecretWrite};
pub use objects::{COMPONENT, NatsInput, NatsNames, NatsObjects, build};
pub use probe::{ProbeTarget, smoke_probe};

/// Keys of the write-once credentials Secret.
pub const SYS_PASSWORD_KEY: &str = "sys-password";
pub const FLEET_PASSWORD_KEY: &str = "fleet-password";
/// Password of cluster routes (used with replicas > 1; always generated so
/// a later scale-up needs no new key).
pub const ROUTE_PASSWORD_KEY: &str = "route-password";
/// Added with `auth.mode: Callout` (and kept if the mode changes back, so
/// the issuer key never changes under a running callout): the password of
/// the callout's NATS user, the issuer account seed (`SA...`) and the curve
/// seed (`SX...`). FleetCalloutScore mounts these three keys.
pub const AUTH_PASSWORD_KEY: &str = "auth-password";
pub const CALLOUT_ISSUER_SEED_KEY: &str = "callout-issuer-seed";
pub const CALLOUT_XKEY_SEED_KEY: &str = "callout-xkey-seed";

/// The write-once generator: nkeys seeds for the seed keys, passwords
/// otherwise.
fn generate_value(key: &str) -> Sensitive {
    let seed = match key {
        CALLOUT_ISSUER_SEED_KEY => nkeys::KeyPair::new_account().seed(),
        CALLOUT_XKEY_SEED_KEY => nkeys::XKey::new().seed(),
        _ => return secret::generate_password(),
    };
    // Seeding a fresh key cannot fail (its type and bytes are ours); fall
    // back to a password, which `callout_auth` then reports as invalid.
    seed.map(Sensitive::new)
        .unwrap_or_else(|_| secret::generate_password())
}

/// The callout's public keys from the seeds in the credentials Secret.
pub fn callout_auth(
    values: &BTreeMap<String, Sensitive>,
    namespace: &str,
    secret_name: &str,
) -> Result<config::CalloutAuth, InterpretError> {
    let invalid = |key: &str, expected| InterpretError::SecretInvalid {
        namespace: namespace.into(),
        name: secret_name.into(),
        key: key.into(),
        expected,
    };
    let issuer = values
        .get(CALLOUT_ISSUER_SEED_KEY)
        .and_then(|s| nkeys::KeyPair::from_seed(s.expose().trim()).ok())
        .filter(|k| k.key_pair_type() == nkeys::KeyPairType::Account)
        .ok_or_else(|| invalid(CALLOUT_ISSUER_SEED_KEY, "account seed (SA...)"))?;
    let xkey = values
        .get(CALLOUT_XKEY_SEED_KEY)
        .and_then(|s| nkeys::XKey::from_seed(s.expose().trim()).ok())
        .ok_or_else(|| invalid(CALLOUT_XKEY_SEED_KEY, "curve seed (SX...)"))?;
    Ok(config::CalloutAuth {
        issuer: issuer.public_key(),
        xkey: Some(xkey.public_key()),
    })
}

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
        let mut input = NatsInput {
            stack: s.stack.clone(),
            namespace: s.namespace.clone(),
            owner: s.owner.clone(),
            spec: s.spec.clone(),
            pdb_v1: topology.serves_pdb_v1(),
            callout: None,
        };
        let ordered = build(&input).ordered()?;
        let (service_account, _) = ordered.split_at(1);

        let mut report = ApplyReport::default();
        apply::apply_in_order(client, &s.namespace, service_account, &mut report).await?;
        // Persisted before use: the StatefulSet referencing it comes later.
        let callout_mode = s.spec.auth.mode == NatsAuthMode::Callout;
        let mut keys = vec![SYS_PASSWORD_KEY, FLEET_PASSWORD_KEY, ROUTE_PASSWORD_KEY];
        if callout_mode {
            keys.extend([
                AUTH_PASSWORD_KEY,
                CALLOUT_ISSUER_SEED_KEY,
                CALLOUT_XKEY_SEED_KEY,
            ]);
        }
        let (creds, secret_write) = write_once::ensure_secret_with(
            client,
            &s.namespace,
            &names.credentials_secret,
            &labels::component_labels(&s.stack, COMPONENT),
            &s.owner,
            &keys,
            &generate_value,
        )
        .await?;
        if secret_write != SecretWrite::Unchanged {
            report
                .written
                .push(format!("Secret/{}", names.credentials_secret));
        }
        // The config names the issuer's public key, known only now.
        let ordered = if callout_mode {
            input.callout = Some(callout_auth(
                &creds,
                &s.namespace,
                &names.credentials_secret,
            )?);
            build(&input).ordered()?
        } else {
            ordered
        };
        apply::apply_in_order(client, &s.namespace, &ordered[1..], &mut report).await?;

        // The desired set only shrinks when the spec changes, and then an
        // existing object is updated too; idle reconciles and first
        // creations skip the LIST calls.
        let deleted = if !report.updated_existing {
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
