//! Start-up and shutdown edges: no server yet, bad configuration.

mod common;

use common::*;
use fleet_agent::{Anonymous, NotReady};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_late_server_and_stops_cleanly_before_connecting() {
    // A port with nothing listening: the agent keeps retrying, stays alive
    // (healthz) and not ready, and a shutdown ends the retry loop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = spawn_agent(
        test_config("early-agent", &format!("nats://127.0.0.1:{port}")),
        Arc::new(Anonymous),
    )
    .await;
    let http = agent.http_addr.unwrap();
    wait_until("healthz answers", Duration::from_secs(5), || {
        http_get(http, "/healthz").map(|(s, _)| s) == Some(200)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agent.readiness.check(), Err(NotReady::NeverConnected));
    assert_eq!(http_get(http, "/readyz").map(|(s, _)| s), Some(503));

    // The deadline only catches a hang; it is not a performance check.
    let report = tokio::time::timeout(Duration::from_secs(5), agent.stop())
        .await
        .expect("shutdown ends the connect loop");
    assert!(!report.connected, "{report:?}");
}

#[test]
fn binary_reports_configuration_errors_by_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_fleet-agent"))
        .env_clear()
        .env("FLEET_AGENT_ID", "cfg-agent")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FLEET_NATS_URL"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_fleet-agent"))
        .env_clear()
        .env("FLEET_AGENT_ID", "cfg-agent")
        .env("FLEET_NATS_URL", "nats://127.0.0.1:1")
        .env("FLEET_NATS_USER", "agent")
        .env("FLEET_NATS_PASSWORD", "top-secret-value")
        .env("FLEET_NATS_PASSWORD_FILE", "/run/p")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FLEET_NATS_PASSWORD and FLEET_NATS_PASSWORD_FILE"),
        "{stderr}"
    );
    assert!(!stderr.contains("top-secret-value"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_server_is_down_is_bounded_by_the_drain_timeout() {
    // A node going away together with NATS: the drain cannot reach the
    // server, and must give up after FLEET_DRAIN_TIMEOUT instead of hanging.
    let mut server = fleet_testkit::NatsServer::start_plain().unwrap();
    let mut config = test_config("orphan-agent", &server.url());
    config.drain_timeout = Duration::from_millis(500);
    let agent = spawn_agent(config, Arc::new(Anonymous)).await;
    wait_until("agent ready", Duration::from_secs(10), || {
        agent.readiness.is_ready()
    })
    .await;
    server.stop();
    wait_until("agent disconnected", Duration::from_secs(10), || {
        !agent.readiness.is_ready()
    })
    .await;

    // Hang detector only (2 x drain timeout + slack), not a performance check.
    let report = tokio::time::timeout(Duration::from_secs(5), agent.stop())
        .await
        .expect("shutdown is bounded while the server is down");
    assert!(report.connected, "{report:?}");
    assert!(
        !report.connection_closed,
        "nothing to close cleanly: {report:?}"
    );
}
