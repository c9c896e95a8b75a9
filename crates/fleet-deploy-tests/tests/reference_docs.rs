//! The configuration reference (docs/reference.md) is generated from the CRD
//! schema's descriptions, so the docs say exactly what the API server
//! enforces. This test fails when they drift; regenerate with
//! `FLEET_UPDATE_GOLDEN=1 cargo test -p fleet-deploy-tests --test reference_docs`.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every CRD in charts/bootstrap/crds, in file order.
fn crds() -> Vec<Value> {
    let dir = root().join("charts/bootstrap/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("charts/bootstrap/crds exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("CRD file readable");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("CRD YAML parses");
            if v["kind"] == "CustomResourceDefinition" {
                out.push(v);
            }
        }
    }
    out
}

/// What the description of a field of an upstream Kubernetes type says.
const UPSTREAM_MARKER: &str = "See the Kubernetes API reference";

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn type_of(schema: &Value) -> String {
    let mut t = schema["type"].as_str().unwrap_or("").to_string();
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        t = "int or string".into();
    }
    if t == "array" {
        t = format!("[]{}", type_of(&schema["items"]));
    }
    if let Some(values) = schema["enum"].as_sequence() {
        let names: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().map(|s| format!("`{s}`")))
            .collect();
        t = format!("{t} ({})", names.join(" \\| "));
    }
    t
}

fn constraints(schema: &Value) -> String {
    let mut c = Vec::new();
    for (key, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
    ] {
        if let Some(n) = schema[key]
            .as_i64()
            .or_else(|| schema[key].as_f64().map(|f| f as i64))
        {
            c.push(format!("{label} {n}"));
        }
    }
    if let Some(p) = schema["pattern"].as_str() {
        c.push(format!("pattern `{}`", p.replace('|', "\\|")));
    }
    c.join(", ")
}

fn default_of(schema: &Value) -> String {
    match &schema["default"] {
        Value::Null => String::new(),
        v => format!(
            "`{}`",
            serde_json::to_string(v).expect("default serializes")
        ),
    }
}

/// One table row per field, depth first, in schema order.
fn walk(path: &str, schema: &Value, required: &[String], name: &str, rows: &mut Vec<String>) {
    let req = if required.iter().any(|r| r == name) {
        "yes"
    } else {
        ""
    };
    rows.push(format!(
        "| `{path}` | {} | {req} | {} | {} | {} |",
        type_of(schema),
        default_of(schema),
        constraints(schema),
        one_line(schema["description"].as_str().unwrap_or(""))
    ));
    // Upstream Kubernetes types (a pod's affinity, tolerations, ...) are
    // documented by the Kubernetes API reference, which their description
    // points to; the CRD carries their fields without prose
    // (crates/fleet-crds/src/crdgen.rs), so the table stops at them.
    if schema["description"]
        .as_str()
        .is_some_and(|d| one_line(d).contains(UPSTREAM_MARKER))
    {
        return;
    }
    let (props, req_list) = if schema["type"] == "array" {
        (&schema["items"]["properties"], &schema["items"]["required"])
    } else {
        (&schema["properties"], &schema["required"])
    };
    let required: Vec<String> = req_list
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(map) = props.as_mapping() {
        let suffix = if schema["type"] == "array" { "[]" } else { "" };
        for (k, v) in map {
            let k = k.as_str().expect("property names are strings");
            walk(&format!("{path}{suffix}.{k}"), v, &required, k, rows);
        }
    }
}

fn render() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the CRD schemas in `charts/bootstrap/crds` by the test\n\
         `reference_docs` (crates/fleet-deploy-tests); do not edit by hand. Regenerate with\n\
         `FLEET_UPDATE_GOLDEN=1 cargo test -p fleet-deploy-tests --test reference_docs`.\n\n\
         Defaults are filled in by the API server. What the schema cannot express (for\n\
         example \"exactly one of `identity.managed` and `identity.external`\") is checked by\n\
         the controller and reported as `Stalled` with reason `InvalidSpec` and the field path.\n",
    );
    for crd in crds() {
        let kind = crd["spec"]["names"]["kind"].as_str().expect("kind");
        let group = crd["spec"]["group"].as_str().expect("group");
        for version in crd["spec"]["versions"].as_sequence().expect("versions") {
            let v = version["name"].as_str().expect("version name");
            let schema = &version["schema"]["openAPIV3Schema"];
            out.push_str(&format!("\n## {kind} (`{group}/{v}`)\n\n"));
            if let Some(d) = schema["description"].as_str() {
                out.push_str(&format!("{}\n\n", one_line(d)));
            }
            out.push_str("| Field | Type | Required | Default | Constraints | Description |\n|---|---|---|---|---|---|\n");
            let mut rows = Vec::new();
            let required: Vec<String> = Vec::new();
            if let Some(spec) = schema["properties"].get("spec") {
                walk("spec", spec, &required, "spec", &mut rows);
            }
            out.push_str(&rows.join("\n"));
            out.push('\n');
        }
    }
    out
}

#[test]
fn configuration_reference_is_generated_from_the_crd_schema() {
    let want = render();
    let path = root().join("docs/reference.md");
    if std::env::var_os("FLEET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &want).expect("write docs/reference.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/reference.md is out of date with the CRD schemas; regenerate it with \
         FLEET_UPDATE_GOLDEN=1 cargo test -p fleet-deploy-tests --test reference_docs"
    );
    // The reference must cover the fields users touch most.
    for field in [
        "spec.nats.replicas",
        "spec.agents.replicas",
        "spec.paused",
        "spec.probe.intervalSeconds",
    ] {
        assert!(
            want.contains(&format!("| `{field}` |")),
            "{field} missing from the reference"
        );
    }
}

/// Issue 17: every field in the reference says what it is.
#[test]
fn every_field_has_a_description() {
    let missing: Vec<String> = render()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter(|l| l.trim_end().ends_with("|  |"))
        .map(|l| l.split('|').nth(1).unwrap_or("").trim().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}
