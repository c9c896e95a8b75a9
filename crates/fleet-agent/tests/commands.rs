//! Command round trips and typed error replies against a real nats-server.

mod common;

use bytes::Bytes;
use common::*;
use fleet_agent::Anonymous;
use fleet_proto::client::{self, ClientError};
use fleet_proto::{
    Command, ErrorBody, ErrorCode, MAX_PAYLOAD_BYTES, PingReply, decode_reply, subjects,
};
use fleet_testkit::NatsServer;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends raw bytes to `fleet.agent.<id>.cmd.<command_token>` and decodes the
/// error half of the reply.
async fn raw_error(
    nc: &async_nats::Client,
    agent: &str,
    command_token: &str,
    payload: Vec<u8>,
) -> ErrorBody {
    let subject = format!("fleet.agent.{agent}.cmd.{command_token}");
    let reply = nc
        .request(subject.clone(), Bytes::from(payload))
        .await
        .unwrap_or_else(|e| panic!("request to {subject} failed: {e}"));
    decode_reply::<PingReply>(&reply.payload)
        .expect("reply is a valid envelope")
        .expect_err("an error reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_info_round_trip() {
    let server = NatsServer::start_plain().unwrap();
    let mut config = test_config("agent-0", &server.url());
    config.labels = [("zone".to_string(), "a".to_string())].into();
    let agent = spawn_agent(config, Arc::new(Anonymous)).await;
    wait_until("agent ready", TIMEOUT, || agent.readiness.is_ready()).await;

    let nc = plain_client(&server.url()).await;
    let ping = client::ping(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    assert_eq!(ping.agent_id, id("agent-0"));
    assert_eq!(ping.version, env!("CARGO_PKG_VERSION"));
    assert!((chrono::Utc::now() - ping.timestamp).num_seconds().abs() < 5);

    let info = client::info(&nc, &id("agent-0"), TIMEOUT).await.unwrap();
    assert_eq!(info.agent_id, id("agent-0"));
    assert_eq!(info.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(info.capabilities, vec!["ping", "info"]);
    assert_eq!(info.connection.connects, 1);
    assert!(!info.connection.server_id.is_empty());
    assert!(
        info.connection.server_version.starts_with("2."),
        "{:?}",
        info.connection
    );
    // The ping above came in and its reply went out.
    assert!(
        info.connection.in_msgs >= 1 && info.connection.out_msgs >= 1,
        "{:?}",
        info.connection
    );

    let report = agent.stop().await;
    assert!(report.connected && report.connection_closed, "{report:?}");
    assert_eq!(report.commands.handled, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_all_names_the_missing_agent() {
    let server = NatsServer::start_plain().unwrap();
    let a = spawn_agent(test_config("a1", &server.url()), Arc::new(Anonymous)).await;
    let b = spawn_agent(test_config("a2", &server.url()), Arc::new(Anonymous)).await;
    // No waiting for readiness on purpose: the helper's NoResponders retry
    // covers agents that are still subscribing.
    let nc = plain_client(&server.url()).await;
    let ids = [id("a1"), id("a2"), id("ghost")];
    let results = client::ping_all(&nc, &ids, Duration::from_millis(1500)).await;
    assert_eq!(results[0].as_ref().unwrap().agent_id, id("a1"));
    assert_eq!(results[1].as_ref().unwrap().agent_id, id("a2"));
    let err = results[2].as_ref().unwrap_err();
    assert!(matches!(err, ClientError::NoResponders { .. }), "{err}");
    assert_eq!(err.agent(), &id("ghost"));
    assert!(err.to_string().contains("ghost"), "{err}");
    let summary = client::PingSummary::new(results);
    assert!(!summary.all_answered());
    assert_eq!(summary.missing_ids(), vec![&id("ghost")]);
    assert_eq!(summary.to_string(), "2/3 agents answered; missing: ghost");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_error_replies() {
    let server = NatsServer::start_plain().unwrap();
    let agent = spawn_agent(test_config("agent-0", &server.url()), Arc::new(Anonymous)).await;
    wait_until("agent ready", TIMEOUT, || agent.readiness.is_ready()).await;
    let nc = plain_client(&server.url()).await;

    // Unknown command, including a multi-token one.
    let e = raw_error(&nc, "agent-0", "reboot", br#"{"v":1,"args":{}}"#.to_vec()).await;
    assert_eq!(e.code, ErrorCode::UnknownCommand, "{e}");
    assert!(e.message.contains("\"reboot\""), "{e}");
    let e = raw_error(&nc, "agent-0", "ping.now", br#"{"v":1,"args":{}}"#.to_vec()).await;
    assert_eq!(e.code, ErrorCode::UnknownCommand, "{e}");

    // Malformed JSON, an empty payload, a wrong shape.
    for payload in [
        &b"{not json"[..],
        b"",
        br#"{"v":1,"args":"x"}"#,
        br#"{"args":{}}"#,
    ] {
        let e = raw_error(&nc, "agent-0", "ping", payload.to_vec()).await;
        assert_eq!(e.code, ErrorCode::MalformedRequest, "{payload:?}: {e}");
        assert!(e.message.contains("ping"), "{e}");
    }

    // Oversized: over the protocol limit, under the server's max_payload.
    let mut big = br#"{"v":1,"args":{},"pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', MAX_PAYLOAD_BYTES));
    big.extend(br#""}"#);
    let e = raw_error(&nc, "agent-0", "info", big).await;
    assert_eq!(e.code, ErrorCode::PayloadTooLarge, "{e}");
    assert!(e.message.contains(&MAX_PAYLOAD_BYTES.to_string()), "{e}");

    // Version mismatch.
    let e = raw_error(&nc, "agent-0", "ping", br#"{"v":2,"args":{}}"#.to_vec()).await;
    assert_eq!(e.code, ErrorCode::UnsupportedVersion, "{e}");
    assert!(e.message.contains("version 2"), "{e}");

    // The typed client surfaces a remote error as ClientError::Remote.
    let err = client::request_raw(
        &nc,
        &id("agent-0"),
        Command::Ping,
        Bytes::from_static(b"garbage"),
        TIMEOUT,
    )
    .await
    .map(|m| decode_reply::<PingReply>(&m.payload).unwrap());
    assert!(matches!(
        err,
        Ok(Err(ErrorBody {
            code: ErrorCode::MalformedRequest,
            ..
        }))
    ));

    // A publish without reply subject is ignored, and the agent still works.
    nc.publish(
        subjects::command_subject(&id("agent-0"), Command::Ping),
        "x".into(),
    )
    .await
    .unwrap();
    client::ping(&nc, &id("agent-0"), TIMEOUT).await.unwrap();

    let report = agent.stop().await;
    // 2 unknown + 4 malformed + 1 oversized + 1 version + 1 raw + 1 ping.
    assert_eq!(report.commands.handled, 10, "{report:?}");
}
