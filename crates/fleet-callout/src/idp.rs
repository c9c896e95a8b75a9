//! What talking to the identity provider can fail with, and the two HTTP
//! helpers every call to it uses (size-capped JSON, secret-free error
//! text). Its own module so that `oidc` (discovery, introspection) and
//! `jwks` (the key cache) both depend on it rather than on each other.

use std::time::Duration;

/// Largest discovery / JWKS / introspection response read.
pub(crate) const MAX_IDP_RESPONSE_BYTES: usize = 256 * 1024;
/// After a failed discovery, wait this long before trying again.
pub(crate) const DISCOVERY_RETRY: Duration = Duration::from_secs(1);

/// A problem talking to the issuer (not the token's fault).
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("{what} request to {url} failed: {detail}")]
    Http {
        what: &'static str,
        url: String,
        detail: String,
    },
    #[error("{what} at {url} answered HTTP {status}")]
    Status {
        what: &'static str,
        url: String,
        status: u16,
    },
    #[error("{what} at {url} is larger than {MAX_IDP_RESPONSE_BYTES} bytes")]
    TooLarge { what: &'static str, url: String },
    #[error("{what} at {url} is not the expected JSON: {detail}")]
    Json {
        what: &'static str,
        url: String,
        detail: String,
    },
    #[error("discovery at {url} names issuer {got:?}, expected {expected:?}")]
    IssuerMismatch {
        url: String,
        expected: String,
        got: String,
    },
    #[error("discovery failed less than {DISCOVERY_RETRY:?} ago; not retrying yet")]
    DiscoveryBackoff,
    #[error("the issuer has no introspection endpoint")]
    NoIntrospectionEndpoint,
}

/// Why a token was refused. [`TokenError::reason`] is the metric label and
/// the word logged; messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no token in the CONNECT options")]
    Missing,
    #[error("token is {len} bytes, above the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token issuer is not the configured issuer")]
    WrongIssuer,
    #[error("token audience does not include the configured audience")]
    WrongAudience,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token is signed with key {kid:?}, which the issuer does not publish")]
    UnknownKey { kid: String },
    #[error("token algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("introspection says the token is not active")]
    Inactive,
    #[error("opaque token but no introspection client is configured")]
    OpaqueNotSupported,
    #[error("identity provider unavailable: {0}")]
    Idp(#[from] IdpError),
}

impl TokenError {
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "no_token",
            TokenError::TooLarge { .. } => "token_too_large",
            TokenError::Malformed(_) => "malformed_token",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::BadSignature => "bad_signature",
            TokenError::UnknownKey { .. } => "unknown_key",
            TokenError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            TokenError::Inactive => "inactive",
            TokenError::OpaqueNotSupported => "opaque_not_supported",
            TokenError::Idp(_) => "idp_unavailable",
        }
    }
}

/// reqwest errors can include the URL (fine) but never the request body;
/// still, keep only the kind and the source chain's first message.
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_decode() {
        "decode"
    } else {
        "request"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_string(),
    }
}

/// Reads a JSON response of at most [`MAX_IDP_RESPONSE_BYTES`].
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    mut resp: reqwest::Response,
    what: &'static str,
    url: &str,
) -> Result<T, IdpError> {
    let status = resp.status();
    if !status.is_success() {
        return Err(IdpError::Status {
            what,
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_IDP_RESPONSE_BYTES as u64)
    {
        return Err(IdpError::TooLarge {
            what,
            url: url.to_string(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| IdpError::Http {
        what,
        url: url.to_string(),
        detail: describe_reqwest(&e),
    })? {
        if body.len() + chunk.len() > MAX_IDP_RESPONSE_BYTES {
            return Err(IdpError::TooLarge {
                what,
                url: url.to_string(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| IdpError::Json {
        what,
        url: url.to_string(),
        detail: crate::claims::json_detail(&e),
    })
}
