//! Benchmarks of the controller against the cluster in KUBECONFIG
//! (`scripts/test` or `tests/kind/cluster up --control-plane`):
//!
//! 1. API writes per reconcile of an unchanged stack (target 0), counted
//!    by a tower layer on the controller's client (not self-reported).
//! 2. N FleetStacks (default 200, `FLEET_BENCH_STACKS`), NATS-only, with the
//!    `fleet-reconciler` binary as a separate process: time from controller
//!    start until every stack has a probe result for its generation, and the
//!    process's peak and settled RSS (targets: <= 30 s, <= 64 MB).
//! 3. The same N stacks paused: time until every stack reports Paused.
//! 0. First, on a cluster with a node and the NATS image loaded: apply to
//!    Ready for one NATS-only stack (target <= 5 s); skipped with a note
//!    when the stack is not Ready within 60 s (control-plane-only cluster).
//!
//! The bench namespace carries a ResourceQuota of 0 pods, so on a cluster
//! with a node no NATS pod is started (the measurement is the controller's,
//! and 200 NATS pods would swamp a shared 2-core machine).
//!
//! Run: `cargo bench -p fleet-reconciler --bench scale`

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_crds::{FleetStack, FleetStackSpec, NatsSpec};
use fleet_reconciler::{
    Config, Metrics,
    write_counter::{WriteLog, counting_client},
};
use fleet_scores::ProbeRoute;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt, ResourceExt};

#[tokio::main]
async fn main() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "KUBECONFIG is not set: run via scripts/test or after tests/kind/cluster up --control-plane"
        );
        std::process::exit(2);
    }
    // `cargo bench` passes `--bench`; ignore arguments.
    let n: usize = std::env::var("FLEET_BENCH_STACKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let client = Client::try_default().await.expect("client");
    install_crd(&client).await;

    apply_to_ready(&client).await;
    idle_writes(&client).await;
    scale(&client, n).await;
}

/// The bench's stacks carry this reconciler class, so a controller
/// installed in the cluster (which reconciles unlabelled stacks) stays away.
const CLASS: &str = "bench";

fn stack(name: &str, spec: FleetStackSpec) -> FleetStack {
    let mut s = FleetStack::new(name, spec);
    s.metadata.labels =
        Some([(fleet_reconciler::CLASS_LABEL.to_string(), CLASS.to_string())].into());
    s
}

fn spec(paused: bool) -> FleetStackSpec {
    let mut spec = FleetStackSpec {
        nats: Some(NatsSpec::default()),
        paused,
        ..Default::default()
    };
    spec.probe.timeout_seconds = 2;
    spec
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = FleetStack::crd();
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("fleet-bench").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("install CRD");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = format!("{prefix}-{:08x}", rand::random::<u32>());
    let api: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.clone());
    n.metadata.labels = Some([("fleet-test".to_string(), "bench".to_string())].into());
    api.create(&PostParams::default(), &n)
        .await
        .expect("namespace");
    let quota = ResourceQuota {
        metadata: kube::api::ObjectMeta {
            name: Some("no-pods".into()),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: Some([("pods".to_string(), Quantity("0".into()))].into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &quota)
        .await
        .expect("quota");
    ns
}

async fn delete_namespace(client: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &Default::default())
        .await;
}

/// Writes per reconcile of one unchanged stack, in-process controller. The
/// namespace has no pod quota: on a node cluster with the image the stack
/// turns Ready and is re-probed every 5 s; on a control-plane cluster it
/// stays ProbeFailed and is retried on its backoff. Either way the window
/// counts the reconciles of an unchanged spec and every API write.
async fn idle_writes(client: &Client) {
    let ns = format!("bench-idle-{:08x}", rand::random::<u32>());
    let api: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.clone());
    api.create(&PostParams::default(), &n)
        .await
        .expect("namespace");
    let log = WriteLog::default();
    let metrics = Arc::new(Metrics::new());
    let controller_client = counting_client(&log).await.expect("client");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        probe_route: ProbeRoute::ClusterIp,
        http_addr: None,
        namespace: Some(ns.clone()),
        class: Some(CLASS.into()),
        instance: None,
        leader_election: None,
        concurrency: 16,
        cert_policy: fleet_scores::tls::CertPolicy::from_env(),
    };
    let m = metrics.clone();
    let handle = tokio::spawn(async move {
        let _ = fleet_reconciler::run_with_metrics(controller_client, config, m, async {
            let _ = rx.await;
        })
        .await;
    });
    let stacks: Api<FleetStack> = Api::namespaced(client.clone(), &ns);
    let mut s = spec(false);
    s.probe.interval_seconds = 5;
    stacks
        .create(&PostParams::default(), &stack("idle", s))
        .await
        .expect("create");
    // Settle: Ready, or 60 s of trying.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(60) {
        let ready = stacks
            .get("idle")
            .await
            .ok()
            .and_then(|s| s.status)
            .is_some_and(|st| fleet_crds::is_true(&st.conditions, "Ready"));
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first_writes = log.len();
    let ready = stacks
        .get("idle")
        .await
        .ok()
        .and_then(|s| s.status)
        .is_some_and(|st| fleet_crds::is_true(&st.conditions, "Ready"));
    log.clear();
    let before = metrics.reconciles.get();
    let window = Duration::from_secs(40);
    tokio::time::sleep(window).await;
    let reconciles = metrics.reconciles.get() - before;
    let writes = log.entries();
    println!(
        "== idle stack ({}) ==",
        if ready {
            "Ready, re-probed every 5 s"
        } else {
            "not Ready, retried on backoff"
        }
    );
    println!("writes to converge a new NATS-only stack (incl. status and events): {first_writes}");
    println!(
        "idle window {}s: {reconciles} reconciles, {} API writes -> {:.2} writes/reconcile {}",
        window.as_secs(),
        writes.len(),
        writes.len() as f64 / reconciles.max(1) as f64,
        if writes.is_empty() {
            String::new()
        } else {
            format!("{writes:?}")
        }
    );
    let _ = tx.send(());
    let _ = handle.await;
    delete_namespace(client, &ns).await;
}

/// Apply -> Ready=True of a NATS-only stack, controller already running.
async fn apply_to_ready(client: &Client) {
    let ns = format!("bench-ready-{:08x}", rand::random::<u32>());
    let api: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.clone());
    api.create(&PostParams::default(), &n)
        .await
        .expect("namespace");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        probe_route: ProbeRoute::ClusterIp,
        http_addr: None,
        namespace: Some(ns.clone()),
        class: Some(CLASS.into()),
        instance: None,
        leader_election: None,
        concurrency: 16,
        cert_policy: fleet_scores::tls::CertPolicy::from_env(),
    };
    let c = client.clone();
    let handle = tokio::spawn(async move {
        let _ = fleet_reconciler::run(c, config, async {
            let _ = rx.await;
        })
        .await;
    });
    // Let the controller's watches start before the clock does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stacks: Api<FleetStack> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    stacks
        .create(&PostParams::default(), &stack("ready", spec(false)))
        .await
        .expect("create");
    let mut result = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(s) = stacks.get("ready").await
            && s.status
                .as_ref()
                .is_some_and(|st| fleet_crds::is_true(&st.conditions, "Ready"))
        {
            result = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("== apply to Ready (NATS-only, 1 replica) ==");
    match result {
        Some(d) => println!("apply -> Ready=True: {:.2}s", d.as_secs_f64()),
        None => {
            println!("not Ready within 60 s: no node or NATS image on this cluster; not measured")
        }
    }
    let _ = tx.send(());
    let _ = handle.await;
    delete_namespace(client, &ns).await;
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn scale(client: &Client, n: usize) {
    let ns = namespace(client, "bench-scale").await;
    let stacks: Api<FleetStack> = Api::namespaced(client.clone(), &ns);
    let created = Instant::now();
    for i in 0..n {
        stacks
            .create(
                &PostParams::default(),
                &stack(&format!("s{i:03}"), spec(false)),
            )
            .await
            .expect("create");
    }
    println!("== {n} NATS-only stacks ==");
    println!(
        "created {n} FleetStacks in {:.1}s (before the controller starts)",
        created.elapsed().as_secs_f64()
    );

    let bin = env!("CARGO_BIN_EXE_fleet-reconciler");
    let started = Instant::now();
    let child = Command::new(bin)
        .env("FLEET_WATCH_NAMESPACE", &ns)
        .env("FLEET_HTTP_ADDR", "off")
        .env("FLEET_RECONCILER_CLASS", CLASS)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fleet-reconciler");
    let proc = Proc(child);
    let pid = proc.0.id();

    let probed = |s: &FleetStack| {
        s.status.as_ref().is_some_and(|st| {
            st.observed_generation == s.metadata.generation && st.components.contains_key("nats")
        })
    };
    let paused = |s: &FleetStack| {
        s.status.as_ref().is_some_and(|st| {
            st.observed_generation == s.metadata.generation
                && fleet_crds::is_true(&st.conditions, "Paused")
        })
    };
    let mut peak = 0;
    let all_done = |pred: &dyn Fn(&FleetStack) -> bool, list: &[FleetStack]| {
        list.iter().filter(|s| pred(s)).count()
    };
    let t_full = loop {
        let list = stacks
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        peak = peak.max(rss_kb(pid).0);
        let done = all_done(&probed, &list);
        if done == n {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(300) {
            panic!("only {done}/{n} stacks reconciled after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "first full reconcile of {n} stacks (controller start -> every stack has a probe result): {:.1}s",
        t_full.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, hwm) = rss_kb(pid);
    println!(
        "controller RSS after 10 s more: {:.1} MB, peak (VmHWM): {:.1} MB",
        rss as f64 / 1024.0,
        hwm.max(peak) as f64 / 1024.0
    );

    let t = Instant::now();
    for i in 0..n {
        stacks
            .patch(
                &format!("s{i:03}"),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"paused": true}})),
            )
            .await
            .expect("pause");
    }
    loop {
        let list = stacks
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        if all_done(&paused, &list) == n {
            break;
        }
        if t.elapsed() > Duration::from_secs(300) {
            panic!("stacks not all paused after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "pause {n} stacks (first patch -> every stack reports Paused): {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let (rss, hwm) = rss_kb(pid);
    println!(
        "controller RSS: {:.1} MB, peak (VmHWM): {:.1} MB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    drop(proc);
    delete_namespace(client, &ns).await;
}
