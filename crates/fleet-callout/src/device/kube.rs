//! The device directory in a real stack: watches on the stack's
//! FleetAgents and FleetEnrollmentTokens feed [`Devices`], and
//! [`KubeRegistrar`] writes enrollments and key rotations.
//!
//! RBAC of the callout's ServiceAccount, in the stack's namespace (a Role):
//! - `fleetagents`: get, list, watch, create, patch;
//! - `fleetenrollmenttokens`: get, list, watch;
//! - `fleetenrollmenttokens/status`: patch.
//!
//! Both watches select `fleet.nationtech.io/stack=<stack>`: the callout
//! serves one stack, and tokens of another stack in the same namespace
//! must not enroll devices here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_crds::{
    FleetAgent, FleetAgentSpec, FleetEnrollmentToken, STACK_LABEL, agent_object_name,
};
use fleet_proto::AgentId;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use super::Devices;
use super::directory::{AgentEntry, TokenEntry};
use super::registrar::{Enrollment, Registrar, RegistrarError};

/// Field manager of the callout's writes.
pub const FIELD_MANAGER: &str = "fleet-callout";
/// Label on device FleetAgents, so the operator runtime adopts them
/// (it keeps their status from heartbeats, ADR 0050).
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
const MANAGED_BY: &str = "fleet-operator";

/// The directory entry of a FleetAgent (`None` for an invalid agent id,
/// which no agent can use anyway).
pub fn agent_entry(agent: &FleetAgent) -> Option<(AgentId, AgentEntry)> {
    let id = AgentId::new(agent.spec.agent_id.clone()).ok()?;
    Some((
        id,
        AgentEntry {
            public_key: agent.spec.public_key.clone(),
            approved: agent.spec.approved,
            disabled: agent.spec.disabled,
        },
    ))
}

/// The directory entry of a FleetEnrollmentToken (`None` without a name).
pub fn token_entry(token: &FleetEnrollmentToken) -> Option<TokenEntry> {
    let name = token.metadata.name.clone()?;
    let status = token.status.clone().unwrap_or_default();
    Some(TokenEntry {
        name,
        secret_hash: token.spec.secret_hash.clone(),
        expires_at: token.spec.expires_at.0.as_second(),
        max_uses: token.spec.max_uses,
        uses: status.uses,
        auto_approve: token.spec.auto_approve,
        labels: token.spec.labels.clone(),
        disabled: token.spec.disabled,
        resource_version: token.metadata.resource_version.clone(),
    })
}

/// Keeps `devices`' directory in step with the API until `shutdown`.
/// Watch errors are logged and retried with kube's default backoff; the
/// directory keeps its last view meanwhile.
pub async fn run_watches(
    client: kube::Client,
    namespace: String,
    stack: String,
    devices: Arc<Devices>,
    shutdown: CancellationToken,
) {
    let selector = format!("{STACK_LABEL}={stack}");
    let agents: Api<FleetAgent> = Api::namespaced(client.clone(), &namespace);
    let tokens: Api<FleetEnrollmentToken> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&selector);

    let agent_loop = {
        let devices = devices.clone();
        let mut stream = watcher::watcher(agents, config.clone())
            .default_backoff()
            .boxed();
        async move {
            let mut relist: Vec<(AgentId, AgentEntry)> = Vec::new();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Apply(a)) => {
                        if let Some((id, entry)) = agent_entry(&a) {
                            devices.apply_agent(id, entry);
                        }
                    }
                    Ok(Event::Delete(a)) => {
                        if let Some((id, _)) = agent_entry(&a) {
                            devices.forget_agent(&id);
                        }
                    }
                    Ok(Event::Init) => relist.clear(),
                    Ok(Event::InitApply(a)) => relist.extend(agent_entry(&a)),
                    Ok(Event::InitDone) => {
                        devices.replace_agents(std::mem::take(&mut relist));
                        tracing::info!(
                            agents = devices.directory().agent_count(),
                            "FleetAgents listed"
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "watching FleetAgents failed; retrying"),
                }
            }
        }
    };
    let token_loop = {
        let devices = devices.clone();
        let mut stream = watcher::watcher(tokens, config).default_backoff().boxed();
        async move {
            let mut relist: Vec<TokenEntry> = Vec::new();
            while let Some(event) = stream.next().await {
                let directory = devices.directory();
                match event {
                    Ok(Event::Apply(t)) => {
                        if let Some(entry) = token_entry(&t) {
                            directory.upsert_token(entry);
                        }
                    }
                    Ok(Event::Delete(t)) => {
                        if let Some(name) = t.metadata.name.as_deref() {
                            directory.remove_token(name);
                        }
                    }
                    Ok(Event::Init) => relist.clear(),
                    Ok(Event::InitApply(t)) => relist.extend(token_entry(&t)),
                    Ok(Event::InitDone) => directory.replace_tokens(std::mem::take(&mut relist)),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "watching FleetEnrollmentTokens failed; retrying"
                    ),
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = agent_loop => tracing::warn!("the FleetAgent watch ended"),
        _ = token_loop => tracing::warn!("the FleetEnrollmentToken watch ended"),
    }
}

/// Writes enrollments and rotations to the API.
#[derive(Clone)]
pub struct KubeRegistrar {
    agents: Api<FleetAgent>,
    tokens: Api<FleetEnrollmentToken>,
    stack: String,
    /// Bounds each API call: the whole decision has the callout's budget.
    timeout: Duration,
}

impl KubeRegistrar {
    pub fn new(client: kube::Client, namespace: &str, stack: &str, timeout: Duration) -> Self {
        KubeRegistrar {
            agents: Api::namespaced(client.clone(), namespace),
            tokens: Api::namespaced(client, namespace),
            stack: stack.into(),
            timeout,
        }
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeCallError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => Err(KubeCallError::Conflict),
            Ok(Err(e)) => Err(KubeCallError::Other(format!("{what}: {e}"))),
            Err(_) => Err(KubeCallError::Other(format!(
                "{what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

enum KubeCallError {
    Conflict,
    Other(String),
}

#[async_trait]
impl Registrar for KubeRegistrar {
    async fn enroll(&self, e: &Enrollment) -> Result<(), RegistrarError> {
        // 1. Spend one use. A merge patch carrying the resourceVersion the
        //    decision read fails with 409 if anyone wrote the token since,
        //    so two replicas can never both spend its last use.
        let status = serde_json::json!({
            "metadata": { "resourceVersion": e.token.resource_version },
            "status": {
                "uses": e.token.uses.saturating_add(1),
                "lastUsedTime": Time(jiff_from_unix(e.now)),
            }
        });
        self.bounded(
            "counting a use of the FleetEnrollmentToken",
            self.tokens.patch_status(
                &e.token.name,
                &PatchParams::default(),
                &Patch::Merge(status),
            ),
        )
        .await
        .map_err(|err| match err {
            KubeCallError::Conflict => RegistrarError::TokenConflict(e.token.name.clone()),
            KubeCallError::Other(m) => RegistrarError::Api(m),
        })?;

        // 2. Create the FleetAgent. Create (not apply): an existing object
        //    is a taken id, never something to take over.
        let mut labels: BTreeMap<String, String> = e.labels.clone();
        labels.insert(STACK_LABEL.into(), self.stack.clone());
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        let mut agent = FleetAgent::new(
            &agent_object_name(e.agent.as_str()),
            FleetAgentSpec {
                agent_id: e.agent.to_string(),
                public_key: Some(e.public_key.clone()),
                approved: e.approved,
                disabled: false,
                enrollment_token: Some(e.token.name.clone()),
            },
        );
        agent.metadata.labels = Some(labels);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        self.bounded(
            "creating the FleetAgent",
            self.agents.create(&params, &agent),
        )
        .await
        .map_err(|err| match err {
            KubeCallError::Conflict => RegistrarError::AgentExists(e.agent.clone()),
            KubeCallError::Other(m) => RegistrarError::Api(m),
        })?;
        Ok(())
    }

    async fn rotate_key(
        &self,
        agent: &AgentId,
        old: &str,
        new: &str,
    ) -> Result<(), RegistrarError> {
        let name = agent_object_name(agent.as_str());
        let current = self
            .bounded("reading the FleetAgent", self.agents.get(&name))
            .await
            .map_err(|err| match err {
                KubeCallError::Conflict => RegistrarError::AgentConflict(agent.clone()),
                KubeCallError::Other(m) => RegistrarError::Api(m),
            })?;
        if current.spec.public_key.as_deref() != Some(old) {
            return Err(RegistrarError::AgentConflict(agent.clone()));
        }
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": current.metadata.resource_version },
            "spec": { "publicKey": new },
        });
        self.bounded(
            "replacing the FleetAgent's public key",
            self.agents
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch)),
        )
        .await
        .map_err(|err| match err {
            KubeCallError::Conflict => RegistrarError::AgentConflict(agent.clone()),
            KubeCallError::Other(m) => RegistrarError::Api(m),
        })?;
        Ok(())
    }
}

fn jiff_from_unix(secs: i64) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}
