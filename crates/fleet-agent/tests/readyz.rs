//! `/healthz` and `/readyz` follow the NATS connection.

mod common;

use common::*;
use fleet_agent::Anonymous;
use fleet_testkit::NatsServer;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_with_the_server() {
    let mut server = NatsServer::start_plain().unwrap();
    let agent = spawn_agent(
        test_config("ready-agent", &server.url()),
        Arc::new(Anonymous),
    )
    .await;
    let http = agent.http_addr.expect("HTTP enabled");
    let status = |path: &'static str| move || http_get(http, path).map(|(s, _)| s);

    wait_until("readyz 200", TIMEOUT, || status("/readyz")() == Some(200)).await;
    assert_eq!(status("/healthz")(), Some(200));

    server.stop();
    wait_until("readyz 503 while the server is down", TIMEOUT, || {
        status("/readyz")() == Some(503)
    })
    .await;
    let (_, body) = http_get(http, "/readyz").unwrap();
    assert!(
        body.contains("disconnected") || body.contains("pending"),
        "{body}"
    );
    assert_eq!(status("/healthz")(), Some(200), "alive even when not ready");

    let server = tokio::task::spawn_blocking(move || {
        server.restart().expect("restart");
        server
    })
    .await
    .unwrap();
    wait_until("readyz 200 after restart", TIMEOUT, || {
        status("/readyz")() == Some(200)
    })
    .await;

    // After the drain the HTTP server is gone too.
    agent.stop().await;
    assert_eq!(status("/readyz")(), None, "HTTP server stopped after drain");
    drop(server);
}
