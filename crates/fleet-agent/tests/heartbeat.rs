//! Heartbeat cadence, counted over a window with tolerance.

mod common;

use common::*;
use fleet_agent::Anonymous;
use fleet_proto::{decode_heartbeat, subjects};
use fleet_testkit::NatsServer;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_arrive_at_the_configured_interval() {
    let server = NatsServer::start_plain().unwrap();
    let nc = plain_client(&server.url()).await;
    // The operator's view: every agent's heartbeat.
    let mut sub = nc.subscribe(subjects::ALL_HEARTBEATS).await.unwrap();
    nc.flush().await.unwrap();

    let mut config = test_config("hb-agent", &server.url());
    config.heartbeat_interval = Duration::from_millis(200);
    config.labels = [("role".to_string(), "edge".to_string())].into();
    let agent = spawn_agent(config, Arc::new(Anonymous)).await;

    // 3 s window at 200 ms: 15 expected (16 counting the immediate first).
    // Wide tolerance: the assertion is about the cadence, not the timer.
    let window = Duration::from_secs(3);
    let mut beats = Vec::new();
    let _ = tokio::time::timeout(window, async {
        while let Some(msg) = sub.next().await {
            let agent = subjects::heartbeat_agent(&msg.subject).expect("heartbeat subject");
            let hb = decode_heartbeat(&msg.payload).expect("valid heartbeat");
            assert_eq!(hb.agent_id, agent);
            beats.push(hb);
        }
    })
    .await;
    assert!(
        (11..=18).contains(&beats.len()),
        "{} heartbeats in {window:?} at 200 ms",
        beats.len()
    );
    let first = &beats[0];
    assert_eq!(first.seq, 0, "first heartbeat goes out at start");
    assert_eq!(first.interval_ms, 200);
    assert_eq!(first.labels.get("role").map(String::as_str), Some("edge"));
    for pair in beats.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gap while connected");
        assert!(pair[1].uptime_ms > pair[0].uptime_ms);
    }

    let report = agent.stop().await;
    assert!(report.heartbeats_sent >= beats.len() as u64, "{report:?}");
    // Stopped means stopped: nothing more within two intervals.
    let late = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(late.is_err(), "heartbeat after shutdown: {late:?}");
}
