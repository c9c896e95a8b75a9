//! The fleet operator runtime: the Kubernetes face of the fleet.
//!
//! * [`inventory`]: NATS heartbeats -> one `FleetAgent` per agent
//!   (decisions in [`tracker`], write policy in ADR 0050);
//! * [`commands`]: `FleetCommand` -> ping/info fan-out over NATS, exactly
//!   once per generation (ADR 0051);
//! * [`config`]: the environment; `/metrics`, `/healthz`, `/readyz` and
//!   Lease-based leader election ([`leader`], re-exported) come from
//!   `fleet-runtime`, shared with the fleet-reconciler.
//!
//! Entry point: [`run`] (the binary, the tests and the benchmark call it).

pub mod commands;
pub mod config;
pub mod inventory;
pub mod metrics;
pub mod naming;
pub mod nats_monitor;
pub mod tracker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fleet_crds::{FleetAgent, FleetCommand, FleetStack};
use fleet_runtime::http;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ListParams;
use kube::{Api, Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{ConfigError, InventoryConfig, OperatorConfig};
pub use fleet_runtime::leader;
pub use metrics::Metrics;

/// What [`run`] needs besides the clients.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub namespace: String,
    /// FleetStack that owns every FleetAgent (ownerReference).
    pub owner_stack: Option<String>,
    pub inventory: InventoryConfig,
    pub http_addr: Option<SocketAddr>,
    pub leader_election: Option<leader::LeaseConfig>,
}

impl From<&OperatorConfig> for RunConfig {
    fn from(c: &OperatorConfig) -> Self {
        RunConfig {
            namespace: c.namespace.clone(),
            owner_stack: c.owner_stack.clone(),
            inventory: c.inventory,
            http_addr: c.http_addr,
            leader_election: c.leader_election.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("binding the HTTP server on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the {kind} CRD is not served in namespace {namespace} ({source}); install charts/bootstrap/crds/fleetstack.yaml first"
    )]
    CrdMissing {
        kind: &'static str,
        namespace: String,
        source: Box<kube::Error>,
    },
    #[error("FleetStack {namespace}/{name} (FLEET_OWNER_STACK) could not be read: {source}")]
    Owner {
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("inventory: {0}")]
    Inventory(#[from] inventory::InventoryError),
    #[error("lost the leader Lease; exiting so that a new leader takes over")]
    LeadershipLost,
}

/// Runs until `shutdown` is cancelled, then lets writes and commands in
/// flight finish and returns.
pub async fn run(
    client: Client,
    nats: async_nats::Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    // A child token: leadership loss stops our tasks without touching the
    // caller's token.
    let token = shutdown.child_token();
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = config.http_addr {
        let bound = http::serve(addr, metrics.clone(), ready.clone(), token.clone())
            .await
            .map_err(|source| RunError::Http { addr, source })?;
        info!(%bound, "serving /metrics, /healthz, /readyz");
    }
    let ns = config.namespace.clone();
    let agents: Api<FleetAgent> = Api::namespaced(client.clone(), &ns);
    let commands: Api<FleetCommand> = Api::namespaced(client.clone(), &ns);
    let missing = |kind, e| RunError::CrdMissing {
        kind,
        namespace: ns.clone(),
        source: Box::new(e),
    };
    agents
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(|e| missing("FleetAgent", e))?;
    commands
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(|e| missing("FleetCommand", e))?;
    let owner = match &config.owner_stack {
        None => None,
        Some(name) => Some(owner_reference(&client, &ns, name).await?),
    };
    ready.store(true, Ordering::Relaxed);

    let lost = CancellationToken::new();
    if let Some(lease) = &config.leader_election
        && !leader::lead(&client, lease, &token, &lost).await
    {
        return Ok(());
    }

    info!(namespace = %ns, owner = ?config.owner_stack, "fleet-operator started");
    let ctx = Arc::new(commands::Context::new(
        commands,
        agents.clone(),
        config.owner_stack.as_deref(),
        nats.clone(),
        metrics.clone(),
    ));
    let command_task = tokio::spawn(commands::run(ctx, token.clone()));
    let writer = inventory::Writer {
        api: agents,
        namespace: ns.clone(),
        owner,
    };
    let inventory_result =
        inventory::run(nats, writer, config.inventory, metrics, token.clone()).await;
    // Whatever ended the inventory ends the command controller too.
    token.cancel();
    let _ = command_task.await;
    if let Some(lease) = &config.leader_election
        && !lost.is_cancelled()
    {
        leader::release(&client, lease).await;
    }
    ready.store(false, Ordering::Relaxed);
    info!("fleet-operator stopped");
    inventory_result?;
    if lost.is_cancelled() {
        return Err(RunError::LeadershipLost);
    }
    Ok(())
}

async fn owner_reference(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<OwnerReference, RunError> {
    let stacks: Api<FleetStack> = Api::namespaced(client.clone(), ns);
    let stack = stacks.get(name).await.map_err(|e| RunError::Owner {
        namespace: ns.to_string(),
        name: name.to_string(),
        source: Box::new(e),
    })?;
    Ok(OwnerReference {
        api_version: FleetStack::api_version(&()).into_owned(),
        kind: FleetStack::kind(&()).into_owned(),
        name: stack.name_any(),
        uid: stack.uid().unwrap_or_default(),
        // Not the controller of FleetAgents (the reconciler does not manage
        // them) and no blockOwnerDeletion (it needs finalizer rights on
        // the FleetStack): garbage collection is all we want.
        controller: None,
        block_owner_deletion: None,
    })
}
