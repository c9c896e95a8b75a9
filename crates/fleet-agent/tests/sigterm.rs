//! The real `fleet-agent` binary drains and exits 0 on SIGTERM.

mod common;

use common::*;
use fleet_proto::client::{self, ClientError};
use fleet_testkit::NatsServer;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Outcomes {
    ok: usize,
    no_responders: usize,
    timed_out: usize,
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let server = NatsServer::start(AUTH_CONFIG).unwrap();
    let http_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http: std::net::SocketAddr = ([127, 0, 0, 1], http_port).into();
    let logs_dir = tempfile::tempdir().unwrap();
    let log_path = logs_dir.path().join("agent.log");
    let log_file = std::fs::File::create(&log_path).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-agent"))
        .env_clear()
        .env("FLEET_AGENT_ID", "term-agent")
        .env("FLEET_NATS_URL", server.url())
        .env("FLEET_NATS_USER", "agent")
        .env("FLEET_NATS_PASSWORD", "agent-s3cret")
        .env("FLEET_HTTP_ADDR", http.to_string())
        .env("FLEET_HEARTBEAT_INTERVAL", "100ms")
        .env("FLEET_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("agent binary starts");
    let pid = child.id();

    wait_until("binary ready", TIMEOUT, || {
        http_get(http, "/readyz").map(|(s, _)| s) == Some(200)
    })
    .await;
    let monitor = monitor_addr(&server.monitor_url());
    let (_, connz) = http_get(monitor, "/connz").unwrap();
    assert!(connz.contains("fleet-agent/term-agent"), "{connz}");

    // Requests keep flowing while the agent is told to stop: each one must
    // be answered, or refused at once (NoResponders) after the drain; an
    // error reply or garbage would mean the drain broke something.
    let nc =
        async_nats::ConnectOptions::with_user_and_password("probe".into(), "probe-s3cret".into())
            .connect(server.url())
            .await
            .unwrap();
    let stop_load = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let stop_load = stop_load.clone();
        async move {
            let mut out = Outcomes::default();
            let agent = id("term-agent");
            while !stop_load.load(Ordering::SeqCst) {
                // Short timeout, no retry window: we want the raw outcome.
                match client::ping(&nc, &agent, Duration::from_millis(500)).await {
                    Ok(_) => out.ok += 1,
                    Err(ClientError::NoResponders { .. }) => out.no_responders += 1,
                    Err(ClientError::TimedOut { .. }) => out.timed_out += 1,
                    Err(e) => out.other.push(e.to_string()),
                }
            }
            out
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // SAFETY: plain kill(2) on the child we spawned.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM) failed");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!(
                "agent did not exit within {TIMEOUT:?} of SIGTERM; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_load.store(true, Ordering::SeqCst);
    let outcomes = load.await.unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "exit status {status}; log:\n{log}");

    // The server saw the connection close (not just vanish from the list).
    let (_, open) = http_get(monitor, "/connz").unwrap();
    assert!(
        !open.contains("fleet-agent/term-agent"),
        "still open: {open}"
    );
    let (_, closed) = http_get(monitor, "/connz?state=closed").unwrap();
    assert!(closed.contains("fleet-agent/term-agent"), "{closed}");
    assert!(closed.contains("\"reason\": \"Client Closed\""), "{closed}");

    // The logs say what happened, as JSON, without the password.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |msg: &str| {
        lines
            .iter()
            .find(|l| l["message"] == msg)
            .unwrap_or_else(|| panic!("no log line {msg:?} in:\n{log}"))
    };
    assert_eq!(find("shutdown requested; draining")["signal"], "SIGTERM");
    let drained = find("agent drained; exiting");
    assert_eq!(drained["connection_closed"], true, "{drained}");
    assert_eq!(drained["drain_timed_out"], false, "{drained}");
    assert!(
        drained["heartbeats_sent"].as_u64().unwrap() >= 1,
        "{drained}"
    );
    assert!(
        drained["commands_handled"].as_u64().unwrap() >= outcomes.ok as u64,
        "{drained}"
    );
    assert!(!log.contains("agent-s3cret"), "password in the log");

    assert!(outcomes.ok > 0, "{outcomes:?}");
    assert!(
        outcomes.no_responders > 0,
        "load did not outlive the agent: {outcomes:?}"
    );
    assert!(outcomes.other.is_empty(), "{outcomes:?}");
    // A request the agent received before its UNSUB took effect is answered,
    // not dropped. (A request racing with the UNSUB itself could in theory
    // be lost inside async-nats, whose subscription drain does not wait for
    // the server's PONG; with one request in flight at a time this has not
    // been observed.)
    assert_eq!(
        outcomes.timed_out, 0,
        "requests lost in the drain: {outcomes:?}"
    );
    eprintln!("request outcomes across the drain: {outcomes:?}");
}
