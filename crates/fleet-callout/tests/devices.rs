//! Devices through the real callout and a real nats-server on loopback
//! (ADR 0080): enrollment with a bootstrap token, key logins, refusals
//! with their reasons, least privilege, revocation with a kick, key
//! rotation. Enrollments are recorded by `MemoryRegistrar` (the API
//! server's part; the kube registrar is exercised by the e2e).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Stack, StackOptions};
use fleet_callout::device::{AgentEntry, Devices, TokenEntry, secret_hash};
use fleet_proto::AgentId;
use fleet_proto::device::{BootstrapToken, encode_enrollment, encode_rotation};
use futures::StreamExt;
use nkeys::KeyPair;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SECRET: &str = "s3cr3t-0123456789abcdef0123456789abcdef";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn id(s: &str) -> AgentId {
    AgentId::new(s).expect("agent id")
}

async fn device_stack() -> (Stack, std::sync::Arc<Devices>) {
    let stack = Stack::start(StackOptions {
        devices: true,
        ..StackOptions::default()
    })
    .await;
    let devices = stack.devices.clone().expect("devices enabled");
    (stack, devices)
}

/// Declares a token as the FleetEnrollmentToken watch would.
fn add_token(devices: &Devices, name: &str, max_uses: i32, auto_approve: bool, expires_at: i64) {
    devices.directory().upsert_token(TokenEntry {
        name: name.into(),
        secret_hash: secret_hash(SECRET),
        expires_at,
        max_uses,
        uses: 0,
        auto_approve,
        labels: BTreeMap::from([("site".into(), "lab".into())]),
        disabled: false,
        resource_version: Some("1".into()),
    });
}

fn token(name: &str) -> BootstrapToken {
    BootstrapToken::parse(&format!("{name}.{SECRET}")).expect("token")
}

/// How a test device signs: `presented` is the key in CONNECT, `signer`
/// the key that signs the nonce (different = a device that does not hold
/// the key it claims).
struct Login {
    presented: String,
    signer: KeyPair,
    auth_token: Option<String>,
    reconnect: bool,
}

impl Login {
    fn key(key: &KeyPair) -> Self {
        Login {
            presented: key.public_key(),
            signer: KeyPair::from_seed(&key.seed().expect("seed")).expect("key"),
            auth_token: None,
            reconnect: false,
        }
    }

    fn enroll(key: &KeyPair, token: &BootstrapToken, agent: &str) -> Self {
        Login {
            auth_token: Some(encode_enrollment(token, &id(agent))),
            ..Login::key(key)
        }
    }
}

type Events = tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>;

async fn connect(
    stack: &Stack,
    login: Login,
) -> Result<(async_nats::Client, Events), async_nats::ConnectError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let Login {
        presented,
        signer,
        auth_token,
        reconnect,
    } = login;
    let signer = std::sync::Arc::new(signer);
    async_nats::ConnectOptions::with_auth_callback(move |nonce| {
        let signer = signer.clone();
        let presented = presented.clone();
        let auth_token = auth_token.clone();
        async move {
            let mut auth = async_nats::Auth::new();
            auth.nkey = Some(presented);
            auth.signature = Some(signer.sign(&nonce).map_err(async_nats::AuthError::new)?);
            auth.token = auth_token;
            Ok(auth)
        }
    })
    .connection_timeout(Duration::from_secs(5))
    .max_reconnects(if reconnect { None } else { Some(1) })
    .reconnect_delay_callback(|_| Duration::from_millis(50))
    .event_callback(move |event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(event);
        }
    })
    .connect(stack.nats.url())
    .await
    .map(|c| (c, rx))
}

async fn refused(stack: &Stack, login: Login, reason: &'static str) {
    let before = stack.metrics.decisions("denied", reason);
    let result = connect(stack, login).await.map(|(c, _)| c);
    common::assert_refused(result, reason);
    // At least one: a kicked test client may retry once in the background.
    assert!(
        stack.metrics.decisions("denied", reason) > before,
        "refusal counted under reason {reason}"
    );
}

/// Waits for the server to report a permissions violation on `what`.
async fn expect_violation(events: &mut Events, what: &str) {
    let needle = format!("permissions violation for {what}").to_lowercase();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(async_nats::Event::ServerError(e)))
                if e.to_string().to_lowercase().contains(&needle) =>
            {
                return;
            }
            Ok(Some(other)) => seen.push(other.to_string()),
            _ => panic!("no permissions violation for {what}; saw {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolls_then_logs_in_with_its_key_and_reaches_only_its_subjects() {
    let (stack, devices) = device_stack().await;
    add_token(&devices, "lab-token", 1, true, now() + 3600);
    let key = KeyPair::new_user();

    // Enrollment: the connect itself is the receipt; it may do nothing.
    let (receipt, mut events) = connect(&stack, Login::enroll(&key, &token("lab-token"), "gw-1"))
        .await
        .expect("enrollment accepted");
    assert_eq!(stack.metrics.decisions("allowed", "ok"), 1);
    receipt
        .publish("fleet.agent.gw-1.heartbeat", "x".into())
        .await
        .expect("queued");
    expect_violation(&mut events, "publish to \"fleet.agent.gw-1.heartbeat\"").await;
    drop(receipt);
    assert_eq!(
        devices.directory().agent(&id("gw-1")),
        Some(AgentEntry {
            public_key: Some(key.public_key()),
            approved: true,
            disabled: false
        })
    );
    assert_eq!(
        devices.directory().token("lab-token").map(|t| t.uses),
        Some(1)
    );

    // The device logs in with its key and serves its own commands.
    let (device, mut events) = connect(&stack, Login::key(&key))
        .await
        .expect("enrolled device connects with its key");
    let mut cmds = device
        .subscribe("fleet.agent.gw-1.cmd.ping")
        .await
        .expect("own commands");
    let responder = {
        let device = device.clone();
        tokio::spawn(async move {
            while let Some(msg) = cmds.next().await {
                if let Some(reply) = msg.reply {
                    let _ = device.publish(reply, "pong gw-1".into()).await;
                }
            }
        })
    };
    let operator = stack.operator().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = loop {
        match operator
            .request("fleet.agent.gw-1.cmd.ping", "ping".into())
            .await
        {
            Ok(m) => break m,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no ping answer: {e}"),
        }
    };
    assert_eq!(&answer.payload[..], b"pong gw-1");
    device
        .publish("fleet.agent.gw-1.heartbeat", "{}".into())
        .await
        .expect("own heartbeat");

    // ...and nothing else.
    let _other = device
        .subscribe("fleet.agent.gw-2.>")
        .await
        .expect("queued");
    expect_violation(&mut events, "subscription to \"fleet.agent.gw-2.>\"").await;
    let _sys = device.subscribe("$SYS.>").await.expect("queued");
    expect_violation(&mut events, "subscription to \"$SYS.>\"").await;
    device
        .publish("fleet.agent.gw-2.cmd.ping", "x".into())
        .await
        .expect("queued");
    expect_violation(&mut events, "publish to \"fleet.agent.gw-2.cmd.ping\"").await;
    device
        .publish("fleet.agent.gw-1.cmd.ping", "x".into())
        .await
        .expect("queued");
    expect_violation(&mut events, "publish to \"fleet.agent.gw-1.cmd.ping\"").await;
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_and_key_logins_are_refused_with_their_reason() {
    let (stack, devices) = device_stack().await;
    add_token(&devices, "two-uses", 2, false, now() + 3600);
    add_token(&devices, "expired", 5, true, now() - 1);
    let key = KeyPair::new_user();

    // A device signing with another key than the one it presents.
    let mut forged = Login::enroll(&key, &token("two-uses"), "dev-a");
    forged.signer = KeyPair::new_user();
    refused(&stack, forged, "bad_signature").await;

    refused(
        &stack,
        Login::enroll(&key, &token("expired"), "dev-a"),
        "token_expired",
    )
    .await;
    refused(
        &stack,
        Login::enroll(&key, &token("nope"), "dev-a"),
        "unknown_token",
    )
    .await;
    let wrong_secret =
        BootstrapToken::parse(&format!("two-uses.{}", "x".repeat(40))).expect("token");
    refused(
        &stack,
        Login::enroll(&key, &wrong_secret, "dev-a"),
        "token_secret_mismatch",
    )
    .await;
    let mut garbage = Login::key(&key);
    garbage.auth_token = Some("fleet-enroll-v1.!!".into());
    refused(&stack, garbage, "bad_device_request").await;
    refused(&stack, Login::key(&key), "unknown_key").await;

    // A pending enrollment succeeds; the key is refused until approved.
    connect(&stack, Login::enroll(&key, &token("two-uses"), "dev-a"))
        .await
        .expect("enrollment accepted (pending)");
    refused(&stack, Login::key(&key), "pending_approval").await;

    // Replaying the enrollment (same key, token with a use left).
    refused(
        &stack,
        Login::enroll(&key, &token("two-uses"), "dev-b"),
        "key_registered",
    )
    .await;
    // Another key asking for an agent id that is taken.
    let other = KeyPair::new_user();
    refused(
        &stack,
        Login::enroll(&other, &token("two-uses"), "dev-a"),
        "agent_id_taken",
    )
    .await;
    // The second (last) use, then the token is used up.
    connect(&stack, Login::enroll(&other, &token("two-uses"), "dev-b"))
        .await
        .expect("second use accepted");
    let third = KeyPair::new_user();
    refused(
        &stack,
        Login::enroll(&third, &token("two-uses"), "dev-c"),
        "token_used_up",
    )
    .await;

    // Approval (spec.approved: true, as the watch delivers it) lets it in.
    devices.apply_agent(
        id("dev-a"),
        AgentEntry {
            public_key: Some(key.public_key()),
            approved: true,
            disabled: false,
        },
    );
    connect(&stack, Login::key(&key))
        .await
        .expect("approved device connects");
}

/// A captured CONNECT replayed on a new connection: its signature is over
/// the old connection's nonce, so it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_connect_is_refused() {
    let (stack, devices) = device_stack().await;
    add_token(&devices, "t", 5, true, now() + 3600);
    let key = KeyPair::new_user();
    let auth_token = encode_enrollment(&token("t"), &id("replay"));

    async fn info_nonce(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("INFO");
        let info: serde_json::Value =
            serde_json::from_str(line.trim_start_matches("INFO ").trim()).expect("INFO json");
        info["nonce"].as_str().expect("nonce in INFO").to_string()
    }
    let addr = format!("127.0.0.1:{}", stack.nats.port());
    let connect_line = |nonce: &str| {
        let sig = URL_SAFE_NO_PAD.encode(key.sign(nonce.as_bytes()).expect("sign"));
        let body = serde_json::json!({
            "verbose": false, "pedantic": false, "protocol": 1,
            "nkey": key.public_key(), "sig": sig, "auth_token": auth_token,
        });
        format!("CONNECT {body}\r\nPING\r\n")
    };

    // First connection: signed over its own nonce; accepted.
    let (r, mut w) = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("tcp")
        .into_split();
    let mut r = BufReader::new(r);
    let first_nonce = info_nonce(&mut r).await;
    let captured = connect_line(&first_nonce);
    w.write_all(captured.as_bytes()).await.expect("write");
    let mut line = String::new();
    r.read_line(&mut line).await.expect("answer");
    assert!(line.starts_with("PONG"), "first CONNECT accepted: {line}");

    // Second connection: the same CONNECT bytes.
    let (r, mut w) = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("tcp")
        .into_split();
    let mut r = BufReader::new(r);
    let second_nonce = info_nonce(&mut r).await;
    assert_ne!(first_nonce, second_nonce);
    let before = stack.metrics.decisions("denied", "bad_signature");
    w.write_all(captured.as_bytes()).await.expect("write");
    let mut line = String::new();
    r.read_line(&mut line).await.expect("answer");
    assert!(
        line.contains("Authorization Violation"),
        "replay refused: {line}"
    );
    assert_eq!(
        stack.metrics.decisions("denied", "bad_signature"),
        before + 1
    );
}

/// Waits for the client's Disconnected event; returns when it came.
async fn disconnected(events: &mut Events, what: &str) -> Instant {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(async_nats::Event::Disconnected)) => return Instant::now(),
            Ok(Some(_)) => {}
            _ => panic!("{what}: the device was never disconnected"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_device_is_kicked_and_refused_until_re_enabled() {
    let (stack, devices) = device_stack().await;
    add_token(&devices, "t", 5, true, now() + 3600);
    let key = KeyPair::new_user();
    connect(&stack, Login::enroll(&key, &token("t"), "site-1"))
        .await
        .expect("enrolled");
    let mut login = Login::key(&key);
    login.reconnect = true;
    let (device, mut events) = connect(&stack, login).await.expect("connected");
    let entry = |disabled| AgentEntry {
        public_key: Some(key.public_key()),
        approved: true,
        disabled,
    };

    let revoked_at = Instant::now();
    let kick = devices
        .apply_agent(id("site-1"), entry(true))
        .expect("disabling an admitted device kicks it");
    let gone = disconnected(&mut events, "disable").await;
    kick.await.expect("kick task");
    eprintln!(
        "revocation: disconnected {:?} after spec.disabled",
        gone - revoked_at
    );
    // Its reconnects are refused while it stays disabled.
    let before = stack.metrics.decisions("denied", "agent_disabled");
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.metrics.decisions("denied", "agent_disabled") == before {
        assert!(Instant::now() < deadline, "reconnect never tried/refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        device.connection_state(),
        async_nats::connection::State::Disconnected
    );
    drop(device);
    // (Exact counts are off while the old client still retries.)
    common::assert_refused(
        connect(&stack, Login::key(&key)).await.map(|(c, _)| c),
        "disabled device",
    );

    // Re-enabled: back in. Deleted: kicked and unknown.
    assert!(devices.apply_agent(id("site-1"), entry(false)).is_none());
    let (_device, mut events) = connect(&stack, Login::key(&key))
        .await
        .expect("re-enabled device connects");
    let kick = devices
        .forget_agent(&id("site-1"))
        .expect("deleting an admitted device kicks it");
    disconnected(&mut events, "delete").await;
    kick.await.expect("kick task");
    refused(&stack, Login::key(&key), "unknown_key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_rotates_its_key_signed_by_the_old_one() {
    let (stack, devices) = device_stack().await;
    add_token(&devices, "t", 5, true, now() + 3600);
    let old = KeyPair::new_user();
    connect(&stack, Login::enroll(&old, &token("t"), "rot-1"))
        .await
        .expect("enrolled");
    let new = std::sync::Arc::new(KeyPair::new_user());

    // The rotation connection: signed by the old key, the new key's
    // signature over the same nonce in the auth_token.
    let old_seed = old.seed().expect("seed");
    let rotate = {
        let new = new.clone();
        async_nats::ConnectOptions::with_auth_callback(move |nonce| {
            let new = new.clone();
            let old = KeyPair::from_seed(&old_seed).expect("old key");
            async move {
                let mut auth = async_nats::Auth::new();
                auth.nkey = Some(old.public_key());
                auth.signature = Some(old.sign(&nonce).map_err(async_nats::AuthError::new)?);
                let new_sig = new.sign(&nonce).map_err(async_nats::AuthError::new)?;
                auth.token = Some(encode_rotation(&new.public_key(), &new_sig));
                Ok(auth)
            }
        })
        .max_reconnects(Some(1))
        .connect(stack.nats.url())
        .await
    };
    rotate.expect("rotation accepted");
    assert_eq!(
        devices
            .directory()
            .agent(&id("rot-1"))
            .and_then(|a| a.public_key),
        Some(new.public_key())
    );
    connect(&stack, Login::key(&new))
        .await
        .expect("the new key logs in");
    refused(&stack, Login::key(&old), "unknown_key").await;
}

/// A stack without an identity provider: the callout runs without OIDC and
/// still serves devices; a token login is refused with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_identity_provider_devices_still_log_in() {
    use fleet_callout::device::{Directory, Kicker, MemoryRegistrar};
    use fleet_callout::{Callout, Metrics, Policy, RequestVerifier};
    use std::sync::Arc;

    let account = KeyPair::new_account();
    let system = KeyPair::new_user();
    let config = common::callout_server_config_with_system_user(
        &account.public_key(),
        None,
        2,
        Some(&system.public_key()),
    );
    let nats = tokio::task::spawn_blocking(move || fleet_testkit::NatsServer::start(&config))
        .await
        .expect("join")
        .expect("nats-server starts");
    let system_client = async_nats::ConnectOptions::with_nkey(system.seed().expect("seed"))
        .connect(nats.url())
        .await
        .expect("system user connects");
    let directory = Arc::new(Directory::new());
    let devices = Arc::new(Devices::new(
        directory.clone(),
        Arc::new(MemoryRegistrar::new(directory)),
        Some(Kicker::new(system_client, "FLEET")),
    ));
    let metrics = Metrics::new();
    let callout = Arc::new(
        Callout::without_oidc(
            RequestVerifier::new(account, None),
            Policy::default(),
            metrics.clone(),
        )
        .with_devices(devices.clone()),
    );
    let auth = async_nats::ConnectOptions::with_user_and_password(
        common::AUTH_USER.into(),
        common::AUTH_PASSWORD.into(),
    )
    .connect(nats.url())
    .await
    .expect("callout connects");
    let shutdown = tokio_util::sync::CancellationToken::new();
    {
        let callout = callout.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { callout.serve(auth, "fleet-callout", shutdown).await });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !callout.is_ready() {
        assert!(Instant::now() < deadline, "callout never ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    add_token(&devices, "t", 1, true, now() + 3600);
    let key = KeyPair::new_user();
    let login = |auth_token: Option<String>| Login {
        auth_token,
        ..Login::key(&key)
    };
    let connect_to = |login: Login| {
        let (presented, signer, token) = (login.presented, login.signer, login.auth_token);
        let signer = std::sync::Arc::new(signer);
        async_nats::ConnectOptions::with_auth_callback(move |nonce| {
            let (signer, presented, token) = (signer.clone(), presented.clone(), token.clone());
            async move {
                let mut auth = async_nats::Auth::new();
                auth.nkey = Some(presented);
                auth.signature = Some(signer.sign(&nonce).map_err(async_nats::AuthError::new)?);
                auth.token = token;
                Ok(auth)
            }
        })
        .max_reconnects(Some(1))
        .connect(nats.url())
    };
    connect_to(login(Some(encode_enrollment(&token("t"), &id("solo")))))
        .await
        .expect("enrolled");
    connect_to(login(None)).await.expect("device logs in");
    let refused = async_nats::ConnectOptions::with_token("some-oidc-token".into())
        .max_reconnects(Some(1))
        .connect(nats.url())
        .await;
    common::assert_refused(refused, "token login without an identity provider");
    assert_eq!(metrics.decisions("denied", "no_identity_provider"), 1);
    shutdown.cancel();
}
