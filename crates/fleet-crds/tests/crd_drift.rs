//! The CRD committed for the Helm chart must be exactly what the types
//! generate; otherwise the cluster validates against a stale schema.

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/bootstrap/crds/fleetstack.yaml"
    );
    let committed =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let generated = fleet_crds::crdgen::render_yaml().expect("render CRDs");
    assert!(
        committed == generated,
        "{path} is stale: run `cargo run -p fleet-crds --bin crdgen > charts/bootstrap/crds/fleetstack.yaml`"
    );
}

/// Structural-schema rules a Kubernetes 1.20 API server enforces that are
/// easy to break with generated schemas: no `anyOf`/`oneOf` carrying types,
/// every property typed, no CEL.
#[test]
fn schema_is_structural_for_kubernetes_1_20() {
    let yaml = fleet_crds::crdgen::render_yaml().expect("render CRDs");
    assert!(
        !yaml.contains("x-kubernetes-validations"),
        "CEL is not served by 1.20"
    );
    for crd in fleet_crds::crdgen::all_crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("json");
        walk(&schema["openAPIV3Schema"], "");
    }
}

fn walk(v: &serde_json::Value, path: &str) {
    let Some(obj) = v.as_object() else { return };
    for forbidden in ["oneOf", "anyOf", "allOf", "$ref", "definitions", "$defs"] {
        assert!(!obj.contains_key(forbidden), "{forbidden} at {path}");
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&serde_json::json!(true));
    let preserve =
        obj.get("x-kubernetes-preserve-unknown-fields") == Some(&serde_json::json!(true));
    assert!(
        obj.contains_key("type") || int_or_string || preserve,
        "untyped schema at {path}: {v}"
    );
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (k, p) in props {
            walk(p, &format!("{path}.{k}"));
        }
    }
    if let Some(items) = obj.get("items") {
        walk(items, &format!("{path}[]"));
    }
    if let Some(ap) = obj.get("additionalProperties") {
        walk(ap, &format!("{path}{{}}"));
    }
}
