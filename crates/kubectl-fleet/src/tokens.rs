//! `kubectl fleet token create|list|rotate|revoke`: FleetEnrollmentTokens
//! (docs/adr/0080-device-identity-enrollment-revocation.md).
//!
//! A token a device is given reads `<object name>.<secret>`; the API keeps
//! only `sha256:<hex>` of the secret. `create` and `rotate` make the
//! secret here (32 random bytes from the OS), write its hash and print the
//! token once: nothing can show it again. `revoke` sets `spec.disabled`,
//! which the callout treats like an expired token, keeping the record.

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_crds::{FleetEnrollmentToken, FleetEnrollmentTokenSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::age;
use crate::error::PluginError;
use crate::table::{Cell, Colour, Style, Table};

/// What `token create` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub ttl: Duration,
    pub max_uses: i32,
    pub auto_approve: bool,
    pub labels: BTreeMap<String, String>,
}

/// A fresh secret half: 32 random bytes, hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of the secret half, as `spec.secretHash` stores it (the
/// callout compares the same function's result).
pub use fleet_crds::enrollment_token::secret_hash;

/// The token the device gets.
pub fn token_text(name: &str, secret: &str) -> String {
    format!("{name}.{secret}")
}

/// The object for `new` with the hash of `secret`, expiring `new.ttl`
/// after `now` (pure). Checked as the callout checks it, so a bad label is
/// refused here, naming it, not at the first enrollment.
pub fn token_object(
    new: &NewToken,
    secret: &str,
    now: Timestamp,
) -> Result<FleetEnrollmentToken, PluginError> {
    let ttl = k8s_openapi::jiff::SignedDuration::try_from(new.ttl)
        .map_err(|_| PluginError::Usage(format!("--ttl {:?} is too long", new.ttl)))?;
    let expires = now
        .checked_add(ttl)
        .map_err(|_| PluginError::Usage(format!("--ttl {:?} is too long", new.ttl)))?;
    let spec = FleetEnrollmentTokenSpec {
        secret_hash: secret_hash(secret),
        expires_at: Time(expires),
        max_uses: new.max_uses,
        auto_approve: new.auto_approve,
        labels: new.labels.clone(),
        disabled: false,
    };
    spec.validate()
        .map_err(|e| PluginError::Usage(e.to_string()))?;
    Ok(FleetEnrollmentToken::new(&new.name, spec))
}

/// What `create` and `rotate` print: the one time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedView {
    pub namespace: String,
    pub name: String,
    /// `<name>.<secret>`: give it to the device (`fleet-agent enroll --token`).
    pub token: String,
    pub expires_at: String,
    pub max_uses: i32,
    pub auto_approve: bool,
}

impl IssuedView {
    pub fn new(token: &FleetEnrollmentToken, secret: &str) -> Self {
        IssuedView {
            namespace: token.namespace().unwrap_or_default(),
            name: token.name_any(),
            token: token_text(&token.name_any(), secret),
            expires_at: token.spec.expires_at.0.to_string(),
            max_uses: token.spec.max_uses,
            auto_approve: token.spec.auto_approve,
        }
    }

    pub fn render(&self, verb: &str) -> String {
        let approval = if self.auto_approve {
            "approved at once"
        } else {
            "pending until approved (kubectl fleet approve <agent>)"
        };
        format!(
            "FleetEnrollmentToken {}/{} {verb}: expires {}, {} use(s), devices {approval}.\n\
             The token (shown only now; the cluster keeps its hash):\n{}\n",
            self.namespace, self.name, self.expires_at, self.max_uses, self.token
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TokenState {
    Active,
    Expired,
    UsedUp,
    Revoked,
}

impl TokenState {
    fn cell(self) -> Cell {
        match self {
            TokenState::Active => Cell::coloured("Active", Colour::Green),
            TokenState::Expired => Cell::coloured("Expired", Colour::Yellow),
            TokenState::UsedUp => Cell::coloured("UsedUp", Colour::Yellow),
            TokenState::Revoked => Cell::coloured("Revoked", Colour::Red),
        }
    }
}

/// One row of `token list` (never the hash: it is not secret, but it is
/// of no use to a reader either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub namespace: String,
    pub name: String,
    pub state: TokenState,
    pub uses: i32,
    pub max_uses: i32,
    pub expires_at: String,
    pub auto_approve: bool,
    pub labels: BTreeMap<String, String>,
    pub last_used_time: Option<String>,
}

impl TokenView {
    pub fn new(token: &FleetEnrollmentToken, now: Timestamp) -> Self {
        let status = token.status.clone().unwrap_or_default();
        let state = if token.spec.disabled {
            TokenState::Revoked
        } else if token.spec.expires_at.0 <= now {
            TokenState::Expired
        } else if status.uses >= token.spec.max_uses {
            TokenState::UsedUp
        } else {
            TokenState::Active
        };
        TokenView {
            namespace: token.namespace().unwrap_or_default(),
            name: token.name_any(),
            state,
            uses: status.uses,
            max_uses: token.spec.max_uses,
            expires_at: token.spec.expires_at.0.to_string(),
            auto_approve: token.spec.auto_approve,
            labels: token.spec.labels.clone(),
            last_used_time: status.last_used_time.map(|t| t.0.to_string()),
        }
    }
}

/// The `token list` table; expiry as kubectl shows ages (`in 23h`, `2d ago`).
pub fn render(views: &[TokenView], style: Style, now: Timestamp) -> String {
    let mut table = Table::new(&[
        "TOKEN",
        "STATE",
        "USES",
        "EXPIRES",
        "AUTO-APPROVE",
        "LABELS",
    ]);
    for v in views {
        let expires = age::until(&v.expires_at, now)
            .map(|(text, _)| text)
            .unwrap_or_else(|| v.expires_at.clone());
        let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        table.row(vec![
            Cell::plain(v.name.clone()),
            v.state.cell(),
            Cell::plain(format!("{}/{}", v.uses, v.max_uses)),
            Cell::plain(expires),
            Cell::plain(if v.auto_approve { "true" } else { "false" }),
            Cell::plain(if labels.is_empty() {
                "<none>".to_string()
            } else {
                labels.join(",")
            }),
        ]);
    }
    table.render(style)
}

pub fn none_found(namespace: &str) -> String {
    format!("No FleetEnrollmentTokens found in {namespace} namespace.\n")
}

/// `k=v,k2=v2` (the token's `--labels`).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, PluginError> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| PluginError::Usage(format!("--labels {pair:?}: expected key=value")))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str) -> NewToken {
        NewToken {
            name: name.into(),
            ttl: Duration::from_secs(3600),
            max_uses: 5,
            auto_approve: false,
            labels: BTreeMap::from([("site".into(), "lab".into())]),
        }
    }

    #[test]
    fn the_object_stores_only_the_hash_and_expires_after_the_ttl() {
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let secret = new_secret();
        assert_eq!(secret.len(), 64);
        assert_ne!(secret, new_secret(), "fresh randomness each time");
        let t = token_object(&new("site-a"), &secret, now).unwrap();
        assert_eq!(t.name_any(), "site-a");
        assert_eq!(t.spec.secret_hash, secret_hash(&secret));
        assert!(!serde_json::to_string(&t).unwrap().contains(&secret));
        assert_eq!(t.spec.expires_at.0.to_string(), "2026-12-01T13:00:00Z");
        assert_eq!(t.spec.max_uses, 5);
        assert_eq!(t.spec.validate(), Ok(()));
        // The hash the callout compares: sha256 of the part after the dot.
        assert_eq!(
            secret_hash("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_text("site-a", "abc"), "site-a.abc");
    }

    #[test]
    fn bad_labels_and_uses_are_refused_before_anything_is_written() {
        let now = Timestamp::now();
        let mut bad = new("x");
        bad.labels.insert("site".into(), "not a value".into());
        let err = token_object(&bad, "s", now).unwrap_err();
        assert!(err.to_string().contains("spec.labels[\"site\"]"), "{err}");
        let mut zero = new("x");
        zero.max_uses = 0;
        assert!(token_object(&zero, "s", now).is_err());
        assert!(parse_labels("a=1,b").is_err());
        assert_eq!(
            parse_labels("a=1,b=2").unwrap(),
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
        );
    }

    #[test]
    fn the_state_is_revoked_expired_used_up_or_active_in_that_order() {
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let mut t = token_object(&new("t"), "s", now).unwrap();
        assert_eq!(TokenView::new(&t, now).state, TokenState::Active);
        t.status = Some(fleet_crds::FleetEnrollmentTokenStatus {
            uses: 5,
            last_used_time: None,
        });
        assert_eq!(TokenView::new(&t, now).state, TokenState::UsedUp);
        let later: Timestamp = "2026-12-01T14:00:00Z".parse().unwrap();
        assert_eq!(TokenView::new(&t, later).state, TokenState::Expired);
        t.spec.disabled = true;
        assert_eq!(TokenView::new(&t, now).state, TokenState::Revoked);
        let table = render(&[TokenView::new(&t, now)], Style::Plain, now);
        assert!(table.starts_with("TOKEN "), "{table}");
        assert!(table.contains("Revoked"), "{table}");
        assert!(table.contains("5/5"), "{table}");
        assert!(table.contains("in 60m"), "{table}");
        assert!(table.contains("site=lab"), "{table}");
    }
}
