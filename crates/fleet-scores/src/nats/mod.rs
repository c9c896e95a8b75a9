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

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_crds::{NatsAuthMode, NatsSpec};

use crate::component::Component;
use crate::resources::Resources;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::secret::{self, Sensitive};
use crate::stack_ref::StackRef;
use crate::topology::KubernetesTopology;
use crate::write_once;
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

/// The hash of the values of `keys` in the stack's NATS credentials
/// Secret, for the pod template of a workload that consumes them: values
/// regenerated after the Secret was deleted roll it (docs/adr/0016).
/// `None` while the Secret does not exist.
pub async fn consumed_credentials_hash(
    client: &kube::Client,
    stack: &StackRef,
    keys: &[&str],
) -> Result<Option<String>, InterpretError> {
    let secret = NatsNames::new(&stack.name).credentials_secret;
    Ok(secret::read_keys(client, &stack.namespace, &secret, keys)
        .await?
        .map(|values| write_once::credentials_hash(&values, keys)))
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
    pub stack: StackRef,
    pub spec: NatsSpec,
}

impl FleetNatsScore {
    fn input(&self, pdb_v1: bool) -> NatsInput {
        NatsInput {
            stack: self.stack.name.clone(),
            namespace: self.stack.namespace.clone(),
            owner: self.stack.owner.clone(),
            spec: self.spec.clone(),
            pdb_v1,
            callout: None,
        }
    }

    fn callout_mode(&self) -> bool {
        self.spec.auth.mode == NatsAuthMode::Callout
    }

    /// The keys of the write-once credentials Secret.
    fn credential_keys(&self) -> Vec<&'static str> {
        let mut keys = vec![SYS_PASSWORD_KEY, FLEET_PASSWORD_KEY, ROUTE_PASSWORD_KEY];
        if self.callout_mode() {
            keys.extend([
                AUTH_PASSWORD_KEY,
                CALLOUT_ISSUER_SEED_KEY,
                CALLOUT_XKEY_SEED_KEY,
            ]);
        }
        keys
    }
}

impl<T: KubernetesTopology> Score<T> for FleetNatsScore {
    fn component(&self) -> Component {
        Component::Nats
    }

    fn create_interpret(&self) -> Box<dyn Interpret<T> + '_> {
        Box::new(NatsInterpret { score: self })
    }
}

struct NatsInterpret<'a> {
    score: &'a FleetNatsScore,
}

#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for NatsInterpret<'_> {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = self.score;
        let names = NatsNames::new(&s.stack.name);
        let mut input = s.input(topology.serves_pdb_v1());
        let ordered = build(&input).ordered()?;
        let mut resources = Resources::new(topology, &s.stack, Component::Nats);
        // The ServiceAccount first; the credentials are persisted before
        // use: the StatefulSet referencing them comes later.
        resources.apply(&ordered[..1]).await?;
        let creds = resources
            .write_once(
                &names.credentials_secret,
                &s.credential_keys(),
                &generate_value,
            )
            .await?;
        // The config names the issuer's public key, known only now; the
        // pods carry a hash of the credentials they read, so values that
        // were regenerated (the Secret was deleted) roll the servers onto
        // them instead of leaving them on the old ones (docs/adr/0016).
        if s.callout_mode() {
            input.callout = Some(callout_auth(
                &creds,
                &s.stack.namespace,
                &names.credentials_secret,
            )?);
        }
        let hash = write_once::credentials_hash(
            &creds,
            &objects::credential_keys(&s.spec, s.callout_mode()),
        );
        let ordered = build(&input).with_credentials_hash(Some(&hash)).ordered()?;
        resources.apply(&ordered[1..]).await?;
        let applied = resources.finish().await?;

        let probe = match (
            topology
                .service_host(&s.stack.namespace, &names.client_service)
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
                smoke_probe(&target, s.stack.probe_timeout).await
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
        Ok(applied.outcome(probe, None))
    }
}
