//! Harness for controller tests against a real API server.
//!
//! Each test gets its own namespace (random suffix, deleted on drop), the
//! CRD installed, and the controller running in-process, watching only that
//! namespace, through a client whose writes are recorded.

#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_crds::{FleetStack, FleetStackSpec};
use fleet_reconciler::{
    Config, Metrics,
    write_counter::{WriteLog, counting_client},
};
use fleet_scores::ProbeRoute;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use tokio::sync::oneshot;

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestEnv {
    pub client: Client,
    /// Writes made by the controller under test (its own client).
    pub writes: WriteLog,
    pub metrics: Arc<Metrics>,
    pub ns: String,
    stop: Option<oneshot::Sender<()>>,
    controller: Option<tokio::task::JoinHandle<()>>,
    /// Every FleetStack version the test's watcher saw, in order.
    pub seen: Arc<Mutex<Vec<FleetStack>>>,
}

/// Fails (never silently passes) without a cluster.
pub fn require_cluster() {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: the fleet-reconciler integration tests need a real API server. \
             Run them via scripts/test (it starts tests/kind/cluster up --control-plane and exports KUBECONFIG)."
        );
    }
}

pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = FleetStack::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("fleet-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("install FleetStack CRD");
    wait_for("CRD established", || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let crd = crds.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;
}

impl TestEnv {
    pub async fn start(prefix: &str) -> TestEnv {
        Self::start_with(prefix, true).await
    }

    /// `run_controller: false` to exercise the API alone.
    pub async fn start_with(prefix: &str, run_controller: bool) -> TestEnv {
        require_cluster();
        let client = Client::try_default().await.expect("client from KUBECONFIG");
        install_crd(&client).await;
        let suffix: u32 = rand::random();
        let ns = format!("{prefix}-{suffix:08x}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.clone());
        n.metadata.labels = Some([("fleet-test".to_string(), "reconciler".to_string())].into());
        namespaces
            .create(&PostParams::default(), &n)
            .await
            .expect("create namespace");

        let seen = Arc::new(Mutex::new(Vec::new()));
        let stacks: Api<FleetStack> = Api::namespaced(client.clone(), &ns);
        let sink = seen.clone();
        tokio::spawn(async move {
            let mut stream = watcher::watcher(stacks, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = ev {
                    sink.lock().expect("lock").push(o);
                }
            }
        });

        let writes = WriteLog::default();
        let metrics = Arc::new(Metrics::new());
        let (stop, controller) = if run_controller {
            let controller_client = counting_client(&writes).await.expect("counting client");
            let config = Config {
                probe_route: ProbeRoute::ClusterIp,
                http_addr: None,
                namespace: Some(ns.clone()),
                // A class of our own: a controller installed in the cluster
                // (watching unlabelled stacks) leaves the test's stacks alone.
                class: Some(ns.clone()),
                instance: Some(format!("test-{ns}")),
                leader_election: None,
                concurrency: 16,
                cert_policy: fleet_scores::tls::CertPolicy::from_env(),
            };
            let (tx, rx) = oneshot::channel::<()>();
            let m = metrics.clone();
            let handle = tokio::spawn(async move {
                fleet_reconciler::run_with_metrics(controller_client, config, m, async {
                    let _ = rx.await;
                })
                .await
                .expect("controller run");
            });
            (Some(tx), Some(handle))
        } else {
            (None, None)
        };
        TestEnv {
            client,
            writes,
            metrics,
            ns,
            stop,
            controller,
            seen,
        }
    }

    pub fn stacks(&self) -> Api<FleetStack> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates a stack labelled for this test's controller class.
    pub async fn create(&self, name: &str, spec: FleetStackSpec) -> FleetStack {
        self.stacks()
            .create(&PostParams::default(), &self.stack(name, spec))
            .await
            .expect("create FleetStack")
    }

    pub fn stack(&self, name: &str, spec: FleetStackSpec) -> FleetStack {
        let mut s = FleetStack::new(name, spec);
        s.metadata.labels =
            Some([(fleet_reconciler::CLASS_LABEL.to_string(), self.ns.clone())].into());
        s
    }

    pub async fn get(&self, name: &str) -> FleetStack {
        self.stacks().get(name).await.expect("get FleetStack")
    }

    /// Waits until the stack satisfies `pred`; returns it.
    pub async fn wait_stack(
        &self,
        what: &str,
        name: &str,
        pred: impl Fn(&FleetStack) -> bool,
    ) -> FleetStack {
        let api = self.stacks();
        let name = name.to_string();
        let pred = &pred;
        wait_for(what, || {
            let api = api.clone();
            let name = name.clone();
            async move { api.get(&name).await.ok().filter(|s| pred(s)) }
        })
        .await
    }

    /// Stops the controller and waits for it to finish (graceful shutdown).
    pub async fn stop_controller(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.controller.take() {
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("controller stops within 30 s")
                .expect("controller task");
        }
    }

    pub fn reconciles(&self) -> u64 {
        self.metrics.reconciles.get()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let client = self.client.clone();
        let ns = self.ns.clone();
        // Multi-thread runtime required (every test uses it).
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                let namespaces: Api<Namespace> = Api::all(client);
                let _ = namespaces.delete(&ns, &Default::default()).await;
            })
        });
    }
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after TIMEOUT.
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn condition<'a>(
    stack: &'a FleetStack,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    stack
        .status
        .as_ref()
        .and_then(|s| fleet_crds::find_condition(&s.conditions, type_))
}

/// A spec with NATS only and quick probes (the control-plane cluster runs
/// no pods, so every probe fails; short timeouts keep tests fast).
pub fn nats_only() -> FleetStackSpec {
    let mut spec = FleetStackSpec {
        nats: Some(fleet_crds::NatsSpec::default()),
        ..Default::default()
    };
    spec.probe.timeout_seconds = 1;
    spec
}
