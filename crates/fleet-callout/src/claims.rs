//! NATS JWTs: the claim types of the auth callout and their encoding.
//!
//! NATS signs its JWTs with nkeys (ed25519), which JOSE libraries do not
//! know, so this module owns the format (nats-io/jwt v2):
//! - header `{"typ":"JWT","alg":"ed25519-nkey"}`;
//! - `b64url(header) "." b64url(claims) "." b64url(sig)`, URL-safe, no padding;
//! - the signature covers `b64url(header) "." b64url(claims)` and is checked
//!   against the `iss` public nkey;
//! - `jti` = base32 (no padding) of SHA-512/256 over the claims serialized
//!   with an empty `jti` (the server does not check it);
//! - `nats.version` must be 2, or the server treats the JWT as v1 and
//!   rejects its signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::secret::Secret;

/// The only header NATS v2 JWTs carry.
pub const JWT_TYPE: &str = "JWT";
pub const JWT_ALG: &str = "ed25519-nkey";

/// Upper bound on any JWT this module decodes. A request carries the
/// client's CONNECT options (bounded by the server's 4 KiB control line) and
/// optionally its TLS certificate chains; 64 KiB is far above both.
pub const MAX_JWT_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimsError {
    #[error("JWT is {len} bytes, above the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("JWT is malformed: {0}")]
    Malformed(&'static str),
    #[error("JWT {part} is not valid base64url")]
    Base64 { part: &'static str },
    /// `detail` holds serde's error category and position, never the input
    /// (serde messages can quote values).
    #[error("JWT {part} is not the expected JSON: {detail}")]
    Json { part: &'static str, detail: String },
    #[error("JWT header has typ {typ:?} and alg {alg:?}; expected \"JWT\" and \"ed25519-nkey\"")]
    BadHeader { typ: String, alg: String },
    #[error("JWT issuer {0:?} is not a valid public nkey")]
    BadIssuer(String),
    #[error("JWT signature does not verify against its issuer {0}")]
    BadSignature(String),
    #[error("could not sign a JWT: {0}")]
    Signing(String),
}

/// Describes a serde_json error without quoting the input.
pub(crate) fn json_detail(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    #[serde(default)]
    typ: String,
    #[serde(default)]
    alg: String,
}

/// `aud` is a single string in NATS JWTs; accept a list too, to be lenient
/// on decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, value: &str) -> bool {
        match self {
            Audience::One(a) => a == value,
            Audience::Many(list) => list.iter().any(|a| a == value),
        }
    }
}

/// The registered claims of every NATS JWT, with the NATS-specific part in
/// `nats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims<N> {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iat: i64,
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exp: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nbf: i64,
    pub nats: N,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl<N> Claims<N> {
    /// Claims with the given subject and NATS part; `iss`, `iat`, `jti` are
    /// set by [`encode`].
    pub fn new(sub: impl Into<String>, nats: N) -> Self {
        Claims {
            jti: String::new(),
            iat: 0,
            iss: String::new(),
            name: String::new(),
            sub: sub.into(),
            aud: None,
            exp: 0,
            nbf: 0,
            nats,
        }
    }
}

// ---------------------------------------------------------------- request

/// `nats` of an authorization request (server -> callout).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    #[serde(default)]
    pub server_id: ServerId,
    /// One-time user key the server generated for this connection; the
    /// response and the user JWT must name it as their subject.
    #[serde(default)]
    pub user_nkey: String,
    #[serde(default)]
    pub client_info: ClientInfo,
    #[serde(default)]
    pub connect_opts: ConnectOpts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<ClientTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_nonce: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub version: i64,
}

pub const REQUEST_TYPE: &str = "authorization_request";
pub const RESPONSE_TYPE: &str = "authorization_response";
pub const USER_TYPE: &str = "user";
pub const NATS_JWT_VERSION: i64 = 2;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerId {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub host: String,
    /// The server's public nkey (N...); the response's `aud`.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The server's public curve key when requests are encrypted; must equal
    /// the `Nats-Server-Xkey` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xkey: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub name_tag: String,
    #[serde(default)]
    pub kind: String,
    #[serde(rename = "type", default)]
    pub client_type: String,
    #[serde(default)]
    pub mqtt_id: String,
    #[serde(default)]
    pub nonce: String,
}

/// The client's CONNECT options. `auth_token`, `pass` and `jwt` are
/// credentials and are redacted from `Debug` by their type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectOpts {
    #[serde(default)]
    pub jwt: Secret,
    #[serde(default)]
    pub nkey: String,
    #[serde(default)]
    pub sig: String,
    #[serde(default)]
    pub auth_token: Secret,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub pass: Secret,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub protocol: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientTls {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub cipher: String,
    #[serde(default)]
    pub certs: Vec<String>,
    #[serde(default)]
    pub verified_chains: Vec<Vec<String>>,
}

// --------------------------------------------------------------- response

/// `nats` of an authorization response (callout -> server): exactly one of
/// `jwt` (the user JWT) or `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
}

impl AuthorizationResponse {
    pub fn allow(user_jwt: String) -> Self {
        AuthorizationResponse {
            jwt: Some(user_jwt),
            error: None,
            kind: RESPONSE_TYPE.into(),
            version: NATS_JWT_VERSION,
        }
    }

    pub fn deny(error: impl Into<String>) -> Self {
        AuthorizationResponse {
            jwt: None,
            error: Some(error.into()),
            kind: RESPONSE_TYPE.into(),
            version: NATS_JWT_VERSION,
        }
    }
}

// ------------------------------------------------------------------- user

/// Subjects a user may (`allow`) or may not (`deny`) use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Permission to publish to the reply subject of requests received, without
/// a general publish permission on `_INBOX.>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePermission {
    /// Replies allowed per request.
    pub max: i64,
    /// How long after the request a reply is allowed, in nanoseconds.
    pub ttl: i64,
}

/// `nats` of a user JWT, as far as the callout uses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserNats {
    #[serde(rename = "pub", default)]
    pub publish: Permission,
    #[serde(rename = "sub", default)]
    pub subscribe: Permission,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
    /// -1 = no limit (what nats-io/jwt's `NewUserClaims` writes).
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
}

// ---------------------------------------------------------- encode/decode

/// Signs `claims` with `signer`: sets `iss` to the signer's public key,
/// `iat` to `now` if unset, computes `jti`, and returns the compact JWT.
pub fn encode<N: Serialize>(
    claims: &mut Claims<N>,
    signer: &KeyPair,
    now: i64,
) -> Result<String, ClaimsError> {
    claims.iss = signer.public_key();
    if claims.iat == 0 {
        claims.iat = now;
    }
    claims.jti.clear();
    let unsigned = serde_json::to_vec(claims).map_err(|e| ClaimsError::Json {
        part: "claims",
        detail: json_detail(&e),
    })?;
    let hash = sha2::Sha512_256::digest(&unsigned);
    claims.jti = data_encoding::BASE32_NOPAD.encode(&hash);
    let body = serde_json::to_vec(claims).map_err(|e| ClaimsError::Json {
        part: "claims",
        detail: json_detail(&e),
    })?;
    let header = serde_json::to_vec(&Header {
        typ: JWT_TYPE.into(),
        alg: JWT_ALG.into(),
    })
    .map_err(|e| ClaimsError::Json {
        part: "header",
        detail: json_detail(&e),
    })?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(body));
    let sig = signer
        .sign(token.as_bytes())
        .map_err(|e| ClaimsError::Signing(e.to_string()))?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(token)
}

/// Decodes a NATS JWT and verifies its header and its signature against the
/// public nkey in its `iss`. It does NOT judge whether that issuer is trusted,
/// nor expiry or audience: callers check those for their context.
pub fn decode<N: DeserializeOwned>(token: &[u8]) -> Result<Claims<N>, ClaimsError> {
    if token.len() > MAX_JWT_BYTES {
        return Err(ClaimsError::TooLarge {
            len: token.len(),
            max: MAX_JWT_BYTES,
        });
    }
    // Servers send the JWT as the whole payload; tolerate surrounding
    // whitespace but nothing else.
    let token = token.trim_ascii();
    let mut parts = token.split(|b| *b == b'.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ClaimsError::Malformed("expected three dot-separated parts"));
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(h64)
        .map_err(|_| ClaimsError::Base64 { part: "header" })?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|e| ClaimsError::Json {
        part: "header",
        detail: json_detail(&e),
    })?;
    if !header.typ.eq_ignore_ascii_case(JWT_TYPE) || header.alg != JWT_ALG {
        return Err(ClaimsError::BadHeader {
            typ: truncate(&header.typ),
            alg: truncate(&header.alg),
        });
    }
    let claims_json = URL_SAFE_NO_PAD
        .decode(c64)
        .map_err(|_| ClaimsError::Base64 { part: "claims" })?;
    let sig = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| ClaimsError::Base64 { part: "signature" })?;
    let claims: Claims<N> =
        serde_json::from_slice(&claims_json).map_err(|e| ClaimsError::Json {
            part: "claims",
            detail: json_detail(&e),
        })?;
    let issuer = KeyPair::from_public_key(&claims.iss)
        .map_err(|_| ClaimsError::BadIssuer(truncate(&claims.iss)))?;
    let signed_len = h64.len() + 1 + c64.len();
    issuer
        .verify(&token[..signed_len], &sig)
        .map_err(|_| ClaimsError::BadSignature(claims.iss.clone()))?;
    Ok(claims)
}

/// Bounded copy of an untrusted string for error messages.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_request(account: &str, server: &KeyPair) -> Claims<AuthorizationRequest> {
        let mut c = Claims::new(
            account,
            AuthorizationRequest {
                server_id: ServerId {
                    id: server.public_key(),
                    name: "s1".into(),
                    ..Default::default()
                },
                user_nkey: KeyPair::new_user().public_key(),
                connect_opts: ConnectOpts {
                    auth_token: Secret::new("the-token"),
                    ..Default::default()
                },
                kind: REQUEST_TYPE.into(),
                version: NATS_JWT_VERSION,
                ..Default::default()
            },
        );
        c.aud = Some(Audience::One("nats-authorization-request".into()));
        c.exp = 2_000_000_000;
        c
    }

    #[test]
    fn round_trip_keeps_every_field_and_sets_iss_jti() {
        let server = KeyPair::new_server();
        let account = KeyPair::new_account().public_key();
        let mut claims = sample_request(&account, &server);
        let token = encode(&mut claims, &server, 1_700_000_000).expect("encode");
        assert_eq!(token.split('.').count(), 3);
        let back: Claims<AuthorizationRequest> = decode(token.as_bytes()).expect("decode");
        assert_eq!(back.iss, server.public_key());
        assert_eq!(back.sub, account);
        assert_eq!(back.iat, 1_700_000_000);
        assert_eq!(back.exp, 2_000_000_000);
        assert_eq!(back.nats.connect_opts.auth_token.expose(), "the-token");
        assert_eq!(back.nats.user_nkey, claims.nats.user_nkey);
        assert_eq!(back.jti.len(), 52, "base32 of 32 bytes, no padding");
        assert_eq!(back.jti, claims.jti);
        // The header is exactly what the server expects.
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("b64");
        assert_eq!(header, br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    }

    #[test]
    fn jti_is_the_hash_of_the_claims_without_jti() {
        let server = KeyPair::new_server();
        let mut claims = sample_request("A", &server);
        encode(&mut claims, &server, 1).expect("encode");
        let jti = claims.jti.clone();
        claims.jti.clear();
        let expect = data_encoding::BASE32_NOPAD.encode(&sha2::Sha512_256::digest(
            serde_json::to_vec(&claims).expect("json"),
        ));
        assert_eq!(jti, expect);
    }

    #[test]
    fn tampering_with_any_part_is_detected() {
        let server = KeyPair::new_server();
        let mut claims = sample_request("A", &server);
        let token = encode(&mut claims, &server, 1).expect("encode");
        let parts: Vec<&str> = token.split('.').collect();

        // Changed claims, same signature.
        let mut evil = claims.clone();
        evil.nats.connect_opts.auth_token = Secret::new("other");
        let evil_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).expect("json"));
        let forged = format!("{}.{}.{}", parts[0], evil_body, parts[2]);
        assert!(matches!(
            decode::<AuthorizationRequest>(forged.as_bytes()),
            Err(ClaimsError::BadSignature(_))
        ));

        // Re-signed by another key but claiming the original issuer.
        let other = KeyPair::new_server();
        let mut resigned = claims.clone();
        let t2 = encode(&mut resigned, &other, 1).expect("encode");
        let p2: Vec<&str> = t2.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], parts[1], p2[2]);
        assert!(matches!(
            decode::<AuthorizationRequest>(forged.as_bytes()),
            Err(ClaimsError::BadSignature(_))
        ));

        // Wrong header algorithm.
        let h = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#);
        let forged = format!("{h}.{}.{}", parts[1], parts[2]);
        assert!(matches!(
            decode::<AuthorizationRequest>(forged.as_bytes()),
            Err(ClaimsError::BadHeader { .. })
        ));

        // Truncated signature.
        let forged = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..10]);
        assert!(decode::<AuthorizationRequest>(forged.as_bytes()).is_err());

        // Issuer that is not an nkey.
        let mut bad_iss = claims.clone();
        bad_iss.iss = "not-a-key".into();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&bad_iss).expect("json"));
        let forged = format!("{}.{}.{}", parts[0], body, parts[2]);
        assert!(matches!(
            decode::<AuthorizationRequest>(forged.as_bytes()),
            Err(ClaimsError::BadIssuer(_))
        ));
    }

    #[test]
    fn oversized_and_malformed_inputs_are_typed_errors() {
        let big = vec![b'a'; MAX_JWT_BYTES + 1];
        assert!(matches!(
            decode::<AuthorizationRequest>(&big),
            Err(ClaimsError::TooLarge { .. })
        ));
        assert!(matches!(
            decode::<AuthorizationRequest>(b"a.b"),
            Err(ClaimsError::Malformed(_))
        ));
        assert!(matches!(
            decode::<AuthorizationRequest>(b"!!.b.c"),
            Err(ClaimsError::Base64 { part: "header" })
        ));
    }

    #[test]
    fn json_errors_do_not_quote_the_input() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        // `exp` as a string holding a secret-looking value.
        let c = URL_SAFE_NO_PAD.encode(br#"{"exp":"SECRETVALUE","nats":{}}"#);
        let err = decode::<AuthorizationRequest>(format!("{h}.{c}.AAAA").as_bytes())
            .expect_err("refused");
        assert!(!err.to_string().contains("SECRETVALUE"), "{err}");
    }

    #[test]
    fn user_claims_serialize_like_nats_jwt() {
        let nats = UserNats {
            publish: Permission {
                allow: vec!["a.>".into()],
                deny: vec![],
            },
            subscribe: Permission::default(),
            resp: Some(ResponsePermission { max: 1, ttl: 5 }),
            subs: -1,
            data: -1,
            payload: -1,
            kind: USER_TYPE.into(),
            version: 2,
        };
        let v = serde_json::to_value(&nats).expect("json");
        assert_eq!(v["pub"]["allow"][0], "a.>");
        assert!(v["pub"].get("deny").is_none());
        assert_eq!(v["resp"]["max"], 1);
        assert_eq!(v["type"], "user");
    }
}
