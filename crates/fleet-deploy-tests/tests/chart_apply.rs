//! The rendered chart against a real API server (the cluster in KUBECONFIG):
//! the CRDs from charts/bootstrap/crds are installed for real, then every
//! rendered object goes through a server-side dry-run apply in a fresh
//! namespace, which runs the server's defaulting, schema validation and
//! admission without persisting anything.

use fleet_deploy_tests::{KINDS_WITHOUT_CRD_ON_TEST_CLUSTER, Kubectl, helm_template, repo_root};

fn kubectl() -> Kubectl {
    Kubectl::from_env().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn rendered_chart_applies_cleanly_to_the_api_server() {
    let k = kubectl();
    k.install_crds().expect("CRDs install");
    let ns = k.temp_namespace("chart-apply").expect("namespace");
    let values = repo_root().join("crates/fleet-deploy-tests/tests/data/values-nondefault.yaml");
    let values = values.to_str().expect("utf-8 path");
    for (label, extra) in [("default", vec![]), ("non-default", vec!["-f", values])] {
        // The release name is unique per namespace so the cluster-scoped
        // ClusterRole/Binding names cannot collide with a real install.
        let release = format!("t-{}", ns.name);
        let rendered = helm_template(&release, &ns.name, &extra).expect("renders");
        // The Prometheus Operator's ServiceMonitor CRD is not installed on
        // the test cluster, so the server cannot dry-run it; its rendering is
        // checked in chart.rs instead. Everything else must apply.
        if label == "non-default" {
            assert_eq!(rendered.of_kind("ServiceMonitor").len(), 1);
        }
        let stream = rendered.stream_without(KINDS_WITHOUT_CRD_ON_TEST_CLUSTER);
        let out = k
            .dry_run_apply(&ns.name, &stream)
            .unwrap_or_else(|e| panic!("{label} values: {e}"));
        let applied: Vec<&str> = out.lines().collect();
        let expected = rendered.docs.len()
            - rendered
                .docs
                .iter()
                .filter(|d| {
                    KINDS_WITHOUT_CRD_ON_TEST_CLUSTER.contains(&d["kind"].as_str().unwrap_or(""))
                })
                .count();
        assert_eq!(
            applied.len(),
            expected,
            "{label}: the server did not accept every object:\n{out}"
        );
        assert!(
            applied.iter().any(|l| l.starts_with("deployment.apps/")),
            "{label}: {out}"
        );
        assert!(
            applied
                .iter()
                .any(|l| l.starts_with("clusterrole.rbac.authorization.k8s.io/")),
            "{label}: {out}"
        );
    }
}

/// A broken object is refused by the same path, so the test above is a
/// real check and not an `apply` that accepts anything.
#[test]
fn the_dry_run_refuses_an_invalid_object() {
    let k = kubectl();
    let ns = k.temp_namespace("chart-apply-neg").expect("namespace");
    let rendered = helm_template("neg", &ns.name, &[]).expect("renders");
    let mut dep = rendered.one("Deployment").clone();
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] =
        serde_yaml::Value::String("not-a-number".into());
    let yaml = serde_yaml::to_string(&dep).expect("serializes");
    let err = k
        .dry_run_apply(&ns.name, &yaml)
        .expect_err("the API server must refuse a string uid");
    assert!(err.to_string().contains("runAsUser"), "{err}");
}
