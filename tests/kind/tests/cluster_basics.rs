//! The first end-to-end test: proves the cluster in KUBECONFIG runs the
//! project's own images, that the API serves their logs, and that a Service
//! is reachable by its DNS name from another pod. Every later e2e test
//! builds on these three facts.

use std::time::Duration;

use fleet_e2e::{TestNamespace, image, pod_logs, wait_pod_phase};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::PostParams;

fn pod(name: &str, args: &[&str], labels: serde_json::Value, restart: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": restart,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main",
                "image": image("fleet-netcheck"),
                "imagePullPolicy": "IfNotPresent",
                "args": args,
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .expect("static pod manifest")
}

#[tokio::test]
async fn project_image_runs_and_service_resolves_by_dns() {
    let ns = TestNamespace::create("basics")
        .await
        .expect("test namespace");
    let pods = ns.api::<Pod>();
    let pp = PostParams::default();

    // 1. A pod from a project-built image; its output read back through the API.
    pods.create(
        &pp,
        &pod(
            "echo",
            &["echo", "fleetstack", "e2e"],
            serde_json::json!({}),
            "Never",
        ),
    )
    .await
    .expect("create echo pod");
    wait_pod_phase(&pods, "echo", "Succeeded", Duration::from_secs(60))
        .await
        .expect("echo pod completes");
    let logs = pod_logs(&pods, "echo").await.expect("echo logs");
    assert_eq!(logs.trim(), "fleetstack e2e");

    // 2. A Service in front of a server pod, reached by DNS name from a client pod.
    pods.create(
        &pp,
        &pod(
            "web",
            &["serve", "8080"],
            serde_json::json!({"app": "web"}),
            "Always",
        ),
    )
    .await
    .expect("create web pod");
    let svc: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("static service manifest");
    ns.api::<Service>()
        .create(&pp, &svc)
        .await
        .expect("create service");
    wait_pod_phase(&pods, "web", "Running", Duration::from_secs(60))
        .await
        .expect("web pod runs");

    let fqdn = format!("http://web.{}.svc.cluster.local/", ns.name);
    for (name, url) in [
        ("client-fqdn", fqdn.as_str()),
        ("client-short", "http://web/"),
    ] {
        pods.create(
            &pp,
            &pod(name, &["get", url, "45"], serde_json::json!({}), "Never"),
        )
        .await
        .expect("create client pod");
        let outcome = wait_pod_phase(&pods, name, "Succeeded", Duration::from_secs(75)).await;
        let logs = pod_logs(&pods, name).await.unwrap_or_default();
        outcome.unwrap_or_else(|e| panic!("{name} could not GET {url}: {e}\nlogs: {logs}"));
        assert_eq!(
            logs.trim(),
            "hello from web",
            "{name} got an unexpected answer from {url}"
        );
    }

    ns.cleanup().await;
}
