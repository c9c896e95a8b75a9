//! Feeds arbitrary bytes to the authorization-request decoder, as if a
//! server (or anyone able to publish on `$SYS.REQ.USER.AUTH`) had sent them:
//! plain, and through the xkey-encrypted path. Must never panic.

#![no_main]

use std::sync::OnceLock;

use fleet_callout::RequestVerifier;
use fleet_callout::claims::{self, AuthorizationRequest};
use libfuzzer_sys::fuzz_target;
use nkeys::{KeyPair, XKey};

struct Keys {
    plain: RequestVerifier,
    encrypted: RequestVerifier,
    server_xkey: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        // Fixed seeds keep runs reproducible.
        let account = KeyPair::new_from_raw(nkeys::KeyPairType::Account, [7; 32]).expect("account");
        let account2 = KeyPair::new_from_raw(nkeys::KeyPairType::Account, [7; 32]).expect("account");
        Keys {
            plain: RequestVerifier::new(account, None),
            encrypted: RequestVerifier::new(account2, Some(XKey::new_from_raw([9; 32]))),
            server_xkey: XKey::new_from_raw([11; 32]).public_key(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = claims::decode::<AuthorizationRequest>(data);
    let k = keys();
    let _ = k.plain.verify(data, None, 1_700_000_000);
    let _ = k.encrypted.verify(data, Some(&k.server_xkey), 1_700_000_000);
    if let Ok(text) = std::str::from_utf8(data) {
        // The header value is attacker-controlled too.
        let _ = k.encrypted.verify(b"x", Some(text), 1_700_000_000);
    }
});
