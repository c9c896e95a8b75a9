//! Proof of possession: a device signs the server's nonce with its NKey.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::{KeyPair, KeyPairType};

/// Why a nonce signature does not prove the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "the server sent no nonce (the NATS config needs at least one nkey user, e.g. the callout's system user)"
    )]
    NoNonce,
    #[error("{0:?} is not a public user nkey")]
    NotAUserKey(String),
    #[error("the signature is not base64url")]
    Encoding,
    #[error("the signature does not verify against key {0}")]
    Mismatch(String),
}

/// Verifies `sig` (base64url, raw, as NATS clients send it) over `nonce`
/// with the public user key `public_key`.
pub fn verify_nonce(public_key: &str, sig: &str, nonce: &str) -> Result<(), SignatureError> {
    if nonce.is_empty() {
        return Err(SignatureError::NoNonce);
    }
    let key = KeyPair::from_public_key(public_key)
        .ok()
        .filter(|k| k.key_pair_type() == KeyPairType::User)
        .ok_or_else(|| SignatureError::NotAUserKey(public_key.into()))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig.trim_end_matches('='))
        .map_err(|_| SignatureError::Encoding)?;
    key.verify(nonce.as_bytes(), &sig)
        .map_err(|_| SignatureError::Mismatch(public_key.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_owner_and_nobody_else() {
        let device = KeyPair::new_user();
        let other = KeyPair::new_user();
        let sig =
            |k: &KeyPair, n: &str| URL_SAFE_NO_PAD.encode(k.sign(n.as_bytes()).expect("sign"));
        let pk = device.public_key();
        assert_eq!(verify_nonce(&pk, &sig(&device, "n1"), "n1"), Ok(()));
        // Another key's signature, or the right key over another nonce
        // (a replayed CONNECT), fails.
        assert!(matches!(
            verify_nonce(&pk, &sig(&other, "n1"), "n1"),
            Err(SignatureError::Mismatch(_))
        ));
        assert!(matches!(
            verify_nonce(&pk, &sig(&device, "n1"), "n2"),
            Err(SignatureError::Mismatch(_))
        ));
        assert_eq!(
            verify_nonce(&pk, &sig(&device, ""), ""),
            Err(SignatureError::NoNonce)
        );
        assert!(matches!(
            verify_nonce(&KeyPair::new_account().public_key(), "AA", "n"),
            Err(SignatureError::NotAUserKey(_))
        ));
        assert_eq!(verify_nonce(&pk, "!!", "n"), Err(SignatureError::Encoding));
    }
}
