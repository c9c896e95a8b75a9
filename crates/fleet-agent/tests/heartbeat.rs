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
    // Wide tolerance (the machine is shared): the assertion is about the
    // cadence, not the timer's precision.
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
        (8..=18).contains(&beats.len()),
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
    // Stopped means stopped, and nothing was lost on loopback: what arrived
    // (in the window and still buffered after it) is exactly what the agent
    // says it sent, and nothing comes later.
    let mut total = beats.len() as u64;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        total += 1;
    }
    assert_eq!(total, report.heartbeats_sent, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_pause_while_disconnected_and_show_the_gap() {
    let mut server = NatsServer::start_plain().unwrap();
    let mut config = test_config("gap-agent", &server.url());
    config.heartbeat_interval = Duration::from_millis(100);
    let agent = spawn_agent(config, Arc::new(Anonymous)).await;
    wait_until("agent ready", Duration::from_secs(10), || {
        agent.readiness.is_ready()
    })
    .await;

    server.stop();
    wait_until("agent disconnected", Duration::from_secs(10), || {
        !agent.readiness.is_ready()
    })
    .await;
    // ~8 ticks pass while the server is down.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    wait_until("agent ready again", Duration::from_secs(10), || {
        agent.readiness.is_ready()
    })
    .await;

    // Only heartbeats published after the reconnect reach this new observer.
    let nc = plain_client(&server.url()).await;
    let mut sub = nc
        .subscribe("fleet.agent.gap-agent.heartbeat")
        .await
        .unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("heartbeats resume")
            .unwrap();
        seqs.push(decode_heartbeat(&msg.payload).unwrap().seq);
    }
    let report = agent.stop().await;
    // Without skipping, seq would trail the number sent (seq counts from
    // 0 and every tick would send). The ~8 ticks of the outage advanced seq
    // without sending, so seq now runs ahead of the count.
    let ahead = seqs[2] as i64 - report.heartbeats_sent as i64;
    assert!(
        ahead >= 3,
        "no gap: seq {seqs:?} with {} heartbeats sent",
        report.heartbeats_sent
    );
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "consecutive once reconnected");
    }
}

/// With a long interval the first heartbeats come 1 s, 2 s and 4 s apart
/// (`heartbeat::STARTUP_GAPS`), so an operator that subscribed just after
/// the agent connected still learns about it within seconds (issue 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_heartbeats_come_quickly_then_the_interval() {
    let server = NatsServer::start_plain().unwrap();
    let nc = plain_client(&server.url()).await;
    let mut config = test_config("hb-start", &server.url());
    config.heartbeat_interval = Duration::from_secs(30);
    let agent = spawn_agent(config, Arc::new(Anonymous)).await;
    // A watcher that arrives after the first heartbeat went out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sub = nc.subscribe(subjects::ALL_HEARTBEATS).await.unwrap();
    nc.flush().await.unwrap();
    let mut seqs = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(9), async {
        while let Some(msg) = sub.next().await {
            seqs.push(decode_heartbeat(&msg.payload).unwrap().seq);
        }
    })
    .await;
    // Sent at about 0, 1, 3 and 7 s; the next only at 37 s.
    assert_eq!(seqs, vec![1, 2, 3], "heartbeats after the first: {seqs:?}");
    agent.stop().await;
}
