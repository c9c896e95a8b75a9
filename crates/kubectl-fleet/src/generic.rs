//! Status fields read from the raw JSON instead of the typed API, so the
//! plugin shows them as soon as a controller writes them and tolerates a
//! cluster whose CRD does not have them (yet, or any more):
//!
//! * `FleetStack.status.endpoints`: how clients reach the stack (issue 14:
//!   URL plus the CA a device needs), a list of `{name, url, ...}` or a map
//!   `name -> url | {url, ...}`;
//! * certificate expiry: `status.certificates` (list or map) and any
//!   endpoint, each with one of [`EXPIRY_KEYS`];
//! * FleetAgent approval and revocation (issue 15): `spec.disabled`,
//!   `spec.approved`, `status.phase`.
//!
//! Anything of another shape is skipped, never an error: these are extras.

use serde::Serialize;
use serde_json::Value;

/// Keys that hold a certificate's expiry time (RFC 3339), first match wins.
pub const EXPIRY_KEYS: &[&str] = &["notAfter", "expiry", "expiresAt", "expirationTime"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    /// Whether a CA bundle (or a reference to one) comes with the endpoint.
    pub has_ca: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub name: String,
    /// RFC 3339, as written by the controller.
    pub not_after: String,
}

/// `(name, entry)` pairs of a list of objects with `name` or of a map.
fn named_entries(value: Option<&Value>) -> Vec<(String, &Value)> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("#{i}"));
                (name, item)
            })
            .collect(),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) | None => {
            Vec::new()
        }
    }
}

fn string_at<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| value.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

pub fn endpoints(status: &Value) -> Vec<Endpoint> {
    named_entries(status.get("endpoints"))
        .into_iter()
        .filter_map(|(name, entry)| {
            let url = match entry {
                Value::String(url) => Some(url.as_str()),
                other => string_at(other, &["url", "address"]),
            }?;
            let has_ca = entry.get("ca").is_some()
                || entry.get("caBundle").is_some()
                || entry.get("caSecretRef").is_some()
                || entry.get("caConfigMapRef").is_some();
            Some(Endpoint {
                name,
                url: url.to_string(),
                has_ca,
            })
        })
        .collect()
}

pub fn certificates(status: &Value) -> Vec<Certificate> {
    let listed = named_entries(status.get("certificates"));
    let on_endpoints = named_entries(status.get("endpoints"));
    let mut out: Vec<Certificate> = Vec::new();
    for (name, entry) in listed.into_iter().chain(on_endpoints) {
        let Some(not_after) = string_at(entry, EXPIRY_KEYS) else {
            continue;
        };
        if out.iter().any(|c| c.name == name) {
            continue;
        }
        out.push(Certificate {
            name,
            not_after: not_after.to_string(),
        });
    }
    out
}

/// What the FleetAgent's approval/revocation fields say, when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// `spec.disabled: true`: the callout refuses the agent.
    Disabled,
    /// Enrolled, not approved yet (`status.phase: Pending`,
    /// `spec.approved: false`, or a device, i.e. `spec.publicKey`, without
    /// `spec.approved: true`: false is omitted when written).
    Pending,
    /// No such field, or approved.
    Admitted,
}

pub fn admission(object: &Value) -> Admission {
    let spec = object.get("spec");
    if spec
        .and_then(|s| s.get("disabled"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Admission::Disabled;
    }
    let phase = object
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str);
    let approved = spec
        .and_then(|s| s.get("approved"))
        .and_then(Value::as_bool);
    let device = spec.and_then(|s| s.get("publicKey")).is_some();
    match (phase, approved, device) {
        (Some("Pending"), _, _) | (_, Some(false), _) | (_, None, true) => Admission::Pending,
        (Some(_) | None, Some(true), _) | (Some(_) | None, None, false) => Admission::Admitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_as_list_or_map() {
        let list = json!({"endpoints": [
            {"name": "nats", "url": "tls://nats.example:4222", "caBundle": "..."},
            {"url": "nats://10.0.0.1:4222"},
            {"name": "broken"}
        ]});
        assert_eq!(
            endpoints(&list),
            vec![
                Endpoint {
                    name: "nats".into(),
                    url: "tls://nats.example:4222".into(),
                    has_ca: true
                },
                Endpoint {
                    name: "#1".into(),
                    url: "nats://10.0.0.1:4222".into(),
                    has_ca: false
                },
            ]
        );
        let map = json!({"endpoints": {"nats": "nats://n:4222", "odd": 3}});
        assert_eq!(endpoints(&map).len(), 1);
        assert!(endpoints(&json!({})).is_empty());
        assert!(endpoints(&json!({"endpoints": "x"})).is_empty());
    }

    #[test]
    fn certificates_from_the_list_and_the_endpoints() {
        let s = json!({
            "certificates": {"nats-server": {"notAfter": "2027-01-01T00:00:00Z"}},
            "endpoints": [{"name": "external", "url": "tls://x", "expiresAt": "2026-12-31T00:00:00Z"}]
        });
        let names: Vec<_> = certificates(&s).into_iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["nats-server", "external"]);
    }

    #[test]
    fn admission_fields() {
        assert_eq!(admission(&json!({"spec": {}})), Admission::Admitted);
        // A device (public key) is pending until approved.
        assert_eq!(
            admission(&json!({"spec": {"publicKey": "U"}})),
            Admission::Pending
        );
        assert_eq!(
            admission(&json!({"spec": {"publicKey": "U", "approved": true}})),
            Admission::Admitted
        );
        assert_eq!(
            admission(&json!({"spec": {"disabled": true, "approved": true}})),
            Admission::Disabled
        );
        assert_eq!(
            admission(&json!({"spec": {"approved": false}})),
            Admission::Pending
        );
        assert_eq!(
            admission(&json!({"spec": {}, "status": {"phase": "Pending"}})),
            Admission::Pending
        );
    }
}
