//! HTTP endpoints of the issuer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;

use crate::config::Client;
use crate::keys::{SigningKey, random_id};
use crate::{IssuerError, State, unix_now};

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/v2/keys", get(jwks))
        .route("/oauth/v2/token", post(token))
        .route("/oauth/v2/introspect", post(introspect))
        .route("/admin/rotate", post(admin_rotate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

async fn discovery(AxState(state): AxState<Arc<State>>) -> Json<serde_json::Value> {
    let iss = &state.issuer_url;
    Json(serde_json::json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/oauth/v2/keys"),
        "token_endpoint": format!("{iss}/oauth/v2/token"),
        "introspection_endpoint": format!("{iss}/oauth/v2/introspect"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": [format!("{:?}", state.config.alg.jose())],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    }))
}

async fn jwks(AxState(state): AxState<Arc<State>>) -> Json<JwkSet> {
    let keys = state.keys.read().unwrap_or_else(|p| p.into_inner());
    Json(JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    })
}

/// OAuth error body (RFC 6749 section 5.2).
fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(serde_json::json!({ "error": error }))).into_response()
}

/// Client authentication: HTTP Basic first, else `client_id`/`client_secret`
/// form fields. Returns the matching configured client.
fn authenticate_client<'a>(
    state: &'a State,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<&'a Client> {
    let (id, secret) = basic_credentials(headers).or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    })?;
    state
        .config
        .clients
        .iter()
        .find(|c| c.id == id && constant_time_eq(c.secret.as_bytes(), secret.as_bytes()))
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn token(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(client) = authenticate_client(&state, &headers, &form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let claims = state.access_claims(client.subject(), &client.id);
    let access_token = if state.config.opaque_tokens {
        store_opaque(&state, claims)
    } else {
        match state.current_key().sign(&claims) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "signing an access token failed");
                return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
            }
        }
    };
    Json(serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.config.token_lifetime.as_secs(),
    }))
    .into_response()
}

pub(crate) fn store_opaque(state: &State, claims: serde_json::Value) -> String {
    let token = random_id(24);
    let mut opaque = state.opaque.lock().unwrap_or_else(|p| p.into_inner());
    // Forget expired tokens so a long-running test image does not grow.
    let now = unix_now();
    opaque.retain(|_, c| c["exp"].as_u64().is_none_or(|exp| exp > now));
    opaque.insert(token.clone(), claims);
    token
}

async fn introspect(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if authenticate_client(&state, &headers, &form).is_none() {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let inactive = Json(serde_json::json!({ "active": false })).into_response();
    let Some(token) = form.get("token") else {
        return inactive;
    };
    let claims = {
        let opaque = state.opaque.lock().unwrap_or_else(|p| p.into_inner());
        opaque.get(token).cloned()
    };
    let claims = match claims {
        Some(c) => c,
        None => match verify_own_jwt(&state, token) {
            Some(c) => c,
            None => return inactive,
        },
    };
    if !claims.is_object() {
        return inactive;
    }
    let now = unix_now();
    let live = claims["exp"].as_u64().is_some_and(|exp| exp > now)
        && claims["nbf"].as_u64().is_none_or(|nbf| nbf <= now);
    if !live {
        return inactive;
    }
    let mut body = claims;
    body["active"] = serde_json::Value::Bool(true);
    body["token_type"] = serde_json::Value::String("Bearer".into());
    Json(body).into_response()
}

/// Claims of a JWT this issuer signed with any still-published key.
fn verify_own_jwt(state: &State, token: &str) -> Option<serde_json::Value> {
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    let key = {
        let keys = state.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter().find(|k| k.kid == kid).cloned()?
    };
    let mut validation = jsonwebtoken::Validation::new(key.alg.jose());
    // Liveness is judged by the caller, so report exp/nbf as they are.
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data =
        jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding_key().ok()?, &validation)
            .ok()?;
    Some(data.claims)
}

pub(crate) fn rotate(state: &State, drop_previous: bool) -> Result<String, IssuerError> {
    let key = Arc::new(SigningKey::generate(state.config.alg)?);
    let kid = key.kid.clone();
    let mut keys = state.keys.write().unwrap_or_else(|p| p.into_inner());
    if drop_previous {
        keys.clear();
    }
    keys.push(key);
    tracing::info!(kid = %kid, drop_previous, "rotated signing key");
    Ok(kid)
}

#[derive(serde::Deserialize)]
struct RotateQuery {
    #[serde(default)]
    drop_previous: bool,
}

async fn admin_rotate(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<RotateQuery>,
) -> Response {
    if let Some(expected) = &state.config.admin_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
        }
    }
    // RSA key generation is CPU-heavy; keep it off the async workers.
    let st = state.clone();
    match tokio::task::spawn_blocking(move || rotate(&st, q.drop_previous)).await {
        Ok(Ok(kid)) => Json(serde_json::json!({ "kid": kid })).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "key rotation failed");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
        Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}
