//! Applying desired objects: server-side apply with the one field manager,
//! in the order given, skipping objects whose desired state did not change;
//! and deleting a component's objects that are no longer desired. Scores
//! use these through [`crate::resources::Resources`].

use std::collections::BTreeSet;

use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy},
    core::ApiResource,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::labels::{self, DESIRED_HASH, FIELD_MANAGER, MANAGED_BY};
use crate::score::InterpretError;

/// One object to apply, with the hash of its desired state.
#[derive(Debug, Clone)]
pub struct DesiredObject {
    pub resource: ApiResource,
    pub object: DynamicObject,
    pub hash: String,
}

impl DesiredObject {
    /// Converts a typed object, computes the hash of its JSON and stores it
    /// in the `fleet.nationtech.io/desired-hash` annotation.
    pub fn new<K>(obj: &K) -> Result<Self, InterpretError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let name = obj.meta().name.clone().unwrap_or_default();
        let kind = resource.kind.clone();
        let build_err = |source| InterpretError::Build {
            kind: kind.clone(),
            name: name.clone(),
            source,
        };
        let mut value = serde_json::to_value(obj).map_err(build_err)?;
        // apiVersion/kind are not serialized by every k8s-openapi type's
        // Serialize impl path we use; set them explicitly.
        value["apiVersion"] = resource.api_version.clone().into();
        value["kind"] = resource.kind.clone().into();
        // serde_json maps are sorted (no preserve_order), so the text is canonical.
        let hash = hex(&Sha256::digest(value.to_string().as_bytes()));
        let mut object: DynamicObject = serde_json::from_value(value).map_err(build_err)?;
        object
            .annotations_mut()
            .insert(DESIRED_HASH.to_string(), hash.clone());
        Ok(DesiredObject {
            resource,
            object,
            hash,
        })
    }

    pub fn name(&self) -> String {
        self.object.name_any()
    }

    /// `Kind/name`, for reports and logs.
    pub fn key(&self) -> String {
        format!("{}/{}", self.resource.kind, self.name())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`apply_in_order`] did.
#[derive(Debug, Default, Clone)]
pub struct ApplyReport {
    pub written: Vec<String>,
    pub unchanged: usize,
    /// Whether an object that already existed was changed (as opposed to
    /// only creating missing ones): only then can the desired set have
    /// shrunk, so only then is orphan pruning worth its LIST calls.
    pub updated_existing: bool,
    /// How far each workload applied (StatefulSet, Deployment) rolled
    /// out, read from the object the API returned (the GET that found it
    /// unchanged, or the apply's answer): no request of its own.
    pub rollouts: Vec<crate::rollout::Rollout>,
}

impl ApplyReport {
    fn record_workload(&mut self, kind: &str, live: &DynamicObject) {
        let value = || serde_json::to_value(live).ok();
        let rollout = match kind {
            "StatefulSet" => value()
                .and_then(|v| serde_json::from_value(v).ok())
                .map(|sts| crate::rollout::statefulset(&sts)),
            "Deployment" => value()
                .and_then(|v| serde_json::from_value(v).ok())
                .map(|d| crate::rollout::deployment(&d)),
            _ => None,
        };
        self.rollouts.extend(rollout);
    }
}

/// Applies `objects` in order. An object is written only when it is missing,
/// being deleted, or its live desired-hash differs; an idle stack therefore
/// costs reads only. An existing object not labelled as ours is refused
/// rather than taken over.
pub async fn apply_in_order(
    client: &Client,
    namespace: &str,
    objects: &[DesiredObject],
    report: &mut ApplyReport,
) -> Result<(), InterpretError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for desired in objects {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &desired.resource);
        let name = desired.name();
        let api_err = |verb, source| InterpretError::Api {
            verb,
            kind: desired.resource.kind.clone(),
            namespace: namespace.to_string(),
            name: name.clone(),
            source: Box::new(source),
        };
        let live = api.get_opt(&name).await.map_err(|e| api_err("get", e))?;
        if let Some(live) = &live {
            if live.labels().get(MANAGED_BY).map(String::as_str) != Some(FIELD_MANAGER) {
                return Err(InterpretError::NotOwned {
                    kind: desired.resource.kind.clone(),
                    namespace: namespace.to_string(),
                    name,
                });
            }
            let same = live.annotations().get(DESIRED_HASH) == Some(&desired.hash);
            // The hash says what we last wrote; `drifted` catches what
            // someone else changed since (docs/adr/0012).
            let drift = if same {
                match (
                    serde_json::to_value(&desired.object),
                    serde_json::to_value(live),
                ) {
                    (Ok(want), Ok(have)) => crate::drift::drifted(&want, &have),
                    _ => None,
                }
            } else {
                None
            };
            if same && drift.is_none() && live.metadata.deletion_timestamp.is_none() {
                report.unchanged += 1;
                report.record_workload(&desired.resource.kind, live);
                continue;
            }
            if let Some(field) = &drift {
                tracing::info!(object = %desired.key(), %field, "drift: restoring the desired state");
            }
        }
        report.updated_existing |= live.is_some();
        match api
            .patch(&name, &params, &Patch::Apply(&desired.object))
            .await
        {
            Ok(applied) => report.record_workload(&desired.resource.kind, &applied),
            // A StatefulSet's volumeClaimTemplates, selector and serviceName
            // are immutable: replace the object but orphan its pods (and
            // PVCs), which the new StatefulSet adopts and rolls.
            Err(kube::Error::Api(e))
                if e.code == 422 && is_immutable_statefulset(desired, &e.message) =>
            {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Orphan),
                    ..DeleteParams::default()
                };
                api.delete(&name, &dp)
                    .await
                    .map_err(|e| api_err("delete", e))?;
                report.written.push(format!(
                    "{} (deleted to change immutable fields)",
                    desired.key()
                ));
                // Orphaning goes through the garbage collector's finalizer;
                // the name is free only once the object is gone.
                for _ in 0..100 {
                    if api
                        .get_opt(&name)
                        .await
                        .map_err(|e| api_err("get", e))?
                        .is_none()
                    {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                let applied = api
                    .patch(&name, &params, &Patch::Apply(&desired.object))
                    .await
                    .map_err(|e| api_err("apply", e))?;
                report.record_workload(&desired.resource.kind, &applied);
            }
            Err(e) => return Err(api_err("apply", e)),
        }
        report.written.push(desired.key());
    }
    Ok(())
}

fn is_immutable_statefulset(desired: &DesiredObject, message: &str) -> bool {
    desired.resource.kind == "StatefulSet"
        && message.contains("updates to statefulset spec for fields other than")
}

/// Deletes the objects of `component` of `stack` whose `Kind/name` is not in
/// `keep` (all of them when `keep` is empty: the component left the spec).
/// Returns the `Kind/name`s deleted.
pub async fn prune(
    client: &Client,
    namespace: &str,
    stack: &str,
    component: &str,
    kinds: &[ApiResource],
    keep: &BTreeSet<String>,
) -> Result<Vec<String>, InterpretError> {
    let selector = labels::component_selector(stack, component);
    let lp = ListParams::default().labels(&selector);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let mut deleted = Vec::new();
    for kind in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, kind);
        let list = api
            .list_metadata(&lp)
            .await
            .map_err(|source| InterpretError::Api {
                verb: "list",
                kind: kind.kind.clone(),
                namespace: namespace.to_string(),
                name: format!("-l {selector}"),
                source: Box::new(source),
            })?;
        for item in list.items {
            let name = item.name_any();
            let key = format!("{}/{}", kind.kind, name);
            if keep.contains(&key) || item.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match api.delete(&name, &dp).await {
                Ok(_) => deleted.push(key),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(InterpretError::Api {
                        verb: "delete",
                        kind: kind.kind.clone(),
                        namespace: namespace.to_string(),
                        name,
                        source: Box::new(source),
                    });
                }
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), data.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn hash_is_stable_and_tracks_content() {
        let a = DesiredObject::new(&cm("1")).expect("build");
        let b = DesiredObject::new(&cm("1")).expect("build");
        let c = DesiredObject::new(&cm("2")).expect("build");
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_eq!(a.object.annotations().get(DESIRED_HASH), Some(&a.hash));
        assert_eq!(a.key(), "ConfigMap/x");
        let types = a.object.types.as_ref().expect("types");
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("v1", "ConfigMap")
        );
    }
}
