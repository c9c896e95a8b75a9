//! examples/: the FleetStacks match the API (types, the controller's own
//! validation, and the CRD schema of a real API server), and the GitOps
//! examples are wired to them.

use std::path::PathBuf;

use fleet_crds::{FleetStack, NatsAuthMode, validate_spec};
use fleet_deploy_tests::{Kubectl, parse_stream, read, repo_root, run_ok};
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

fn load_json(name: &str) -> Value {
    let text = read(&example(name)).expect("example readable");
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("examples/{name}: {e}"))
}

/// Every key of `written` survives a round trip through the API types:
/// serde ignores unknown fields, so a typo (`replica:`) would otherwise
/// pass as "valid" and silently do nothing.
fn assert_no_unknown_fields(path: &str, written: &Value, typed: &Value) {
    match (written, typed) {
        (Value::Object(w), Value::Object(t)) => {
            for (k, v) in w {
                let Some(tv) = t.get(k) else {
                    panic!("{path}.{k} is not a field of the FleetStack API");
                };
                assert_no_unknown_fields(&format!("{path}.{k}"), v, tv);
            }
        }
        (Value::Array(w), Value::Array(t)) => {
            for (i, (a, b)) in w.iter().zip(t).enumerate() {
                assert_no_unknown_fields(&format!("{path}[{i}]"), a, b);
            }
        }
        _ => {}
    }
}

fn typed(name: &str) -> FleetStack {
    let json = load_json(name);
    let stack: FleetStack =
        serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("examples/{name}: {e}"));
    let back = serde_json::to_value(&stack).expect("serializes");
    assert_no_unknown_fields(name, &json["spec"], &back["spec"]);
    if let Err(errors) = validate_spec(&stack.spec) {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("examples/{name} fails the controller's validation: {list:?}");
    }
    stack
}

#[test]
fn minimal_example_is_one_nats_the_operator_and_three_agents_with_userpass() {
    let s = typed("minimal.yaml");
    let nats = s.spec.nats.as_ref().expect("nats");
    assert_eq!(nats.replicas, 1);
    assert_eq!(nats.auth.mode, NatsAuthMode::UserPass);
    assert!(!nats.jetstream.enabled);
    assert_eq!(s.spec.agents.as_ref().expect("agents").replicas, 3);
    // The quickstart prints `kubectl get fleetagents`: the operator writes them.
    assert_eq!(s.spec.operator.as_ref().expect("operator").replicas, 1);
    assert!(s.spec.identity.is_none() && s.spec.callout.is_none());
    assert!(!s.spec.paused);
}

#[test]
fn production_example_has_the_whole_stack() {
    let s = typed("production.yaml");
    let nats = s.spec.nats.as_ref().expect("nats");
    assert_eq!(nats.replicas, 3);
    assert!(nats.jetstream.enabled);
    assert_eq!(nats.auth.mode, NatsAuthMode::Callout);
    let identity = s.spec.identity.as_ref().expect("identity");
    assert!(identity.managed.is_some() && identity.external.is_none());
    assert!(s.spec.callout.is_some());
    assert!(s.spec.operator.is_some());
    assert!(s.spec.agents.as_ref().expect("agents").replicas >= 3);
}

/// The API server itself accepts both examples (schema, defaults, enums,
/// patterns of the generated CRD), installed first from the chart's crds/.
#[test]
fn examples_apply_to_the_api_server() {
    let k = Kubectl::from_env().unwrap_or_else(|e| panic!("{e}"));
    k.install_crds().expect("CRDs install");
    let ns = k.temp_namespace("examples").expect("namespace");
    for name in ["minimal.yaml", "production.yaml"] {
        let text = read(&example(name)).expect("example readable");
        let out = k
            .dry_run_apply(&ns.name, &text)
            .unwrap_or_else(|e| panic!("examples/{name}: {e}"));
        assert_eq!(
            out.trim(),
            format!(
                "fleetstack.fleet.nationtech.io/{}",
                name.trim_end_matches(".yaml")
            ),
            "examples/{name}"
        );
    }
    // Control: the server refuses what the schema forbids, so acceptance
    // above means something.
    let bad = read(&example("minimal.yaml"))
        .expect("example readable")
        .replace("mode: UserPass", "mode: Anonymous");
    let err = k
        .dry_run_apply(&ns.name, &bad)
        .expect_err("an unknown auth mode must be refused");
    assert!(err.to_string().contains("spec.nats.auth.mode"), "{err}");
}

/// What GitOps tools deploy from `path: examples`: kustomize builds exactly
/// the minimal stack (production.yaml needs a real domain first).
#[test]
fn the_examples_kustomization_builds_the_minimal_stack() {
    let dir = repo_root().join("examples");
    let out = run_ok(
        std::path::Path::new("kubectl"),
        &["kustomize", dir.to_str().expect("utf-8 path")],
        None,
    )
    .expect("kubectl kustomize examples");
    let docs = parse_stream(&out).expect("kustomize output parses");
    assert_eq!(docs.len(), 1, "{out}");
    assert_eq!(docs[0]["kind"].as_str(), Some("FleetStack"));
    assert_eq!(docs[0]["metadata"]["name"].as_str(), Some("minimal"));
}

#[test]
fn flux_example_waits_on_the_fleetstack() {
    let text = read(&example("flux/kustomization.yaml")).expect("readable");
    let docs = parse_stream(&text).expect("parses");
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name} in examples/flux/kustomization.yaml"))
    };
    let source = find("GitRepository", "fleetstack");
    assert_eq!(
        source["apiVersion"].as_str(),
        Some("source.toolkit.fluxcd.io/v1")
    );

    let release = find("HelmRelease", "fleet-reconciler");
    assert_eq!(
        release["apiVersion"].as_str(),
        Some("helm.toolkit.fluxcd.io/v2")
    );
    assert_eq!(
        release["spec"]["chart"]["spec"]["chart"].as_str(),
        Some("./charts/bootstrap")
    );
    assert!(repo_root().join("charts/bootstrap/Chart.yaml").exists());
    assert_eq!(
        release["spec"]["install"]["crds"].as_str(),
        Some("CreateReplace")
    );

    let stack = find("Kustomization", "fleet-stack");
    assert_eq!(
        stack["apiVersion"].as_str(),
        Some("kustomize.toolkit.fluxcd.io/v1")
    );
    assert_eq!(stack["spec"]["wait"].as_bool(), Some(true));
    assert_eq!(stack["spec"]["path"].as_str(), Some("./examples"));
    assert!(
        stack["spec"]["timeout"].as_str().is_some(),
        "wait needs a timeout"
    );
    // Flux ignores healthChecks when wait is true: they must not be mixed.
    assert!(stack["spec"]["healthChecks"].is_null());

    let workloads = find("Kustomization", "fleet-workloads");
    assert_eq!(
        workloads["spec"]["dependsOn"][0]["name"].as_str(),
        Some("fleet-stack")
    );
    assert_ne!(workloads["spec"]["wait"].as_bool(), Some(true));
    let check = &workloads["spec"]["healthChecks"][0];
    assert_eq!(
        check["apiVersion"].as_str(),
        Some("fleet.nationtech.io/v1alpha1")
    );
    assert_eq!(check["kind"].as_str(), Some("FleetStack"));
    // The health check names the stack fleet-stack deploys, where it lands.
    assert_eq!(
        check["name"].as_str(),
        Some(typed("minimal.yaml").metadata.name.as_deref().unwrap())
    );
    assert_eq!(check["namespace"], stack["spec"]["targetNamespace"]);
}

#[test]
fn argocd_example_deploys_the_chart_then_the_stack() {
    let text = read(&example("argocd/application.yaml")).expect("readable");
    let docs = parse_stream(&text).expect("parses");
    assert_eq!(docs.len(), 2);
    for d in &docs {
        assert_eq!(d["apiVersion"].as_str(), Some("argoproj.io/v1alpha1"));
        assert_eq!(d["kind"].as_str(), Some("Application"));
        let path = d["spec"]["source"]["path"].as_str().expect("source.path");
        assert!(repo_root().join(path).is_dir(), "{path} does not exist");
    }
    assert_eq!(
        docs[0]["spec"]["source"]["path"].as_str(),
        Some("charts/bootstrap")
    );
    assert_eq!(docs[1]["spec"]["source"]["path"].as_str(), Some("examples"));
    let wave = |d: &serde_yaml::Value| {
        d["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .expect("sync-wave")
            .parse::<i32>()
            .expect("integer wave")
    };
    assert!(wave(&docs[0]) < wave(&docs[1]), "chart before stack");
    // The Helm values an Application passes must satisfy the chart schema.
    let values = serde_json::to_string(&docs[0]["spec"]["source"]["helm"]["valuesObject"])
        .expect("values serialize");
    let file = std::env::temp_dir().join(format!("argo-values-{}.json", std::process::id()));
    std::fs::write(&file, values).expect("write values");
    let out = fleet_deploy_tests::helm_template_raw(
        "fleet",
        "fleet-system",
        &["-f", file.to_str().unwrap()],
    )
    .expect("scripts/helm runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.success,
        "Application values refused by the chart:\n{}",
        out.stderr
    );
}
