//! Identity smoke probe: the issuer's discovery answers (with our issuer
//! and a token endpoint) and a probe identity obtains a token with
//! `client_credentials`. With managed Zitadel, `/debug/ready` is checked
//! first with the `Host` header Zitadel routes on (without it Zitadel
//! answers "Instance not found").
//!
//! A machine user created moments ago is not known to Zitadel's token
//! endpoint yet: `clientCredentialsAuth` looks the client up in the user
//! projection without triggering it (`GetUserByLoginName(ctx, false, ..)`
//! in zitadel `internal/api/oidc/client_credentials.go`) and answers
//! `invalid_client` ("client not found") until the projection caught up.
//! [`smoke_probe_new_identity`] retries exactly that answer, boundedly.

use std::time::{Duration, Instant};

use super::provision::Retry;
use crate::score::ProbeOutcome;
use crate::secret::Sensitive;

#[derive(Debug, Clone)]
pub struct IdentityProbeTarget {
    /// Issuer URL as in tokens' `iss`.
    pub issuer: String,
    /// Where this process reaches the issuer, if not at `issuer` itself
    /// (managed Zitadel: `http://<service host>:8080`); requests then carry
    /// `Host: <host of issuer>`.
    pub reach_at: Option<String>,
    /// Check `/debug/ready` first (Zitadel).
    pub zitadel_ready: bool,
    /// The probe identity (client id, secret); `None` checks readiness and
    /// discovery only.
    pub client: Option<(String, Sensitive)>,
    pub scope: Option<String>,
}

/// Runs the probe within `deadline`.
pub async fn smoke_probe(target: &IdentityProbeTarget, deadline: Duration) -> ProbeOutcome {
    probe_within(target, deadline, None).await
}

/// [`smoke_probe`] for a client that may have been created moments ago: a
/// token answer `invalid_client` is retried per `lag` (still within
/// `deadline`) before it counts as a refusal.
pub async fn smoke_probe_new_identity(
    target: &IdentityProbeTarget,
    deadline: Duration,
    lag: Retry,
) -> ProbeOutcome {
    probe_within(target, deadline, Some(lag)).await
}

async fn probe_within(
    target: &IdentityProbeTarget,
    deadline: Duration,
    lag: Option<Retry>,
) -> ProbeOutcome {
    let started = Instant::now();
    let result = tokio::time::timeout(deadline, run(target, deadline, lag)).await;
    let latency = started.elapsed();
    match result {
        Ok(Ok(())) => ProbeOutcome::Passed {
            latency,
            message: match &target.client {
                Some((id, _)) => {
                    format!("identity: discovery answered and client {id} obtained a token")
                }
                None => "identity: discovery answered (no probe identity configured)".into(),
            },
        },
        Ok(Err((reason, message))) => ProbeOutcome::Failed {
            reason,
            message,
            latency,
        },
        Err(_) => ProbeOutcome::Failed {
            reason: "ProbeTimeout",
            message: format!(
                "identity: probe of {} did not finish within {}s",
                target.issuer,
                deadline.as_secs()
            ),
            latency,
        },
    }
}

type Failure = (&'static str, String);

/// The OAuth error of a refused token request, if that was the failure.
enum TokenFailure {
    /// `invalid_client`: unknown client or wrong secret (RFC 6749 §5.2).
    InvalidClient(Failure),
    Other(Failure),
}

async fn run(
    t: &IdentityProbeTarget,
    deadline: Duration,
    lag: Option<Retry>,
) -> Result<(), Failure> {
    let http = reqwest::Client::builder()
        .timeout(deadline)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ("ProbeSetupFailed", format!("identity: HTTP client: {e}")))?;
    let issuer = t.issuer.trim_end_matches('/');
    // (URL to call, Host header) for a path of the issuer.
    let host = issuer
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    let at = |path: &str| match &t.reach_at {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => format!("{issuer}{path}"),
    };
    let get = |url: String| {
        let mut req = http.get(url);
        if t.reach_at.is_some() {
            req = req.header(reqwest::header::HOST, host.clone());
        }
        req
    };

    if t.zitadel_ready {
        let url = at("/debug/ready");
        let resp = get(url.clone()).send().await.map_err(|e| {
            (
                "IdentityUnreachable",
                format!("identity: GET {url}: {}", cause(&e)),
            )
        })?;
        if !resp.status().is_success() {
            return Err((
                "IdentityNotReady",
                format!("identity: GET {url} answered {}", resp.status()),
            ));
        }
    }

    let url = at("/.well-known/openid-configuration");
    let resp = get(url.clone()).send().await.map_err(|e| {
        (
            "IdentityUnreachable",
            format!("identity: GET {url}: {}", cause(&e)),
        )
    })?;
    if !resp.status().is_success() {
        return Err((
            "DiscoveryFailed",
            format!("identity: GET {url} answered {}", resp.status()),
        ));
    }
    let doc: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| ("DiscoveryFailed", format!("identity: {url}: {e}")))?;
    let found = doc["issuer"].as_str().unwrap_or_default();
    if found.trim_end_matches('/') != issuer {
        return Err((
            "IssuerMismatch",
            format!("identity: {url} names issuer {found:?}, expected {issuer:?}"),
        ));
    }
    let token_endpoint = doc["token_endpoint"].as_str().ok_or((
        "DiscoveryFailed",
        format!("identity: {url} has no token_endpoint"),
    ))?;
    let Some((client_id, client_secret)) = &t.client else {
        return Ok(());
    };
    // The token endpoint is in the issuer's URL space; reach it the same way.
    let token_url = match (&t.reach_at, token_endpoint.strip_prefix(issuer)) {
        (Some(_), Some(path)) => at(path),
        _ => token_endpoint.to_string(),
    };
    let host_header = t.reach_at.is_some().then_some(host.as_str());
    let mut tries = 0;
    loop {
        tries += 1;
        let attempt =
            request_token(&http, &token_url, host_header, client_id, client_secret, t).await;
        match (attempt, lag) {
            (Ok(()), _) => return Ok(()),
            (Err(TokenFailure::InvalidClient(_)), Some(lag)) if tries < lag.attempts => {
                tokio::time::sleep(lag.backoff(tries)).await;
            }
            (Err(TokenFailure::InvalidClient(f)), _) | (Err(TokenFailure::Other(f)), _) => {
                return Err(f);
            }
        }
    }
}

/// One `client_credentials` request.
async fn request_token(
    http: &reqwest::Client,
    token_url: &str,
    host: Option<&str>,
    client_id: &str,
    client_secret: &Sensitive,
    t: &IdentityProbeTarget,
) -> Result<(), TokenFailure> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &t.scope {
        form.push(("scope", scope));
    }
    let mut req = http
        .post(token_url)
        .basic_auth(client_id, Some(client_secret.expose()))
        .form(&form);
    if let Some(host) = host {
        req = req.header(reqwest::header::HOST, host);
    }
    let resp = req.send().await.map_err(|e| {
        TokenFailure::Other((
            "IdentityUnreachable",
            format!("identity: POST {token_url}: {}", cause(&e)),
        ))
    })?;
    let status = resp.status();
    // Only the OAuth error code is reported, never the body (it could
    // hold a token).
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let error = body["error"].as_str().unwrap_or("no OAuth error");
        let failure = (
            "TokenRefused",
            format!("identity: {token_url} refused probe client {client_id} ({status} {error})"),
        );
        return Err(if error == "invalid_client" {
            TokenFailure::InvalidClient(failure)
        } else {
            TokenFailure::Other(failure)
        });
    }
    match body["access_token"].as_str() {
        Some(token) if !token.is_empty() => Ok(()),
        _ => Err(TokenFailure::Other((
            "TokenRefused",
            format!("identity: {token_url} answered without an access_token"),
        ))),
    }
}

fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
