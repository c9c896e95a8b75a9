//! Feeds arbitrary bytes, as the CONNECT `auth_token` a device (or anyone
//! reaching the exposed NATS port) sends, to the enrollment / key-rotation
//! request decoder (ADR 0080). Must never panic; whatever decodes must
//! re-encode to something that decodes to the same request.
//! Seeds: `seeds/device_request/` (a valid enrollment and rotation).

#![no_main]

use fleet_proto::device::{
    DeviceRequest, decode_device_request, encode_enrollment, encode_rotation, is_device_request,
};
use libfuzzer_sys::fuzz_target;

/// The secret halves of the `token` fields a request body carries (the
/// part after the last `.`), when it decodes that far.
fn secrets_in(text: &str) -> Vec<String> {
    use base64::Engine;
    let Some((_, body)) = text.split_once("-v1.") else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    value
        .get("token")
        .and_then(|t| t.as_str())
        .and_then(|t| t.rsplit_once('.'))
        // The name is public and may be quoted; a secret that also occurs
        // inside the name proves nothing.
        .filter(|(name, s)| s.len() >= 8 && !name.contains(s))
        .map(|(_, s)| s.to_string())
        .into_iter()
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = is_device_request(text);
    match decode_device_request(text) {
        Ok(DeviceRequest::Enroll(e)) => {
            let again = decode_device_request(&encode_enrollment(&e.token, &e.agent_id));
            assert_eq!(again, Ok(DeviceRequest::Enroll(e)));
        }
        Ok(DeviceRequest::Rotate(r)) => {
            // The signature is carried as text; only the key is re-checked.
            let again = decode_device_request(&encode_rotation(&r.public_key, &[]));
            assert!(matches!(again, Ok(DeviceRequest::Rotate(x)) if x.public_key == r.public_key));
        }
        Err(e) => {
            // Error messages never carry a token's secret half.
            let msg = e.to_string();
            for secret in secrets_in(text) {
                assert!(!msg.contains(&secret), "error echoes the token secret");
            }
        }
    }
});
