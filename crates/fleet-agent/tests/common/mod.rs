//! Helpers shared by the integration tests: run an in-process agent against
//! a real nats-server, wait for conditions, tiny HTTP GET.
#![allow(dead_code)] // each test binary uses a different subset

use fleet_agent::{Agent, AgentConfig, CredentialSource, Readiness, RunReport};
use fleet_proto::AgentId;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server config with a FLEET account holding the agent's and a
/// requester's users.
pub const AUTH_CONFIG: &str = r#"
accounts {
  FLEET {
    users: [
      { user: agent, password: "agent-s3cret" }
      { user: probe, password: "probe-s3cret" }
    ]
  }
}
"#;

pub fn id(s: &str) -> AgentId {
    AgentId::new(s).expect("valid test id")
}

/// A config for tests: fast reconnects, HTTP on an ephemeral port.
pub fn test_config(agent: &str, url: &str) -> AgentConfig {
    let mut config = AgentConfig::new(id(agent), url);
    config.http_addr = Some("127.0.0.1:0".parse().unwrap());
    config.reconnect_max_delay = Duration::from_millis(300);
    config.connect_timeout = Duration::from_secs(2);
    config
}

pub struct RunningAgent {
    pub readiness: Arc<Readiness>,
    pub http_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<RunReport, fleet_agent::AgentError>>,
}

impl RunningAgent {
    pub async fn stop(self) -> RunReport {
        self.shutdown.cancel();
        self.task
            .await
            .expect("agent task panicked")
            .expect("agent run failed")
    }
}

pub async fn spawn_agent(config: AgentConfig, creds: Arc<dyn CredentialSource>) -> RunningAgent {
    let agent = Agent::bind(config, creds).await.expect("agent binds");
    let readiness = agent.readiness();
    let http_addr = agent.http_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(agent.run(shutdown.clone()));
    RunningAgent {
        readiness,
        http_addr,
        shutdown,
        task,
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn plain_client(url: &str) -> async_nats::Client {
    async_nats::connect(url)
        .await
        .expect("test client connects")
}

/// `GET path` over HTTP/1.0 (no chunking, connection closes at the end).
/// Returns the status code and body, or None when nothing listens.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// `http://127.0.0.1:port` -> socket address.
pub fn monitor_addr(monitor_url: &str) -> SocketAddr {
    monitor_url
        .trim_start_matches("http://")
        .parse()
        .expect("monitor url is host:port")
}
