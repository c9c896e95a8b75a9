//! User/password authentication against a real nats-server with a FLEET
//! account, and the errors when it goes wrong.

mod common;

use common::*;
use fleet_agent::connection::{self, ConnectError, ConnectionSettings};
use fleet_agent::{CredentialSource, PasswordSource, Secret, UserPassword};
use fleet_proto::client;
use fleet_testkit::NatsServer;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

fn settings(url: &str) -> ConnectionSettings {
    ConnectionSettings {
        url: url.to_string(),
        agent_id: id("agent-0"),
        connect_timeout: Duration::from_secs(2),
        reconnect_max_delay: Duration::from_millis(300),
        tls: Default::default(),
    }
}

async fn probe_client(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password("probe".into(), "probe-s3cret".into())
        .connect(url)
        .await
        .expect("probe user connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_authenticates_with_user_and_password() {
    let server = NatsServer::start(AUTH_CONFIG).unwrap();
    let creds = UserPassword::new("agent", PasswordSource::Inline(Secret::new("agent-s3cret")));
    let agent = spawn_agent(test_config("agent-0", &server.url()), Arc::new(creds)).await;
    wait_until("agent ready", TIMEOUT, || agent.readiness.is_ready()).await;

    let nc = probe_client(&server.url()).await;
    let reply = client::ping(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    assert_eq!(reply.agent_id, id("agent-0"));

    // The server sees the agent as user `agent` under its connection name.
    let (_, connz) = http_get(monitor_addr(&server.monitor_url()), "/connz?auth=true").unwrap();
    assert!(
        connz.contains("\"name\": \"fleet-agent/agent-0\""),
        "{connz}"
    );
    assert!(connz.contains("\"authorized_user\": \"agent\""), "{connz}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error_without_the_password() {
    let server = NatsServer::start(AUTH_CONFIG).unwrap();
    let creds = UserPassword::new(
        "agent",
        PasswordSource::Inline(Secret::new("wrong-pass-123")),
    );
    let err = connection::connect(&settings(&server.url()), Arc::new(creds))
        .await
        .expect_err("wrong password is refused");
    assert!(matches!(err, ConnectError::Refused { .. }), "{err:?}");
    assert!(err.is_auth());
    let text = format!("{err} / {err:?}");
    assert!(text.contains("user agent"), "{text}");
    assert!(text.contains(&server.url()), "{text}");
    assert!(text.contains("authorization violation"), "{text}");
    assert!(!text.contains("wrong-pass-123"), "password leaked: {text}");

    // No credentials at all on a server that requires them: same error kind.
    let err = connection::connect(&settings(&server.url()), Arc::new(fleet_agent::Anonymous))
        .await
        .expect_err("anonymous is refused");
    assert!(matches!(err, ConnectError::Refused { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_password_file_is_a_credentials_error() {
    let server = NatsServer::start(AUTH_CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file");
    let creds = UserPassword::new("agent", PasswordSource::File(missing.clone()));
    let err = connection::connect(&settings(&server.url()), Arc::new(creds))
        .await
        .expect_err("missing password file fails the connect");
    assert!(matches!(err, ConnectError::Credentials { .. }), "{err:?}");
    assert!(format!("{err}").contains("user agent"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_retries_and_picks_up_a_fixed_password_file() {
    // A Secret mounted as a file, first wrong, then corrected in place: the
    // agent is never ready with the wrong one and becomes ready once the
    // file is fixed, without a restart (credentials are read per attempt).
    let server = NatsServer::start(AUTH_CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "wrong\n").unwrap();
    let creds = UserPassword::new("agent", PasswordSource::File(file.clone()));
    let agent = spawn_agent(test_config("agent-0", &server.url()), Arc::new(creds)).await;

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        agent.readiness.check(),
        Err(fleet_agent::NotReady::NeverConnected),
        "must not be ready with a wrong password"
    );
    let (status, body) = http_get(agent.http_addr.unwrap(), "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected"), "{body}");

    std::fs::write(&file, "agent-s3cret\n").unwrap();
    wait_until("agent ready after the password fix", TIMEOUT, || {
        agent.readiness.is_ready()
    })
    .await;
    let nc = probe_client(&server.url()).await;
    client::ping(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    agent.stop().await;
}

#[tokio::test]
async fn describe_names_user_and_file_only() {
    let creds = UserPassword::new("agent", PasswordSource::File("/run/secrets/nats".into()));
    assert_eq!(
        creds.describe(),
        "user agent (password from file /run/secrets/nats)"
    );
}

/// The least privileges the README documents: the agent may only receive
/// its own commands, answer them and publish its own heartbeat; the probe
/// may only send commands and read replies and heartbeats.
const LEAST_PRIVILEGE_CONFIG: &str = r#"
accounts {
  FLEET {
    users: [
      { user: agent, password: "agent-s3cret", permissions: {
          publish: { allow: ["fleet.agent.agent-0.heartbeat"] }
          subscribe: { allow: ["fleet.agent.agent-0.cmd.>"] }
          allow_responses: true
      } }
      { user: probe, password: "probe-s3cret", permissions: {
          publish: { allow: ["fleet.agent.*.cmd.>"] }
          subscribe: { allow: ["_INBOX.>", "fleet.agent.*.heartbeat"] }
      } }
    ]
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_with_least_privilege_permissions() {
    use futures::StreamExt;
    let server = NatsServer::start(LEAST_PRIVILEGE_CONFIG).unwrap();
    let nc = probe_client(&server.url()).await;
    let mut heartbeats = nc
        .subscribe(fleet_proto::subjects::ALL_HEARTBEATS)
        .await
        .unwrap();
    nc.flush().await.unwrap();

    let creds = UserPassword::new("agent", PasswordSource::Inline(Secret::new("agent-s3cret")));
    let mut config = test_config("agent-0", &server.url());
    config.heartbeat_interval = Duration::from_millis(100);
    let agent = spawn_agent(config, Arc::new(creds)).await;
    wait_until("agent ready", TIMEOUT, || agent.readiness.is_ready()).await;

    client::ping(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    client::info(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    let hb = tokio::time::timeout(TIMEOUT, heartbeats.next())
        .await
        .expect("a heartbeat passes the permissions")
        .unwrap();
    assert_eq!(hb.subject.as_str(), "fleet.agent.agent-0.heartbeat");
    let report = agent.stop().await;
    assert!(report.connection_closed, "{report:?}");
    assert!(!server.log().contains("Violation"), "{}", server.log());
}
