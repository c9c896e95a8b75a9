//! Validating the bearer token a client presents, against the OIDC issuer.
//!
//! - JWT access tokens are verified locally with the issuer's keys (JWKS,
//!   found through discovery, cached; see [`crate::jwks`]): signature,
//!   issuer, audience, expiry, not-before.
//! - Anything else is treated as an opaque token and sent to the issuer's
//!   introspection endpoint (POST, client authentication), if client
//!   credentials are configured.
//!
//! Every HTTP call has a timeout and a response-size cap; the caller bounds
//! the total with its decision budget. Tokens never appear in errors.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::idp::{DISCOVERY_RETRY, describe_reqwest, read_json};
pub use crate::idp::{IdpError, TokenError};
use crate::jwks::JwksCache;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// Asymmetric algorithms only: an `HS*` token would be verified with a
/// public key used as an HMAC secret (the classic algorithm confusion).
pub const ALLOWED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Credentials the callout uses to call introspection. `Debug` hides the secret.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: Secret,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Issuer URL, exactly as in the tokens' `iss` (no trailing slash).
    pub issuer: String,
    /// Required member of the tokens' `aud`.
    pub audience: String,
    /// For introspection of opaque tokens; `None` refuses opaque tokens.
    pub client: Option<ClientCredentials>,
    /// Timeout of each HTTP call to the issuer.
    pub http_timeout: Duration,
    /// Minimum time between two JWKS fetches triggered by unknown kids.
    pub jwks_min_refresh: Duration,
    /// Cached keys older than this are refetched on next use.
    pub jwks_max_age: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Longest token accepted.
    pub max_token_bytes: usize,
}

impl OidcConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        OidcConfig {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            audience: audience.into(),
            client: None,
            http_timeout: Duration::from_millis(500),
            jwks_min_refresh: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(3600),
            leeway: Duration::from_secs(10),
            max_token_bytes: 4096,
        }
    }
}

/// The claims of a token that passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedToken {
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Expiry (unix seconds), if the token has one.
    pub exp: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
}

#[derive(Default)]
struct DiscoveryState {
    doc: Option<Arc<Discovery>>,
    last_failure: Option<Instant>,
}

/// Validates tokens against one issuer. Cheap to share behind an `Arc`.
pub struct OidcValidator {
    cfg: OidcConfig,
    http: reqwest::Client,
    discovery: RwLock<Option<Arc<Discovery>>>,
    discovery_fetch: tokio::sync::Mutex<DiscoveryState>,
    jwks: JwksCache,
    metrics: Metrics,
}

impl std::fmt::Debug for OidcValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcValidator")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl OidcValidator {
    pub fn new(cfg: OidcConfig, metrics: Metrics) -> Result<Self, IdpError> {
        let http = reqwest::Client::builder()
            .timeout(cfg.http_timeout)
            .connect_timeout(cfg.http_timeout)
            // The issuer is configured by URL; following redirects would
            // let a compromised endpoint send us elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IdpError::Http {
                what: "client setup",
                url: cfg.issuer.clone(),
                detail: e.to_string(),
            })?;
        let jwks = JwksCache::new(cfg.jwks_min_refresh, cfg.jwks_max_age);
        Ok(OidcValidator {
            cfg,
            http,
            discovery: RwLock::new(None),
            discovery_fetch: tokio::sync::Mutex::new(DiscoveryState::default()),
            jwks,
            metrics,
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// Loads discovery and the JWKS once; used at startup and by readiness.
    pub async fn warm_up(&self) -> Result<(), IdpError> {
        let disco = self.discovery().await?;
        self.jwks
            .refresh(&self.http, &disco.jwks_uri, &self.metrics)
            .await
    }

    /// True once discovery has been loaded.
    pub fn is_warm(&self) -> bool {
        self.discovery.read().map(|d| d.is_some()).unwrap_or(false)
    }

    /// Validates `token` (a JWT through JWKS, else introspection).
    pub async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > self.cfg.max_token_bytes {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: self.cfg.max_token_bytes,
            });
        }
        if looks_like_jwt(token) {
            self.validate_jwt(token).await
        } else {
            self.introspect(token).await
        }
    }

    async fn validate_jwt(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Malformed("JWT header does not decode".into()))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::UnsupportedAlgorithm(format!(
                "{:?}",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Malformed("JWT header has no kid".into()))?;
        let disco = self.discovery().await?;
        let key = self
            .jwks
            .key(&self.http, &disco.jwks_uri, &kid, &self.metrics)
            .await?;
        if key.alg.is_some_and(|a| a != header.alg) || key.key.family() != header.alg.family() {
            return Err(TokenError::UnsupportedAlgorithm(format!(
                "{:?} with key {kid}",
                header.alg
            )));
        }
        let mut v = Validation::new(header.alg);
        v.leeway = self.cfg.leeway.as_secs();
        v.validate_nbf = true;
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &v)
                .map_err(map_jwt_error)?;
        let exp = data.claims.get("exp").and_then(serde_json::Value::as_i64);
        Ok(ValidatedToken {
            claims: data.claims,
            exp,
        })
    }

    async fn introspect(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        let Some(client) = &self.cfg.client else {
            return Err(TokenError::OpaqueNotSupported);
        };
        let disco = self.discovery().await?;
        let Some(url) = disco.introspection_endpoint.clone() else {
            return Err(IdpError::NoIntrospectionEndpoint.into());
        };
        let resp = self
            .http
            .post(&url)
            .basic_auth(&client.id, Some(client.secret.expose()))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| IdpError::Http {
                what: "introspection",
                url: url.clone(),
                detail: describe_reqwest(&e),
            });
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.metrics.idp_call("introspection", "error");
                return Err(e.into());
            }
        };
        let body: serde_json::Map<String, serde_json::Value> =
            match read_json(resp, "introspection", &url).await {
                Ok(b) => b,
                Err(e) => {
                    self.metrics.idp_call("introspection", "error");
                    return Err(e.into());
                }
            };
        self.metrics.idp_call("introspection", "ok");
        self.judge_introspection(body)
    }

    /// RFC 7662 says only `active` is required; check the rest when present.
    fn judge_introspection(
        &self,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<ValidatedToken, TokenError> {
        if claims.get("active").and_then(serde_json::Value::as_bool) != Some(true) {
            return Err(TokenError::Inactive);
        }
        let now = crate::unix_now();
        let leeway = i64::try_from(self.cfg.leeway.as_secs()).unwrap_or(0);
        let exp = claims.get("exp").and_then(serde_json::Value::as_i64);
        if exp.is_some_and(|exp| exp + leeway < now) {
            return Err(TokenError::Expired);
        }
        if claims
            .get("nbf")
            .and_then(serde_json::Value::as_i64)
            .is_some_and(|nbf| nbf - leeway > now)
        {
            return Err(TokenError::NotYetValid);
        }
        if let Some(iss) = claims.get("iss")
            && iss.as_str() != Some(self.cfg.issuer.as_str())
        {
            return Err(TokenError::WrongIssuer);
        }
        if let Some(aud) = claims.get("aud") {
            let ok = match aud {
                serde_json::Value::String(a) => a == &self.cfg.audience,
                serde_json::Value::Array(list) => list
                    .iter()
                    .any(|a| a.as_str() == Some(self.cfg.audience.as_str())),
                _ => false,
            };
            if !ok {
                return Err(TokenError::WrongAudience);
            }
        }
        Ok(ValidatedToken { claims, exp })
    }

    /// The discovery document, fetched once (single flight) and kept.
    async fn discovery(&self) -> Result<Arc<Discovery>, IdpError> {
        if let Ok(guard) = self.discovery.read()
            && let Some(d) = guard.as_ref()
        {
            return Ok(d.clone());
        }
        let mut state = self.discovery_fetch.lock().await;
        if let Some(d) = &state.doc {
            return Ok(d.clone());
        }
        if state
            .last_failure
            .is_some_and(|t| t.elapsed() < DISCOVERY_RETRY)
        {
            return Err(IdpError::DiscoveryBackoff);
        }
        let url = format!("{}/.well-known/openid-configuration", self.cfg.issuer);
        let result = async {
            let resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| IdpError::Http {
                    what: "discovery",
                    url: url.clone(),
                    detail: describe_reqwest(&e),
                })?;
            let doc: Discovery = read_json(resp, "discovery", &url).await?;
            if doc.issuer.trim_end_matches('/') != self.cfg.issuer {
                return Err(IdpError::IssuerMismatch {
                    url: url.clone(),
                    expected: self.cfg.issuer.clone(),
                    got: doc.issuer.chars().take(200).collect(),
                });
            }
            Ok(doc)
        }
        .await;
        match result {
            Ok(doc) => {
                self.metrics.idp_call("discovery", "ok");
                let doc = Arc::new(doc);
                state.doc = Some(doc.clone());
                if let Ok(mut w) = self.discovery.write() {
                    *w = Some(doc.clone());
                }
                Ok(doc)
            }
            Err(e) => {
                self.metrics.idp_call("discovery", "error");
                state.last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }
}

/// Three base64url segments whose first decodes to a JSON header.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && jsonwebtoken::decode_header(token).is_ok()
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidIssuer => TokenError::WrongIssuer,
        K::InvalidAudience => TokenError::WrongAudience,
        K::InvalidSignature => TokenError::BadSignature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            TokenError::UnsupportedAlgorithm("algorithm/key mismatch".into())
        }
        K::MissingRequiredClaim(c) => TokenError::Malformed(format!("missing claim {c}")),
        K::InvalidClaimFormat(c) => TokenError::Malformed(format!("claim {c} has the wrong type")),
        // Other kinds (base64, JSON, UTF-8, key errors) only say the token
        // is broken; their messages could quote token content, so they are
        // summarised rather than passed on.
        _ => TokenError::Malformed("JWT does not decode".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator() -> OidcValidator {
        OidcValidator::new(
            OidcConfig::new("https://idp.example", "fleet"),
            Metrics::new(),
        )
        .expect("validator")
    }

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_value(v).expect("map")
    }

    #[test]
    fn introspection_answers_are_judged() {
        let v = validator();
        let now = crate::unix_now();
        assert!(matches!(
            v.judge_introspection(map(serde_json::json!({"active": false}))),
            Err(TokenError::Inactive)
        ));
        assert!(matches!(
            v.judge_introspection(map(serde_json::json!({"active": true, "exp": now - 100}))),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            v.judge_introspection(map(
                serde_json::json!({"active": true, "iss": "https://evil"})
            )),
            Err(TokenError::WrongIssuer)
        ));
        assert!(matches!(
            v.judge_introspection(map(serde_json::json!({"active": true, "aud": ["other"]}))),
            Err(TokenError::WrongAudience)
        ));
        let ok = v
            .judge_introspection(map(serde_json::json!({
                "active": true, "sub": "a1", "exp": now + 60,
                "iss": "https://idp.example", "aud": ["x", "fleet"]
            })))
            .expect("active token");
        assert_eq!(ok.exp, Some(now + 60));
    }

    #[tokio::test]
    async fn size_and_emptiness_are_checked_before_any_network_call() {
        let v = validator();
        assert!(matches!(v.validate("").await, Err(TokenError::Missing)));
        let big = "x".repeat(5000);
        assert!(matches!(
            v.validate(&big).await,
            Err(TokenError::TooLarge { len: 5000, .. })
        ));
        // Opaque without an introspection client: refused locally.
        assert!(matches!(
            v.validate("opaque-token").await,
            Err(TokenError::OpaqueNotSupported)
        ));
    }

    #[tokio::test]
    async fn hmac_tokens_are_refused_before_key_lookup() {
        let v = validator();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "a"}),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .expect("hs256");
        assert!(matches!(
            v.validate(&token).await,
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
    }
}
