//! Device mode end to end on loopback (ADR 0080): `device::enroll` with a
//! bootstrap token, then the agent running with its key through the real
//! auth callout and a real nats-server: pending until approved, heartbeats
//! with labels and version, a ping answered, kicked when disabled and back
//! when re-enabled, key rotation picked up on reconnect.

#[path = "../../fleet-callout/tests/common/mod.rs"]
mod callout_stack;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use callout_stack::{Stack, StackOptions};
use common::{id, spawn_agent, test_config, wait_until};
use fleet_agent::device::{self, DeviceError, Endpoint};
use fleet_agent::{AuthConfig, credentials_from_config};
use fleet_callout::device::{AgentEntry, Devices, TokenEntry, secret_hash};
use fleet_proto::client::ClientTls;
use futures::StreamExt;

const SECRET: &str = "0123456789abcdef0123456789abcdef-device";
const TIMEOUT: Duration = Duration::from_secs(15);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn add_token(devices: &Devices, name: &str, auto_approve: bool, expires_at: i64) {
    devices.directory().upsert_token(TokenEntry {
        name: name.into(),
        secret_hash: secret_hash(SECRET),
        expires_at,
        max_uses: 3,
        uses: 0,
        auto_approve,
        labels: BTreeMap::new(),
        disabled: false,
        resource_version: Some("1".into()),
    });
}

fn endpoint(stack: &Stack) -> Endpoint {
    Endpoint {
        url: stack.nats.url(),
        tls: ClientTls::default(),
        timeout: Duration::from_secs(5),
    }
}

fn public_key(dir: &Path) -> String {
    device::load_key(dir).expect("device key").public_key()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolls_waits_for_approval_serves_and_is_kicked_when_disabled() {
    let stack = Stack::start(StackOptions {
        devices: true,
        ..StackOptions::default()
    })
    .await;
    let devices = stack.devices.clone().expect("devices");
    add_token(&devices, "site-a", false, now() + 3600);
    let state = tempfile::tempdir().expect("tmp");
    let dir = state.path().join("state");

    let key = device::enroll(
        &endpoint(&stack),
        &dir,
        &format!("site-a.{SECRET}"),
        &id("gw-7"),
    )
    .await
    .expect("enrolled (pending)");
    assert_eq!(key, public_key(&dir));
    assert_eq!(
        device::enrolled_agent_id(&dir).expect("recorded"),
        id("gw-7")
    );

    // The agent in device mode: refused (pending) and retrying.
    let mut config = test_config("gw-7", &stack.nats.url());
    config.labels = BTreeMap::from([("site".into(), "a".into())]);
    config.heartbeat_interval = Duration::from_millis(200);
    config.auth = AuthConfig::Device {
        state_dir: dir.clone(),
    };
    let agent = spawn_agent(config.clone(), credentials_from_config(&config.auth)).await;
    wait_until("a pending refusal", TIMEOUT, || {
        stack.metrics.decisions("denied", "pending_approval") > 0
    })
    .await;
    assert!(!agent.readiness.is_ready());

    // Approved (spec.approved: true, as the watch delivers it): it gets in.
    let entry = |disabled| AgentEntry {
        public_key: Some(key.clone()),
        approved: true,
        disabled,
    };
    devices.apply_agent(id("gw-7"), entry(false));
    wait_until("the approved device ready", TIMEOUT, || {
        agent.readiness.is_ready()
    })
    .await;

    // Heartbeats with its labels and version; a ping answered.
    let operator = stack.operator().await;
    let mut beats = operator
        .subscribe("fleet.agent.gw-7.heartbeat")
        .await
        .expect("heartbeats");
    let beat = tokio::time::timeout(TIMEOUT, beats.next())
        .await
        .expect("a heartbeat")
        .expect("message");
    let hb = fleet_proto::decode_heartbeat(&beat.payload).expect("heartbeat decodes");
    assert_eq!(hb.labels.get("site").map(String::as_str), Some("a"));
    assert_eq!(hb.version, env!("CARGO_PKG_VERSION"));
    let pong = fleet_proto::client::ping(&operator, &id("gw-7"), TIMEOUT)
        .await
        .expect("ping answered");
    assert_eq!(pong.agent_id, id("gw-7"));

    // Disabled: kicked, refused while disabled, back once re-enabled.
    devices
        .apply_agent(id("gw-7"), entry(true))
        .expect("kick")
        .await
        .expect("kick task");
    wait_until("the disabled device disconnected", TIMEOUT, || {
        !agent.readiness.is_ready()
    })
    .await;
    let refused = stack.metrics.decisions("denied", "agent_disabled");
    wait_until("a reconnect refused", TIMEOUT, || {
        stack.metrics.decisions("denied", "agent_disabled") > refused
    })
    .await;
    devices.apply_agent(id("gw-7"), entry(false));
    wait_until("the re-enabled device back", TIMEOUT, || {
        agent.readiness.is_ready()
    })
    .await;

    // Key rotation: the old key signs for the new one; the running agent
    // picks the new key up from its state directory when the callout
    // drops the old key's connection.
    let new_key = device::rotate_key(&endpoint(&stack), &dir)
        .await
        .expect("rotated");
    assert_eq!(new_key, public_key(&dir));
    assert_ne!(new_key, key);
    let allowed = stack.metrics.decisions("allowed", "ok");
    wait_until("the agent reconnected with the new key", TIMEOUT, || {
        stack.metrics.decisions("allowed", "ok") > allowed && agent.readiness.is_ready()
    })
    .await;
    fleet_proto::client::ping(&operator, &id("gw-7"), TIMEOUT)
        .await
        .expect("ping answered after the rotation");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_with_an_expired_token_is_refused_and_records_nothing() {
    let stack = Stack::start(StackOptions {
        devices: true,
        ..StackOptions::default()
    })
    .await;
    let devices = stack.devices.clone().expect("devices");
    add_token(&devices, "old", true, now() - 10);
    let state = tempfile::tempdir().expect("tmp");
    let dir = state.path().join("state");
    let err = device::enroll(
        &endpoint(&stack),
        &dir,
        &format!("old.{SECRET}"),
        &id("gw-8"),
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, DeviceError::Refused { .. }), "{err}");
    assert!(!err.to_string().contains(SECRET));
    assert_eq!(stack.metrics.decisions("denied", "token_expired"), 1);
    assert!(device::enrolled_agent_id(&dir).is_err());
}
