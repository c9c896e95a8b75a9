//! Write-once generated secrets: generated once, persisted (created in the
//! API) before anything uses them, never regenerated. Only keys that are
//! missing are ever generated; an existing value is never replaced.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};

use crate::labels::{FIELD_MANAGER, MANAGED_BY};
use crate::score::InterpretError;
use crate::secret::{Sensitive, generate_password};

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
