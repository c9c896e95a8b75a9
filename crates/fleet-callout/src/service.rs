//! The callout itself: one decision per authorization request, and the NATS
//! loop that feeds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentId, IdentityError, agent_id_from_claims, agent_user_claims};
use crate::claims::{self, AuthorizationResponse, Claims, Permission, USER_TYPE, UserNats};
use crate::device::{self, DeviceDenial, Devices, Grant};
use crate::metrics::Metrics;
use crate::oidc::{OidcValidator, TokenError};
use crate::request::{RequestVerifier, VerifiedRequest, XKEY_HEADER};
use crate::unix_now;

/// Life of the connection that answers an enrollment or key rotation.
pub const RECEIPT_LIFETIME_SECS: i64 = 10;

/// A user that may neither publish nor subscribe: the receipt of an
/// enrollment or rotation (the connect succeeding is the whole answer).
fn receipt_user_claims(
    agent: &AgentId,
    user_nkey: &str,
    target_account: &str,
    now: i64,
) -> Claims<UserNats> {
    let deny_all = Permission {
        allow: vec![],
        deny: vec![">".into()],
    };
    let mut claims = Claims::new(
        user_nkey,
        UserNats {
            publish: deny_all.clone(),
            subscribe: deny_all,
            resp: None,
            subs: 0,
            data: -1,
            payload: -1,
            kind: USER_TYPE.into(),
            version: claims::NATS_JWT_VERSION,
        },
    );
    claims.name = agent.to_string();
    claims.aud = Some(claims::Audience::One(target_account.to_string()));
    claims.exp = now.saturating_add(RECEIPT_LIFETIME_SECS);
    claims
}

/// Subject nats-server publishes authorization requests on.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// Requests handled concurrently per replica; more wait (backpressure).
const MAX_IN_FLIGHT: usize = 256;

/// What the callout grants and how long it may take.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Account agents are placed in (`aud` of the user JWT), e.g. `FLEET`.
    pub target_account: String,
    /// Token claim holding the agent id (default `sub`).
    pub identity_claim: String,
    /// Upper bound on a connection's lifetime; the user JWT expires at the
    /// earlier of this and the token's expiry, and the server then
    /// disconnects the client, which reconnects with a fresh token.
    pub max_user_lifetime: Duration,
    /// Total time allowed for one decision, IdP calls included; keep it well
    /// below the server's `authorization.timeout` (default 2 s).
    pub budget: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            target_account: "FLEET".into(),
            identity_claim: "sub".into(),
            max_user_lifetime: Duration::from_secs(3600),
            budget: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("subscribing to {AUTH_SUBJECT} in queue group {group:?}: {detail}")]
    Subscribe { group: String, detail: String },
    #[error("flushing the NATS connection: {0}")]
    Flush(String),
}

/// Why a client was refused; the text goes to the server log (never the token).
#[derive(Debug, thiserror::Error)]
enum Denial {
    #[error("token rejected: {0}")]
    Token(#[from] TokenError),
    #[error("identity rejected: {0}")]
    Identity(#[from] IdentityError),
    #[error("device refused: {0}")]
    Device(#[from] DeviceDenial),
    #[error("a token login, but this callout has no identity provider (devices only)")]
    NoIdentityProvider,
    #[error("decision took longer than the {0:?} budget")]
    Timeout(Duration),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Denial {
    fn reason(&self) -> &'static str {
        match self {
            Denial::Token(e) => e.reason(),
            Denial::Identity(_) => "bad_identity",
            Denial::Device(d) => d.reason(),
            Denial::NoIdentityProvider => "no_identity_provider",
            Denial::Timeout(_) => "timeout",
            Denial::Internal(_) => "internal",
        }
    }
}

/// The auth-callout service. Share it behind an `Arc`.
pub struct Callout {
    verifier: RequestVerifier,
    /// `None`: no identity provider (device logins only).
    oidc: Option<OidcValidator>,
    policy: Policy,
    metrics: Metrics,
    /// Device logins (ADR 0080); `None`: every CONNECT goes to OIDC.
    devices: Option<Arc<Devices>>,
    /// Number of connections currently subscribed to [`AUTH_SUBJECT`].
    subscribed: AtomicUsize,
}

impl std::fmt::Debug for Callout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callout")
            .field("verifier", &self.verifier)
            .field("oidc", &self.oidc)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Callout {
    pub fn new(
        verifier: RequestVerifier,
        oidc: OidcValidator,
        policy: Policy,
        metrics: Metrics,
    ) -> Self {
        Callout {
            verifier,
            oidc: Some(oidc),
            policy,
            metrics,
            devices: None,
            subscribed: AtomicUsize::new(0),
        }
    }

    /// A callout with no identity provider: only device logins succeed
    /// (add them with [`Callout::with_devices`]); token logins are refused
    /// with `no_identity_provider`.
    pub fn without_oidc(verifier: RequestVerifier, policy: Policy, metrics: Metrics) -> Self {
        Callout {
            verifier,
            oidc: None,
            policy,
            metrics,
            devices: None,
            subscribed: AtomicUsize::new(0),
        }
    }

    /// Also serves device logins: key logins, enrollment and key rotation.
    pub fn with_devices(mut self, devices: Arc<Devices>) -> Self {
        self.devices = Some(devices);
        self
    }

    pub fn devices(&self) -> Option<&Arc<Devices>> {
        self.devices.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn oidc(&self) -> Option<&OidcValidator> {
        self.oidc.as_ref()
    }

    /// Ready = at least one connection subscribed to the request subject
    /// and the issuer's discovery document loaded.
    pub fn is_ready(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed) > 0
            && self.oidc.as_ref().is_none_or(OidcValidator::is_warm)
    }

    /// Handles one request payload: the bytes to reply with, or `None` when
    /// the request itself is not trustworthy (logged and counted).
    pub async fn handle(&self, payload: &[u8], xkey_header: Option<&str>) -> Option<Vec<u8>> {
        let started = Instant::now();
        let now = unix_now();
        let request = match self.verifier.verify(payload, xkey_header, now) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "dropping an authorization request that failed verification");
                self.metrics.dropped(e.label());
                return None;
            }
        };
        let decision =
            match tokio::time::timeout(self.policy.budget, self.authorize(&request, now)).await {
                Ok(d) => d,
                Err(_) => Err(Denial::Timeout(self.policy.budget)),
            };
        let info = &request.claims.nats.client_info;
        let (answer, allowed, reason) = match decision {
            Ok((agent, login, user_jwt)) => {
                tracing::info!(
                    agent = %agent,
                    login,
                    client_host = %info.host,
                    client_name = %info.name,
                    server = %request.claims.nats.server_id.name,
                    "authorized agent connection"
                );
                (AuthorizationResponse::allow(user_jwt), true, "ok")
            }
            Err(denial) => {
                tracing::warn!(
                    reason = denial.reason(),
                    error = %denial,
                    client_host = %info.host,
                    client_name = %info.name,
                    server = %request.claims.nats.server_id.name,
                    "refused connection"
                );
                let reason = denial.reason();
                (
                    AuthorizationResponse::deny(denial.to_string()),
                    false,
                    reason,
                )
            }
        };
        match self.verifier.respond(&request, answer, now) {
            Ok(bytes) => {
                self.metrics
                    .decision(allowed, reason, started.elapsed().as_secs_f64());
                Some(bytes)
            }
            Err(e) => {
                tracing::error!(error = %e, "could not sign the authorization response");
                self.metrics.dropped(e.label());
                None
            }
        }
    }

    /// Decides one login and builds the user JWT: the agent, what kind of
    /// login it was (for the log), the JWT.
    async fn authorize(
        &self,
        request: &VerifiedRequest,
        now: i64,
    ) -> Result<(AgentId, &'static str, String), Denial> {
        let opts = &request.claims.nats.connect_opts;
        if let Some(devices) = &self.devices
            && let Some(login) = device::classify(opts)
        {
            let nonce = &request.claims.nats.client_info.nonce;
            let grant = devices.decide(login, opts, nonce, now).await?;
            let jwt = self.device_user_jwt(&grant, request, now)?;
            return Ok((grant.agent().clone(), grant.kind(), jwt));
        }
        let (agent, jwt) = self.authorize_oidc(request, now).await?;
        Ok((agent, "oidc", jwt))
    }

    /// A device's user JWT: an approved device gets exactly what a pod
    /// agent with its id gets; an enrollment or rotation receipt gets no
    /// permission at all and a life of [`RECEIPT_LIFETIME_SECS`].
    fn device_user_jwt(
        &self,
        grant: &Grant,
        request: &VerifiedRequest,
        now: i64,
    ) -> Result<String, Denial> {
        let mut user = match grant {
            Grant::Agent(agent) => agent_user_claims(
                agent,
                request.user_nkey(),
                &self.policy.target_account,
                now.saturating_add(
                    i64::try_from(self.policy.max_user_lifetime.as_secs()).unwrap_or(i64::MAX),
                ),
            ),
            Grant::Enrolled { agent, .. } | Grant::Rotated(agent) => {
                receipt_user_claims(agent, request.user_nkey(), &self.policy.target_account, now)
            }
        };
        claims::encode(&mut user, self.verifier.issuer(), now)
            .map_err(|e| Denial::Internal(e.to_string()))
    }

    /// Validates the presented OIDC token and builds the user JWT.
    async fn authorize_oidc(
        &self,
        request: &VerifiedRequest,
        now: i64,
    ) -> Result<(AgentId, String), Denial> {
        let token = request.claims.nats.connect_opts.auth_token.expose();
        let Some(oidc) = &self.oidc else {
            return Err(Denial::NoIdentityProvider);
        };
        let validated = oidc.validate(token).await?;
        let agent = agent_id_from_claims(&validated.claims, &self.policy.identity_claim)?;
        let max = now.saturating_add(
            i64::try_from(self.policy.max_user_lifetime.as_secs()).unwrap_or(i64::MAX),
        );
        let exp = validated.exp.map_or(max, |e| e.min(max));
        // Accepted within the clock leeway but already past: the server
        // would refuse a user JWT that is expired on arrival.
        if exp <= now {
            return Err(TokenError::Expired.into());
        }
        let mut user = agent_user_claims(
            &agent,
            request.user_nkey(),
            &self.policy.target_account,
            exp,
        );
        let jwt = claims::encode(&mut user, self.verifier.issuer(), now)
            .map_err(|e| Denial::Internal(e.to_string()))?;
        Ok((agent, jwt))
    }

    /// Serves requests from `client` (connected as an `auth_users` member)
    /// in queue group `queue_group` until `shutdown` fires or the
    /// connection's subscription ends; then stops taking requests, finishes
    /// the ones in flight and flushes.
    ///
    /// May run on several connections at once (one call each): nats-server
    /// processes the responses arriving on one connection one after the
    /// other, so more connections let it check them in parallel.
    pub async fn serve(
        self: Arc<Self>,
        client: async_nats::Client,
        queue_group: &str,
        shutdown: CancellationToken,
    ) -> Result<(), ServiceError> {
        let mut sub = client
            .queue_subscribe(AUTH_SUBJECT, queue_group.to_string())
            .await
            .map_err(|e| ServiceError::Subscribe {
                group: queue_group.to_string(),
                detail: e.to_string(),
            })?;
        // The server registers the subscription once it has processed our
        // SUB; flushing (PING/PONG) makes readiness mean "requests arrive".
        client
            .flush()
            .await
            .map_err(|e| ServiceError::Flush(e.to_string()))?;
        self.subscribed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            subject = AUTH_SUBJECT,
            queue_group,
            "serving authorization requests"
        );

        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                msg = sub.next() => msg,
            };
            let Some(msg) = msg else {
                tracing::warn!("authorization request subscription ended");
                break;
            };
            let Some(reply) = msg.reply.clone() else {
                self.metrics.dropped("no_reply_subject");
                continue;
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let xkey = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(XKEY_HEADER))
                    .map(|v| v.as_str().to_string());
                if let Some(answer) = this.handle(&msg.payload, xkey.as_deref()).await
                    && let Err(e) = client.publish(reply, answer.into()).await
                {
                    tracing::warn!(error = %e, "could not publish the authorization response");
                }
                drop(permit);
            });
        }
        self.subscribed.fetch_sub(1, Ordering::Relaxed);
        let _ = sub.unsubscribe().await;
        // Wait for the requests in flight (each bounded by the budget).
        let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
        client
            .flush()
            .await
            .map_err(|e| ServiceError::Flush(e.to_string()))?;
        tracing::info!("stopped serving authorization requests");
        Ok(())
    }
}
