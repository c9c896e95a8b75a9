//! NATS server metrics against a real nats-server on loopback: the values
//! the operator serves on `/metrics` are the server's own (connections we
//! opened, messages we sent, JetStream enabled), a target that does not
//! answer reads `up 0` with no stale series, and the poll loop notices a
//! server that stops and comes back.

use std::time::Duration;

use fleet_operator::Metrics;
use fleet_operator::nats_monitor::{self, MonitorConfig};
use fleet_runtime::http::{MetricsSource, render};
use fleet_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

/// The value of the one sample whose line starts with `prefix` (name and
/// labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `check` on the rendered metrics every 100 ms, for at most 15 s.
async fn until(metrics: &Metrics, what: &str, check: impl Fn(&str) -> bool) -> String {
    for _ in 0..150 {
        let text = render(metrics.registry());
        if check(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}; last /metrics:\n{}", render(metrics.registry()));
}

#[tokio::test]
async fn exported_values_are_the_servers_own() {
    let server = NatsServer::start("server_name: metrics-test\njetstream { store_dir: \"js\" }")
        .expect("nats-server starts");
    let a = async_nats::connect(server.url()).await.expect("client a");
    let b = async_nats::connect(server.url()).await.expect("client b");
    let mut sub = b.subscribe("metrics.test").await.expect("subscribe");
    b.flush().await.expect("flush b");
    // Published on the subscriber's own connection: the server reads its
    // SUB before these PUBs, so all five are delivered. (From `a`, a PUB
    // can overtake `b`'s SUB: flush only writes, it does not wait for the
    // server, and the test once hung waiting for messages never routed.)
    for i in 0..5 {
        b.publish("metrics.test", format!("m{i}").into())
            .await
            .expect("publish");
    }
    b.flush().await.expect("flush b");
    for i in 0..5 {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures::StreamExt::next(&mut sub),
        )
        .await
        .unwrap_or_else(|_| panic!("message {i} not delivered within 10 s\n{}", server.log()))
        .expect("message");
    }
    a.flush().await.expect("client a still connected");

    let http = reqwest::Client::new();
    let snapshot = nats_monitor::poll(&http, &server.monitor_url())
        .await
        .expect("the monitoring endpoint answers");
    assert_eq!(snapshot.server, "metrics-test");
    assert_eq!(snapshot.connections, 2);
    assert!(snapshot.in_msgs_total >= 5, "{snapshot:?}");
    assert!(snapshot.out_msgs_total >= 5, "{snapshot:?}");
    assert!(snapshot.subscriptions >= 1, "{snapshot:?}");
    assert!(snapshot.jetstream_enabled, "{snapshot:?}");
    assert_eq!(snapshot.routes, 0);
    assert!(snapshot.memory_bytes > 0, "{snapshot:?}");

    let dead = "http://127.0.0.1:1";
    let err = nats_monitor::poll(&http, dead).await.unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1/"), "{err}");

    let metrics = Metrics::new();
    metrics
        .nats
        .record(&server.monitor_url(), Some(snapshot.clone()));
    metrics.nats.record(dead, None);
    let text = render(metrics.registry());
    let up = format!(
        "fleet_operator_nats_up{{target=\"{}\"}}",
        server.monitor_url()
    );
    assert_eq!(sample(&text, &up), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "fleet_operator_nats_up{target=\"http://127.0.0.1:1\"}"
        ),
        Some(0.0),
        "{text}"
    );
    let s = "{server=\"metrics-test\"}";
    assert_eq!(
        sample(&text, &format!("fleet_operator_nats_connections{s}")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("fleet_operator_nats_in_msgs_total{s}")),
        Some(snapshot.in_msgs_total as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("fleet_operator_nats_jetstream_enabled{s}")),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE fleet_operator_nats_in_msgs counter"),
        "{text}"
    );
    assert!(
        text.contains("fleet_operator_nats_server_info{server=\"metrics-test\",version=\"2."),
        "{text}"
    );
    // Every exported name appears, and only those (the dashboard test
    // relies on exported_names()).
    for name in nats_monitor::exported_names() {
        assert!(
            text.contains(&format!("\n{name}{{")),
            "{name} missing:\n{text}"
        );
    }
    // The dead target has no series but `up`.
    assert_eq!(text.matches("target=").count(), 2, "{text}");
}

#[tokio::test]
async fn the_poll_loop_follows_the_server_down_and_up() {
    let mut server = NatsServer::start("server_name: loop-test").expect("nats-server starts");
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let config = MonitorConfig {
        urls: vec![server.monitor_url()],
        interval: Duration::from_secs(1),
    };
    let task = tokio::spawn(nats_monitor::run(
        config,
        metrics.nats.clone(),
        shutdown.clone(),
    ));
    let up = format!(
        "fleet_operator_nats_up{{target=\"{}\"}}",
        server.monitor_url()
    );
    let series = "fleet_operator_nats_connections{server=\"loop-test\"}";
    let text = until(&metrics, "the first poll lands", |t| {
        sample(t, &up) == Some(1.0)
    })
    .await;
    assert_eq!(sample(&text, series), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "fleet_operator_nats_jetstream_enabled{server=\"loop-test\"}"
        ),
        Some(0.0),
        "JetStream is off in this server: {text}"
    );

    server.stop();
    let text = until(&metrics, "the stopped server reads up 0", |t| {
        sample(t, &up) == Some(0.0)
    })
    .await;
    assert_eq!(sample(&text, series), None, "stale series left: {text}");

    server.restart().expect("nats-server restarts");
    let client = async_nats::connect(server.url()).await.expect("connect");
    client.flush().await.expect("flush");
    until(&metrics, "the restarted server is polled again", |t| {
        sample(t, &up) == Some(1.0) && sample(t, series) == Some(1.0)
    })
    .await;
    shutdown.cancel();
    task.await.expect("the poll loop ends on shutdown");
}
