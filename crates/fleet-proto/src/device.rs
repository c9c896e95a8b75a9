//! What a device puts in its NATS CONNECT `auth_token` to enroll or to
//! rotate its key (docs/adr/0080-device-identity-enrollment-revocation.md).
//!
//! Both ride on a connection that also carries the device's `nkey` and its
//! `sig` over the server's nonce, so they prove possession of the key and
//! cannot be replayed on another connection (another nonce).
//!
//! - enrollment: `fleet-enroll-v1.` + base64url(JSON `{"token", "agentId"}`),
//!   `token` being the bootstrap token `<FleetEnrollmentToken name>.<secret>`;
//! - rotation: `fleet-rotate-v1.` + base64url(JSON `{"publicKey", "sig"}`),
//!   the new key and its signature over the same nonce (the connection
//!   itself is signed with the old key).
//!
//! Decoding is strict (unknown fields refused, bounded size) and never
//! panics; `crates/fleet-callout/fuzz` feeds it arbitrary bytes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{AgentId, AgentIdError};

pub const ENROLL_PREFIX: &str = "fleet-enroll-v1.";
pub const ROTATE_PREFIX: &str = "fleet-rotate-v1.";
/// nats-server refuses a CONNECT line above 4096 bytes (`max_control_line`);
/// an enrollment request is far smaller, so anything above this is refused
/// before decoding.
pub const MAX_DEVICE_TOKEN_BYTES: usize = 2048;
/// Shortest and longest secret half of a bootstrap token.
pub const MIN_SECRET_LEN: usize = 32;
pub const MAX_SECRET_LEN: usize = 128;
/// Longest token name (a Kubernetes object name).
pub const MAX_TOKEN_NAME_LEN: usize = 253;

/// Why an `auth_token` is not a valid device request. Never holds the
/// token's secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceTokenError {
    #[error("device request is {len} bytes; at most {MAX_DEVICE_TOKEN_BYTES} are accepted")]
    TooLong { len: usize },
    #[error("device request does not start with {ENROLL_PREFIX:?} or {ROTATE_PREFIX:?}")]
    UnknownKind,
    #[error("device request is not base64url without padding")]
    Base64,
    #[error("device request is not the expected JSON: {0}")]
    Json(String),
    #[error("bootstrap token is not <name>.<secret>")]
    TokenShape,
    #[error("bootstrap token name {name:?} is not a valid object name")]
    TokenName { name: String },
    #[error(
        "bootstrap token secret must be {MIN_SECRET_LEN}..={MAX_SECRET_LEN} characters of [A-Za-z0-9_-]"
    )]
    TokenSecret,
    #[error("requested agent id: {0}")]
    AgentId(#[from] AgentIdError),
    #[error("{field} is not a public user nkey (U... , 56 characters)")]
    PublicKey { field: &'static str },
}

/// A bootstrap token: the object name (public) and the secret half.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    pub name: String,
    secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl BootstrapToken {
    /// Parses `<name>.<secret>`: name a DNS subdomain (lower case letters,
    /// digits, `-` and `.`), secret [`MIN_SECRET_LEN`].. characters of
    /// `[A-Za-z0-9_-]`. The split is at the LAST `.` (names may hold dots,
    /// secrets may not).
    pub fn parse(text: &str) -> Result<Self, DeviceTokenError> {
        let (name, secret) = text.rsplit_once('.').ok_or(DeviceTokenError::TokenShape)?;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_TOKEN_NAME_LEN
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'))
            && name
                .split('.')
                .all(|part| !part.is_empty() && !part.starts_with('-') && !part.ends_with('-'));
        if !name_ok {
            return Err(DeviceTokenError::TokenName { name: name.into() });
        }
        let secret_ok = (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len())
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !secret_ok {
            return Err(DeviceTokenError::TokenSecret);
        }
        Ok(BootstrapToken {
            name: name.into(),
            secret: secret.into(),
        })
    }

    /// The secret half; hash it, never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The text a device is given (and presents).
    pub fn expose(&self) -> String {
        format!("{}.{}", self.name, self.secret)
    }
}

/// A device's request to join: which token, which agent id it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRequest {
    pub token: BootstrapToken,
    pub agent_id: AgentId,
}

/// A device's request to replace its key: the new public key and the new
/// key's signature (base64url, raw) over this connection's nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRequest {
    pub public_key: String,
    pub sig: String,
}

/// What an `auth_token` that is a device request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRequest {
    Enroll(EnrollmentRequest),
    Rotate(RotationRequest),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnrollWire {
    token: String,
    agent_id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateWire {
    public_key: String,
    sig: String,
}

/// True when `auth_token` is meant as a device request (whether or not it
/// then decodes): the callout routes such tokens here, never to OIDC.
pub fn is_device_request(auth_token: &str) -> bool {
    auth_token.starts_with(ENROLL_PREFIX) || auth_token.starts_with(ROTATE_PREFIX)
}

/// Decodes an enrollment or rotation request from a CONNECT `auth_token`.
pub fn decode_device_request(auth_token: &str) -> Result<DeviceRequest, DeviceTokenError> {
    if auth_token.len() > MAX_DEVICE_TOKEN_BYTES {
        return Err(DeviceTokenError::TooLong {
            len: auth_token.len(),
        });
    }
    if let Some(body) = auth_token.strip_prefix(ENROLL_PREFIX) {
        let wire: EnrollWire = decode_json(body)?;
        let token = BootstrapToken::parse(&wire.token)?;
        let agent_id = AgentId::new(wire.agent_id)?;
        return Ok(DeviceRequest::Enroll(EnrollmentRequest { token, agent_id }));
    }
    if let Some(body) = auth_token.strip_prefix(ROTATE_PREFIX) {
        let wire: RotateWire = decode_json(body)?;
        if !is_user_public_key(&wire.public_key) {
            return Err(DeviceTokenError::PublicKey { field: "publicKey" });
        }
        return Ok(DeviceRequest::Rotate(RotationRequest {
            public_key: wire.public_key,
            sig: wire.sig,
        }));
    }
    Err(DeviceTokenError::UnknownKind)
}

fn decode_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, DeviceTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| DeviceTokenError::Base64)?;
    // Only the category and position: serde_json's messages can quote input
    // values, and the input holds the token's secret.
    serde_json::from_slice(&bytes).map_err(|e| {
        DeviceTokenError::Json(format!("{:?} error at column {}", e.classify(), e.column()))
    })
}

/// The `auth_token` of an enrollment connection.
pub fn encode_enrollment(token: &BootstrapToken, agent_id: &AgentId) -> String {
    let wire = EnrollWire {
        token: token.expose(),
        agent_id: agent_id.to_string(),
    };
    let json = serde_json::to_vec(&wire).unwrap_or_default();
    format!("{ENROLL_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
}

/// The `auth_token` of a key-rotation connection; `sig` is the new key's
/// raw signature over the nonce.
pub fn encode_rotation(new_public_key: &str, sig: &[u8]) -> String {
    let wire = RotateWire {
        public_key: new_public_key.into(),
        sig: URL_SAFE_NO_PAD.encode(sig),
    };
    let json = serde_json::to_vec(&wire).unwrap_or_default();
    format!("{ROTATE_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
}

/// Shape check of a public user nkey: `U` and 55 base32 characters. (The
/// checksum is verified where the key is used, by `nkeys`.)
pub fn is_user_public_key(key: &str) -> bool {
    key.len() == 56
        && key.starts_with('U')
        && key.bytes().all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn enrollment_round_trips_and_hides_the_secret() {
        let token = BootstrapToken::parse(&format!("site-a.tokens.{SECRET}")).expect("token");
        assert_eq!(token.name, "site-a.tokens");
        let id = AgentId::new("gw-1").expect("id");
        let text = encode_enrollment(&token, &id);
        assert!(is_device_request(&text));
        assert_eq!(
            decode_device_request(&text),
            Ok(DeviceRequest::Enroll(EnrollmentRequest {
                token: token.clone(),
                agent_id: id
            }))
        );
        assert!(!format!("{token:?}").contains(SECRET));
    }

    #[test]
    fn rotation_round_trips() {
        let key = format!("U{}", "A".repeat(55));
        let text = encode_rotation(&key, &[1, 2, 3]);
        let Ok(DeviceRequest::Rotate(r)) = decode_device_request(&text) else {
            panic!("rotation expected")
        };
        assert_eq!(r.public_key, key);
        assert_eq!(r.sig, "AQID");
    }

    #[test]
    fn refuses_malformed_requests_without_echoing_secrets() {
        let enc = |json: &str| format!("{ENROLL_PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
        let cases = [
            ("fleet-enroll-v2.e30".to_string(), "unknown kind"),
            (format!("{ENROLL_PREFIX}!!"), "base64"),
            (enc("{}"), "missing fields"),
            (
                enc(&format!(
                    r#"{{"token":"a.{SECRET}","agentId":"x","extra":1}}"#
                )),
                "unknown field",
            ),
            (
                enc(&format!(r#"{{"token":"A.{SECRET}","agentId":"x"}}"#)),
                "upper-case name",
            ),
            (enc(r#"{"token":"a.short","agentId":"x"}"#), "short secret"),
            (
                enc(&format!(r#"{{"token":"a.{SECRET}","agentId":"a.b"}}"#)),
                "id with a dot",
            ),
            (
                enc(&format!(r#"{{"token":"{SECRET}","agentId":"x"}}"#)),
                "no name",
            ),
            ("x".repeat(MAX_DEVICE_TOKEN_BYTES + 1), "too long"),
        ];
        for (text, what) in cases {
            let err = decode_device_request(&text).expect_err(what);
            assert!(!err.to_string().contains(SECRET), "{what}: {err}");
        }
    }

    #[test]
    fn public_key_shape() {
        assert!(is_user_public_key(&format!("U{}", "A".repeat(55))));
        assert!(!is_user_public_key(&format!("A{}", "A".repeat(55))));
        assert!(!is_user_public_key(&format!("U{}", "a".repeat(55))));
        assert!(!is_user_public_key("U"));
    }
}
