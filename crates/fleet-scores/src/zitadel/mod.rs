//! `FleetZitadelScore`: the identity provider of a FleetStack.
//!
//! - **External** (`spec.identity.external`): nothing is deployed; the
//!   smoke probe checks that the issuer's discovery answers and that the
//!   client in `clientCredentials` (keys `clientId`, `clientSecret`)
//!   obtains a token with `client_credentials`.
//! - **Managed** (`spec.identity.managed`): a Zitadel with a bundled
//!   PostgreSQL or an external one. Pipeline: write-once masterkey (32 ASCII
//!   characters; it can never change after init) and database passwords ->
//!   database -> `init` Job -> `setup` Job -> Deployment, each stage applied
//!   only once the previous one is complete (operator-owned Jobs with fixed
//!   names instead of Helm hooks) -> probe: `/debug/ready` and discovery
//!   with the `Host` header. Managed mode cannot run in this environment (no
//!   Zitadel image); its objects are covered by unit tests.
//!
//!   Once Zitadel answers, [`provision`] uses the provisioner's PAT (written
//!   by the setup Job) to ensure a project and one machine user per agent
//!   (client secrets into the per-agent Secret) plus a probe user; the
//!   project id and the audience scope go into the ConfigMap
//!   `<stack>-zitadel-project`, which the callout and agent pods read
//!   (docs/adr/0037). The probe then obtains a token as the probe user.

pub mod objects;
pub mod probe;
pub mod provision;
pub mod provisioning;

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_crds::{DatabaseMode, IdentitySpec};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::component::Component;
use crate::labels;
use crate::resources::Resources;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::secret::{Sensitive, get_opt, key_names, read_key};
use crate::secret_loss::{self, Decision, Guarded, Refusal, ZitadelHistory};
use crate::stack_ref::StackRef;
use crate::topology::KubernetesTopology;
pub use objects::{COMPONENT, ZitadelInput, ZitadelNames, ZitadelObjects, build};
pub use probe::{IdentityProbeTarget, smoke_probe};

/// Keys of the external mode's `clientCredentials` Secret.
pub const CLIENT_ID_KEY: &str = "clientId";
pub const CLIENT_SECRET_KEY: &str = "clientSecret";

/// The identity component of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetZitadelScore {
    pub stack: StackRef,
    /// Exactly one of `managed` / `external` (validated before).
    pub spec: IdentitySpec,
    /// Scopes the probe identity requests (Zitadel:
    /// `openid urn:zitadel:iam:org:project:id:<id>:aud`).
    pub probe_scope: Option<String>,
    /// Managed mode: the agent ids to provision machine users for, and the
    /// Secret their client secrets go to (one key per agent id).
    pub expected_agents: Vec<String>,
    pub agent_secret: String,
}

/// The ConfigMap a managed Zitadel's project facts are published in.
pub fn project_config_map(stack: &str) -> String {
    format!("{stack}-zitadel-project")
}
/// Keys of [`project_config_map`].
pub const PROJECT_ID_KEY: &str = "projectId";
pub const SCOPE_KEY: &str = "scope";
/// Secret holding the probe machine user's client secret.
fn probe_secret(stack: &str) -> String {
    format!("{stack}-zitadel-probe")
}
fn probe_user(stack: &str) -> String {
    format!("{stack}-identity-probe")
}
/// Secret the setup Job writes the provisioner's PAT to.
pub fn provisioner_secret(stack: &str) -> String {
    ZitadelNames::new(stack).provisioner_secret
}
pub const PAT_KEY: &str = objects::PROVISIONER_PAT_KEY;

impl FleetZitadelScore {
    /// The issuer URL agents and the callout use.
    pub fn issuer(&self) -> Option<String> {
        issuer_of(&self.spec)
    }
}

/// The issuer URL of an identity spec: the external issuer without a
/// trailing `/`, or a managed Zitadel's ExternalDomain on its HTTP port.
pub fn issuer_of(spec: &IdentitySpec) -> Option<String> {
    match (&spec.external, &spec.managed) {
        (Some(e), _) => Some(e.issuer.trim_end_matches('/').to_string()),
        (None, Some(m)) => Some(format!(
            "http://{}:{}",
            m.external_domain,
            objects::HTTP_PORT
        )),
        (None, None) => None,
    }
}

impl<T: KubernetesTopology> Score<T> for FleetZitadelScore {
    fn component(&self) -> Component {
        Component::Identity
    }

    fn create_interpret(&self) -> Box<dyn Interpret<T> + '_> {
        Box::new(ZitadelInterpret { score: self })
    }
}

struct ZitadelInterpret<'a> {
    score: &'a FleetZitadelScore,
}

fn failed(reason: &'static str, message: String) -> ProbeOutcome {
    ProbeOutcome::Failed {
        reason,
        message,
        latency: Duration::ZERO,
    }
}

#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for ZitadelInterpret<'_> {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = self.score;
        let client = topology.client();
        let ns = &s.stack.namespace;
        let mut resources = Resources::new(topology, &s.stack, Component::Identity);

        let probe = if let Some(external) = &s.spec.external {
            let secret = &external.client_credentials.name;
            let id = read_key(client, ns, secret, CLIENT_ID_KEY).await?;
            let password = read_key(client, ns, secret, CLIENT_SECRET_KEY).await?;
            match (id, password) {
                (Some(id), Some(password)) => {
                    let target = IdentityProbeTarget {
                        issuer: external.issuer.clone(),
                        reach_at: None,
                        zitadel_ready: false,
                        client: Some((id.expose().to_string(), password)),
                        scope: s.probe_scope.clone(),
                    };
                    smoke_probe(&target, s.stack.probe_timeout).await
                }
                _ => failed(
                    "CredentialsMissing",
                    format!(
                        "identity: Secret {secret} needs keys {CLIENT_ID_KEY} and {CLIENT_SECRET_KEY}"
                    ),
                ),
            }
        } else if let Some(managed) = &s.spec.managed {
            let input = ZitadelInput {
                stack: s.stack.name.clone(),
                namespace: ns.clone(),
                owner: s.stack.owner.clone(),
                spec: managed.clone(),
            };
            let names = ZitadelNames::new(&s.stack.name);
            let bundled = managed.database.mode == DatabaseMode::Bundled;
            // A lost masterkey or database password is not generated again
            // once something used the old one (docs/adr/0016): nothing is
            // written, the stack is Stalled naming the Secret.
            if let Some(refusal) = lost_secret(client, ns, &names, bundled).await? {
                return Ok(Outcome::probe_only(
                    failed(secret_loss::Refusal::REASON, format!("identity: {refusal}")),
                    None,
                ));
            }
            // Generated passwords are 32 alphanumerics: exactly the 32 ASCII
            // characters a Zitadel masterkey must be.
            resources
                .write_once_passwords(&names.masterkey_secret, &[objects::MASTERKEY_KEY])
                .await?;
            if bundled {
                resources
                    .write_once_passwords(
                        &names.db_secret,
                        &[
                            objects::DB_ADMIN_PASSWORD_KEY,
                            objects::DB_USER_PASSWORD_KEY,
                        ],
                    )
                    .await?;
            }
            let stages = build(&input).stages()?;
            // Every stage is desired even while an earlier one is not
            // complete: a database restart must not prune the Deployment.
            for stage in [&stages.database, &stages.init, &stages.setup, &stages.run] {
                resources.desire(stage);
            }
            // Written by the setup Job and by provisioning.
            for name in [
                provisioner_secret(&s.stack.name),
                probe_secret(&s.stack.name),
                s.agent_secret.clone(),
            ] {
                resources.keep("Secret", &name);
            }
            resources.keep("ConfigMap", &project_config_map(&s.stack.name));
            self.staged(topology, &names, &stages, &mut resources)
                .await?
        } else {
            failed(
                "NoIdentity",
                "identity: neither managed nor external is set".into(),
            )
        };
        Ok(resources.finish().await?.outcome(probe, None))
    }
}

/// The refusal for the first guarded Secret (masterkey, then the bundled
/// database's passwords) that lost keys after something used them, if any
/// (`secret_loss::decide`). Reads the Secrets' key names (never values);
/// the history is only gathered when a key is missing, so a healthy stack
/// pays two GETs per reconcile.
async fn lost_secret(
    client: &kube::Client,
    ns: &str,
    names: &ZitadelNames,
    bundled: bool,
) -> Result<Option<Refusal>, InterpretError> {
    let guarded: &[Guarded] = if bundled {
        &[Guarded::ZitadelMasterkey, Guarded::ZitadelDatabasePasswords]
    } else {
        &[Guarded::ZitadelMasterkey]
    };
    let mut history: Option<ZitadelHistory> = None;
    for &g in guarded {
        let stored = key_names(client, ns, g.secret_name(names)).await?;
        let missing = g
            .keys()
            .iter()
            .any(|k| !stored.as_ref().is_some_and(|s| s.contains(*k)));
        if !missing {
            continue;
        }
        let h = match history.take() {
            Some(h) => h,
            None => history_of(client, ns, names).await?,
        };
        let decision = secret_loss::decide(g, names, stored.as_ref(), &h);
        history = Some(h);
        match decision {
            Decision::Generate => {}
            Decision::Refuse(refusal) => return Ok(Some(refusal)),
        }
    }
    Ok(None)
}

/// What the cluster shows about a managed Zitadel's past: one GET per
/// object that proves old values were used.
async fn history_of(
    client: &kube::Client,
    ns: &str,
    names: &ZitadelNames,
) -> Result<ZitadelHistory, InterpretError> {
    let claim = ZitadelHistory::volume_claim_name(names);
    let found = |kind: &str, name: &str, exists: bool| exists.then(|| format!("{kind} {name}"));
    let provisioner = get_opt::<Secret>(client, ns, &names.provisioner_secret, "Secret").await?;
    let init = get_opt::<Job>(client, ns, &names.init_job, "Job").await?;
    let setup = get_opt::<Job>(client, ns, &names.setup_job, "Job").await?;
    let sts = get_opt::<StatefulSet>(client, ns, &names.db_statefulset, "StatefulSet").await?;
    let pvc = get_opt::<PersistentVolumeClaim>(client, ns, &claim, "PersistentVolumeClaim").await?;
    Ok(ZitadelHistory {
        database_volume: found("PersistentVolumeClaim", &claim, pvc.is_some()),
        database_statefulset: found("StatefulSet", &names.db_statefulset, sts.is_some()),
        // The setup Job says more (it encrypted the instance); either ran
        // with the current values.
        job: found("Job", &names.setup_job, setup.is_some())
            .or_else(|| found("Job", &names.init_job, init.is_some())),
        provisioner_secret: found("Secret", &names.provisioner_secret, provisioner.is_some()),
    })
}

impl ZitadelInterpret<'_> {
    /// Applies the stages in order, stopping (with a failed probe naming the
    /// stage) at the first one not complete yet.
    async fn staged<T: KubernetesTopology>(
        &self,
        topology: &T,
        names: &ZitadelNames,
        stages: &objects::ZitadelStages,
        resources: &mut Resources<'_>,
    ) -> Result<ProbeOutcome, InterpretError> {
        let s = self.score;
        let client = topology.client();
        let ns = &s.stack.namespace;
        if !stages.database.is_empty() {
            resources.apply(&stages.database).await?;
            let ready = get_opt::<StatefulSet>(client, ns, &names.db_statefulset, "StatefulSet")
                .await?
                .and_then(|sts| sts.status)
                .and_then(|st| st.ready_replicas)
                .unwrap_or(0);
            if ready < 1 {
                return Ok(failed(
                    "DatabaseNotReady",
                    format!(
                        "identity: PostgreSQL {} is not ready yet",
                        names.db_statefulset
                    ),
                ));
            }
        }
        for (stage, job) in [
            (&stages.init, &names.init_job),
            (&stages.setup, &names.setup_job),
        ] {
            resources.apply(stage).await?;
            let status = get_opt::<Job>(client, ns, job, "Job")
                .await?
                .and_then(|j| j.status);
            let succeeded = status.as_ref().and_then(|st| st.succeeded).unwrap_or(0) > 0;
            let failed_job = status
                .iter()
                .flat_map(|st| st.conditions.iter().flatten())
                .any(|c| c.type_ == "Failed" && c.status == "True");
            if failed_job {
                return Ok(failed(
                    "ZitadelJobFailed",
                    format!("identity: Job {job} failed; see its pod logs"),
                ));
            }
            if !succeeded {
                return Ok(failed(
                    "ZitadelJobRunning",
                    format!("identity: waiting for Job {job} to complete"),
                ));
            }
        }
        resources.apply(&stages.run).await?;
        if let Some(rolling_out) = resources.rolling_out() {
            return Ok(rolling_out);
        }
        let Some(issuer) = s.issuer() else {
            return Ok(failed("NoIdentity", "identity: no issuer".into()));
        };
        let host = match topology.service_host(ns, &names.service).await {
            Ok(host) => host,
            Err(e) => return Ok(failed("ServiceUnreachable", format!("identity: {e}"))),
        };
        let reach_at = format!("http://{host}:{}", objects::HTTP_PORT);
        let mut target = IdentityProbeTarget {
            issuer,
            reach_at: Some(reach_at.clone()),
            zitadel_ready: true,
            client: None,
            scope: None,
        };
        // Ready and serving discovery before any API call.
        let ready = smoke_probe(&target, s.stack.probe_timeout).await;
        if !ready.passed() {
            return Ok(ready);
        }
        match self.provision(client, &reach_at, resources).await? {
            Ok((client_creds, scope)) => {
                target.client = Some(client_creds);
                target.scope = Some(s.probe_scope.clone().unwrap_or(scope));
                // A probe user created moments ago may not be known to the
                // token endpoint yet (projection lag): invalid_client is
                // retried within the provisioning timeout.
                Ok(probe::smoke_probe_new_identity(
                    &target,
                    s.stack
                        .probe_timeout
                        .max(provision::PROVISION_REQUEST_TIMEOUT),
                    provision::Retry::PROVISIONING,
                )
                .await)
            }
            Err(outcome) => Ok(outcome),
        }
    }

    /// Project, agent and probe machine users: see
    /// [`provisioning::provision_managed`].
    async fn provision(
        &self,
        client: &kube::Client,
        reach_at: &str,
        resources: &mut Resources<'_>,
    ) -> Result<Result<((String, Sensitive), String), ProbeOutcome>, InterpretError> {
        provisioning::provision_managed(self.score, client, reach_at, resources).await
    }
}

/// The ConfigMap publishing a managed Zitadel's project (pure): not a
/// secret, and pods read it through `configMapKeyRef`.
pub fn project_facts(
    stack: &str,
    namespace: &str,
    owner: &OwnerReference,
    project_id: &str,
    scope: &str,
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(project_config_map(stack)),
            namespace: Some(namespace.into()),
            labels: Some(labels::component_labels(stack, COMPONENT)),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (PROJECT_ID_KEY.to_string(), project_id.to_string()),
            (SCOPE_KEY.to_string(), scope.to_string()),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_facts_publish_id_and_scope_under_the_stack_labels() {
        let owner = OwnerReference {
            api_version: "fleet.nationtech.io/v1alpha1".into(),
            kind: "FleetStack".into(),
            name: "demo".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let cm = project_facts(
            "demo",
            "fleet",
            &owner,
            "222",
            &provision::audience_scope("222"),
        );
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-zitadel-project"));
        let data = cm.data.unwrap();
        assert_eq!(data[PROJECT_ID_KEY], "222");
        assert_eq!(
            data[SCOPE_KEY],
            "openid urn:zitadel:iam:org:project:id:222:aud"
        );
        assert_eq!(cm.metadata.owner_references.unwrap()[0].uid, "u");
        assert_eq!(
            cm.metadata.labels.unwrap()["app.kubernetes.io/component"],
            "identity"
        );
    }
}
