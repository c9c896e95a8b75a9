//! The requester helpers against a real nats-server, with responders that
//! answer the way a broken, busy or absent agent would.

use bytes::Bytes;
use fleet_proto::client::{self, ClientError, PingSummary};
use fleet_proto::{AgentId, ErrorCode, subjects};
use fleet_testkit::NatsServer;
use futures::StreamExt;
use std::time::{Duration, Instant};

fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

/// Answers every request on `subject` with `reply` (None: never answers).
async fn responder(nc: &async_nats::Client, subject: String, reply: Option<&'static [u8]>) {
    let mut sub = nc.subscribe(subject).await.unwrap();
    nc.flush().await.unwrap();
    let nc = nc.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let (Some(reply), Some(to)) = (reply, msg.reply) {
                nc.publish(to, Bytes::from_static(reply)).await.unwrap();
            }
        }
    });
}

#[tokio::test]
async fn classifies_every_failure() {
    let server = NatsServer::start_plain().unwrap();
    let nc = async_nats::connect(server.url()).await.unwrap();
    let ping = |a: &str| subjects::command_subject(&id(a), fleet_proto::Command::Ping);

    responder(&nc, ping("garbage"), Some(b"not json")).await;
    responder(
        &nc,
        ping("refuses"),
        Some(br#"{"v":1,"error":{"code":"unknown_command","message":"nope"}}"#),
    )
    .await;
    responder(&nc, ping("future"), Some(br#"{"v":7,"ok":{}}"#)).await;
    responder(&nc, ping("silent"), None).await;
    responder(
        &nc,
        ping("good"),
        Some(br#"{"v":1,"ok":{"agent_id":"good","version":"9","uptime_ms":5,"timestamp":"2026-01-02T03:04:05Z"}}"#),
    )
    .await;

    let t = Duration::from_millis(400);
    let ok = client::ping(&nc, &id("good"), t).await.unwrap();
    assert_eq!((ok.agent_id.as_str(), ok.version.as_str()), ("good", "9"));

    let err = client::ping(&nc, &id("garbage"), t).await.unwrap_err();
    assert!(matches!(err, ClientError::BadReply { .. }), "{err}");

    let err = client::ping(&nc, &id("refuses"), t).await.unwrap_err();
    match &err {
        ClientError::Remote { error, .. } => assert_eq!(error.code, ErrorCode::UnknownCommand),
        other => panic!("expected Remote, got {other}"),
    }
    assert!(err.to_string().contains("refuses"), "{err}");

    let err = client::ping(&nc, &id("future"), t).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::BadReply { source, .. } if source.code() == ErrorCode::UnsupportedVersion),
        "{err}"
    );

    let err = client::ping(&nc, &id("silent"), t).await.unwrap_err();
    assert!(matches!(err, ClientError::TimedOut { .. }), "{err}");

    // NoResponders is retried until the deadline, then reported as such.
    let started = Instant::now();
    let err = client::ping(&nc, &id("absent"), t).await.unwrap_err();
    assert!(matches!(err, ClientError::NoResponders { .. }), "{err}");
    // It kept retrying until (nearly) the deadline: the last 50 ms are too
    // short for another attempt.
    assert!(
        started.elapsed() >= t - Duration::from_millis(50),
        "gave up after {:?}",
        started.elapsed()
    );

    let all = client::ping_all(&nc, &[id("good"), id("absent")], t).await;
    assert_eq!(
        PingSummary::new(all).to_string(),
        "1/2 agents answered; missing: absent"
    );
}

#[tokio::test]
async fn no_responders_retry_catches_a_late_subscriber() {
    // The agent subscribes 300 ms after the request started: the helper
    // must keep retrying and get the answer within its 3 s deadline.
    let server = NatsServer::start_plain().unwrap();
    let nc = async_nats::connect(server.url()).await.unwrap();
    let late = nc.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        responder(
            &late,
            subjects::command_subject(&id("late"), fleet_proto::Command::Ping),
            Some(br#"{"v":1,"ok":{"agent_id":"late","version":"1","uptime_ms":1,"timestamp":"2026-01-02T03:04:05Z"}}"#),
        )
        .await;
    });
    let reply = client::ping(&nc, &id("late"), Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(reply.agent_id, id("late"));
}
