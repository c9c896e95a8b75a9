//! Signing keys: generation, their public JWK, and signing claims with them.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;

use crate::IssuerError;

/// The JOSE algorithm the issuer signs access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// Ed25519 (`EdDSA`): instant key generation, the default.
    EdDsa,
    /// RSA PKCS#1 v1.5 with SHA-256 (`RS256`, 2048-bit keys), what most IdPs
    /// (Zitadel included) use. Key generation takes a moment in debug builds.
    Rs256,
}

impl SigningAlg {
    pub fn jose(self) -> Algorithm {
        match self {
            SigningAlg::EdDsa => Algorithm::EdDSA,
            SigningAlg::Rs256 => Algorithm::RS256,
        }
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = IssuerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" | "eddsa" | "ed25519" => Ok(SigningAlg::EdDsa),
            "RS256" | "rs256" => Ok(SigningAlg::Rs256),
            other => Err(IssuerError::Config(format!(
                "unknown signing algorithm {other:?} (use EdDSA or RS256)"
            ))),
        }
    }
}

/// One signing key. `Debug` shows only the kid and algorithm.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    encoding: EncodingKey,
    /// The public half, as published on the JWKS endpoint.
    pub jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// PKCS#8 v1 DER prefix for an Ed25519 private key; the 32-byte seed follows.
/// (RFC 8410: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } })
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl SigningKey {
    /// Generates a fresh key with a random kid.
    pub fn generate(alg: SigningAlg) -> Result<Self, IssuerError> {
        let encoding = match alg {
            SigningAlg::EdDsa => {
                let seed: [u8; 32] = rand::random();
                let mut der = ED25519_PKCS8_PREFIX.to_vec();
                der.extend_from_slice(&seed);
                EncodingKey::from_ed_der(&der)
            }
            SigningAlg::Rs256 => {
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                    .map_err(|e| IssuerError::Key(format!("RSA key generation: {e}")))?;
                let der = key
                    .to_pkcs1_der()
                    .map_err(|e| IssuerError::Key(format!("RSA key encoding: {e}")))?;
                EncodingKey::from_rsa_der(der.as_bytes())
            }
        };
        let kid = random_id(8);
        let mut jwk = Jwk::from_encoding_key(&encoding, alg.jose())
            .map_err(|e| IssuerError::Key(format!("public JWK for {kid}: {e}")))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(SigningKey {
            kid,
            alg,
            encoding,
            jwk,
        })
    }

    /// Signs `claims` as a JWT whose header names this key's kid.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, IssuerError> {
        let mut header = Header::new(self.alg.jose());
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| IssuerError::Key(format!("signing with {}: {e}", self.kid)))
    }

    /// Verifies a token signed by this key (used by introspection of JWTs).
    pub fn decoding_key(&self) -> Result<jsonwebtoken::DecodingKey, IssuerError> {
        jsonwebtoken::DecodingKey::from_jwk(&self.jwk)
            .map_err(|e| IssuerError::Key(format!("decoding key for {}: {e}", self.kid)))
    }
}

/// Random lowercase hex id of `bytes` random bytes.
pub(crate) fn random_id(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eddsa_key_signs_tokens_its_jwk_verifies() {
        let key = SigningKey::generate(SigningAlg::EdDsa).expect("key");
        let token = key
            .sign(&serde_json::json!({"sub": "a", "exp": 4_000_000_000u64}))
            .expect("sign");
        let mut v = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        v.validate_aud = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &key.decoding_key().expect("dk"), &v)
                .expect("verifies");
        assert_eq!(data.claims["sub"], "a");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));

        let other = SigningKey::generate(SigningAlg::EdDsa).expect("key");
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                &token,
                &other.decoding_key().expect("dk"),
                &v
            )
            .is_err(),
            "a different key must not verify"
        );
    }
}
