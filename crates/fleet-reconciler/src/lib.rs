//! The FleetStack controller.
//!
//! Entry point: [`run`] (the `fleet-reconciler` binary and the integration
//! tests both call it). One reconciliation is [`reconcile::reconcile`];
//! status transitions are pure functions in [`status`]; [`kstatus`] is the
//! check GitOps tools apply to our status.

pub mod backoff;
pub mod kstatus;
pub mod metrics;
pub mod pod_refusals;
pub mod published;
pub mod reconcile;
pub mod resolve;
pub mod status;
pub mod write_counter;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fleet_crds::{FleetAgent, FleetStack};
use fleet_runtime::http;
use fleet_scores::{K8sTopology, KubernetesTopology, ProbeRoute, labels};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::runtime::reflector::ObjectRef;
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
    runtime::{
        Controller,
        events::{Recorder, Reporter},
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use fleet_runtime::leader;
pub use metrics::Metrics;
pub use reconcile::Context;

/// How the controller runs. `Default` suits the binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// How smoke probes reach Services (detected from the environment by default).
    pub probe_route: ProbeRoute,
    /// Where `/metrics`, `/healthz`, `/readyz` listen; `None` disables them.
    pub http_addr: Option<SocketAddr>,
    /// Watch one namespace only (`None`: all namespaces).
    pub namespace: Option<String>,
    /// Reconciler class: `None` reconciles FleetStacks without the
    /// `fleet.nationtech.io/reconciler` label; `Some(name)` reconciles only
    /// those labelled `fleet.nationtech.io/reconciler=<name>` (tests,
    /// benchmarks, side-by-side upgrades).
    pub class: Option<String>,
    /// Reporter name on Events.
    pub instance: Option<String>,
    /// Reconcile only while holding this Lease (several replicas).
    pub leader_election: Option<leader::LeaseConfig>,
    /// How many stacks are reconciled at the same time.
    pub concurrency: u16,
    /// Lifetimes of the certificates the reconciler issues.
    pub cert_policy: fleet_scores::tls::CertPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            probe_route: ProbeRoute::detect(),
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            namespace: None,
            class: None,
            instance: std::env::var("POD_NAME").ok(),
            leader_election: None,
            concurrency: 16,
            cert_policy: fleet_scores::tls::CertPolicy::from_env(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("discovering the cluster: {0}")]
    Topology(#[from] fleet_scores::topology::TopologyError),
    #[error(
        "the FleetStack CRD is not served ({0}); install charts/bootstrap/crds/fleetstack.yaml first"
    )]
    CrdMissing(Box<kube::Error>),
    #[error("lost the leader Lease; exiting so a new leader can take over")]
    LeadershipLost,
    #[error("binding the metrics server on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the controller until `shutdown` resolves, then finishes the
/// reconciliations in flight and returns.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with_metrics(client, config, Arc::new(Metrics::new()), shutdown).await
}

/// [`run`] with caller-provided metrics (tests and benches read them).
pub async fn run_with_metrics(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        t.cancel();
    });

    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = config.http_addr {
        let bound = http::serve(addr, metrics.clone(), ready.clone(), token.clone())
            .await
            .map_err(|source| RunError::Http { addr, source })?;
        info!(%bound, "serving /metrics, /healthz, /readyz");
    }

    let topology = K8sTopology::discover(client.clone(), config.probe_route).await?;
    let stacks: Api<FleetStack> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    stacks
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(|e| RunError::CrdMissing(Box::new(e)))?;

    let reporter = Reporter {
        controller: labels::FIELD_MANAGER.into(),
        instance: config.instance.clone(),
    };
    let pdb_v1 = topology.serves_pdb_v1();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        topology,
        metrics,
        backoff: Default::default(),
        cert_policy: config.cert_policy,
    });

    // Children are watched only when they carry our managed-by label.
    let owned = watcher::Config::default().labels(&labels::managed_selector());
    // Bounded concurrency: 200 stacks reconciling at once would open 200
    // connections (and TLS handshakes) to the API server for no gain.
    let runtime_config =
        kube::runtime::controller::Config::default().concurrency(config.concurrency);
    let mut controller = Controller::new(
        stacks,
        watcher::Config::default().labels(&class_selector(&config.class)),
    )
    .with_config(runtime_config);
    // Every kind a component may own (fleet_scores::Component::owned_kinds):
    // a child changed or deleted by hand wakes its stack at once.
    for kind in fleet_scores::component::all_owned_kinds(pdb_v1) {
        let api: Api<DynamicObject> = match &config.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &kind),
            None => Api::all_with(client.clone(), &kind),
        };
        controller = controller.owns_with(api, kind, owned.clone());
    }
    // What a probe waits for, so the probe runs when it can pass instead
    // of on a timer: our pods turning ready, their Service endpoints (the
    // endpoints controller copies the Service's labels), and the
    // FleetAgents the operator runtime writes (the operator's follow-up
    // check reads them; docs/adr/0011).
    controller = controller
        .watches(
            child_api::<Pod>(&client, &config.namespace),
            owned.clone(),
            |pod| stack_of(&pod, labels::INSTANCE),
        )
        .watches(
            child_api::<Endpoints>(&client, &config.namespace),
            owned.clone(),
            |ep| stack_of(&ep, labels::INSTANCE),
        )
        .watches(
            child_api::<FleetAgent>(&client, &config.namespace),
            watcher::Config::default().labels(fleet_crds::fleet_agent::STACK_LABEL),
            |agent| stack_of(&agent, fleet_crds::fleet_agent::STACK_LABEL),
        );
    // Ready before leadership: a follower is healthy, and a rolling update
    // (maxUnavailable 0) needs the new pod Ready while the old one leads.
    ready.store(true, Ordering::Relaxed);
    let lost = CancellationToken::new();
    if let Some(lease) = &config.leader_election
        && !leader::lead(&client, lease, &token, &lost).await
    {
        return Ok(());
    }
    // Deleted stacks are never reconciled again: drop their Ready gauge
    // from what the controller's cache no longer holds.
    let store = controller.store();
    let (m, t) = (ctx.metrics.clone(), token.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = t.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
            m.retain_ready(|namespace, name| {
                store
                    .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
                    .is_some()
            });
        }
    });
    info!(pdb_v1, route = ?config.probe_route, "fleet-reconciler started");
    controller
        .graceful_shutdown_on(token.clone().cancelled_owned())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller event");
            }
        })
        .await;
    ready.store(false, Ordering::Relaxed);
    token.cancel();
    info!("fleet-reconciler stopped");
    if lost.is_cancelled() {
        return Err(RunError::LeadershipLost);
    }
    Ok(())
}

/// The FleetStack an object belongs to, by the label naming it.
fn stack_of<K: kube::Resource>(obj: &K, label: &str) -> Option<ObjectRef<FleetStack>> {
    let meta = obj.meta();
    let stack = meta.labels.as_ref()?.get(label)?;
    Some(ObjectRef::new(stack).within(meta.namespace.as_deref()?))
}

fn child_api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Label that assigns a FleetStack to a named reconciler.
pub const CLASS_LABEL: &str = "fleet.nationtech.io/reconciler";

/// Which FleetStacks this controller owns (see [`Config::class`]).
pub fn class_selector(class: &Option<String>) -> String {
    match class {
        Some(name) => format!("{CLASS_LABEL}={name}"),
        None => format!("!{CLASS_LABEL}"),
    }
}
