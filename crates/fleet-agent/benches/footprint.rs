//! Footprint of the real `fleet-agent` binary (built with the bench
//! profile, i.e. release): start-to-ready (process spawn -> `/readyz` 200)
//! and idle RSS (VmRSS from /proc after a few idle seconds).
//!
//! Run: `cargo bench -p fleet-agent --bench footprint`.

use fleet_testkit::NatsServer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTS: usize = 30;
const IDLE: Duration = Duration::from_secs(5);

fn main() {
    let server = NatsServer::start_plain().expect("nats-server starts");
    let binary = env!("CARGO_BIN_EXE_fleet-agent");
    println!("binary: {binary}");

    let mut samples = Vec::with_capacity(STARTS);
    for i in 0..STARTS {
        let (mut child, http) = spawn(binary, &server, &format!("start-{i}"));
        let t = Instant::now();
        wait_ready(&mut child, http, t);
        samples.push(t.elapsed());
        stop(child);
    }
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "start-to-ready over {STARTS} starts: min {:.1?} p50 {:.1?} p99 {:.1?} max {:.1?}",
        samples[0],
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1]
    );

    let (mut child, http) = spawn(binary, &server, "idle");
    wait_ready(&mut child, http, Instant::now());
    std::thread::sleep(IDLE);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "idle after {IDLE:?} (connected, subscribed, 10 s heartbeats): VmRSS {} (VmHWM {}, threads {})",
        field("VmRSS:"),
        field("VmHWM:"),
        field("Threads:")
    );
    stop(child);
}

fn spawn(binary: &str, server: &NatsServer, id: &str) -> (Child, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(binary)
        .env_clear()
        .env("FLEET_AGENT_ID", id)
        .env("FLEET_NATS_URL", server.url())
        .env("FLEET_HTTP_ADDR", http.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent binary starts");
    (child, http)
}

fn wait_ready(child: &mut Child, http: SocketAddr, since: Instant) {
    loop {
        if ready(http) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("agent exited early: {status}");
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "agent not ready in 10 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ready(http: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(http) else {
        return false;
    };
    if write!(s, "GET /readyz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200")
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
}
