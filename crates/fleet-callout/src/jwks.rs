//! The issuer's signing keys, cached.
//!
//! Keys are looked up by `kid`. An unknown kid triggers one refetch (the
//! issuer may have rotated), but refetches are spaced by `min_refresh` so a
//! flood of tokens with made-up kids cannot turn the callout into a JWKS
//! hammer. Keys older than `max_age` are refetched on use, so a key the
//! issuer withdrew stops being accepted; if that refetch fails the cached key
//! is still used (availability over freshness, logged).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::idp::{IdpError, TokenError, describe_reqwest, read_json};
use crate::metrics::Metrics;

/// At most this many keys are kept from one JWKS.
const MAX_KEYS: usize = 64;

/// One usable verification key.
pub struct CachedKey {
    pub key: DecodingKey,
    /// The `alg` the JWK declares, if any; the token's must then match.
    pub alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<CachedKey>>,
    fetched_at: Option<Instant>,
}

pub struct JwksCache {
    keys: RwLock<KeySet>,
    /// Held while fetching (single flight); remembers the last attempt.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
    max_age: Duration,
}

impl JwksCache {
    pub fn new(min_refresh: Duration, max_age: Duration) -> Self {
        JwksCache {
            keys: RwLock::new(KeySet::default()),
            fetch: tokio::sync::Mutex::new(None),
            min_refresh,
            max_age,
        }
    }

    fn lookup(&self, kid: &str) -> (Option<Arc<CachedKey>>, Option<Instant>) {
        match self.keys.read() {
            Ok(set) => (set.by_kid.get(kid).cloned(), set.fetched_at),
            Err(_) => (None, None),
        }
    }

    /// The key named `kid`, fetching the JWKS if needed and allowed.
    pub async fn key(
        &self,
        http: &reqwest::Client,
        jwks_uri: &str,
        kid: &str,
        metrics: &Metrics,
    ) -> Result<Arc<CachedKey>, TokenError> {
        let asked_at = Instant::now();
        let (found, fetched_at) = self.lookup(kid);
        let fresh = fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
        if let Some(k) = &found
            && fresh
        {
            return Ok(k.clone());
        }

        let mut last_attempt = self.fetch.lock().await;
        // Someone else may have fetched while we waited for the lock.
        let (found_now, fetched_at) = self.lookup(kid);
        if fetched_at.is_some_and(|t| t >= asked_at) {
            return found_now.ok_or_else(|| unknown(kid));
        }
        // Rate limit: within `min_refresh` of the last attempt, answer from
        // the cache (a stale key is still better than no key).
        if last_attempt.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return found_now.ok_or_else(|| unknown(kid));
        }
        *last_attempt = Some(Instant::now());
        match self.fetch_and_store(http, jwks_uri, metrics).await {
            Ok(()) => self.lookup(kid).0.ok_or_else(|| unknown(kid)),
            Err(e) => match found_now {
                Some(stale) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using the cached key");
                    Ok(stale)
                }
                None => Err(e.into()),
            },
        }
    }

    /// Fetches the JWKS now (startup warm-up).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        jwks_uri: &str,
        metrics: &Metrics,
    ) -> Result<(), IdpError> {
        let mut last_attempt = self.fetch.lock().await;
        *last_attempt = Some(Instant::now());
        self.fetch_and_store(http, jwks_uri, metrics).await
    }

    async fn fetch_and_store(
        &self,
        http: &reqwest::Client,
        jwks_uri: &str,
        metrics: &Metrics,
    ) -> Result<(), IdpError> {
        let result = async {
            let resp = http
                .get(jwks_uri)
                .send()
                .await
                .map_err(|e| IdpError::Http {
                    what: "JWKS",
                    url: jwks_uri.to_string(),
                    detail: describe_reqwest(&e),
                })?;
            let body: serde_json::Value = read_json(resp, "JWKS", jwks_uri).await?;
            Ok::<_, IdpError>(parse_jwks(&body))
        }
        .await;
        match result {
            Ok(by_kid) => {
                metrics.idp_call("jwks", "ok");
                tracing::debug!(keys = by_kid.len(), "fetched JWKS");
                if let Ok(mut set) = self.keys.write() {
                    set.by_kid = by_kid;
                    set.fetched_at = Some(Instant::now());
                }
                Ok(())
            }
            Err(e) => {
                metrics.idp_call("jwks", "error");
                Err(e)
            }
        }
    }
}

fn unknown(kid: &str) -> TokenError {
    TokenError::UnknownKey {
        kid: kid.chars().take(64).collect(),
    }
}

/// Usable keys of a JWKS document by kid. Keys without a kid, of a kind we do
/// not verify with (symmetric, encryption-only), or malformed are skipped
/// one by one rather than failing the whole set.
pub fn parse_jwks(body: &serde_json::Value) -> HashMap<String, Arc<CachedKey>> {
    let mut out = HashMap::new();
    let Some(keys) = body.get("keys").and_then(serde_json::Value::as_array) else {
        return out;
    };
    for raw in keys.iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        if let Some(key) = usable_key(&jwk) {
            out.insert(kid, Arc::new(key));
        }
    }
    out
}

fn usable_key(jwk: &Jwk) -> Option<CachedKey> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_) => {}
        AlgorithmParameters::OctetKeyPair(p) => {
            // jsonwebtoken slices the first 32 bytes of an Ed25519 key
            // without checking its length; a short `x` from the network
            // would panic there, so check it here.
            use base64::Engine;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.x.trim_end_matches('='))
                .ok()?;
            if x.len() != 32 {
                return None;
            }
        }
        // Symmetric keys are never trusted for verification.
        _ => return None,
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(Algorithm::from_str(&a.to_string()).ok()?),
        None => None,
    };
    Some(CachedKey { key, alg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_unusable_keys_and_keeps_good_ones() {
        let body = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "good", "alg": "EdDSA",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "weird", "kid": "w"},
            "not even an object"
        ]});
        let keys = parse_jwks(&body);
        assert_eq!(keys.len(), 1, "{:?}", keys.keys().collect::<Vec<_>>());
        assert_eq!(keys["good"].alg, Some(Algorithm::EdDSA));
        assert!(parse_jwks(&serde_json::json!({"nokeys": 1})).is_empty());
    }
}
