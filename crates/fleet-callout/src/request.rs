//! Authorization requests from nats-server: opening (xkey), verifying, and
//! sealing the response.
//!
//! What makes a request trustworthy: it is signed by a server key (`iss`
//! starts with `N`), addressed to us (`sub` = our issuer account key, `aud` =
//! `nats-authorization-request`), not expired, and of the right type. In
//! config mode the server key is generated at each server start, so it
//! cannot be pinned; the subject `$SYS.REQ.USER.AUTH` of the AUTH account is
//! only reachable by the server and the `auth_users`.

use nkeys::{KeyPair, KeyPairType, XKey};

use crate::claims::{
    self, AuthorizationRequest, AuthorizationResponse, Claims, ClaimsError, NATS_JWT_VERSION,
    REQUEST_TYPE,
};

/// `aud` of every request.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// Header naming the server's public curve key on encrypted requests.
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// Why a request was dropped. No response is sent for these: without a
/// verified request there is no user key or server id to answer to, and the
/// server then refuses the client when its timeout passes.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request could not be decoded: {0}")]
    Claims(#[from] ClaimsError),
    #[error("request is encrypted (Nats-Server-Xkey header) but no xkey seed is configured")]
    EncryptedButNoXkey,
    #[error("an xkey is configured but the request is not encrypted; refusing plaintext")]
    PlaintextButXkeyConfigured,
    #[error("request header xkey {header:?} is not a valid curve key")]
    BadServerXkey { header: String },
    #[error("request could not be decrypted with our xkey")]
    Decrypt,
    #[error("request header xkey does not match the signed server_id.xkey")]
    XkeyMismatch,
    #[error("request issuer {0} is not a server key")]
    IssuerNotServer(String),
    #[error("request is for issuer account {got:?}, we are {expected}")]
    WrongSubject { got: String, expected: String },
    #[error("request audience is not {REQUEST_AUDIENCE:?}")]
    WrongAudience,
    #[error("request expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("request type {kind:?} version {version} is not an authorization_request v2")]
    WrongType { kind: String, version: i64 },
    #[error("request user_nkey {0:?} is not a user public key")]
    BadUserNkey(String),
    #[error("request has no server_id.id")]
    NoServerId,
    #[error("could not build the response: {0}")]
    Response(String),
}

impl RequestError {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RequestError::Claims(ClaimsError::BadSignature(_)) => "bad_signature",
            RequestError::Claims(_) => "malformed",
            RequestError::EncryptedButNoXkey
            | RequestError::PlaintextButXkeyConfigured
            | RequestError::BadServerXkey { .. }
            | RequestError::Decrypt
            | RequestError::XkeyMismatch => "encryption",
            RequestError::IssuerNotServer(_) => "issuer_not_server",
            RequestError::WrongSubject { .. } => "wrong_subject",
            RequestError::WrongAudience => "wrong_audience",
            RequestError::Expired { .. } => "expired",
            RequestError::WrongType { .. } => "wrong_type",
            RequestError::BadUserNkey(_) | RequestError::NoServerId => "malformed",
            RequestError::Response(_) => "response",
        }
    }
}

/// A request that passed every check, with what is needed to answer it.
#[derive(Debug)]
pub struct VerifiedRequest {
    pub claims: Claims<AuthorizationRequest>,
    /// The server's curve key when the request came encrypted; the response
    /// is then encrypted to it.
    pub server_xkey: Option<XKey>,
}

impl VerifiedRequest {
    pub fn user_nkey(&self) -> &str {
        &self.claims.nats.user_nkey
    }
    pub fn server_id(&self) -> &str {
        &self.claims.nats.server_id.id
    }
}

/// Checks requests and signs responses with the issuer account key.
pub struct RequestVerifier {
    issuer: KeyPair,
    xkey: Option<XKey>,
}

impl std::fmt::Debug for RequestVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestVerifier")
            .field("issuer", &self.issuer.public_key())
            .field("xkey", &self.xkey.as_ref().map(XKey::public_key))
            .finish()
    }
}

impl RequestVerifier {
    /// `issuer` must hold the account seed whose public key is the server's
    /// `auth_callout.issuer`; `xkey` the curve seed matching `auth_callout.xkey`.
    pub fn new(issuer: KeyPair, xkey: Option<XKey>) -> Self {
        RequestVerifier { issuer, xkey }
    }

    pub fn issuer(&self) -> &KeyPair {
        &self.issuer
    }

    /// Opens and verifies one request payload. `xkey_header` is the value of
    /// the `Nats-Server-Xkey` header, if any. `now` is unix seconds.
    pub fn verify(
        &self,
        payload: &[u8],
        xkey_header: Option<&str>,
        now: i64,
    ) -> Result<VerifiedRequest, RequestError> {
        if payload.len() > claims::MAX_JWT_BYTES * 2 {
            return Err(ClaimsError::TooLarge {
                len: payload.len(),
                max: claims::MAX_JWT_BYTES * 2,
            }
            .into());
        }
        let (plain, server_xkey) = match (xkey_header, &self.xkey) {
            (Some(header), Some(ours)) => {
                let server =
                    XKey::from_public_key(header).map_err(|_| RequestError::BadServerXkey {
                        header: header.chars().take(64).collect(),
                    })?;
                let plain = ours
                    .open(payload, &server)
                    .map_err(|_| RequestError::Decrypt)?;
                (plain, Some(server))
            }
            (Some(_), None) => return Err(RequestError::EncryptedButNoXkey),
            (None, Some(_)) => return Err(RequestError::PlaintextButXkeyConfigured),
            (None, None) => (payload.to_vec(), None),
        };
        let claims: Claims<AuthorizationRequest> = claims::decode(&plain)?;

        let issuer_is_server = KeyPair::from_public_key(&claims.iss)
            .map(|k| k.key_pair_type() == KeyPairType::Server)
            .unwrap_or(false);
        if !issuer_is_server {
            return Err(RequestError::IssuerNotServer(claims.iss.clone()));
        }
        if claims.sub != self.issuer.public_key() {
            return Err(RequestError::WrongSubject {
                got: claims.sub.chars().take(64).collect(),
                expected: self.issuer.public_key(),
            });
        }
        if !claims
            .aud
            .as_ref()
            .is_some_and(|a| a.contains(REQUEST_AUDIENCE))
        {
            return Err(RequestError::WrongAudience);
        }
        // The server always sets exp (now + auth timeout); a request without
        // one, or past it, is a replay or a forgery.
        if claims.exp == 0 || claims.exp < now {
            return Err(RequestError::Expired {
                exp: claims.exp,
                now,
            });
        }
        if claims.nats.kind != REQUEST_TYPE || claims.nats.version != NATS_JWT_VERSION {
            return Err(RequestError::WrongType {
                kind: claims.nats.kind.chars().take(64).collect(),
                version: claims.nats.version,
            });
        }
        let user_ok = KeyPair::from_public_key(&claims.nats.user_nkey)
            .map(|k| k.key_pair_type() == KeyPairType::User)
            .unwrap_or(false);
        if !user_ok {
            return Err(RequestError::BadUserNkey(
                claims.nats.user_nkey.chars().take(64).collect(),
            ));
        }
        if claims.nats.server_id.id.is_empty() {
            return Err(RequestError::NoServerId);
        }
        if let Some(server) = &server_xkey
            && claims.nats.server_id.xkey.as_deref() != Some(server.public_key().as_str())
        {
            return Err(RequestError::XkeyMismatch);
        }
        Ok(VerifiedRequest {
            claims,
            server_xkey,
        })
    }

    /// Signs the response to `request` (and encrypts it if the request was
    /// encrypted): `sub` = the request's user nkey, `aud` = the server id.
    pub fn respond(
        &self,
        request: &VerifiedRequest,
        answer: AuthorizationResponse,
        now: i64,
    ) -> Result<Vec<u8>, RequestError> {
        let mut claims = Claims::new(request.user_nkey(), answer);
        claims.aud = Some(claims::Audience::One(request.server_id().to_string()));
        let jwt = claims::encode(&mut claims, &self.issuer, now)?;
        match (&request.server_xkey, &self.xkey) {
            (Some(server), Some(ours)) => ours
                .seal(jwt.as_bytes(), server)
                .map_err(|e| RequestError::Response(format!("sealing for the server: {e}"))),
            _ => Ok(jwt.into_bytes()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::claims::{Audience, ServerId};

    /// Builds a request as nats-server would, signed by `server`.
    pub(crate) fn server_request(
        server: &KeyPair,
        issuer_account: &str,
        token: &str,
        exp: i64,
        server_xkey: Option<&XKey>,
    ) -> String {
        let mut c = Claims::new(
            issuer_account,
            AuthorizationRequest {
                server_id: ServerId {
                    id: server.public_key(),
                    name: "test".into(),
                    xkey: server_xkey.map(XKey::public_key),
                    ..Default::default()
                },
                user_nkey: KeyPair::new_user().public_key(),
                connect_opts: claims::ConnectOpts {
                    auth_token: crate::secret::Secret::new(token),
                    ..Default::default()
                },
                kind: REQUEST_TYPE.into(),
                version: 2,
                ..Default::default()
            },
        );
        c.aud = Some(Audience::One(REQUEST_AUDIENCE.into()));
        c.exp = exp;
        claims::encode(&mut c, server, 1).expect("encode")
    }

    #[test]
    fn accepts_a_server_request_and_rejects_each_bad_field() {
        let account = KeyPair::new_account();
        let verifier = RequestVerifier::new(
            KeyPair::from_seed(&account.seed().expect("seed")).expect("kp"),
            None,
        );
        let server = KeyPair::new_server();
        let ok = server_request(&server, &account.public_key(), "t", 100, None);
        let req = verifier.verify(ok.as_bytes(), None, 50).expect("valid");
        assert_eq!(req.server_id(), server.public_key());

        assert!(matches!(
            verifier.verify(ok.as_bytes(), None, 101),
            Err(RequestError::Expired { .. })
        ));
        let other_account = server_request(
            &server,
            &KeyPair::new_account().public_key(),
            "t",
            100,
            None,
        );
        assert!(matches!(
            verifier.verify(other_account.as_bytes(), None, 50),
            Err(RequestError::WrongSubject { .. })
        ));
        let by_user = server_request(&KeyPair::new_user(), &account.public_key(), "t", 100, None);
        assert!(matches!(
            verifier.verify(by_user.as_bytes(), None, 50),
            Err(RequestError::IssuerNotServer(_))
        ));
        assert!(matches!(
            verifier.verify(ok.as_bytes(), Some("XABC"), 50),
            Err(RequestError::EncryptedButNoXkey)
        ));
    }

    #[test]
    fn response_names_user_and_server() {
        let account = KeyPair::new_account();
        let verifier = RequestVerifier::new(
            KeyPair::from_seed(&account.seed().expect("seed")).expect("kp"),
            None,
        );
        let server = KeyPair::new_server();
        let req = server_request(&server, &account.public_key(), "t", 100, None);
        let req = verifier.verify(req.as_bytes(), None, 50).expect("valid");
        let resp = verifier
            .respond(&req, AuthorizationResponse::deny("no"), 50)
            .expect("respond");
        let back: Claims<AuthorizationResponse> = claims::decode(&resp).expect("decode");
        assert_eq!(back.iss, account.public_key());
        assert_eq!(back.sub, req.user_nkey());
        assert_eq!(back.aud, Some(Audience::One(server.public_key())));
        assert_eq!(back.nats.error.as_deref(), Some("no"));
        assert!(back.nats.jwt.is_none());
    }

    #[test]
    fn encrypted_requests_round_trip() {
        let account = KeyPair::new_account();
        let ours = XKey::new();
        let ours_public = XKey::from_public_key(&ours.public_key()).expect("pub");
        let verifier = RequestVerifier::new(
            KeyPair::from_seed(&account.seed().expect("seed")).expect("kp"),
            Some(XKey::from_seed(&ours.seed().expect("seed")).expect("xkey")),
        );
        let server = KeyPair::new_server();
        let server_x = XKey::new();
        let jwt = server_request(&server, &account.public_key(), "t", 100, Some(&server_x));
        let sealed = server_x.seal(jwt.as_bytes(), &ours_public).expect("seal");

        assert!(matches!(
            verifier.verify(jwt.as_bytes(), None, 50),
            Err(RequestError::PlaintextButXkeyConfigured)
        ));
        let req = verifier
            .verify(&sealed, Some(&server_x.public_key()), 50)
            .expect("opens");
        let resp = verifier
            .respond(&req, AuthorizationResponse::deny("x"), 50)
            .expect("respond");
        assert!(!resp.starts_with(b"eyJ"), "response is encrypted");
        let opened = server_x.open(&resp, &ours_public).expect("server opens");
        let back: Claims<AuthorizationResponse> = claims::decode(&opened).expect("decode");
        assert_eq!(back.sub, req.user_nkey());

        // A header key that differs from the signed one is refused.
        let other_x = XKey::new();
        let sealed_other = other_x.seal(jwt.as_bytes(), &ours_public).expect("seal");
        assert!(matches!(
            verifier.verify(&sealed_other, Some(&other_x.public_key()), 50),
            Err(RequestError::XkeyMismatch)
        ));
    }
}
