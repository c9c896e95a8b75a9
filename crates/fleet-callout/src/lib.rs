//! `fleet-callout`: the NATS auth-callout service of FleetStack.
//!
//! nats-server (configured with `authorization.auth_callout`) sends every
//! connecting client's CONNECT options, as a signed JWT, to
//! `$SYS.REQ.USER.AUTH`. This service, subscribed there in a queue group so
//! replicas share the load:
//! 1. verifies the request ([`request`]): a server-signed NATS JWT addressed
//!    to our issuer account, not expired, optionally xkey-encrypted;
//! 2. validates the client's bearer token (`auth_token`) against the OIDC
//!    issuer ([`oidc`], [`jwks`]): JWTs through the JWKS, opaque tokens
//!    through introspection;
//! 3. maps the identity to an agent id ([`agent`]) and answers with a user
//!    JWT for the FLEET account that only reaches `fleet.agent.<id>.>` (see
//!    [`agent`] for exactly what an agent may do and why), expiring no later
//!    than the token;
//! 4. or answers with an `error` (the server then refuses the client with
//!    `Authorization Violation`), logging and counting the reason, never the
//!    token.
//!
//! Devices (agents outside Kubernetes, ADR 0080) log in with their own
//! NKey instead of a token, enroll with a bootstrap token and are kicked
//! when revoked: [`device`].
//!
//! Wire format: [`claims`]. Configuration of the binary: [`config`].

pub mod agent;
pub mod claims;
pub mod config;
pub mod device;
pub mod http;
pub mod idp;
pub mod jwks;
pub mod metrics;
pub mod oidc;
pub mod request;
pub mod secret;
pub mod service;

pub use agent::{AgentId, IdentityError, agent_id_from_claims};
pub use config::{ConfigError, Settings};
pub use metrics::Metrics;
pub use oidc::{ClientCredentials, OidcConfig, OidcValidator, TokenError};
pub use request::RequestVerifier;
pub use secret::Secret;
pub use service::{AUTH_SUBJECT, Callout, Policy, ServiceError};

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
