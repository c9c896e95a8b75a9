//! `FleetEnrollmentToken`: a bootstrap token a device presents once to join
//! the fleet (docs/adr/0080-device-identity-enrollment-revocation.md).
//!
//! The token a device is given reads `<object name>.<secret>`. Only the
//! SHA-256 of the secret is stored here; whoever creates the object makes
//! the secret (e.g. `openssl rand -hex 32`) and hands it to the device.
//! Listing is `kubectl get fleetenrollmenttokens`, rotating is writing a new
//! `secretHash`, revoking is `disabled: true` or deleting the object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::syntax::{check_label_value, check_qualified_name};

/// Prefix of `spec.secretHash`; the rest is 64 lower-case hex digits.
pub const SECRET_HASH_PREFIX: &str = "sha256:";

/// `sha256:<hex>` of a token's secret half: the form of `spec.secretHash`,
/// written by whoever makes a token (`kubectl fleet token create`) and
/// compared by the callout at enrollment.
pub fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(SECRET_HASH_PREFIX.len() + 64);
    out.push_str(SECRET_HASH_PREFIX);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A one-time (or few-times) bootstrap token for devices.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "fleet.nationtech.io",
    version = "v1alpha1",
    kind = "FleetEnrollmentToken",
    namespaced,
    status = "FleetEnrollmentTokenStatus",
    shortname = "fet",
    derive = "PartialEq",
    doc = "A bootstrap token devices present once to enroll; only the hash of its secret is stored.",
    printcolumn = r#"{"name":"Uses","type":"integer","jsonPath":".status.uses"}"#,
    printcolumn = r#"{"name":"Max-Uses","type":"integer","jsonPath":".spec.maxUses"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".spec.expiresAt"}"#,
    printcolumn = r#"{"name":"Auto-Approve","type":"boolean","jsonPath":".spec.autoApprove"}"#,
    printcolumn = r#"{"name":"Disabled","type":"boolean","jsonPath":".spec.disabled"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FleetEnrollmentTokenSpec {
    /// `sha256:` followed by the lower-case hex SHA-256 of the token's
    /// secret half (the part after the first `.`).
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub secret_hash: String,
    /// After this time the token is refused (`token_expired`).
    pub expires_at: Time,
    /// How many devices may enroll with it (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_uses: i32,
    /// True: devices enrolled with it are approved at once; false: their
    /// FleetAgent waits for `spec.approved: true`.
    #[serde(default)]
    pub auto_approve: bool,
    /// Labels stamped on every FleetAgent enrolled with this token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// True: refused like an expired token, without deleting the record.
    #[serde(default)]
    pub disabled: bool,
}

fn one() -> i32 {
    1
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FleetEnrollmentTokenStatus {
    /// Enrollments accepted so far (written by the callout with the
    /// object's `resourceVersion`, so concurrent enrollments cannot both
    /// take the last use).
    #[serde(default)]
    pub uses: i32,
    /// When the last enrollment with this token was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_time: Option<Time>,
}

/// What the OpenAPI schema of a 1.20 API server cannot check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FleetEnrollmentToken {field}: {reason}")]
pub struct TokenSpecError {
    pub field: String,
    pub reason: String,
}

impl FleetEnrollmentTokenSpec {
    /// Label keys and values must be valid Kubernetes labels (they are
    /// stamped on FleetAgents); the hash must have its documented form.
    pub fn validate(&self) -> Result<(), TokenSpecError> {
        let hex = self
            .secret_hash
            .strip_prefix(SECRET_HASH_PREFIX)
            .unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(TokenSpecError {
                field: "spec.secretHash".into(),
                reason: "must be sha256: followed by 64 lower-case hex digits".into(),
            });
        }
        if self.max_uses < 1 {
            return Err(TokenSpecError {
                field: "spec.maxUses".into(),
                reason: "must be at least 1".into(),
            });
        }
        for (key, value) in &self.labels {
            check_qualified_name(key).map_err(|reason| TokenSpecError {
                field: format!("spec.labels[{key:?}]"),
                reason: reason.into(),
            })?;
            check_label_value(value).map_err(|reason| TokenSpecError {
                field: format!("spec.labels[{key:?}]"),
                reason: reason.into(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FleetEnrollmentTokenSpec {
        serde_json::from_value(serde_json::json!({
            "secretHash": format!("sha256:{}", "a".repeat(64)),
            "expiresAt": "2030-01-01T00:00:00Z",
        }))
        .expect("minimal spec parses")
    }

    #[test]
    fn defaults_to_one_use_and_manual_approval() {
        let s = spec();
        assert_eq!(s.max_uses, 1);
        assert!(!s.auto_approve);
        assert!(!s.disabled);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn refuses_malformed_hashes_and_labels() {
        for hash in [
            "a".repeat(64),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha1:{}", "a".repeat(64)),
        ] {
            let s = FleetEnrollmentTokenSpec {
                secret_hash: hash.clone(),
                ..spec()
            };
            assert_eq!(
                s.validate().map_err(|e| e.field),
                Err("spec.secretHash".into()),
                "{hash}"
            );
        }
        let mut s = spec();
        s.labels.insert("site".into(), "bad value".into());
        assert!(s.validate().is_err());
        let mut s = spec();
        s.labels.insert("-bad".into(), "ok".into());
        assert!(s.validate().is_err());
        let mut s = spec();
        s.labels.insert("example.com/site".into(), "paris-1".into());
        assert_eq!(s.validate(), Ok(()));
    }
}
