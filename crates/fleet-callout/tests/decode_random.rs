//! A few thousand random and mutated authorization requests (fixed seed, so
//! reproducible) through the decoder and the verifier: no panic, and every
//! input that is not the original request is refused with a typed error.
//! The open-ended version of this is the cargo-fuzz target in `fuzz/`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleet_callout::RequestVerifier;
use fleet_callout::claims::{self, AuthorizationRequest, Claims, ClaimsError};
use fleet_callout::request::RequestError;
use nkeys::{KeyPair, KeyPairType, XKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NOW: i64 = 1_700_000_000;

fn valid_request(account: &str) -> Vec<u8> {
    let server = KeyPair::new_from_raw(KeyPairType::Server, [3; 32]).expect("server key");
    let mut c = Claims::new(
        account,
        AuthorizationRequest {
            server_id: claims::ServerId {
                id: server.public_key(),
                name: "s".into(),
                ..Default::default()
            },
            user_nkey: KeyPair::new_from_raw(KeyPairType::User, [4; 32])
                .expect("user key")
                .public_key(),
            kind: claims::REQUEST_TYPE.into(),
            version: 2,
            ..Default::default()
        },
    );
    c.aud = Some(claims::Audience::One("nats-authorization-request".into()));
    c.exp = NOW + 2;
    claims::encode(&mut c, &server, NOW)
        .expect("encode")
        .into_bytes()
}

/// One mutation of `input`, chosen at random.
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    match rng.random_range(0..8) {
        // Flip one bit.
        0 if !out.is_empty() => {
            let i = rng.random_range(0..out.len());
            out[i] ^= 1 << rng.random_range(0..8);
        }
        // Replace one byte with anything.
        1 if !out.is_empty() => {
            let i = rng.random_range(0..out.len());
            out[i] = rng.random();
        }
        // Truncate.
        2 => out.truncate(rng.random_range(0..=out.len())),
        // Insert random bytes.
        3 => {
            let i = rng.random_range(0..=out.len());
            let n = rng.random_range(1..16);
            for _ in 0..n {
                out.insert(i, rng.random());
            }
        }
        // Drop or duplicate a dot.
        4 => {
            if let Some(i) = out.iter().position(|b| *b == b'.') {
                if rng.random() {
                    out.remove(i);
                } else {
                    out.insert(i, b'.');
                }
            }
        }
        // Replace the claims with random JSON-ish text, keeping header and signature.
        5 => {
            let parts: Vec<&[u8]> = input.split(|b| *b == b'.').collect();
            if parts.len() == 3 {
                let junk: Vec<u8> = (0..rng.random_range(0..200))
                    .map(|_| b"{}[]\":,0123456789abcnatsxp-truefalsenull "[rng.random_range(0..41)])
                    .collect();
                out = [
                    parts[0],
                    b".",
                    URL_SAFE_NO_PAD.encode(junk).as_bytes(),
                    b".",
                    parts[2],
                ]
                .concat();
            }
        }
        // Entirely random bytes.
        6 => {
            out = (0..rng.random_range(0..512))
                .map(|_| rng.random())
                .collect();
        }
        // Random base64url segments.
        _ => {
            let seg = |rng: &mut StdRng| {
                let raw: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
                URL_SAFE_NO_PAD.encode(raw)
            };
            out = format!("{}.{}.{}", seg(rng), seg(rng), seg(rng)).into_bytes();
        }
    }
    out
}

#[test]
fn random_and_mutated_requests_are_refused_without_panicking() {
    let account = KeyPair::new_from_raw(KeyPairType::Account, [5; 32]).expect("account");
    let verifier = RequestVerifier::new(
        KeyPair::new_from_raw(KeyPairType::Account, [5; 32]).expect("account"),
        None,
    );
    let original = valid_request(&account.public_key());
    verifier
        .verify(&original, None, NOW)
        .expect("the unmutated request is valid");

    let mut rng = StdRng::seed_from_u64(0x5eed_ca11_u64);
    let mut refused = 0;
    let mut input = original.clone();
    for i in 0..3000 {
        // Mostly mutate the original; sometimes keep mutating the last input
        // so mutations stack up.
        let base = if i % 4 == 0 {
            input.clone()
        } else {
            original.clone()
        };
        input = mutate(&mut rng, &base);

        let decoded = claims::decode::<AuthorizationRequest>(&input);
        match verifier.verify(&input, None, NOW) {
            Ok(_) => assert_eq!(
                input.trim_ascii(),
                original.as_slice(),
                "a changed request was accepted: {:?}",
                String::from_utf8_lossy(&input)
            ),
            Err(e) => {
                refused += 1;
                // The error is typed and its message bounded (no echo of a
                // huge input).
                assert!(e.to_string().len() < 400, "{e}");
                if let RequestError::Claims(ce) = &e {
                    assert!(decoded.is_err());
                    assert!(!matches!(ce, ClaimsError::Signing(_)));
                }
            }
        }
    }
    assert!(refused > 2600, "only {refused} of 3000 mutations refused");
}

#[test]
fn random_encrypted_payloads_and_header_keys_are_refused() {
    let verifier = RequestVerifier::new(
        KeyPair::new_from_raw(KeyPairType::Account, [5; 32]).expect("account"),
        Some(XKey::new_from_raw([6; 32])),
    );
    let server_x = XKey::new_from_raw([8; 32]).public_key();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..1000 {
        let payload: Vec<u8> = (0..rng.random_range(0..300))
            .map(|_| rng.random())
            .collect();
        assert!(verifier.verify(&payload, Some(&server_x), NOW).is_err());
        let header: String = (0..rng.random_range(0..80))
            .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
            .collect();
        assert!(verifier.verify(&payload, Some(&header), NOW).is_err());
    }
}

/// The fuzz target's seed (`fuzz/seeds/request_jwt/valid_claims`: 0xFF then
/// claims JSON, signed by the target with server key [3; 32]) must be a
/// request the verifier accepts, or the fuzzer starts from a refusal.
#[test]
fn fuzz_seed_is_a_valid_request() {
    let seed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/request_jwt/valid_claims"
    ))
    .expect("seed file");
    let (first, claims_json) = seed.split_first().expect("non-empty");
    assert_eq!(*first, 0xFF);
    let server = KeyPair::new_from_raw(KeyPairType::Server, [3; 32]).expect("server");
    let mut token = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
    let sig = server.sign(token.as_bytes()).expect("sign");
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    let verifier = RequestVerifier::new(
        KeyPair::new_from_raw(KeyPairType::Account, [7; 32]).expect("account"),
        None,
    );
    let req = verifier
        .verify(token.as_bytes(), None, NOW)
        .expect("seed request is valid");
    assert_eq!(req.claims.nats.connect_opts.auth_token.expose(), "t");
}

/// The device-request fuzz target's seeds decode (so the fuzzer starts
/// from inputs that reach every check), and a few thousand mutations of
/// them never panic and never echo their input in an error.
#[test]
fn device_request_seeds_decode_and_mutations_are_refused_cleanly() {
    use fleet_proto::device::{DeviceRequest, decode_device_request};
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fleet-proto/fuzz/seeds/device_request"
    );
    let enroll = std::fs::read_to_string(format!("{dir}/enroll")).expect("seed");
    let rotate = std::fs::read_to_string(format!("{dir}/rotate")).expect("seed");
    assert!(matches!(
        decode_device_request(&enroll),
        Ok(DeviceRequest::Enroll(_))
    ));
    assert!(matches!(
        decode_device_request(&rotate),
        Ok(DeviceRequest::Rotate(_))
    ));
    let mut rng = StdRng::seed_from_u64(15);
    for seed in [enroll, rotate] {
        for _ in 0..2000 {
            let mut bytes = seed.clone().into_bytes();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random_range(0x20..0x7f);
            }
            let text = String::from_utf8(bytes).expect("ascii");
            if let Err(e) = decode_device_request(&text) {
                assert!(!e.to_string().contains(&text), "{e}");
            }
        }
    }
}
