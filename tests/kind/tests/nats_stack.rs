//! Issue 3 end to end: a FleetStack with NATS turns Ready on a real cluster,
//! `kubectl wait --for=condition=Ready` returns, and killing the NATS pod
//! flips Ready to False and back to True without anyone acting.

use std::time::Duration;

use fleet_crds::{FleetStack, FleetStackSpec, NatsSpec, ProbeSpec};
use fleet_e2e::controller::{ensure_controller, kubectl};
use fleet_e2e::portforward::forward;
use fleet_e2e::stack::{apply_stack, condition, is_not_ready, is_ready, wait_stack};
use fleet_e2e::{TestNamespace, poll};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};

fn nats_only(replicas: i32) -> FleetStackSpec {
    FleetStackSpec {
        nats: Some(NatsSpec {
            replicas,
            ..NatsSpec::default()
        }),
        // Probe often so the loss of the NATS pod is seen within seconds.
        probe: ProbeSpec {
            interval_seconds: 5,
            ..ProbeSpec::default()
        },
        ..FleetStackSpec::default()
    }
}

#[tokio::test]
async fn nats_stack_turns_ready_and_recovers_from_a_killed_pod() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("nats1").await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    apply_stack(&stacks, "fleet", nats_only(1))
        .await
        .expect("apply FleetStack");

    // What users and GitOps tools run: it must return once Ready is True for
    // the current generation.
    kubectl(
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=120s",
            "-n",
            &ns.name,
            "fleetstack/fleet",
        ],
        None,
    )
    .expect("kubectl wait --for=condition=Ready returns");
    let stack = wait_stack(
        &stacks,
        "fleet",
        "is Ready",
        Duration::from_secs(5),
        is_ready,
    )
    .await
    .expect("Ready");
    let status = stack.status.as_ref().expect("status");
    assert_eq!(status.observed_generation, stack.metadata.generation);
    assert!(
        status.components.get("nats").is_some_and(|c| c.ready),
        "nats component: {:?}",
        status.components
    );
    assert_eq!(
        condition(&stack, "Reconciling")
            .map(|c| c.status.as_str())
            .unwrap_or("False"),
        "False"
    );

    // Kill the NATS pod: the smoke probe must notice ...
    let pods = ns.api::<Pod>();
    let nats_pods = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=nats"))
        .await
        .expect("list nats pods");
    assert_eq!(nats_pods.items.len(), 1, "one NATS pod expected");
    let pod_name = nats_pods.items[0].metadata.name.clone().expect("pod name");
    pods.delete(
        &pod_name,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("delete nats pod");
    let broken = wait_stack(
        &stacks,
        "fleet",
        "reports Ready=False after its NATS pod was killed",
        Duration::from_secs(60),
        is_not_ready,
    )
    .await
    .expect("Ready flips to False");
    let ready = condition(&broken, "Ready").expect("Ready condition");
    assert!(
        ready.message.to_lowercase().contains("nats"),
        "Ready=False should name the component: {}",
        ready.message
    );

    // ... and recover by itself once the StatefulSet replaces the pod.
    wait_stack(
        &stacks,
        "fleet",
        "is Ready again without anyone acting",
        Duration::from_secs(120),
        is_ready,
    )
    .await
    .expect("Ready back to True");

    ns.cleanup().await;
}

#[tokio::test]
async fn three_replica_nats_cluster_turns_ready() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("nats3").await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    apply_stack(&stacks, "fleet", nats_only(3))
        .await
        .expect("apply FleetStack");
    kubectl(
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=180s",
            "-n",
            &ns.name,
            "fleetstack/fleet",
        ],
        None,
    )
    .expect("kubectl wait --for=condition=Ready returns for a 3-replica cluster");
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("app.kubernetes.io/component=nats"))
        .await
        .expect("list nats pods");
    assert_eq!(pods.items.len(), 3);
    // The servers really form one cluster through authenticated routes:
    // every server sees both others (nats.conf requires the route password).
    let pods_api = ns.api::<Pod>();
    for i in 0..3 {
        let pod = format!("fleet-nats-{i}");
        let pf = forward(&pods_api, &pod, 8222)
            .await
            .expect("port-forward to the monitor port");
        let peers = poll(
            &format!("{pod} to route to both other servers"),
            Duration::from_secs(60),
            || async {
                let routez = http_get(pf.local, "/routez").await?;
                let v: serde_json::Value =
                    serde_json::from_str(&routez).map_err(|e| e.to_string())?;
                let peers: std::collections::BTreeSet<String> = v["routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["remote_name"].as_str().map(str::to_string))
                    .collect();
                Ok((peers.len() == 2).then_some(peers))
            },
        )
        .await
        .expect("cluster formed");
        assert!(!peers.contains(&pod), "{peers:?}");
    }
    ns.cleanup().await;
}

/// `GET path` over HTTP/1.0 (the monitor port), body only.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    body.split("\r\n\r\n")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| "no HTTP body".to_string())
}
