//! Heartbeat ingestion with 1000 simulated agents (heartbeats published
//! directly on NATS), against the real `fleet-operator` binary, a real
//! nats-server and the real API server (KUBECONFIG; run via scripts/test's
//! cluster). Prints:
//!
//! * time from the first heartbeat until all FleetAgents show connected
//!   (target: within 2 heartbeat intervals);
//! * API writes in steady state (target: 0 when nothing changes) and after
//!   every agent changes version (target: <= 1 per agent per interval),
//!   counted twice: by the operator's metrics and independently by a watch
//!   on the FleetAgents (one event per object change);
//! * the operator's VmRSS / VmHWM (target: <= 64 MB).
//!
//! `cargo bench -p fleet-operator --bench ingest` (env: BENCH_AGENTS,
//! default 1000; BENCH_INTERVAL_SECS, default 10).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fleet_crds::FleetAgent;
use fleet_proto::{AgentId, Heartbeat, encode_heartbeat, subjects};
use fleet_testkit::NatsServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

fn main() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "KUBECONFIG is not set: run via scripts/test or export KUBECONFIG=/var/lib/fleetstack-cluster/kubeconfig"
        );
        std::process::exit(1);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(bench());
}

fn env_num(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn bench() {
    let agents = usize::try_from(env_num("BENCH_AGENTS", 1000)).expect("fits");
    let interval = Duration::from_secs(env_num("BENCH_INTERVAL_SECS", 10));
    let client = Client::try_default().await.expect("kube client");
    install_crds(&client).await;
    let ns = format!("op-bench-{:08x}", rand::random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &n)
        .await
        .expect("namespace");
    let nats = NatsServer::start_plain().expect("nats-server");

    // Independent write count: every change of a FleetAgent is one watch
    // event.
    let events = Arc::new(AtomicU64::new(0));
    let api: Api<FleetAgent> = Api::namespaced(client.clone(), &ns);
    {
        let (api, events) = (api.clone(), events.clone());
        tokio::spawn(async move {
            let mut w = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = w.next().await {
                if let Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) = ev {
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    let http = free_addr();
    let mut operator = spawn_operator(&nats.url(), &ns, interval, http);
    wait_ready(http, &mut operator).await;

    // Publisher: `agents` heartbeats per interval, evenly spread.
    let version = Arc::new(AtomicUsize::new(0));
    let nc = async_nats::connect(nats.url()).await.expect("connect");
    let ids: Vec<AgentId> = (0..agents)
        .map(|i| AgentId::new(format!("sim-{i:04}")).expect("id"))
        .collect();
    {
        let (nc, ids, version) = (nc.clone(), ids.clone(), version.clone());
        tokio::spawn(async move {
            let step = interval / u32::try_from(ids.len()).expect("fits");
            let mut tick = tokio::time::interval(step);
            let labels = BTreeMap::from([("bench".to_string(), "ingest".to_string())]);
            for seq in 0u64.. {
                for id in &ids {
                    tick.tick().await;
                    let hb = Heartbeat {
                        v: fleet_proto::PROTOCOL_VERSION,
                        agent_id: id.clone(),
                        version: format!("1.0.{}", version.load(Ordering::Relaxed)),
                        seq,
                        uptime_ms: seq * 1000,
                        timestamp: chrono::Utc::now(),
                        interval_ms: u64::try_from(interval.as_millis()).expect("fits"),
                        labels: labels.clone(),
                    };
                    let _ = nc
                        .publish(
                            subjects::heartbeat_subject(id),
                            encode_heartbeat(&hb).expect("encode").into(),
                        )
                        .await;
                }
            }
        });
    }
    let started = Instant::now();
    let connected_after = loop {
        let list = api.list(&ListParams::default()).await.expect("list");
        let connected = list
            .items
            .iter()
            .filter(|a| a.status.as_ref().is_some_and(|s| s.connected))
            .count();
        if connected == agents {
            break started.elapsed();
        }
        if started.elapsed() > interval * 10 {
            panic!(
                "only {connected}/{agents} connected after {:?}",
                started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "agents={agents} interval={interval:?}: all connected after {:.2}s = {:.2} heartbeat intervals (target <= 2)",
        connected_after.as_secs_f64(),
        connected_after.as_secs_f64() / interval.as_secs_f64()
    );
    let initial = writes(http);
    println!(
        "initial writes: {} (create {} + status {}) = {:.2} per agent",
        initial.0 + initial.1,
        initial.0,
        initial.1,
        (initial.0 + initial.1) as f64 / agents as f64
    );

    // Steady state: let the tail of the first round land, then 3 intervals.
    tokio::time::sleep(interval).await;
    let (w0, e0) = (writes(http), events.load(Ordering::Relaxed));
    tokio::time::sleep(interval * 3).await;
    let (w1, e1) = (writes(http), events.load(Ordering::Relaxed));
    let steady = (w1.0 + w1.1) - (w0.0 + w0.1);
    println!(
        "steady state over 3 intervals: {steady} operator writes, {} watch events = {:.3} writes per agent per interval (target 0)",
        e1 - e0,
        steady as f64 / agents as f64 / 3.0
    );

    // Every agent upgrades: exactly one write each, spread over an interval.
    version.store(1, Ordering::Relaxed);
    let e2 = events.load(Ordering::Relaxed);
    tokio::time::sleep(interval * 3).await;
    let (w3, e3) = (writes(http), events.load(Ordering::Relaxed));
    let changed = (w3.0 + w3.1) - (w1.0 + w1.1);
    let upgraded = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|a| a.status.as_ref().and_then(|s| s.version.as_deref()) == Some("1.0.1"))
        .count();
    println!(
        "after every agent changed version, over 3 intervals: {changed} operator writes, {} watch events = {:.3} writes per agent per interval (target <= 1); {upgraded}/{agents} show the new version",
        e3 - e2,
        changed as f64 / agents as f64 / 3.0
    );

    let pid = operator.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.trim_start_matches(name).trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "operator RSS: VmRSS {} (VmHWM {}, threads {}) (target <= 64 MB; {} build)",
        field("VmRSS:"),
        field("VmHWM:"),
        field("Threads:"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exited = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(Some(s)) = operator.try_wait() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    println!("operator exit after SIGTERM: {exited:?}");
    let _ = operator.kill();
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}

fn spawn_operator(url: &str, ns: &str, interval: Duration, http: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fleet-operator"))
        .env("FLEET_NATS_URL", url)
        .env("FLEET_NAMESPACE", ns)
        .env(
            "FLEET_HEARTBEAT_INTERVAL",
            format!("{}ms", interval.as_millis()),
        )
        .env("FLEET_AGENT_TTL", "60m")
        .env("FLEET_HTTP_ADDR", http.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn fleet-operator")
}

async fn wait_ready(http: SocketAddr, operator: &mut Child) {
    let start = Instant::now();
    while get(http, "/readyz").is_none_or(|(code, _)| code != 200) {
        if let Ok(Some(s)) = operator.try_wait() {
            panic!("fleet-operator exited: {s}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "operator not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (creates, status writes) that succeeded, from the operator's /metrics.
fn writes(http: SocketAddr) -> (u64, u64) {
    let (_, body) = get(http, "/metrics").expect("metrics");
    let value = |op: &str| -> u64 {
        body.lines()
            .find(|l| {
                l.starts_with("fleet_operator_fleetagent_writes_total")
                    && l.contains(&format!("op=\"{op}\""))
                    && l.contains("result=\"ok\"")
            })
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (value("create"), value("status"))
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n")?.1.to_string()))
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

async fn install_crds(client: &Client) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/bootstrap/crds/fleetstack.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read CRDs");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc).expect("CRD");
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("fleet-bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("install CRD");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}
