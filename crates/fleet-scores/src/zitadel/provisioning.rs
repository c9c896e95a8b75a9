//! The provisioning run of a managed Zitadel (docs/adr/0037): with the
//! provisioner's PAT, ensure the project and one machine user with a client
//! secret per identity (the agents and the probe user), storing each
//! generated secret in its Kubernetes Secret right after Zitadel showed it.
//!
//! Crash safety comes from the order of effects, not from bookkeeping:
//! * a client secret is generated only for an identity whose key is missing
//!   from its Secret, and stored (one Secret write) before the next identity
//!   is touched; Zitadel shows a secret once, so an interruption between
//!   the two loses it, and the next run generates another (which replaces
//!   the lost one in Zitadel);
//! * everything else is found-or-created idempotently in
//!   [`ZitadelApi`](super::provision::ZitadelApi) (409 adopts, NotChanged
//!   is success).
//!
//! So a run may be dropped at any await (reconcile timeout, controller
//! restart, a failed write) and the next run converges;
//! `tests/zitadel_provision.rs` checks this for an interruption after every
//! API call and every Secret write. Storage is behind [`SecretStore`] so
//! those tests drive the same code with an in-memory store;
//! [`KubeSecrets`] is the Kubernetes one.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::provision::{self, ProvisionError, Retry, ZitadelApi};
use super::{
    FleetZitadelScore, PAT_KEY, probe_secret, probe_user, project_facts, provisioner_secret,
};
use crate::apply::DesiredObject;
use crate::labels;
use crate::resources::Resources;
use crate::score::{InterpretError, ProbeOutcome};
use crate::secret::{Sensitive, key_names, read_key};
use crate::write_once::{self, SecretWrite};

/// Upper bound of one provisioning run. Each request is bounded already
/// ([`provision::PROVISION_REQUEST_TIMEOUT`], [`Retry::PROVISIONING`]);
/// this bounds the sum, so a Zitadel that answers slowly everywhere cannot
/// hold a reconcile for longer. Whatever was done stays done: the next run
/// continues.
pub const PROVISION_DEADLINE: Duration = Duration::from_secs(120);

/// Where the documentation of the lost- or refused-PAT recovery lives;
/// named in the conditions that need it.
pub const RECOVERY_DOC: &str =
    "docs/adr/0037-managed-zitadel-provisioning.md#recovering-a-lost-or-refused-provisioner-pat";

/// Where generated client secrets are kept: one key per identity in a
/// named Secret. Values are never replaced: [`SecretStore::add`] of a key
/// that exists changes nothing and says so.
pub trait SecretStore {
    /// The keys of Secret `secret`, `None` if it does not exist. A Secret
    /// that cannot be read is an error, never "no keys": generating a
    /// secret replaces the previous one in Zitadel.
    fn stored_keys(
        &self,
        secret: &str,
    ) -> impl Future<Output = Result<Option<BTreeSet<String>>, InterpretError>> + Send;

    /// One value, `None` if the Secret or the key is missing.
    fn read(
        &self,
        secret: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Sensitive>, InterpretError>> + Send;

    /// Adds `key = value` to Secret `secret` (creating it): one write.
    /// `Ok(false)` when the key existed already (nothing written).
    fn add(
        &self,
        secret: &str,
        key: &str,
        value: &Sensitive,
    ) -> impl Future<Output = Result<bool, InterpretError>> + Send;
}

/// [`SecretStore`] on Kubernetes Secrets of one namespace, written
/// write-once ([`write_once::ensure_secret_with`]) with the component's
/// labels and the FleetStack as owner.
pub struct KubeSecrets<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    pub labels: BTreeMap<String, String>,
    pub owner: &'a OwnerReference,
}

impl SecretStore for KubeSecrets<'_> {
    async fn stored_keys(&self, secret: &str) -> Result<Option<BTreeSet<String>>, InterpretError> {
        key_names(self.client, self.namespace, secret).await
    }

    async fn read(&self, secret: &str, key: &str) -> Result<Option<Sensitive>, InterpretError> {
        read_key(self.client, self.namespace, secret, key).await
    }

    async fn add(
        &self,
        secret: &str,
        key: &str,
        value: &Sensitive,
    ) -> Result<bool, InterpretError> {
        let (_, written) = write_once::ensure_secret_with(
            self.client,
            self.namespace,
            secret,
            &self.labels,
            self.owner,
            &[key],
            &|_| value.clone(),
        )
        .await?;
        Ok(written != SecretWrite::Unchanged)
    }
}

/// What one run provisions (pure data, from the Score).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionPlan {
    /// Project name (`<stack>-fleet`).
    pub project: String,
    /// Secret holding the provisioner's PAT (key [`PAT_KEY`]).
    pub provisioner_secret: String,
    /// Per Secret, the identities (machine user names = keys) it holds,
    /// in provisioning order. The probe identity is one of them.
    pub identities: Vec<(String, Vec<String>)>,
    /// The probe identity: (Secret, user name).
    pub probe: (String, String),
}

impl ProvisionPlan {
    pub fn for_score(s: &FleetZitadelScore) -> Self {
        let probe = (probe_secret(&s.stack.name), probe_user(&s.stack.name));
        ProvisionPlan {
            project: format!("{}-fleet", s.stack.name),
            provisioner_secret: provisioner_secret(&s.stack.name),
            identities: vec![
                (s.agent_secret.clone(), s.expected_agents.clone()),
                (probe.0.clone(), vec![probe.1.clone()]),
            ],
            probe,
        }
    }
}

/// How the management API is reached.
#[derive(Debug, Clone)]
pub struct ApiTarget {
    /// Base URL (the Service, `http://<host>:8080`).
    pub base: String,
    /// `Host` header: Zitadel's ExternalDomain.
    pub host: String,
    pub request_timeout: Duration,
    pub retry: Retry,
}

impl ApiTarget {
    /// The production timeout and retry policy.
    pub fn new(base: &str, host: &str) -> Self {
        ApiTarget {
            base: base.to_string(),
            host: host.to_string(),
            request_timeout: provision::PROVISION_REQUEST_TIMEOUT,
            retry: Retry::PROVISIONING,
        }
    }
}

/// The result of a complete run.
#[derive(Debug)]
pub struct Provisioned {
    pub project_id: String,
    /// The probe identity's client id and secret.
    pub probe: (String, Sensitive),
    /// Secrets written during this run (a key added), for the report.
    pub written: BTreeSet<String>,
}

fn failed(reason: &'static str, message: String) -> ProbeOutcome {
    ProbeOutcome::Failed {
        reason,
        message,
        latency: Duration::ZERO,
    }
}

/// The failed outcome for an API error; a refused PAT names the recovery.
fn api_failure(e: &ProvisionError) -> ProbeOutcome {
    let reason = e.reason();
    let mut message = format!("identity: {e}");
    if reason == "ProvisionerRefused" {
        message.push_str(&format!(
            "; the provisioner's PAT is expired, revoked or not Zitadel's: store a new one \
             (see {RECOVERY_DOC})"
        ));
    }
    failed(reason, message)
}

/// One provisioning run. `Err` only for Kubernetes errors (the reconcile
/// fails and retries); `Ok(Err(outcome))` when Zitadel is not provisioned
/// yet, saying why. Safe to drop at any point and to run again.
pub async fn provision<S: SecretStore>(
    target: &ApiTarget,
    store: &S,
    plan: &ProvisionPlan,
) -> Result<Result<Provisioned, ProbeOutcome>, InterpretError> {
    let Some(pat) = store.read(&plan.provisioner_secret, PAT_KEY).await? else {
        return Ok(Err(failed(
            "ProvisionerMissing",
            format!(
                "identity: Secret {} has no key {PAT_KEY}; the setup Job writes it on Zitadel's \
                 first setup only. Create a PAT for the fleet-provisioner service user and store \
                 it there (see {RECOVERY_DOC}); the database is kept",
                plan.provisioner_secret
            ),
        )));
    };
    let api = match ZitadelApi::with_policy(
        &target.base,
        &target.host,
        pat,
        target.request_timeout,
        target.retry,
    ) {
        Ok(api) => api,
        Err(e) => return Ok(Err(api_failure(&e))),
    };
    let project_id = match api.ensure_project(&plan.project).await {
        Ok(id) => id,
        Err(e) => return Ok(Err(api_failure(&e))),
    };
    let mut written = BTreeSet::new();
    for (secret, ids) in &plan.identities {
        let stored = store.stored_keys(secret).await?.unwrap_or_default();
        for id in ids.iter().filter(|id| !stored.contains(*id)) {
            let fresh = async {
                let user = api.ensure_machine_user(id).await?;
                let (client_id, value) = api.new_client_secret(&user).await?;
                if &client_id != id {
                    return Err(ProvisionError::Unexpected {
                        op: "generate client secret",
                        what: format!("client id {client_id} differs from the user name {id}"),
                    });
                }
                Ok(value)
            }
            .await;
            let value = match fresh {
                Ok(v) => v,
                Err(e) => return Ok(Err(api_failure(&e))),
            };
            // Stored before anything else happens: Zitadel never shows it
            // again.
            if !store.add(secret, id, &value).await? {
                // Someone stored a value since we looked; it is not the
                // one Zitadel now holds.
                return Ok(Err(failed(
                    "CredentialsRaced",
                    format!(
                        "identity: Secret {secret} got key {id} from another writer while a new \
                         client secret was generated; delete the key to provision it again"
                    ),
                )));
            }
            written.insert(secret.clone());
        }
    }
    let (probe_secret, probe_id) = &plan.probe;
    Ok(match store.read(probe_secret, probe_id).await? {
        Some(value) => Ok(Provisioned {
            project_id,
            probe: (probe_id.clone(), value),
            written,
        }),
        None => Err(failed(
            "CredentialsMissing",
            format!("identity: Secret {probe_secret} has no {probe_id}"),
        )),
    })
}

/// The managed Score's provisioning step: [`provision`] on Kubernetes
/// Secrets, bounded by [`PROVISION_DEADLINE`], then the project facts
/// ConfigMap. Returns the probe identity and the audience scope, or the
/// failed outcome that says why provisioning could not finish.
pub async fn provision_managed(
    s: &FleetZitadelScore,
    client: &kube::Client,
    reach_at: &str,
    resources: &mut Resources<'_>,
) -> Result<Result<((String, Sensitive), String), ProbeOutcome>, InterpretError> {
    let Some(managed) = &s.spec.managed else {
        return Ok(Err(failed("NoIdentity", "identity: not managed".into())));
    };
    let store = KubeSecrets {
        client,
        namespace: &s.stack.namespace,
        labels: labels::component_labels(&s.stack.name, super::COMPONENT),
        owner: &s.stack.owner,
    };
    let target = ApiTarget::new(reach_at, &managed.external_domain);
    let plan = ProvisionPlan::for_score(s);
    let run = tokio::time::timeout(PROVISION_DEADLINE, provision(&target, &store, &plan)).await;
    let done = match run {
        Ok(result) => result?,
        Err(_) => {
            return Ok(Err(failed(
                "ProvisioningTimeout",
                format!(
                    "identity: provisioning did not finish within {}s; the next reconcile \
                     continues where it stopped",
                    PROVISION_DEADLINE.as_secs()
                ),
            )));
        }
    };
    let provisioned = match done {
        Ok(p) => p,
        Err(outcome) => return Ok(Err(outcome)),
    };
    for name in &provisioned.written {
        resources.wrote("Secret", name);
    }
    let scope = provision::audience_scope(&provisioned.project_id);
    let cm = project_facts(
        &s.stack.name,
        &s.stack.namespace,
        &s.stack.owner,
        &provisioned.project_id,
        &scope,
    );
    resources.apply(&[DesiredObject::new(&cm)?]).await?;
    Ok(Ok((provisioned.probe, scope)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_puts_agents_in_their_secret_and_the_probe_user_last() {
        let score = FleetZitadelScore {
            stack: crate::StackRef {
                name: "demo".into(),
                namespace: "fleet".into(),
                owner: OwnerReference::default(),
                probe_timeout: Duration::from_secs(5),
                nats_tls: true,
            },
            spec: Default::default(),
            probe_scope: None,
            expected_agents: vec!["demo-agent-0".into(), "demo-agent-1".into()],
            agent_secret: "demo-agent-oidc".into(),
        };
        let plan = ProvisionPlan::for_score(&score);
        assert_eq!(plan.project, "demo-fleet");
        assert_eq!(plan.provisioner_secret, "demo-zitadel-provisioner");
        assert_eq!(
            plan.identities,
            vec![
                (
                    "demo-agent-oidc".to_string(),
                    vec!["demo-agent-0".to_string(), "demo-agent-1".to_string()]
                ),
                (
                    "demo-zitadel-probe".to_string(),
                    vec!["demo-identity-probe".to_string()]
                ),
            ]
        );
        assert_eq!(
            plan.probe,
            ("demo-zitadel-probe".into(), "demo-identity-probe".into())
        );
    }

    #[test]
    fn a_refused_pat_names_the_recovery_and_other_failures_do_not() {
        let refused = ProvisionError::Status {
            op: "search projects",
            status: 401,
            detail: "Errors.Token.Invalid (AUTH-7fs1e)".into(),
            error_id: None,
        };
        match api_failure(&refused) {
            ProbeOutcome::Failed {
                reason, message, ..
            } => {
                assert_eq!(reason, "ProvisionerRefused");
                assert!(message.contains(RECOVERY_DOC), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let other = ProvisionError::Status {
            op: "create project",
            status: 400,
            detail: String::new(),
            error_id: None,
        };
        match api_failure(&other) {
            ProbeOutcome::Failed {
                reason, message, ..
            } => {
                assert_eq!(reason, "ProvisioningFailed");
                assert!(!message.contains(RECOVERY_DOC), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
