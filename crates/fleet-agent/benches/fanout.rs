//! Ping fan-out benchmark: N agents as tasks in this process, each with its
//! own NATS connection, one nats-server on loopback, one requester pinging
//! all N concurrently (`fleet_proto::client::ping_all`). Reports p50/p99 of
//! the whole fan-out (time until the last of the N replies) and throughput.
//!
//! Run: `cargo bench -p fleet-agent --bench fanout` (needs `ulimit -n` above
//! ~2 x 1000 + slack; the agents and the server share this machine).

use fleet_agent::{Agent, AgentConfig, Anonymous, Readiness};
use fleet_proto::AgentId;
use fleet_proto::client::ping_all;
use fleet_testkit::NatsServer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const PING_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    // 1000 agents = 1000 client sockets here and 1000 in nats-server.
    let files = open_files_limit();
    println!("open files limit (soft): {files}");
    if files.parse::<u64>().is_ok_and(|n| n < 2_500) {
        println!("warning: raise `ulimit -n` above 2500 for the 1000-agent run");
    }
    let server = NatsServer::start_plain().expect("nats-server starts");
    println!("ping fan-out, one nats-server on loopback, agents as tasks in one process");
    println!(
        "{:>6} {:>7} {:>10} {:>10} {:>10} {:>14} {:>12} {:>12}",
        "agents", "rounds", "p50", "p99", "max", "pings/s", "cpu us/ping", "server us"
    );
    println!("(cpu us/ping: this process = agents + requester; server us: nats-server)");
    for (agents, rounds) in [(1usize, 500usize), (100, 200), (1000, 100)] {
        bench(&server, agents, rounds).await;
    }
    // The machine is shared: say how busy it was, so numbers can be read.
    println!("load average: {}", load_average());
}

/// User + system CPU seconds of a process, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" closing the command name; utime and stime are
    // the 14th and 15th fields of the line (12th and 13th after it).
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn open_files_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn bench(server: &NatsServer, n: usize, rounds: usize) {
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::with_capacity(n);
    let mut readiness: Vec<Arc<Readiness>> = Vec::with_capacity(n);
    let ids: Vec<AgentId> = (0..n)
        .map(|i| AgentId::new(format!("bench-{n}-{i}")).expect("valid id"))
        .collect();
    for id in &ids {
        let config = AgentConfig::new(id.clone(), server.url()); // default 10 s heartbeats, no HTTP
        let agent = Agent::bind(config, Arc::new(Anonymous))
            .await
            .expect("bind");
        readiness.push(agent.readiness());
        tasks.push(tokio::spawn(agent.run(shutdown.clone())));
    }
    let started = Instant::now();
    while !readiness.iter().all(|r| r.is_ready()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "agents not ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let nc = async_nats::connect(server.url())
        .await
        .expect("requester connects");
    // Warm-up: connections, the requester's response subscription, caches.
    for _ in 0..5 {
        check(ping_all(&nc, &ids, PING_TIMEOUT).await, n);
    }
    let mut samples = Vec::with_capacity(rounds);
    let server_pid = server.pid().expect("server running");
    let cpu_before = (cpu_time(std::process::id()), cpu_time(server_pid));
    let total = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        let results = ping_all(&nc, &ids, PING_TIMEOUT).await;
        samples.push(t.elapsed());
        check(results, n);
    }
    let total = total.elapsed();
    let pings = (n * rounds) as f64;
    let cpu_self = (cpu_time(std::process::id()) - cpu_before.0) / pings;
    let cpu_server = (cpu_time(server_pid) - cpu_before.1) / pings;
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "{:>6} {:>7} {:>10.2?} {:>10.2?} {:>10.2?} {:>14.0} {:>12.1} {:>12.1}",
        n,
        rounds,
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1],
        pings / total.as_secs_f64(),
        cpu_self * 1e6,
        cpu_server * 1e6,
    );

    shutdown.cancel();
    for t in tasks {
        t.await.expect("agent task").expect("agent run");
    }
}

fn check(results: Vec<Result<fleet_proto::PingReply, fleet_proto::client::ClientError>>, n: usize) {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {n} pings failed, e.g. {}",
        failed.len(),
        failed[0]
    );
}
