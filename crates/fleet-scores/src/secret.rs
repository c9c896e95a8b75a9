//! A string that must never be printed (passwords, seeds, tokens), and
//! reading Secrets the Scores and probes need (values only as
//! [`Sensitive`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::score::InterpretError;

/// Holds a secret value. `Debug` and `Display` print `<redacted>`; read the
/// value with [`Sensitive::expose`] at the single place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A random password: 32 alphanumerics (~190 bits), safe inside a nats.conf
/// variable and a URL without escaping.
pub fn generate_password() -> Sensitive {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let s: String = (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    Sensitive(s)
}

/// `get` of any namespaced object, `None` when absent, errors naming it.
pub async fn get_opt<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    kind: &str,
) -> Result<Option<K>, InterpretError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|source| InterpretError::Api {
            verb: "get",
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        })
}

/// The names of a Secret's keys (`None` if the Secret is missing); values
/// are never decoded.
pub async fn key_names(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeSet<String>>, InterpretError> {
    let secret: Option<Secret> = get_opt(client, namespace, name, "Secret").await?;
    Ok(secret.map(|s| s.data.unwrap_or_default().into_keys().collect()))
}

/// One key of a Secret, surrounding whitespace trimmed (a value pasted into
/// a Secret often ends with a newline); `None` if the Secret or key is
/// missing.
pub async fn read_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<Sensitive>, InterpretError> {
    let secret: Option<Secret> = get_opt(client, namespace, name, "Secret").await?;
    let Some(bytes) = secret.and_then(|s| s.data).and_then(|mut d| d.remove(key)) else {
        return Ok(None);
    };
    String::from_utf8(bytes.0)
        .map(|v| Some(Sensitive::new(v.trim().to_string())))
        .map_err(|_| InterpretError::SecretEncoding {
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        })
}

/// Several keys of one Secret in one GET, values exactly as stored (what
/// [`crate::write_once::credentials_hash`] of a consumer needs); `None` if
/// the Secret is missing, a missing key is simply absent from the map.
pub async fn read_keys(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    keys: &[&str],
) -> Result<Option<BTreeMap<String, Sensitive>>, InterpretError> {
    let secret: Option<Secret> = get_opt(client, namespace, name, "Secret").await?;
    let Some(secret) = secret else {
        return Ok(None);
    };
    let mut data = secret.data.unwrap_or_default();
    let mut out = BTreeMap::new();
    for key in keys {
        if let Some(bytes) = data.remove(*key) {
            let value = String::from_utf8(bytes.0).map_err(|_| InterpretError::SecretEncoding {
                namespace: namespace.into(),
                name: name.into(),
                key: key.to_string(),
            })?;
            out.insert(key.to_string(), Sensitive::new(value));
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Sensitive::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn passwords_are_long_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose().len(), 32);
        assert_ne!(a, b);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
