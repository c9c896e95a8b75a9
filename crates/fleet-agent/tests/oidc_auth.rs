//! The agent authenticating through the NATS auth callout with an OIDC
//! client_credentials token: a real nats-server configured for auth
//! callout, the real callout (`fleet_callout`, in-process) and the real
//! stand-in issuer (`fleet_test_issuer`, over HTTP). The stack setup is the
//! callout's own, verified end to end there.

#[path = "../../fleet-callout/tests/common/mod.rs"]
mod callout_stack;
mod common;

use async_trait::async_trait;
use callout_stack::{Stack, StackOptions};
use common::{id, spawn_agent, test_config, wait_until};
use fleet_agent::{
    AuthConfig, CredentialError, CredentialSource, Credentials, OidcClientConfig, OidcTokenSource,
    PasswordSource, Secret, credentials_from_config,
};
use fleet_proto::client;
use fleet_test_issuer::{Client, IssuerConfig, TestIssuer};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(15);

/// Everything the process logs (all tests of this binary), to check that no
/// secret or token is ever written.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter("fleet_agent=debug,fleet_callout=debug,info")
            .with_ansi(false)
            .with_writer(move || LogWriter(writer_buf.clone()))
            .init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

/// The real token source, remembering every token it handed out (in order).
struct Recording {
    inner: Arc<dyn CredentialSource>,
    tokens: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl CredentialSource for Recording {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        let creds = self.inner.credentials().await?;
        if let Credentials::BearerToken(t) = &creds {
            self.tokens.lock().unwrap().push(t.expose().to_string());
        }
        Ok(creds)
    }
}

fn distinct(tokens: &Mutex<Vec<String>>) -> usize {
    let mut t = tokens.lock().unwrap().clone();
    t.sort();
    t.dedup();
    t.len()
}

fn oidc_config(issuer: &str, client: &str, secret: &str) -> OidcClientConfig {
    OidcClientConfig {
        issuer: issuer.to_string(),
        client_id: client.to_string(),
        client_secret: PasswordSource::Inline(Secret::new(secret)),
        scope: Some("openid".into()),
        audience: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_connects_through_the_callout_and_reconnects_with_fresh_tokens() {
    captured_logs();
    // Short tokens: the callout caps the connection's user JWT at the
    // token's exp, so the server disconnects the agent every 4 s and the
    // agent must come back with a new token each time.
    let mut stack = Stack::start(StackOptions {
        token_lifetime: Duration::from_secs(4),
        ..StackOptions::default()
    })
    .await;
    let tokens = Arc::new(Mutex::new(Vec::new()));
    // The agent id equals the token's `sub` (the issuer's subject of client
    // agent-a): that is what the callout grants subjects for.
    let source = credentials_from_config(&AuthConfig::Oidc(oidc_config(
        stack.issuer.url(),
        "agent-a",
        "secret-a",
    )));
    let agent = spawn_agent(
        test_config("agent-a", &stack.nats.url()),
        Arc::new(Recording {
            inner: source,
            tokens: tokens.clone(),
        }),
    )
    .await;
    wait_until("agent ready through the callout", TIMEOUT, || {
        agent.readiness.is_ready()
    })
    .await;
    let operator = stack.operator().await;
    client::ping(&operator, &id("agent-a"), TIMEOUT)
        .await
        .expect("agent answers ping on its own subjects");
    assert!(
        stack.metrics.decisions("allowed", "ok") >= 1,
        "the callout let the agent in"
    );

    // Server restart after the cached token passed its refresh point: the
    // reconnect presents a new token.
    let before = distinct(&tokens);
    stack.nats.stop();
    wait_until("agent notices the server is gone", TIMEOUT, || {
        !agent.readiness.is_ready()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tokio::task::block_in_place(|| stack.nats.restart()).expect("nats-server restarts");
    wait_until("agent ready again after the restart", TIMEOUT, || {
        agent.readiness.is_ready()
    })
    .await;
    assert!(
        distinct(&tokens) > before,
        "a fresh token after the restart: {} tokens before, {} after",
        before,
        distinct(&tokens)
    );
    let operator = stack.operator().await;
    client::ping(&operator, &id("agent-a"), TIMEOUT)
        .await
        .expect("ping after the restart");

    // Without any restart, the token's expiry ends the connection; the
    // agent reconnects with yet another token and keeps answering.
    let before = distinct(&tokens);
    wait_until("a new token after the user JWT expired", TIMEOUT, || {
        distinct(&tokens) > before
    })
    .await;
    wait_until("agent ready after expiry", TIMEOUT, || {
        agent.readiness.is_ready()
    })
    .await;
    client::ping(&operator, &id("agent-a"), TIMEOUT)
        .await
        .expect("ping after the token expired");
    agent.stop().await;

    let logs = logs_text();
    for token in tokens.lock().unwrap().iter() {
        assert!(
            !logs.contains(token.as_str()),
            "a token leaked into the logs"
        );
    }
    assert!(!logs.contains("secret-a"), "the client secret leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_a_clear_error_without_the_secret() {
    captured_logs();
    let stack = Stack::start(StackOptions::default()).await;
    let wrong = "wrong-secret-4f1d9c";
    let source = OidcTokenSource::new(oidc_config(stack.issuer.url(), "agent-a", wrong));
    let err = source.credentials().await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("refused client agent-a") && text.contains("invalid_client"),
        "the error says who was refused and why: {text}"
    );
    assert!(!text.contains(wrong), "{text}");

    let agent = spawn_agent(test_config("agent-a", &stack.nats.url()), Arc::new(source)).await;
    wait_until("the refusal is logged", TIMEOUT, || {
        logs_text().contains("refused client agent-a")
    })
    .await;
    assert!(!agent.readiness.is_ready(), "no connection without a token");
    agent.stop().await;
    assert!(!logs_text().contains(wrong), "the client secret leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reused_until_replaced_and_outlive_an_issuer_outage() {
    let issuer = TestIssuer::start(IssuerConfig {
        clients: vec![Client::new("agent-b", "secret-b")],
        ..IssuerConfig::default() // 300 s tokens
    })
    .await
    .expect("issuer starts");
    let issuer_url = issuer.url().to_string();
    let source = OidcTokenSource::new(oidc_config(&issuer_url, "agent-b", "secret-b"));
    let first = source.token().await.expect("token");
    // Cached: presented on up to MAX_PRESENTATIONS connects.
    for _ in 1..fleet_agent::oidc::MAX_PRESENTATIONS {
        assert_eq!(source.token().await.expect("token"), first);
    }
    let replaced = source.token().await.expect("token");
    assert_ne!(replaced, first, "a token presented too often is replaced");

    // The issuer is gone: the unexpired cached token is still presented
    // (the callout validates it from its cached JWKS).
    issuer.shutdown().await;
    for _ in 0..5 {
        assert_eq!(source.token().await.expect("cached token"), replaced);
    }
    // A new source with no cache reports the unreachable issuer by URL.
    let fresh = OidcTokenSource::new(oidc_config(&issuer_url, "agent-b", "secret-b"));
    let err = fresh.token().await.expect_err("issuer down");
    assert!(err.to_string().contains(&issuer_url), "{err}");
}
