//! Renders the project's CRDs. The committed copy lives in
//! `charts/bootstrap/crds/fleetstack.yaml`; `tests/crd_drift.rs` fails when
//! it no longer matches what this module produces.
//!
//! Two post-processing steps on what schemars generates (docs/adr/0011):
//! * no `nullable: true` anywhere. schemars marks every `Option` nullable,
//!   but we never send null (`skip_serializing_if`), and the API server
//!   publishes a nullable field to OpenAPI v2 without its type and
//!   properties: on 1.20 `kubectl explain fleetstack.spec.agents` listed
//!   nothing and client-side validation let `spec.nats.replcias` through.
//!   (With apiextensions.k8s.io/v1 a null sent for a non-nullable field is
//!   pruned before defaulting, so nothing breaks for a client that does.)
//! * `status` defaults to `{observedGeneration: -1}`. The API server
//!   applies structural defaults when it reads an object from etcd (GET,
//!   LIST, WATCH, the create response), so an object the controller has not
//!   written yet reads `observedGeneration` behind `metadata.generation`:
//!   kstatus InProgress, Argo CD Progressing, from the very first read
//!   (without it kstatus calls an object without status Current).
//! * the long upstream description of `Quantity`, repeated on every
//!   resource map entry, is replaced by one line (the CRD is 40 kB smaller,
//!   well under the 256 kB `kubectl apply` annotation limit).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::{FleetAgent, FleetCommand, FleetEnrollmentToken, FleetStack};

/// Every CRD of the project, in a stable order.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        FleetStack::crd(),
        FleetAgent::crd(),
        FleetCommand::crd(),
        FleetEnrollmentToken::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(root) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                // Only the FleetStack, the object users and GitOps tools
                // read and wait on, whose every writer is known never to
                // send null. The operator runtime's FleetCommand status
                // writes stopped landing with `nullable` removed (its
                // commands test caught it); FleetAgent and FleetCommand
                // keep the schema kube derives until their writers are
                // checked field by field.
                if crd.spec.names.kind != "FleetStack" {
                    continue;
                }
                tidy(root);
                if let Some(status) = root.properties.as_mut().and_then(|p| p.get_mut("status")) {
                    status.default = Some(JSON(
                        serde_json::json!({ "observedGeneration": UNOBSERVED }),
                    ));
                }
            }
        }
    }
    crds
}

/// `status.observedGeneration` of an object no controller has written
/// yet (generations start at 1).
pub const UNOBSERVED: i64 = -1;

const QUANTITY_DESCRIPTION: &str =
    "A Kubernetes quantity: a number or a string like 500m, 128Mi, 1Gi.";

/// Fields of [`crate::PodOverrides`] whose schema is an upstream
/// Kubernetes type, repeated under every component's `pod`.
pub const UPSTREAM_POD_FIELDS: [&str; 4] = [
    "affinity",
    "tolerations",
    "topologySpreadConstraints",
    "imagePullSecrets",
];

/// Drops the descriptions below `s` (not its own): what the Kubernetes API
/// reference documents for the upstream pod types. Six copies of the
/// Affinity schema with its upstream prose would make the CRD 450 kB,
/// past the 256 kB `kubectl apply` annotation limit.
fn drop_nested_descriptions(s: &mut JSONSchemaProps) {
    fn walk(s: &mut JSONSchemaProps) {
        s.description = None;
        children(s, walk);
    }
    children(s, walk);
}

fn children(s: &mut JSONSchemaProps, f: fn(&mut JSONSchemaProps)) {
    for p in s.properties.iter_mut().flat_map(|m| m.values_mut()) {
        f(p);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = s.items.as_mut() {
        f(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(ap)) = s.additional_properties.as_mut() {
        f(ap);
    }
}

/// Drops `nullable` and shortens the Quantity description, everywhere.
fn tidy(s: &mut JSONSchemaProps) {
    if let Some(pod) = s.properties.as_mut().and_then(|p| p.get_mut("pod")) {
        for field in UPSTREAM_POD_FIELDS {
            if let Some(f) = pod.properties.as_mut().and_then(|p| p.get_mut(field)) {
                drop_nested_descriptions(f);
            }
        }
    }
    s.nullable = None;
    if s.x_kubernetes_int_or_string == Some(true)
        && s.description
            .as_deref()
            .is_some_and(|d| d.starts_with("Quantity is a fixed-point"))
    {
        s.description = Some(QUANTITY_DESCRIPTION.into());
    }
    for p in s.properties.iter_mut().flat_map(|m| m.values_mut()) {
        tidy(p);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = s.items.as_mut() {
        tidy(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(ap)) = s.additional_properties.as_mut() {
        tidy(ap);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not render CRD {name} as YAML: {source}")]
pub struct RenderError {
    name: String,
    source: serde_yaml::Error,
}

/// All CRDs as one multi-document YAML stream (what `crdgen` prints).
pub fn render_yaml() -> Result<String, RenderError> {
    let mut out = String::from(
        "# Generated by `cargo run -p fleet-crds --bin crdgen`. Do not edit by hand.\n",
    );
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let doc = serde_yaml::to_string(&crd).map_err(|source| RenderError { name, source })?;
        out.push_str("---\n");
        out.push_str(&doc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(crd: &CustomResourceDefinition) -> serde_json::Value {
        serde_json::to_value(&crd.spec.versions[0].schema).expect("json")["openAPIV3Schema"].clone()
    }

    /// What the API server publishes to OpenAPI v2 (kubectl explain and
    /// client-side validation on 1.20) loses type and properties of every
    /// nullable schema, and the properties of every
    /// `x-kubernetes-preserve-unknown-fields` one (apiextensions-apiserver
    /// controller/openapi/v2 `ToStructuralOpenAPIV2`). Neither may appear;
    /// every object must say what it holds.
    #[test]
    fn every_nested_schema_survives_openapi_v2_publishing() {
        fn walk(v: &serde_json::Value, path: &str, objects: &mut usize) {
            let Some(obj) = v.as_object() else { return };
            assert!(!obj.contains_key("nullable"), "nullable at {path}");
            assert!(
                !obj.contains_key("x-kubernetes-preserve-unknown-fields"),
                "preserve-unknown-fields at {path}"
            );
            let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&true.into());
            assert!(
                obj.contains_key("type") || int_or_string,
                "no type at {path}: {v}"
            );
            if obj.get("type") == Some(&"object".into()) {
                *objects += 1;
                assert!(
                    obj.contains_key("properties") || obj.contains_key("additionalProperties"),
                    "object without properties at {path}"
                );
            }
            for (k, p) in obj
                .get("properties")
                .and_then(|p| p.as_object())
                .into_iter()
                .flatten()
            {
                walk(p, &format!("{path}.{k}"), objects);
            }
            if let Some(items) = obj.get("items") {
                walk(items, &format!("{path}[]"), objects);
            }
            if let Some(ap) = obj.get("additionalProperties") {
                walk(ap, &format!("{path}{{}}"), objects);
            }
        }
        // The FleetStack only: see all_crds for why FleetAgent and
        // FleetCommand keep kube's derived schema for now.
        for crd in all_crds()
            .into_iter()
            .filter(|c| c.spec.names.kind == "FleetStack")
        {
            let mut objects = 0;
            walk(&schema(&crd), &crd.spec.names.kind, &mut objects);
            assert!(
                objects >= 3,
                "{}: only {objects} objects",
                crd.spec.names.kind
            );
        }
        // The fields `kubectl explain fleetstack.spec.agents` must list.
        let stack = schema(&FleetStack::crd_tidy());
        let agents = &stack["properties"]["spec"]["properties"]["agents"];
        assert_eq!(agents["type"], "object");
        for f in ["target", "replicas", "image", "labels", "resources"] {
            assert!(agents["properties"].get(f).is_some(), "spec.agents.{f}");
        }
        assert!(
            stack["properties"]["spec"]["properties"]["nats"]["properties"]
                .get("replicas")
                .is_some()
        );
    }

    /// Issue 12 item 2: the API server fills `status` in on every read of
    /// an object the controller has not written yet, so kstatus reads it
    /// behind its generation (InProgress) instead of Current.
    #[test]
    fn status_defaults_to_an_unobserved_generation() {
        for crd in all_crds()
            .into_iter()
            .filter(|c| c.spec.names.kind == "FleetStack")
        {
            let status = &schema(&crd)["properties"]["status"];
            assert_eq!(
                status["default"],
                serde_json::json!({"observedGeneration": -1}),
                "{}",
                crd.spec.names.kind
            );
            // The default must validate against its own schema (the API
            // server refuses the CRD otherwise): no minimum on it.
            assert_eq!(
                status["properties"]["observedGeneration"]["type"],
                "integer"
            );
            assert!(
                status["properties"]["observedGeneration"]
                    .get("minimum")
                    .is_none()
            );
        }
    }

    impl FleetStack {
        fn crd_tidy() -> CustomResourceDefinition {
            all_crds().remove(0)
        }
    }
}
