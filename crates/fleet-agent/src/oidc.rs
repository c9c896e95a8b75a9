//! OIDC client_credentials token source: the agent's NATS credentials when
//! NATS authorizes clients through the auth callout (docs/adr/0034).
//!
//! On every connect and reconnect the connection asks
//! [`OidcTokenSource::credentials`] (through async-nats' auth callback) and
//! presents the answer as CONNECT `auth_token`. The source:
//! - finds the token endpoint once through
//!   `<issuer>/.well-known/openid-configuration` (and checks the document's
//!   `issuer`, as OIDC Discovery requires);
//! - obtains an access token with `grant_type=client_credentials`, client
//!   authentication by HTTP Basic (RFC 6749 2.3.1 encoding);
//! - caches it until [`refresh_margin`] before its expiry. Reusing a valid
//!   token for a reconnect means a NATS restart does not send every agent to
//!   the identity provider at once, and agents can reconnect while the IdP
//!   is down (the callout validates JWTs from its cached JWKS);
//! - drops a cached token that was already presented on
//!   [`MAX_PRESENTATIONS`] connects: a connection that keeps failing with
//!   the same token may be failing *because* of it (revoked, rotated keys),
//!   so the next attempt gets a new one;
//! - re-reads the client secret file on every fetch, so a rotated Secret is
//!   picked up without a restart.
//!
//! Client secrets and tokens never appear in errors, logs or `Debug`
//! output; errors from the token endpoint carry only the OAuth `error` code
//! and (shortened) `error_description`.

use crate::credentials::{CredentialError, CredentialSource, Credentials, PasswordSource, Secret};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A cached token presented on this many connects is replaced.
pub const MAX_PRESENTATIONS: u32 = 3;
/// Timeout of each HTTP call to the issuer. Kept below the default NATS
/// connect timeout (5 s), which the callback runs inside of.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest response body read from the issuer (discovery, token).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where and as whom to obtain tokens (FLEET_OIDC_* variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClientConfig {
    /// Issuer URL, without trailing slash (as in the tokens' `iss`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: PasswordSource,
    /// Space-separated scopes (`openid urn:zitadel:iam:org:project:id:<id>:aud`).
    pub scope: Option<String>,
    /// Sent as the `audience` form parameter for issuers that take one.
    pub audience: Option<String>,
}

/// Why no token could be obtained. Never holds a secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{step} at {url} failed: {reason}")]
    Http {
        step: &'static str,
        url: String,
        reason: String,
    },
    #[error("{step} at {url} answered {status}: {detail}")]
    Status {
        step: &'static str,
        url: String,
        status: u16,
        detail: String,
    },
    #[error(
        "the token endpoint {url} refused client {client_id} ({status} {detail}); check the client id and secret"
    )]
    ClientRefused {
        url: String,
        client_id: String,
        status: u16,
        detail: String,
    },
    #[error("{step} at {url} returned an unusable document: {reason}")]
    BadDocument {
        step: &'static str,
        url: String,
        reason: String,
    },
    #[error("discovery at {url} names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    Secret(#[from] CredentialError),
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

struct Cached {
    token: Secret,
    /// Refresh at (expiry minus the margin).
    refresh_at: Instant,
    expires_at: Instant,
    presentations: u32,
}

#[derive(Default)]
struct State {
    token_endpoint: Option<String>,
    cached: Option<Cached>,
}

/// Obtains and caches client_credentials access tokens.
pub struct OidcTokenSource {
    config: OidcClientConfig,
    /// Building a client only fails when TLS cannot initialize; that error
    /// is reported on each connect attempt rather than at construction, so
    /// [`crate::credentials_from_config`] stays infallible.
    http: Result<reqwest::Client, String>,
    /// One fetch at a time: concurrent callers wait for it and reuse its token.
    state: Mutex<State>,
}

impl std::fmt::Debug for OidcTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcTokenSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long before expiry a cached token is replaced: half its lifetime,
/// at most 60 s. A reconnect right before expiry would otherwise present a
/// token the server disconnects moments later.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 2).min(Duration::from_secs(60))
}

impl OidcTokenSource {
    pub fn new(config: OidcClientConfig) -> Self {
        Self::with_timeout(config, DEFAULT_HTTP_TIMEOUT)
    }

    pub fn with_timeout(config: OidcClientConfig, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // The client secret must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string());
        OidcTokenSource {
            config,
            http,
            state: Mutex::new(State::default()),
        }
    }

    fn http(&self) -> Result<&reqwest::Client, OidcError> {
        self.http.as_ref().map_err(|reason| OidcError::Http {
            step: "building the HTTP client",
            url: self.config.issuer.clone(),
            reason: reason.clone(),
        })
    }

    pub fn config(&self) -> &OidcClientConfig {
        &self.config
    }

    /// A token for the next connect: the cached one if still fresh and not
    /// presented too often, else a new one. If fetching fails while the
    /// cached token is still unexpired, the cached one is used (the IdP may
    /// be briefly down; the callout decides).
    pub async fn token(&self) -> Result<Secret, OidcError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(c) = state.cached.as_mut()
            && now < c.refresh_at
            && c.presentations < MAX_PRESENTATIONS
        {
            c.presentations += 1;
            return Ok(c.token.clone());
        }
        match self.fetch(&mut state).await {
            Ok(cached) => {
                let token = cached.token.clone();
                state.cached = Some(Cached {
                    presentations: 1,
                    ..cached
                });
                Ok(token)
            }
            Err(e) => {
                // A token past its refresh point is still valid until expiry,
                // and one presented often may still be good: the callout
                // decides. An expired one is dropped.
                state.cached.take_if(|c| now >= c.expires_at);
                if let Some(c) = state.cached.as_mut() {
                    tracing::warn!(error = %e, "could not refresh the access token; reusing the unexpired cached one");
                    c.presentations += 1;
                    return Ok(c.token.clone());
                }
                Err(e)
            }
        }
    }

    async fn token_endpoint(&self, state: &mut State) -> Result<String, OidcError> {
        if let Some(url) = &state.token_endpoint {
            return Ok(url.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let step = "OIDC discovery";
        let resp = self
            .http()?
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(step, &url, &e))?;
        let status = resp.status();
        let body = read_body(resp, step, &url).await?;
        if !status.is_success() {
            return Err(OidcError::Status {
                step,
                url,
                status: status.as_u16(),
                detail: short(&String::from_utf8_lossy(&body)),
            });
        }
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| OidcError::BadDocument {
            step,
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let expected = self.config.issuer.trim_end_matches('/');
        if doc.issuer.trim_end_matches('/') != expected {
            return Err(OidcError::IssuerMismatch {
                url,
                found: doc.issuer,
                expected: expected.to_string(),
            });
        }
        state.token_endpoint = Some(doc.token_endpoint.clone());
        Ok(doc.token_endpoint)
    }

    async fn fetch(&self, state: &mut State) -> Result<Cached, OidcError> {
        let endpoint = self.token_endpoint(state).await?;
        let secret = self.client_secret().await?;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.config.scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = &self.config.audience {
            form.push(("audience", audience));
        }
        let step = "token request";
        let requested = Instant::now();
        let resp = self
            .http()?
            .post(&endpoint)
            // RFC 6749 2.3.1: id and secret are form-urlencoded before Basic.
            .basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(secret.expose())),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| http_error(step, &endpoint, &e))?;
        let status = resp.status();
        let body = read_body(resp, step, &endpoint).await?;
        if !status.is_success() {
            // Only the OAuth error fields are shown, never the raw body.
            let detail = serde_json::from_slice::<OAuthError>(&body)
                .map(|e| match e.error_description {
                    Some(d) => format!("{}: {}", e.error, short(&d)),
                    None => e.error,
                })
                .unwrap_or_else(|_| "no OAuth error in the response".into());
            // A dropped token endpoint (new issuer deployment) is rediscovered.
            state.token_endpoint = None;
            return Err(if status.as_u16() == 400 || status.as_u16() == 401 {
                OidcError::ClientRefused {
                    url: endpoint,
                    client_id: self.config.client_id.clone(),
                    status: status.as_u16(),
                    detail,
                }
            } else {
                OidcError::Status {
                    step,
                    url: endpoint,
                    status: status.as_u16(),
                    detail,
                }
            });
        }
        // The body holds the token: its parse error must not echo it.
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| OidcError::BadDocument {
                step,
                url: endpoint.clone(),
                reason: "not a token response (access_token missing or not a string)".into(),
            })?;
        if let Some(t) = &token.token_type
            && !t.eq_ignore_ascii_case("bearer")
        {
            return Err(OidcError::BadDocument {
                step,
                url: endpoint,
                reason: format!("token_type {t:?}, expected Bearer"),
            });
        }
        if token.access_token.is_empty() {
            return Err(OidcError::BadDocument {
                step,
                url: endpoint,
                reason: "empty access_token".into(),
            });
        }
        // Without expires_in, fall back to the JWT's own exp; an opaque token
        // without either is used for one connect only.
        let lifetime = token
            .expires_in
            .map(Duration::from_secs)
            .or_else(|| jwt_lifetime(&token.access_token))
            .unwrap_or(Duration::ZERO);
        tracing::debug!(client = %self.config.client_id, lifetime = ?lifetime, "obtained an access token");
        Ok(Cached {
            token: Secret::new(token.access_token),
            refresh_at: requested + lifetime - refresh_margin(lifetime),
            expires_at: requested + lifetime,
            presentations: 0,
        })
    }

    async fn client_secret(&self) -> Result<Secret, CredentialError> {
        match &self.config.client_secret {
            PasswordSource::Inline(s) => Ok(s.clone()),
            PasswordSource::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|source| {
                    CredentialError::ReadPasswordFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                let secret = text.trim_end_matches(['\n', '\r']);
                if secret.is_empty() {
                    return Err(CredentialError::EmptyPasswordFile { path: path.clone() });
                }
                Ok(Secret::new(secret))
            }
        }
    }
}

#[async_trait]
impl CredentialSource for OidcTokenSource {
    fn describe(&self) -> String {
        format!(
            "OIDC client {} at {} (client_credentials)",
            self.config.client_id, self.config.issuer
        )
    }

    fn user(&self) -> Option<&str> {
        Some(&self.config.client_id)
    }

    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        self.token()
            .await
            .map(Credentials::BearerToken)
            .map_err(|e| CredentialError::Unavailable {
                source_name: format!("OIDC client {}", self.config.client_id),
                reason: e.to_string(),
            })
    }
}

fn http_error(step: &'static str, url: &str, e: &reqwest::Error) -> OidcError {
    // reqwest's Display is "error sending request"; the cause says why.
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    OidcError::Http {
        step,
        url: url.to_string(),
        reason: if e.is_timeout() {
            "timed out".into()
        } else {
            cur.to_string()
        },
    }
}

async fn read_body(
    mut resp: reqwest::Response,
    step: &'static str,
    url: &str,
) -> Result<Vec<u8>, OidcError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_error(step, url, &e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(OidcError::BadDocument {
                step,
                url: url.to_string(),
                reason: format!("response larger than {MAX_BODY_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most 200 characters, for error details from the network.
fn short(text: &str) -> String {
    let mut s: String = text.chars().take(200).collect();
    if s.len() < text.len() {
        s.push_str("...");
    }
    s
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Remaining lifetime from an (unverified) JWT's `exp`: only used to decide
/// when to refresh, never to trust the token.
fn jwt_lifetime(token: &str) -> Option<Duration> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_half_the_lifetime_up_to_a_minute() {
        assert_eq!(
            refresh_margin(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn jwt_lifetime_reads_exp() {
        use base64::Engine;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"exp\":{}}}", now + 100));
        let lifetime = jwt_lifetime(&format!("h.{payload}.s")).unwrap();
        assert!(lifetime <= Duration::from_secs(100) && lifetime >= Duration::from_secs(98));
        assert_eq!(jwt_lifetime("opaque-token"), None);
        assert_eq!(jwt_lifetime("a.!!!.c"), None);
    }

    #[test]
    fn basic_auth_parts_are_form_encoded() {
        assert_eq!(form_encode("agent-0_x.y"), "agent-0_x.y");
        assert_eq!(form_encode("a:b c/+"), "a%3Ab+c%2F%2B");
    }

    #[test]
    fn debug_and_describe_hide_the_secret() {
        let source = OidcTokenSource::new(OidcClientConfig {
            issuer: "http://idp".into(),
            client_id: "agent-0".into(),
            client_secret: PasswordSource::Inline(Secret::new("hunter2")),
            scope: None,
            audience: None,
        });
        for text in [format!("{source:?}"), source.describe()] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("agent-0"), "{text}");
        }
    }
}
