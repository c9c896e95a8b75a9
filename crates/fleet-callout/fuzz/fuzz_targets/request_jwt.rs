//! Feeds arbitrary bytes to the authorization-request decoder, as if a
//! server (or anyone able to publish on `$SYS.REQ.USER.AUTH`) had sent them.
//! Must never panic.
//!
//! Two modes, chosen by the first byte:
//! - `0xFF`: the rest is used as the claims JSON of a request that is
//!   correctly encoded and signed by a fixed server key, so the fuzzer
//!   explores claim parsing and every verifier check behind the signature
//!   (seed: `seeds/request_jwt/valid_claims`);
//! - anything else: the bytes are the whole payload, plain and through the
//!   xkey-encrypted path (and, as text, as the xkey header).

#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleet_callout::RequestVerifier;
use fleet_callout::claims::{self, AuthorizationRequest};
use libfuzzer_sys::fuzz_target;
use nkeys::{KeyPair, KeyPairType, XKey};

/// `exp` in the seed is NOW + 2.
const NOW: i64 = 1_700_000_000;

struct Keys {
    plain: RequestVerifier,
    encrypted: RequestVerifier,
    server: KeyPair,
    server_xkey: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        // Fixed seeds keep runs reproducible; the seed corpus names their
        // public keys (account ADVEU3..., server NDWUSK..., user UDFJHL...).
        let account = || KeyPair::new_from_raw(KeyPairType::Account, [7; 32]).expect("account");
        Keys {
            plain: RequestVerifier::new(account(), None),
            encrypted: RequestVerifier::new(account(), Some(XKey::new_from_raw([9; 32]))),
            server: KeyPair::new_from_raw(KeyPairType::Server, [3; 32]).expect("server"),
            server_xkey: XKey::new_from_raw([11; 32]).public_key(),
        }
    })
}

fn signed(server: &KeyPair, claims_json: &[u8]) -> Vec<u8> {
    let mut token = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
    let sig = server.sign(token.as_bytes()).expect("sign");
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    token.into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let k = keys();
    if let Some((&0xFF, claims_json)) = data.split_first() {
        let token = signed(&k.server, claims_json);
        let _ = claims::decode::<AuthorizationRequest>(&token);
        if let Ok(req) = k.plain.verify(&token, None, NOW) {
            // Accepted requests must be answerable.
            let _ = k
                .plain
                .respond(&req, claims::AuthorizationResponse::deny("fuzz"), NOW);
        }
        return;
    }
    let _ = claims::decode::<AuthorizationRequest>(data);
    let _ = k.plain.verify(data, None, NOW);
    let _ = k.encrypted.verify(data, Some(&k.server_xkey), NOW);
    if let Ok(text) = std::str::from_utf8(data) {
        // The header value is attacker-controlled too.
        let _ = k.encrypted.verify(b"x", Some(text), NOW);
    }
});
