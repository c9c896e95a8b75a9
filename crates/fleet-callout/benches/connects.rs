//! Connect throughput and latency through the auth callout, beside plain
//! user/password connects, measured in the same run on loopback.
//!
//! `cargo bench -p fleet-callout --bench connects` (optimized build). Env:
//! `BENCH_CONNECTS` (connects per measurement, default 2000) and
//! `BENCH_CONCURRENCY` (parallel connectors for the throughput figure,
//! default 16), `BENCH_CALLOUT_CONNECTIONS` (connections the callout serves
//! on, default 1). Targets (issue 5): callout/plain connects-per-second ratio
//! >= 0.5; p99 connect latency through the callout <= 20 ms with JWKS cached.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Stack, StackOptions};
use fleet_testkit::NatsServer;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone)]
enum Auth {
    Token(String),
    UserPass,
    /// A token over TLS, verified with the CA in this file.
    TlsToken(String, std::path::PathBuf),
}

async fn connect_once(url: &str, auth: &Auth) -> Duration {
    let opts = match auth {
        Auth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
        Auth::UserPass => {
            async_nats::ConnectOptions::with_user_and_password("plain".into(), "plain-pw".into())
        }
        Auth::TlsToken(t, ca) => fleet_proto::client::ClientTls::with_ca_file(ca)
            .apply(async_nats::ConnectOptions::with_token(t.clone())),
    };
    let started = Instant::now();
    let client = opts
        .max_reconnects(Some(1))
        .connect(url)
        .await
        .expect("bench connect succeeds");
    let elapsed = started.elapsed();
    drop(client);
    elapsed
}

/// CPU time (user + system) consumed so far by process `pid` ("self" for
/// this one), from /proc; Linux only, `None` elsewhere.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Runs `f` and reports the CPU it cost in the server process `server_pid`
/// and in this process (clients, and the callout when in-process).
async fn with_cpu<F: std::future::Future<Output = Run>>(
    server_pid: u32,
    f: F,
) -> (Run, Duration, Duration) {
    let pid = server_pid.to_string();
    let (s0, b0) = (cpu_time(&pid), cpu_time("self"));
    let run = f.await;
    let (s1, b1) = (cpu_time(&pid), cpu_time("self"));
    let diff = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    (run, diff(s0, s1), diff(b0, b1))
}

struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// `total` connects spread over `concurrency` tasks.
async fn measure(url: &str, auth: &Auth, total: usize, concurrency: usize) -> Run {
    let started = Instant::now();
    let per_task = total / concurrency;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let url = url.to_string();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                lat.push(connect_once(&url, &auth).await);
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Run {
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: *all.last().expect("samples"),
    }
}

fn print(label: &str, r: &Run) {
    println!(
        "{label:<34} {:>8.0} connects/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        r.per_second,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.max.as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let total = env_usize("BENCH_CONNECTS", 2000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 16).max(1);

    let connections = env_usize("BENCH_CALLOUT_CONNECTIONS", 1).max(1);
    let stack = Stack::start(StackOptions {
        connections,
        ..StackOptions::default()
    })
    .await;
    let token = stack.token_for("agent-a", "secret-a").await;
    let plain = tokio::task::spawn_blocking(|| {
        NatsServer::start(r#"authorization { users: [ { user: plain, password: "plain-pw" } ] }"#)
    })
    .await
    .expect("join")
    .expect("plain nats-server starts");

    let callout = Auth::Token(token);
    let plain_auth = Auth::UserPass;
    // Warm up both paths (JWKS is cached after the first callout connect).
    measure(&stack.nats.url(), &callout, 50, 1).await;
    measure(&plain.url(), &plain_auth, 50, 1).await;
    let jwks_fetches = stack.metrics.idp_calls("jwks", "ok");

    println!(
        "connects: {total} per measurement; loopback; callout in-process on {connections} connection(s); token EdDSA JWT"
    );
    let seq_total = total / 2;
    let p_seq = measure(&plain.url(), &plain_auth, seq_total, 1).await;
    let c_seq = measure(&stack.nats.url(), &callout, seq_total, 1).await;
    let plain_pid = plain.pid().expect("plain server running");
    let callout_pid = stack.nats.pid().expect("callout server running");
    let (p_par, p_srv, p_self) = with_cpu(
        plain_pid,
        measure(&plain.url(), &plain_auth, total, concurrency),
    )
    .await;
    let (c_par, c_srv, c_self) = with_cpu(
        callout_pid,
        measure(&stack.nats.url(), &callout, total, concurrency),
    )
    .await;

    print("plain user/password, sequential", &p_seq);
    print("callout token, sequential", &c_seq);
    print(
        &format!("plain user/password, {concurrency} parallel"),
        &p_par,
    );
    print(&format!("callout token, {concurrency} parallel"), &c_par);

    // The same callout connects over TLS (issue 14): a second stack whose
    // nats-server serves TLS only, measured right after, same sizes.
    let tls_stack = Stack::start(StackOptions {
        connections,
        tls: true,
        ..StackOptions::default()
    })
    .await;
    let tls_token = tls_stack.token_for("agent-a", "secret-a").await;
    let ca = tls_stack
        .tls_dir
        .as_ref()
        .expect("TLS stack")
        .path()
        .join("ca.crt");
    let tls_auth = Auth::TlsToken(tls_token, ca);
    measure(&tls_stack.url(), &tls_auth, 50, 1).await;
    let t_seq = measure(&tls_stack.url(), &tls_auth, seq_total, 1).await;
    let t_par = measure(&tls_stack.url(), &tls_auth, total, concurrency).await;
    print("callout token over TLS, sequential", &t_seq);
    print(
        &format!("callout token over TLS, {concurrency} par."),
        &t_par,
    );
    println!(
        "ratio callout TLS/plaintext: sequential {:.2}, parallel {:.2}",
        t_seq.per_second / c_seq.per_second,
        t_par.per_second / c_par.per_second
    );
    let ratio_seq = c_seq.per_second / p_seq.per_second;
    let ratio_par = c_par.per_second / p_par.per_second;
    println!(
        "ratio callout/plain: sequential {ratio_seq:.2}, parallel {ratio_par:.2} (target >= 0.5)"
    );
    println!(
        "p99 through the callout: sequential {:.2} ms, parallel {:.2} ms (target <= 20 ms)",
        c_seq.p99.as_secs_f64() * 1e3,
        c_par.p99.as_secs_f64() * 1e3
    );
    // Under parallel load the machine's cores are the limit, so connects/s
    // follows the CPU each connect costs.
    let per = |d: Duration| d.as_secs_f64() * 1e3 / total as f64;
    println!(
        "CPU per connect (parallel run): plain: server {:.3} ms + bench process {:.3} ms; \
         callout: server {:.3} ms + bench process incl. callout {:.3} ms",
        per(p_srv),
        per(p_self),
        per(c_srv),
        per(c_self)
    );
    println!(
        "cores available: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "JWKS fetches during the measurement: {} (cached)",
        stack.metrics.idp_calls("jwks", "ok") - jwks_fetches
    );
    let denied: u64 = [
        "expired",
        "bad_signature",
        "unknown_key",
        "timeout",
        "idp_unavailable",
    ]
    .iter()
    .map(|r| stack.metrics.decisions("denied", r))
    .sum();
    // Mean time inside the callout per decision (request received -> answer
    // ready), from its own histogram: the rest of a connect is nats-server
    // and client work.
    let text = stack.metrics.encode();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .map(|v| v.trim().parse::<f64>().unwrap_or(0.0))
            })
            .unwrap_or(0.0)
    };
    let sum = value("fleet_callout_decision_duration_seconds_sum ");
    let count = value("fleet_callout_decision_duration_seconds_count ");
    println!(
        "callout decisions: {} allowed, {denied} denied; mean time in the callout {:.3} ms",
        stack.metrics.decisions("allowed", "ok"),
        if count > 0.0 { sum / count * 1e3 } else { 0.0 }
    );
}
