//! Harness for the operator's integration tests: a real API server (the
//! control-plane cluster of tests/kind), a real nats-server, agents as
//! in-process tasks, and the operator running in-process against one
//! namespace per test.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fleet_agent::{Agent, AgentConfig, Anonymous};
use fleet_crds::{FleetAgent, FleetCommand, FleetStack, FleetStackSpec};
use fleet_operator::{InventoryConfig, Metrics, RunConfig};
use fleet_proto::{AgentId, Heartbeat, encode_heartbeat, subjects};
use fleet_testkit::NatsServer;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Fails (never silently passes) without a cluster.
pub fn require_cluster() {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: the fleet-operator integration tests need a real API server. \
             Run them via scripts/test (it starts tests/kind/cluster up --control-plane and exports KUBECONFIG)."
        );
    }
}

/// Installs the committed CRDs (charts/bootstrap/crds), the same files the
/// chart ships, and waits until they are served.
pub async fn install_crds(client: &Client) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/bootstrap/crds/fleetstack.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd: CustomResourceDefinition =
            serde::Deserialize::deserialize(doc).expect("CRD document");
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("fleet-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("install CRD {name}: {e}"));
        wait_for(&format!("CRD {name} established"), || {
            let (crds, name) = (crds.clone(), name.clone());
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
}

/// Polls `f` every 100 ms until it returns `Some`; panics after [`TIMEOUT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > TIMEOUT {
            panic!("timed out after {TIMEOUT:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn id(s: &str) -> AgentId {
    AgentId::new(s).expect("valid test id")
}

/// Short timings so a test sees connect, disconnect and TTL in seconds.
pub fn fast_inventory() -> InventoryConfig {
    InventoryConfig {
        heartbeat_interval: Duration::from_millis(500),
        missed_threshold: 3,
        ttl: Duration::from_secs(6),
    }
}

pub struct TestEnv {
    pub client: Client,
    pub ns: String,
    pub nats: NatsServer,
    pub metrics: Arc<Metrics>,
    operator: Option<(CancellationToken, JoinHandle<()>)>,
}

impl TestEnv {
    pub async fn start(prefix: &str) -> TestEnv {
        require_cluster();
        let client = Client::try_default().await.expect("client from KUBECONFIG");
        install_crds(&client).await;
        let suffix: u32 = rand::random();
        let ns = format!("{prefix}-{suffix:08x}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.clone());
        n.metadata.labels = Some(BTreeMap::from([(
            "fleet-test".to_string(),
            "operator".to_string(),
        )]));
        namespaces
            .create(&PostParams::default(), &n)
            .await
            .expect("create namespace");
        let nats = NatsServer::start_plain().expect("nats-server starts");
        TestEnv {
            client,
            ns,
            nats,
            metrics: Arc::new(Metrics::new()),
            operator: None,
        }
    }

    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            namespace: self.ns.clone(),
            owner_stack: None,
            inventory: fast_inventory(),
            http_addr: None,
            leader_election: None,
        }
    }

    /// Starts the operator in-process (stopping a running one first).
    pub async fn start_operator(&mut self, config: RunConfig) {
        self.stop_operator().await;
        self.operator = Some(
            spawn_operator(
                self.client.clone(),
                self.nats.url(),
                config,
                self.metrics.clone(),
            )
            .await,
        );
    }

    pub async fn stop_operator(&mut self) {
        stop_operator(self.operator.take()).await;
    }

    pub fn agents(&self) -> Api<FleetAgent> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn commands(&self) -> Api<FleetCommand> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates FleetStack `name`, the owner `FLEET_OWNER_STACK` names. The
    /// reconciler-class label keeps any controller installed in the cluster
    /// away from it: the tests only need it to exist (and its uid).
    pub async fn create_owner_stack(&self, name: &str) -> FleetStack {
        let stacks: Api<FleetStack> = Api::namespaced(self.client.clone(), &self.ns);
        let mut stack = FleetStack::new(name, FleetStackSpec::default());
        stack.metadata.labels = Some(BTreeMap::from([(
            "fleet.nationtech.io/reconciler".to_string(),
            format!("none-{}", self.ns),
        )]));
        stacks
            .create(&PostParams::default(), &stack)
            .await
            .unwrap_or_else(|e| panic!("create FleetStack {name}: {e}"))
    }

    /// Starts another operator runtime in the same namespace with its own
    /// nats-server (a second FleetStack next to the first one).
    pub async fn start_other_operator(&self, config: RunConfig) -> OtherOperator {
        let nats = NatsServer::start_plain().expect("second nats-server starts");
        let mut other = OtherOperator {
            nats,
            client: self.client.clone(),
            config,
            metrics: Arc::new(Metrics::new()),
            operator: None,
        };
        other.start().await;
        other
    }

    /// Starts a real agent (fleet-agent, in-process) with `labels`.
    pub async fn spawn_agent(&self, agent: &str, labels: &[(&str, &str)]) -> RunningAgent {
        spawn_agent_on(&self.nats.url(), agent, labels).await
    }

    /// Publishes heartbeats for `agent` by hand: an agent that beats but
    /// serves no commands.
    pub async fn fake_heartbeats(&self, agent: &str, labels: &[(&str, &str)]) -> CancellationToken {
        let nc = async_nats::connect(self.nats.url())
            .await
            .expect("connects");
        let token = CancellationToken::new();
        let (t, agent_id) = (token.clone(), id(agent));
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let interval = fast_inventory().heartbeat_interval;
        tokio::spawn(async move {
            for seq in 0.. {
                let hb = Heartbeat {
                    v: fleet_proto::PROTOCOL_VERSION,
                    agent_id: agent_id.clone(),
                    version: "hand-made".into(),
                    seq,
                    uptime_ms: 0,
                    timestamp: chrono::Utc::now(),
                    interval_ms: u64::try_from(interval.as_millis()).expect("fits"),
                    labels: labels.clone(),
                };
                let payload = encode_heartbeat(&hb).expect("encodes");
                let _ = nc
                    .publish(subjects::heartbeat_subject(&agent_id), payload.into())
                    .await;
                tokio::select! {
                    _ = t.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
        token
    }

    /// Waits for the FleetAgent of `agent` to satisfy `pred`.
    pub async fn wait_agent(
        &self,
        agent: &str,
        what: &str,
        pred: impl Fn(&FleetAgent) -> bool,
    ) -> FleetAgent {
        let api = self.agents();
        let name = fleet_operator::naming::object_name(&id(agent));
        wait_for(&format!("FleetAgent {name}: {what}"), || {
            let api = api.clone();
            let name = name.clone();
            let ok = &pred;
            async move { api.get_opt(&name).await.ok().flatten().filter(|a| ok(a)) }
        })
        .await
    }

    pub async fn wait_command_finished(&self, name: &str) -> FleetCommand {
        let api = self.commands();
        wait_for(&format!("FleetCommand {name} finished"), || {
            let api = api.clone();
            async move {
                let c = api.get(name).await.ok()?;
                let s = c.status.as_ref()?;
                let generation = c.metadata.generation?;
                let done = s.conditions.iter().any(|x| {
                    (x.type_ == "Complete" || x.type_ == "Failed")
                        && x.status == "True"
                        && x.observed_generation == Some(generation)
                });
                done.then_some(c.clone())
            }
        })
        .await
    }

    pub async fn teardown(mut self) {
        self.stop_operator().await;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
    }
}

/// Starts a real agent (fleet-agent, in-process) on the NATS at `url`.
pub async fn spawn_agent_on(url: &str, agent: &str, labels: &[(&str, &str)]) -> RunningAgent {
    let mut config = AgentConfig::new(id(agent), url.to_string());
    config.heartbeat_interval = fast_inventory().heartbeat_interval;
    config.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config.drain_timeout = Duration::from_secs(2);
    let agent = Agent::bind(config, Arc::new(Anonymous))
        .await
        .expect("agent binds");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(agent.run(shutdown.clone()));
    RunningAgent { shutdown, task }
}

/// Starts `fleet_operator::run` in-process.
async fn spawn_operator(
    client: Client,
    nats_url: String,
    config: RunConfig,
    metrics: Arc<Metrics>,
) -> (CancellationToken, JoinHandle<()>) {
    let nc = async_nats::connect(nats_url)
        .await
        .expect("operator connects to NATS");
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move {
        fleet_operator::run(client, nc, config, metrics, t)
            .await
            .expect("operator run");
    });
    (token, handle)
}

async fn stop_operator(operator: Option<(CancellationToken, JoinHandle<()>)>) {
    if let Some((token, handle)) = operator {
        token.cancel();
        tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .expect("operator stops within 20 s")
            .expect("operator task did not panic");
    }
}

/// A second operator runtime (another FleetStack) in a [`TestEnv`]'s
/// namespace, with its own nats-server.
pub struct OtherOperator {
    pub nats: NatsServer,
    client: Client,
    config: RunConfig,
    pub metrics: Arc<Metrics>,
    operator: Option<(CancellationToken, JoinHandle<()>)>,
}

impl OtherOperator {
    /// (Re)starts it with its config.
    pub async fn start(&mut self) {
        stop_operator(self.operator.take()).await;
        self.operator = Some(
            spawn_operator(
                self.client.clone(),
                self.nats.url(),
                self.config.clone(),
                self.metrics.clone(),
            )
            .await,
        );
    }

    pub async fn stop(&mut self) {
        stop_operator(self.operator.take()).await;
    }

    pub async fn spawn_agent(&self, agent: &str, labels: &[(&str, &str)]) -> RunningAgent {
        spawn_agent_on(&self.nats.url(), agent, labels).await
    }
}

pub struct RunningAgent {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<fleet_agent::RunReport, fleet_agent::AgentError>>,
}

impl RunningAgent {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

pub fn is_ready(a: &FleetAgent, status: &str) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == status)
    })
}
