//! Issue 17 end to end (items 1-3), on the real cluster:
//! * pod overrides render and apply: a nodeSelector on the node's hostname
//!   plus a toleration schedules the NATS pod there, with the extra labels,
//!   annotations and ServiceAccount annotations, and requests (Burstable);
//!   a nodeSelector matching no node leaves Ready False with the
//!   scheduler's message naming the component;
//! * `spec.nats.config`: an accepted key reaches the server (`/varz`); a
//!   reloadable change (max_payload) reaches it by a config reload, Ready
//!   only once `/varz` shows it, same pod uid; a
//!   key nats-server rejects is Stalled with its message and nothing rolls
//!   (same pod uid, same ConfigMap); a key we own is Stalled naming it;
//! * the operator serves the NATS server metrics it polls
//!   (`fleet_operator_nats_up` for the server is 1).

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_crds::{FleetStack, FleetStackSpec, NatsSpec, OperatorSpec, PodOverrides, ProbeSpec};
use fleet_e2e::controller::ensure_controller;
use fleet_e2e::portforward::forward;
use fleet_e2e::stack::{apply_stack, condition, describe, is_ready, wait_stack};
use fleet_e2e::{TestNamespace, image, poll};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, ServiceAccount};
use kube::Api;
use kube::api::ListParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STACK: &str = "fleet";

fn nats_stack(pod: Option<PodOverrides>, config: BTreeMap<String, String>) -> FleetStackSpec {
    FleetStackSpec {
        nats: Some(NatsSpec {
            pod,
            config,
            ..NatsSpec::default()
        }),
        probe: ProbeSpec {
            interval_seconds: 5,
            ..ProbeSpec::default()
        },
        ..FleetStackSpec::default()
    }
}

/// Overrides written as JSON (the e2e crate has no YAML parser).
fn overrides(json: &str) -> PodOverrides {
    serde_json::from_str(json).expect("PodOverrides JSON")
}

async fn nats_pod(pods: &Api<Pod>) -> Option<Pod> {
    pods.list(&ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={STACK},app.kubernetes.io/component=nats"
    )))
    .await
    .ok()?
    .items
    .into_iter()
    .find(|p| p.metadata.deletion_timestamp.is_none())
}

/// GET `path` on `addr` over plain HTTP/1.0; the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .ok_or_else(|| format!("no HTTP body in {out:?}"))
}

#[tokio::test]
async fn pod_overrides_place_the_pods_and_an_unschedulable_selector_is_named() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("overrides").await.expect("namespace");
    let client = fleet_e2e::client().await.expect("client");
    let node = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .expect("list nodes")
        .items
        .into_iter()
        .find(|n| n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true))
        .expect("a schedulable node");
    let hostname = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/hostname"))
        .cloned()
        .expect("node hostname label");
    let stacks = ns.api::<FleetStack>();
    let placed = overrides(&format!(
        r#"{{"nodeSelector": {{"kubernetes.io/hostname": "{hostname}"}},
            "tolerations": [{{"operator": "Exists"}}],
            "labels": {{"team": "e2e"}},
            "annotations": {{"example.com/owner": "e2e"}},
            "serviceAccountAnnotations": {{"example.com/identity": "fleet"}}}}"#
    ));
    apply_stack(&stacks, STACK, nats_stack(Some(placed), BTreeMap::new()))
        .await
        .expect("apply");
    wait_stack(
        &stacks,
        STACK,
        "is Ready",
        Duration::from_secs(180),
        is_ready,
    )
    .await
    .expect("Ready with the overrides");
    let pods = ns.api::<Pod>();
    let pod = nats_pod(&pods).await.expect("nats pod");
    let spec = pod.spec.as_ref().expect("pod spec");
    assert_eq!(
        spec.node_name.as_deref(),
        Some(node.metadata.name.as_deref().expect("node name"))
    );
    assert_eq!(pod.metadata.labels.as_ref().expect("labels")["team"], "e2e");
    assert_eq!(
        pod.metadata.annotations.as_ref().expect("annotations")["example.com/owner"],
        "e2e"
    );
    // Requests by default: no longer BestEffort.
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.qos_class.as_deref()),
        Some("Burstable")
    );
    // The restricted settings are still there.
    let security = spec
        .security_context
        .as_ref()
        .expect("pod security context");
    assert_eq!(security.run_as_non_root, Some(true));
    let sa = ns
        .api::<ServiceAccount>()
        .get(&format!("{STACK}-nats"))
        .await
        .expect("nats ServiceAccount");
    assert_eq!(
        sa.metadata.annotations.as_ref().expect("sa annotations")["example.com/identity"],
        "fleet"
    );

    // A nodeSelector no node matches: Ready False, naming the component
    // and why (the scheduler's message), not a bare connect failure.
    let nowhere = overrides(r#"{"nodeSelector": {"fleet.example/no-such-pool": "x"}}"#);
    apply_stack(&stacks, STACK, nats_stack(Some(nowhere), BTreeMap::new()))
        .await
        .expect("apply");
    let stuck = wait_stack(
        &stacks,
        STACK,
        "says its NATS pods cannot be scheduled",
        Duration::from_secs(120),
        |s| {
            condition(s, "Ready").is_some_and(|c| {
                c.status == "False"
                    && c.observed_generation == s.metadata.generation
                    && c.message.contains("nats")
                    && c.message.contains("cannot be scheduled")
            })
        },
    )
    .await
    .expect("unschedulable reported");
    let ready = condition(&stuck, "Ready").expect("Ready");
    assert!(
        // "didn't match Pod's node affinity" (1.20) or "... node
        // affinity/selector" (newer schedulers).
        ready.message.contains("node affinity"),
        "{}",
        describe(&stuck)
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn nats_config_reaches_the_server_and_a_rejected_one_rolls_nothing() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("natsconf").await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    let mut spec = nats_stack(
        None,
        BTreeMap::from([("max_payload".to_string(), "2MB".to_string())]),
    );
    spec.operator = Some(OperatorSpec {
        image: image("fleet-operator"),
        replicas: 1,
        pod: None,
    });
    apply_stack(&stacks, STACK, spec.clone())
        .await
        .expect("apply");
    wait_stack(
        &stacks,
        STACK,
        "is Ready",
        Duration::from_secs(180),
        is_ready,
    )
    .await
    .expect("Ready");
    let pods = ns.api::<Pod>();
    let pod = nats_pod(&pods).await.expect("nats pod");
    let pod_name = pod.metadata.name.clone().expect("name");
    let uid = pod.metadata.uid.clone().expect("uid");
    let monitor = forward(&pods, &pod_name, 8222)
        .await
        .expect("port-forward 8222");
    let varz: serde_json::Value =
        serde_json::from_str(&http_get(monitor.local, "/varz").await.expect("varz"))
            .expect("varz json");
    assert_eq!(varz["max_payload"], 2 * 1024 * 1024);

    // The operator serves this server's metrics (ADR 0071/0074).
    let operator = poll("operator pod", Duration::from_secs(60), || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(list.items.into_iter().find_map(|p| p.metadata.name))
    })
    .await
    .expect("operator pod");
    let metrics = forward(&pods, &operator, 8080)
        .await
        .expect("port-forward 8080");
    poll(
        "fleet_operator_nats_up 1",
        Duration::from_secs(90),
        || async {
            let body = http_get(metrics.local, "/metrics").await?;
            let up = body
                .lines()
                .any(|l| l.starts_with("fleet_operator_nats_up{") && l.ends_with(" 1"));
            if up { Ok(Some(())) } else { Err(body) }
        },
    )
    .await
    .expect("NATS metrics scraped from the operator");

    // A reloadable change (max_payload) reaches the running server by a
    // config reload: Ready again for the new generation only once /varz
    // shows it, on the same pod (ADR 0073).
    let reloaded_at = std::time::Instant::now();
    let mut bigger = spec.clone();
    if let Some(nats) = bigger.nats.as_mut() {
        nats.config.insert("max_payload".into(), "3MB".into());
    }
    apply_stack(&stacks, STACK, bigger).await.expect("apply");
    wait_stack(
        &stacks,
        STACK,
        "is Ready with max_payload 3MB",
        Duration::from_secs(180),
        is_ready,
    )
    .await
    .expect("Ready after the reload");
    let varz: serde_json::Value =
        serde_json::from_str(&http_get(monitor.local, "/varz").await.expect("varz"))
            .expect("varz json");
    assert_eq!(
        varz["max_payload"],
        3 * 1024 * 1024,
        "Ready means the server serves the applied config"
    );
    let same = nats_pod(&pods).await.expect("nats pod");
    assert_eq!(
        same.metadata.uid.as_deref(),
        Some(uid.as_str()),
        "no restart"
    );
    eprintln!(
        "reloadable nats.config change: Ready with the new value after {:.1}s, same pod",
        reloaded_at.elapsed().as_secs_f64()
    );

    let config_maps = ns.api::<ConfigMap>();
    let before = config_maps
        .get(&format!("{STACK}-nats-config"))
        .await
        .expect("config map")
        .data;

    // nats-server refuses an unknown field: Stalled with its message.
    let mut rejected = spec.clone();
    if let Some(nats) = rejected.nats.as_mut() {
        nats.config.insert("max_payloadd".into(), "1".into());
    }
    apply_stack(&stacks, STACK, rejected).await.expect("apply");
    let stalled = wait_stack(
        &stacks,
        STACK,
        "is Stalled on nats-server's verdict",
        Duration::from_secs(60),
        |s| {
            condition(s, "Stalled").is_some_and(|c| {
                c.status == "True" && c.observed_generation == s.metadata.generation
            })
        },
    )
    .await
    .expect("Stalled");
    let c = condition(&stalled, "Stalled").expect("Stalled");
    assert_eq!(c.reason, "InvalidSpec");
    assert!(c.message.contains("spec.nats.config"), "{}", c.message);
    assert!(c.message.contains("max_payloadd"), "{}", c.message);
    // Nothing rolled: same pod, same ConfigMap.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pod = nats_pod(&pods).await.expect("nats pod");
    assert_eq!(
        pod.metadata.uid.as_deref(),
        Some(uid.as_str()),
        "the pod was not replaced"
    );
    let after = config_maps
        .get(&format!("{STACK}-nats-config"))
        .await
        .expect("config map")
        .data;
    assert_eq!(
        after, before,
        "the rejected config never reached the ConfigMap"
    );

    // A key we own: refused by validation, naming the key.
    let mut owned = spec.clone();
    if let Some(nats) = owned.nats.as_mut() {
        nats.config.insert("Listen".into(), "0.0.0.0:4333".into());
    }
    apply_stack(&stacks, STACK, owned).await.expect("apply");
    let stalled = wait_stack(
        &stacks,
        STACK,
        "is Stalled naming the owned key",
        Duration::from_secs(60),
        |s| {
            condition(s, "Stalled").is_some_and(|c| {
                c.status == "True"
                    && c.observed_generation == s.metadata.generation
                    && c.message.contains("spec.nats.config[\"Listen\"]")
            })
        },
    )
    .await
    .expect("Stalled naming Listen");
    assert!(describe(&stalled).contains("set by the reconciler"));
    ns.cleanup().await;
}
