//! The callout end to end on loopback: a real nats-server with
//! `auth_callout`, the real test OIDC issuer over HTTP, and the callout
//! serving in this process. Clients authenticate with async-nats `token`
//! auth, as agents do.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, StackOptions, assert_refused, connect_with_token};
use fleet_test_issuer::{SigningAlg, SigningKey};
use futures::StreamExt;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Waits for the server to report a permissions violation on `what`
/// (e.g. `Subscription to "x.>"`), skipping other reports.
async fn expect_violation(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, what: &str) {
    let needle = format!("permissions violation for {what}").to_lowercase();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(err)) if err.to_lowercase().contains(&needle) => return,
            Ok(Some(err)) => seen.push(err),
            _ => panic!("no permissions violation for {what}; server said: {seen:?}"),
        }
    }
}

/// Sends a request until a responder exists (a fresh subscription may not be
/// registered at the server yet), then returns the reply payload.
async fn request_until_answered(client: &async_nats::Client, subject: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.request(subject.to_string(), "ping".into()).await {
            Ok(msg) => return String::from_utf8_lossy(&msg.payload).to_string(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no answer on {subject}: {e}"),
        }
    }
}

/// Serves `fleet.agent.<id>.cmd.ping` on `client`, answering with the id.
async fn serve_ping(client: &async_nats::Client, id: &str) -> tokio::task::JoinHandle<()> {
    let mut sub = client
        .subscribe(format!("fleet.agent.{id}.cmd.ping"))
        .await
        .expect("agent subscribes to its own commands");
    let client = client.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                client
                    .publish(reply, format!("pong from {id}").into())
                    .await
                    .expect("reply");
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_connects_with_exactly_the_agent_permissions() {
    let stack = Stack::start(StackOptions::default()).await;
    let token = stack.token_for("agent-a", "secret-a").await;
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let agent = connect_with_token(&stack.nats.url(), &token, Some(tx))
        .await
        .expect("agent-a connects with its token");
    assert_eq!(stack.metrics.decisions("allowed", "ok"), 1);

    // Placed in FLEET, named after its identity.
    let connz: serde_json::Value =
        reqwest::get(format!("{}/connz?auth=true", stack.nats.monitor_url()))
            .await
            .expect("connz")
            .json()
            .await
            .expect("connz json");
    let conns = connz["connections"].as_array().expect("connections");
    assert!(
        conns
            .iter()
            .any(|c| c["authorized_user"] == "agent-a" && c["account"] == "FLEET"),
        "agent-a not found in FLEET: {connz}"
    );

    // Commands in, replies out.
    let operator = stack.operator().await;
    let _server = serve_ping(&agent, "agent-a").await;
    assert_eq!(
        request_until_answered(&operator, "fleet.agent.agent-a.cmd.ping").await,
        "pong from agent-a"
    );

    // Heartbeats out; subjects it may not publish on never arrive. Messages
    // of one connection stay in order, so if the denied ones had gone
    // through they would arrive before the allowed one.
    let mut beats = operator
        .subscribe("fleet.agent.*.heartbeat")
        .await
        .expect("operator subscribes");
    let mut commands_b = operator
        .subscribe("fleet.agent.agent-a.cmd.forged")
        .await
        .expect("operator subscribes");
    operator.flush().await.expect("flush");
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = loop {
        agent
            .publish("fleet.agent.agent-b.heartbeat", "forged".into())
            .await
            .expect("publish");
        agent
            .publish("fleet.agent.agent-a.cmd.forged", "forged".into())
            .await
            .expect("publish");
        agent
            .publish("fleet.agent.agent-a.heartbeat", "beat".into())
            .await
            .expect("publish");
        agent.flush().await.expect("flush");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), beats.next()).await {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat reached the operator"
        );
    };
    assert_eq!(first.subject.as_str(), "fleet.agent.agent-a.heartbeat");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), commands_b.next())
            .await
            .is_err(),
        "an agent published a command"
    );
    expect_violation(&mut errors, r#"Publish to "fleet.agent.agent-b.heartbeat""#).await;
    expect_violation(
        &mut errors,
        r#"Publish to "fleet.agent.agent-a.cmd.forged""#,
    )
    .await;

    // Nothing outside its own subjects may be subscribed to.
    for subject in ["fleet.agent.agent-b.>", "_INBOX.>", "fleet.>", "other"] {
        let _sub = agent
            .subscribe(subject)
            .await
            .expect("client-side subscribe");
        agent.flush().await.expect("flush");
        expect_violation(&mut errors, &format!("Subscription to \"{subject}\"")).await;
    }
    // Nor published on.
    agent.publish("other", "x".into()).await.expect("publish");
    agent.flush().await.expect("flush");
    expect_violation(&mut errors, r#"Publish to "other""#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_cannot_reach_another_agents_subjects() {
    let stack = Stack::start(StackOptions::default()).await;
    let (tx_a, mut errors_a) = tokio::sync::mpsc::unbounded_channel();
    let a = connect_with_token(
        &stack.nats.url(),
        &stack.token_for("agent-a", "secret-a").await,
        Some(tx_a),
    )
    .await
    .expect("a connects");
    let b = stack
        .connect_with_token(&stack.token_for("agent-b", "secret-b").await)
        .await
        .expect("b connects");
    let operator = stack.operator().await;

    // A tries to listen to B's commands: refused by the server...
    let mut spy = a
        .subscribe("fleet.agent.agent-b.cmd.ping")
        .await
        .expect("client-side subscribe");
    a.flush().await.expect("flush");
    expect_violation(
        &mut errors_a,
        r#"Subscription to "fleet.agent.agent-b.cmd.ping""#,
    )
    .await;
    // ...and B's commands still reach only B.
    let _b_server = serve_ping(&b, "agent-b").await;
    assert_eq!(
        request_until_answered(&operator, "fleet.agent.agent-b.cmd.ping").await,
        "pong from agent-b"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), spy.next())
            .await
            .map(|m| m.is_none())
            .unwrap_or(true),
        "agent-a received agent-b's command"
    );

    // A cannot answer in B's name: publishing on B's subjects is refused.
    let mut b_beats = operator
        .subscribe("fleet.agent.agent-b.>")
        .await
        .expect("sub");
    operator.flush().await.expect("flush");
    a.publish("fleet.agent.agent-b.heartbeat", "forged".into())
        .await
        .expect("publish");
    a.flush().await.expect("flush");
    expect_violation(
        &mut errors_a,
        r#"Publish to "fleet.agent.agent-b.heartbeat""#,
    )
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b_beats.next())
            .await
            .is_err(),
        "a forged heartbeat for agent-b arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_their_reason() {
    let stack = Stack::start(StackOptions {
        max_token_bytes: 2048,
        ..StackOptions::default()
    })
    .await;
    let issuer = &stack.issuer;
    let t = now();
    let claims = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = issuer.access_claims("agent-a");
        f(&mut c);
        issuer.sign(&c).expect("sign")
    };
    let valid = stack.token_for("agent-a", "secret-a").await;
    let mut bad_sig = valid.clone().into_bytes();
    let sig_at = valid.rfind('.').expect("dot") + 6;
    bad_sig[sig_at] = if bad_sig[sig_at] == b'A' { b'B' } else { b'A' };
    let bad_sig = String::from_utf8(bad_sig).expect("ascii");
    let foreign = SigningKey::generate(SigningAlg::EdDsa).expect("key");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &issuer.access_claims("agent-a"),
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .expect("hs256");
    let header_only = format!("{}.%%%%.AAAA", valid.split('.').next().expect("header"));

    let cases: Vec<(&str, String, &'static str)> = vec![
        (
            "expired",
            claims(&|c| {
                c["exp"] = (t - 300).into();
                c["iat"] = (t - 900).into();
                c["nbf"] = (t - 900).into();
            }),
            "expired",
        ),
        (
            "not yet valid",
            claims(&|c| c["nbf"] = (t + 600).into()),
            "not_yet_valid",
        ),
        (
            "wrong issuer",
            claims(&|c| c["iss"] = "http://evil.example".into()),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            claims(&|c| c["aud"] = serde_json::json!(["someone-else"])),
            "wrong_audience",
        ),
        ("bad signature", bad_sig, "bad_signature"),
        (
            "unknown kid",
            foreign
                .sign(&issuer.access_claims("agent-a"))
                .expect("sign"),
            "unknown_key",
        ),
        ("HS256", hs256, "unsupported_algorithm"),
        (
            "garbage",
            "qwertyuiop-not-a-token".into(),
            "opaque_not_supported",
        ),
        // The signature is checked before the body is parsed.
        ("JWT with a garbage body", header_only, "bad_signature"),
        (
            "oversized",
            format!("{valid}{}", "A".repeat(2100)),
            "token_too_large",
        ),
        (
            "subject not subject-safe",
            claims(&|c| c["sub"] = "agent.a.>".into()),
            "bad_identity",
        ),
        (
            "no exp",
            claims(&|c| {
                c.as_object_mut().expect("obj").remove("exp");
            }),
            "malformed_token",
        ),
    ];
    for (what, token, reason) in &cases {
        let before = stack.metrics.decisions("denied", reason);
        assert_refused(stack.connect_with_token(token).await, what);
        assert_eq!(
            stack.metrics.decisions("denied", reason),
            before + 1,
            "{what}: expected one more denial with reason {reason}"
        );
    }
    // No token at all.
    let before = stack.metrics.decisions("denied", "no_token");
    let plain = async_nats::ConnectOptions::new()
        .max_reconnects(Some(1))
        .connect(stack.nats.url())
        .await;
    assert_refused(plain, "no token");
    assert_eq!(stack.metrics.decisions("denied", "no_token"), before + 1);

    // Above the server's 4 KiB control line the server refuses the CONNECT
    // itself, before any callout.
    let huge = format!("{valid}{}", "A".repeat(5000));
    assert!(
        stack.connect_with_token(&huge).await.is_err(),
        "5 KB token accepted"
    );

    assert_eq!(
        stack.metrics.decisions("allowed", "ok"),
        0,
        "nothing above may connect"
    );
    // The valid token still works after all that.
    stack
        .connect_with_token(&valid)
        .await
        .expect("valid token connects");
    // Tokens never reach the logs of the server either: the reason does.
    assert!(
        stack
            .nats
            .log()
            .contains("token rejected: token has expired"),
        "{}",
        stack.nats.log()
    );
    assert!(
        !stack.nats.log().contains(&valid),
        "the server log holds a token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_callout_makes_connects_fail_within_the_deadline() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let token = stack.token_for("agent-a", "secret-a").await;
    let existing = stack.connect_with_token(&token).await.expect("connects");
    stack.stop_callout().await;

    let started = Instant::now();
    let result = stack.connect_with_token(&token).await;
    let waited = started.elapsed();
    assert_refused(result, "connect with no callout running");
    // The refusal comes from the server's 2 s authorization timeout, not from
    // the client's 5 s connection timeout: connects fail, they do not hang.
    assert!(
        waited < Duration::from_millis(4500),
        "refusal took {waited:?}"
    );

    // Existing connections are unaffected.
    existing
        .publish("fleet.agent.agent-a.heartbeat", "x".into())
        .await
        .expect("publish");
    existing
        .flush()
        .await
        .expect("existing connection still works");

    stack.start_callout().await;
    stack
        .connect_with_token(&token)
        .await
        .expect("connects again once the callout is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_key_rotation_is_picked_up() {
    let stack = Stack::start(StackOptions::default()).await;
    let old_token = stack.token_for("agent-a", "secret-a").await;
    stack
        .connect_with_token(&old_token)
        .await
        .expect("connects with the first key");
    let fetches = stack.metrics.idp_calls("jwks", "ok");

    // Refetches are spaced by jwks_min_refresh (200 ms here); a rotation is
    // rare, so let that pass as it would in reality.
    let pause = || tokio::time::sleep(Duration::from_millis(300));

    // The issuer rotates, keeping the old key published.
    stack.issuer.rotate(false).expect("rotate");
    pause().await;
    let new_token = stack.token_for("agent-a", "secret-a").await;
    stack
        .connect_with_token(&new_token)
        .await
        .expect("token signed by the new key connects");
    assert_eq!(
        stack.metrics.idp_calls("jwks", "ok"),
        fetches + 1,
        "one refetch for the new kid"
    );
    stack
        .connect_with_token(&new_token)
        .await
        .expect("connects again");
    assert_eq!(
        stack.metrics.idp_calls("jwks", "ok"),
        fetches + 1,
        "the new key is cached"
    );
    stack
        .connect_with_token(&old_token)
        .await
        .expect("old key still published");

    // The issuer rotates again and withdraws every earlier key: tokens signed
    // by withdrawn keys stop working once the callout has refetched.
    stack.issuer.rotate(true).expect("rotate and drop");
    pause().await;
    let newest = stack.token_for("agent-a", "secret-a").await;
    stack
        .connect_with_token(&newest)
        .await
        .expect("newest key connects");
    let before = stack.metrics.decisions("denied", "unknown_key");
    pause().await;
    assert_refused(
        stack.connect_with_token(&old_token).await,
        "token of a withdrawn key",
    );
    assert_eq!(stack.metrics.decisions("denied", "unknown_key"), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_requests_work_end_to_end() {
    let stack = Stack::start(StackOptions {
        xkey: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.token_for("agent-a", "secret-a").await;
    let agent = stack
        .connect_with_token(&token)
        .await
        .expect("connects through xkey-encrypted callout");
    agent
        .publish("fleet.agent.agent-a.heartbeat", "x".into())
        .await
        .expect("publish");
    let mut c = stack.issuer.access_claims("agent-a");
    c["aud"] = serde_json::json!(["nope"]);
    assert_refused(
        stack
            .connect_with_token(&stack.issuer.sign(&c).expect("sign"))
            .await,
        "wrong audience over xkey",
    );
    assert_eq!(stack.metrics.decisions("allowed", "ok"), 1);
    assert_eq!(stack.metrics.decisions("denied", "wrong_audience"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_validated_by_introspection() {
    let stack = Stack::start(StackOptions {
        opaque_tokens: true,
        introspection: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.token_for("agent-b", "secret-b").await;
    assert!(
        jsonwebtoken::decode_header(&token).is_err(),
        "token is opaque"
    );
    stack
        .connect_with_token(&token)
        .await
        .expect("opaque token connects");
    assert_eq!(stack.metrics.idp_calls("introspection", "ok"), 1);
    assert_refused(
        stack.connect_with_token("made-up-opaque-token").await,
        "unknown opaque token",
    );
    assert_eq!(stack.metrics.decisions("denied", "inactive"), 1);
    let mut expired = stack.issuer.access_claims("agent-b");
    expired["exp"] = (now() - 60).into();
    let expired = stack.issuer.issue_opaque(expired);
    assert_refused(
        stack.connect_with_token(&expired).await,
        "expired opaque token",
    );
    assert_eq!(stack.metrics.decisions("denied", "inactive"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_are_accepted() {
    let stack = Stack::start(StackOptions {
        alg: SigningAlg::Rs256,
        ..StackOptions::default()
    })
    .await;
    let token = stack.token_for("agent-a", "secret-a").await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).expect("jwt").alg,
        jsonwebtoken::Algorithm::RS256
    );
    stack
        .connect_with_token(&token)
        .await
        .expect("RS256 token connects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_ends_when_the_token_expires() {
    let stack = Stack::start(StackOptions::default()).await;
    let mut c = stack.issuer.access_claims("agent-a");
    c["exp"] = (now() + 3).into();
    let token = stack.issuer.sign(&c).expect("sign");
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let _agent = connect_with_token(&stack.nats.url(), &token, Some(tx))
        .await
        .expect("short-lived token connects");
    // The user JWT expires with the token; the server then disconnects.
    let err = tokio::time::timeout(Duration::from_secs(10), errors.recv())
        .await
        .expect("server ends the connection")
        .expect("event");
    assert!(err.to_lowercase().contains("expired"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_over_http() {
    let stack = Stack::start(StackOptions::default()).await;
    let token = stack.token_for("agent-a", "secret-a").await;
    stack.connect_with_token(&token).await.expect("connects");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = fleet_callout::http::router(stack.callout.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |path: &'static str| async move {
        reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("http")
    };
    assert_eq!(get("/healthz").await.status(), 200);
    assert_eq!(get("/readyz").await.status(), 200);
    let text = get("/metrics").await.text().await.expect("text");
    assert!(
        text.contains(r#"fleet_callout_decisions_total{outcome="allowed",reason="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("fleet_callout_decision_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_kids_do_not_hammer_the_issuer() {
    let stack = Stack::start(StackOptions {
        jwks_min_refresh: Duration::from_secs(60),
        ..StackOptions::default()
    })
    .await;
    // Warm-up just fetched the JWKS; within the minimum refresh interval
    // unknown kids are refused from the cache without another fetch.
    let fetches = stack.metrics.idp_calls("jwks", "ok");
    for _ in 0..5 {
        let foreign = SigningKey::generate(SigningAlg::EdDsa).expect("key");
        let token = foreign
            .sign(&stack.issuer.access_claims("agent-a"))
            .expect("sign");
        assert_refused(stack.connect_with_token(&token).await, "made-up kid");
    }
    assert_eq!(stack.metrics.decisions("denied", "unknown_key"), 5);
    assert_eq!(
        stack.metrics.idp_calls("jwks", "ok"),
        fetches,
        "JWKS refetched within the interval"
    );
    let token = stack.token_for("agent-a", "secret-a").await;
    stack
        .connect_with_token(&token)
        .await
        .expect("the real key still works");
}

/// The pattern agents should use: `with_auth_callback` fetches a fresh token
/// on every (re)connect. When the user JWT expires with the token, the
/// server disconnects the agent, the client reconnects with a new token and
/// its subscriptions keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reconnects_with_a_fresh_token_after_expiry() {
    let stack = Stack::start(StackOptions {
        token_lifetime: Duration::from_secs(3),
        ..StackOptions::default()
    })
    .await;
    let issuer_url = stack.issuer.url().to_string();
    let fetched = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetched.clone();
    let agent = async_nats::ConnectOptions::with_auth_callback(move |_nonce| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Spawned so the callback's future is Sync, as async-nats requires.
        let fetch = tokio::spawn(common::fetch_token_owned(issuer_url.clone()));
        async move {
            let token = fetch
                .await
                .map_err(|e| async_nats::AuthError::new(e.to_string()))?;
            let mut auth = async_nats::Auth::new();
            auth.token = Some(token);
            Ok(auth)
        }
    })
    .connect(stack.nats.url())
    .await
    .expect("agent connects");
    let _server = serve_ping(&agent, "agent-a").await;
    let operator = stack.operator().await;
    assert_eq!(
        request_until_answered(&operator, "fleet.agent.agent-a.cmd.ping").await,
        "pong from agent-a"
    );

    // Past the first token's expiry (3 s, plus the 1 s granularity of exp).
    let deadline = Instant::now() + Duration::from_secs(15);
    while stack.metrics.decisions("allowed", "ok") < 2 {
        assert!(Instant::now() < deadline, "the agent never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fetched.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_eq!(
        request_until_answered(&operator, "fleet.agent.agent-a.cmd.ping").await,
        "pong from agent-a",
        "the agent's subscription survives the reconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_in_the_queue_group_share_the_load() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop_replica = tokio_util::sync::CancellationToken::new();
    let replica = stack.start_replica(stop_replica.clone()).await;
    let token = stack.token_for("agent-a", "secret-a").await;
    for _ in 0..30 {
        stack.connect_with_token(&token).await.expect("connects");
    }
    let (first, second) = (
        stack.metrics.decisions("allowed", "ok"),
        replica.decisions("allowed", "ok"),
    );
    // Each request goes to exactly one member; a random split of 30 leaves
    // one replica idle with probability 2^-29.
    assert_eq!(first + second, 30, "every connect decided exactly once");
    assert!(
        first > 0 && second > 0,
        "load not shared: {first} / {second}"
    );

    // With one replica gone, the other carries on alone.
    stop_replica.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        stack
            .connect_with_token(&token)
            .await
            .expect("connects with one replica");
    }
    assert_eq!(
        stack.metrics.decisions("allowed", "ok") + replica.decisions("allowed", "ok"),
        35
    );
}
