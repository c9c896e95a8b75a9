//! Write-once generated secrets: generated once, persisted (created in the
//! API) before anything uses them, never regenerated. Only keys that are
//! missing are ever generated; an existing value is never replaced.
//!
//! A Secret that is deleted is generated again with new values. Workloads
//! that read those values only when they start carry
//! [`CREDENTIALS_HASH`] on their pod template (a hash of exactly the values
//! they consume, [`credentials_hash`]), so new values roll them onto the
//! new values instead of leaving them on the old ones
//! (docs/adr/0016-lost-write-once-secrets.md). Secrets whose values cannot
//! change once used (the Zitadel masterkey) are refused instead: see
//! [`crate::secret_loss`].

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::{PodTemplateSpec, Secret},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};

use sha2::{Digest, Sha256};

use crate::apply::hex;
use crate::labels::{FIELD_MANAGER, MANAGED_BY};
use crate::score::InterpretError;
use crate::secret::{Sensitive, generate_password};

/// Pod-template annotation holding [`credentials_hash`] of the generated
/// values a workload consumes: when they change, the template changes and
/// the workload rolls (a StatefulSet one pod at a time).
pub const CREDENTIALS_HASH: &str = "fleet.nationtech.io/credentials-hash";

/// Hex SHA-256 over the names and values of `keys` in `values` (sorted,
/// duplicates ignored, each length-prefixed so no two inputs frame alike;
/// a missing key hashes differently from an empty one). Never the values
/// themselves: the annotation is readable by anyone who can read the
/// workload. Only for generated values (~190 bits of entropy), which a hash
/// cannot give away; never hash a user-chosen password this way.
pub fn credentials_hash(values: &BTreeMap<String, Sensitive>, keys: &[&str]) -> String {
    let mut keys: Vec<&str> = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let mut h = Sha256::new();
    h.update(b"fleet.nationtech.io/credentials-hash/v1\n");
    for key in keys {
        h.update((key.len() as u64).to_be_bytes());
        h.update(key.as_bytes());
        match values.get(key) {
            Some(v) => {
                h.update([1]);
                h.update((v.expose().len() as u64).to_be_bytes());
                h.update(v.expose().as_bytes());
            }
            None => h.update([0]),
        }
    }
    hex(&h.finalize())
}

/// Puts [`CREDENTIALS_HASH`] on a pod template (next to its other
/// annotations, e.g. the config hash).
pub fn annotate_template(template: &mut PodTemplateSpec, hash: &str) {
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(CREDENTIALS_HASH.to_string(), hash.to_string());
}

/// What [`ensure_secret`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretWrite {
    /// Existed with every key: no write.
    Unchanged,
    Created,
    /// Existed; missing keys were added.
    Completed,
}

/// Returns the values of `keys` in Secret `name`, creating the Secret (or
/// adding missing keys) with fresh passwords if needed.
pub async fn ensure_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    keys: &[&str],
) -> Result<(BTreeMap<String, Sensitive>, SecretWrite), InterpretError> {
    ensure_secret_with(client, namespace, name, labels, owner, keys, &|_| {
        generate_password()
    })
    .await
}

/// [`ensure_secret`] with a generator per key (e.g. nkeys seeds rather than
/// passwords): `generate(key)` is called only for missing keys.
pub async fn ensure_secret_with(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    keys: &[&str],
    generate: &(dyn Fn(&str) -> Sensitive + Send + Sync),
) -> Result<(BTreeMap<String, Sensitive>, SecretWrite), InterpretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_err = |verb, source| InterpretError::Api {
        verb,
        kind: "Secret".into(),
        namespace: namespace.into(),
        name: name.into(),
        source: Box::new(source),
    };
    // Two rounds: if a concurrent creator wins the race we read its values.
    for _ in 0..2 {
        match api.get_opt(name).await.map_err(|e| api_err("get", e))? {
            Some(live) => {
                if live.labels().get(MANAGED_BY).map(String::as_str) != Some(FIELD_MANAGER) {
                    return Err(InterpretError::NotOwned {
                        kind: "Secret".into(),
                        namespace: namespace.into(),
                        name: name.into(),
                    });
                }
                let mut values = decode(&live, namespace, name)?;
                let missing: Vec<&str> = keys
                    .iter()
                    .copied()
                    .filter(|k| !values.contains_key(*k))
                    .collect();
                if missing.is_empty() {
                    return Ok((values, SecretWrite::Unchanged));
                }
                let mut patch = BTreeMap::new();
                for k in missing {
                    let v = generate(k);
                    patch.insert(k.to_string(), v.expose().to_string());
                    values.insert(k.to_string(), v);
                }
                // A merge patch that only adds keys: existing values stay.
                let body = serde_json::json!({ "stringData": patch });
                api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(|e| api_err("patch", e))?;
                return Ok((values, SecretWrite::Completed));
            }
            None => {
                let mut values = BTreeMap::new();
                let mut data = BTreeMap::new();
                for k in keys {
                    let v = generate(k);
                    data.insert(k.to_string(), ByteString(v.expose().as_bytes().to_vec()));
                    values.insert(k.to_string(), v);
                }
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        namespace: Some(namespace.into()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner.clone()]),
                        ..Default::default()
                    },
                    data: Some(data),
                    type_: Some("Opaque".into()),
                    ..Default::default()
                };
                let pp = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match api.create(&pp, &secret).await {
                    Ok(_) => return Ok((values, SecretWrite::Created)),
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(api_err("create", e)),
                }
            }
        }
    }
    Err(InterpretError::SecretRace {
        namespace: namespace.into(),
        name: name.into(),
    })
}

fn decode(
    secret: &Secret,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Sensitive>, InterpretError> {
    let mut out = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        let s = String::from_utf8(v.0.clone()).map_err(|_| InterpretError::SecretEncoding {
            namespace: namespace.into(),
            name: name.into(),
            key: k.clone(),
        })?;
        out.insert(k.clone(), Sensitive::new(s));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, Sensitive> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Sensitive::new(*v)))
            .collect()
    }

    #[test]
    fn the_hash_covers_exactly_the_consumed_values() {
        let a = values(&[("sys", "s1"), ("fleet", "f1"), ("other", "o1")]);
        let h = credentials_hash(&a, &["sys", "fleet"]);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()));
        // Deterministic, independent of the order keys are named in.
        assert_eq!(h, credentials_hash(&a, &["fleet", "sys", "fleet"]));
        // A value the workload does not consume does not roll it.
        let b = values(&[("sys", "s1"), ("fleet", "f1"), ("other", "o2")]);
        assert_eq!(h, credentials_hash(&b, &["sys", "fleet"]));
        // A regenerated consumed value does.
        let c = values(&[("sys", "s1"), ("fleet", "f2"), ("other", "o1")]);
        assert_ne!(h, credentials_hash(&c, &["sys", "fleet"]));
    }

    #[test]
    fn framing_keeps_different_inputs_apart() {
        // Key/value boundaries cannot be shifted into each other.
        let a = values(&[("ab", "c")]);
        let b = values(&[("a", "bc")]);
        assert_ne!(credentials_hash(&a, &["ab"]), credentials_hash(&b, &["a"]));
        // Missing is not empty.
        let empty = values(&[("k", "")]);
        assert_ne!(
            credentials_hash(&empty, &["k"]),
            credentials_hash(&BTreeMap::new(), &["k"])
        );
    }

    #[test]
    fn the_hash_never_contains_a_value() {
        let secret = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFi";
        let h = credentials_hash(&values(&[("k", secret)]), &["k"]);
        assert!(!h.contains(secret));
        assert!(!h.contains(&hex(secret.as_bytes())));
    }
}
