//! The `fleet-operator` binary: configuration errors, probes, SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_fleet-operator");

#[test]
fn a_configuration_error_exits_2_naming_the_variable_and_not_the_password() {
    let out = Command::new(BIN)
        .env_clear()
        .env("FLEET_NATS_URL", "nats://127.0.0.1:1")
        .env("FLEET_NATS_USER", "operator")
        .env("FLEET_NATS_PASSWORD", "hunter2-secret")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FLEET_NAMESPACE"), "{stderr}");
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n")?.1.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_gets_ready_serves_metrics_and_exits_0_on_sigterm() {
    let env = TestEnv::start("op-binary").await;
    let http = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let mut child = Command::new(BIN)
        .env("FLEET_NATS_URL", env.nats.url())
        .env("FLEET_NAMESPACE", &env.ns)
        .env("FLEET_HEARTBEAT_INTERVAL", "500ms")
        .env("FLEET_AGENT_TTL", "1m")
        .env("FLEET_HTTP_ADDR", http.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while get(http, "/readyz").is_none_or(|(c, _)| c != 200) {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("operator exited early: {s}");
        }
        assert!(start.elapsed() < TIMEOUT, "not ready within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(http, "/healthz").map(|(c, _)| c), Some(200));
    let agent = env.spawn_agent("bin-agent", &[]).await;
    env.wait_agent("bin-agent", "connected", |a| {
        a.status.as_ref().is_some_and(|s| s.connected)
    })
    .await;
    // The FleetAgent write and the agents gauge are updated one after the
    // other: poll until the gauge caught up (bounded), then assert on it.
    let start = Instant::now();
    let mut metrics = String::new();
    while start.elapsed() < TIMEOUT {
        metrics = get(http, "/metrics").expect("metrics").1;
        if metrics.contains("fleet_operator_agents{state=\"connected\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("fleet_operator_heartbeats_total{result=\"accepted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleet_operator_agents{state=\"connected\"} 1"),
        "{metrics}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    agent.stop().await;
    env.teardown().await;
}
