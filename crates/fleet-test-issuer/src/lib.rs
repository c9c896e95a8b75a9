//! A small but real OIDC issuer for tests and for an in-cluster test image.
//!
//! Not a mock: it listens on real HTTP, signs real tokens (EdDSA or RS256)
//! and publishes real keys, on the same paths as Zitadel so that a client
//! written against one works against the other:
//!
//! | path | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery |
//! | `GET /oauth/v2/keys` | JWKS (current key and every earlier one not dropped) |
//! | `POST /oauth/v2/token` | `client_credentials` (client auth by HTTP Basic or form fields) |
//! | `POST /oauth/v2/introspect` | RFC 7662 introspection (client auth required) |
//! | `POST /admin/rotate[?drop_previous=true]` | new signing key; optionally unpublish the old ones |
//! | `GET /healthz` | liveness |
//!
//! Tests use [`TestIssuer::start`] and, to craft tokens a well-behaved issuer
//! would never hand out (expired, wrong audience...), [`TestIssuer::sign`]
//! with the issuer's real current key.

mod config;
mod keys;
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub use config::{Client, IssuerConfig};
pub use keys::{SigningAlg, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("test issuer configuration: {0}")]
    Config(String),
    #[error("test issuer key: {0}")]
    Key(String),
    #[error("test issuer could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Shared state of a running issuer.
pub(crate) struct State {
    pub(crate) config: IssuerConfig,
    pub(crate) issuer_url: String,
    /// Published keys, oldest first; the last one signs.
    pub(crate) keys: RwLock<Vec<Arc<SigningKey>>>,
    /// Opaque access token -> its claims (for introspection).
    pub(crate) opaque: Mutex<HashMap<String, serde_json::Value>>,
}

impl State {
    pub(crate) fn current_key(&self) -> Arc<SigningKey> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        // Invariant: `keys` is never empty (start and rotate always push).
        keys.last()
            .cloned()
            .expect("issuer always has a signing key")
    }

    /// Claims of an access token for `subject`, valid from now for the
    /// configured lifetime.
    pub(crate) fn access_claims(&self, subject: &str, client_id: &str) -> serde_json::Value {
        let now = unix_now();
        serde_json::json!({
            "iss": self.issuer_url,
            "sub": subject,
            "aud": [self.config.audience],
            "client_id": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.config.token_lifetime.as_secs(),
            "jti": keys::random_id(12),
        })
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A running issuer; stops when dropped or on [`TestIssuer::shutdown`].
pub struct TestIssuer {
    state: Arc<State>,
    addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestIssuer {
    /// Generates the first signing key, binds, and serves in a background
    /// task of the current tokio runtime.
    pub async fn start(config: IssuerConfig) -> Result<Self, IssuerError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| IssuerError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| IssuerError::Listen {
                addr: config.listen,
                source,
            })?;
        let issuer_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_string();
        let first = SigningKey::generate(config.alg)?;
        let state = Arc::new(State {
            config,
            issuer_url,
            keys: RwLock::new(vec![Arc::new(first)]),
            opaque: Mutex::new(HashMap::new()),
        });
        let stop = tokio_util::sync::CancellationToken::new();
        let app = server::router(state.clone());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "test issuer server failed");
            }
        });
        Ok(TestIssuer {
            state,
            addr,
            stop,
            task: Some(task),
        })
    }

    /// The issuer URL (`iss`), e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.state.issuer_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn audience(&self) -> &str {
        &self.state.config.audience
    }

    /// kid of the key that signs new tokens.
    pub fn current_kid(&self) -> String {
        self.state.current_key().kid.clone()
    }

    /// Claims of a normal access token for `subject` (iss, sub, aud, iat,
    /// nbf, exp, jti); edit them and [`sign`](Self::sign) to craft variants.
    pub fn access_claims(&self, subject: &str) -> serde_json::Value {
        self.state.access_claims(subject, subject)
    }

    /// Signs arbitrary claims with the issuer's current key.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, IssuerError> {
        self.state.current_key().sign(claims)
    }

    /// Issues an opaque token carrying `claims` (only introspection knows it).
    pub fn issue_opaque(&self, claims: serde_json::Value) -> String {
        server::store_opaque(&self.state, claims)
    }

    /// Rotates the signing key, as `POST /admin/rotate` does; returns the new kid.
    pub fn rotate(&self, drop_previous: bool) -> Result<String, IssuerError> {
        server::rotate(&self.state, drop_previous)
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
