//! Reconnect after a server restart, with fresh credentials.

mod common;

use async_trait::async_trait;
use common::*;
use fleet_agent::{
    CredentialError, CredentialSource, Credentials, PasswordSource, Secret, UserPassword,
};
use fleet_proto::client;
use fleet_testkit::NatsServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The real user/password source, counting how often the connection asks.
struct Counting {
    inner: UserPassword,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl CredentialSource for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.credentials().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_server_restart_with_fresh_credentials() {
    let mut server = NatsServer::start(AUTH_CONFIG).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let creds = Counting {
        inner: UserPassword::new("agent", PasswordSource::Inline(Secret::new("agent-s3cret"))),
        calls: calls.clone(),
    };
    let agent = spawn_agent(test_config("agent-0", &server.url()), Arc::new(creds)).await;
    wait_until("agent ready", TIMEOUT, || agent.readiness.is_ready()).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one connect, one credential call"
    );

    server.stop();
    wait_until("agent notices the server is gone", TIMEOUT, || {
        !agent.readiness.is_ready()
    })
    .await;
    // restart() blocks while the server comes up; keep it off the runtime.
    let server = tokio::task::spawn_blocking(move || {
        server.restart().expect("server restarts");
        server
    })
    .await
    .unwrap();
    wait_until("agent ready again", TIMEOUT, || agent.readiness.is_ready()).await;
    let calls_after = calls.load(Ordering::SeqCst);
    assert!(
        calls_after >= 2,
        "credentials asked again on reconnect: {calls_after}"
    );

    let nc =
        async_nats::ConnectOptions::with_user_and_password("probe".into(), "probe-s3cret".into())
            .connect(server.url())
            .await
            .unwrap();
    // The subscription was restored: ping works (retrying NoResponders
    // while the SUB is replayed).
    client::ping(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    let info = client::info(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    assert!(info.connection.connects >= 2, "{:?}", info.connection);
    agent.stop().await;
}
