//! charts/bootstrap rendered by the real Helm v4 engine (scripts/helm): lint,
//! default and non-default renders, the values schema, and the contracts the
//! chart shares with the controller (RBAC per owned kind, environment).

use std::collections::BTreeSet;

use fleet_deploy_tests::{
    Rendered, chart_dir, helm_lint, helm_template, helm_template_raw, read, repo_root,
};
use serde_yaml::Value;

const NS: &str = "fleet-system";

fn nondefault_values() -> String {
    repo_root()
        .join("crates/fleet-deploy-tests/tests/data/values-nondefault.yaml")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

fn render_default() -> Rendered {
    helm_template("fleet", NS, &[]).expect("default values render")
}

fn render_nondefault() -> Rendered {
    let values = nondefault_values();
    helm_template("fleet", NS, &["-f", &values]).expect("non-default values render")
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().expect("string item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn container(r: &Rendered) -> &Value {
    let dep = r.one("Deployment");
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The container's env as (name, literal value or "<fieldRef:path>").
fn env(r: &Rendered) -> Vec<(String, String)> {
    container(r)["env"]
        .as_sequence()
        .expect("env list")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("env name").to_string();
            let value = match e["value"].as_str() {
                Some(v) => v.to_string(),
                None => format!(
                    "<fieldRef:{}>",
                    e["valueFrom"]["fieldRef"]["fieldPath"]
                        .as_str()
                        .expect("value or fieldRef")
                ),
            };
            (name, value)
        })
        .collect()
}

fn env_value(r: &Rendered, name: &str) -> Option<String> {
    env(r).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

#[test]
fn lint_is_clean_with_default_and_nondefault_values() {
    let values = nondefault_values();
    for extra in [
        vec![],
        vec!["--kube-version", "v1.20.2"],
        vec!["-f", values.as_str()],
    ] {
        let out = helm_lint(&extra).expect("scripts/helm runs");
        assert!(
            out.success,
            "lint {extra:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        assert!(
            !out.stdout.contains("[WARNING]") && !out.stdout.contains("[ERROR]"),
            "lint {extra:?} reported problems:\n{}",
            out.stdout
        );
        assert!(out.stdout.contains("1 chart(s) linted"), "{}", out.stdout);
    }
}

#[test]
fn lint_fails_on_values_that_break_the_schema() {
    // The negative twin of the test above: lint is a real check here.
    let out = helm_lint(&["--set", "replicas=0"]).expect("scripts/helm runs");
    assert!(!out.success, "lint accepted replicas=0:\n{}", out.stdout);
    assert!(out.stdout.contains("/replicas"), "{}", out.stdout);
}

#[test]
fn chart_version_follows_the_crate_version() {
    let chart: Value =
        serde_yaml::from_str(&read(&chart_dir().join("Chart.yaml")).expect("Chart.yaml"))
            .expect("Chart.yaml parses");
    let crate_version = env!("CARGO_PKG_VERSION"); // = [workspace.package] version
    assert_eq!(chart["version"].as_str(), Some(crate_version));
    assert_eq!(chart["appVersion"].as_str(), Some(crate_version));
    let image = container(&render_default())["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        image,
        format!("fleetstack/fleet-reconciler:{crate_version}")
    );
}

#[test]
fn default_render_has_exactly_the_expected_objects() {
    let r = render_default();
    let kinds: BTreeSet<String> = r.kinds().into_iter().collect();
    let want: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds, want, "rendered: {:?}", r.kinds());
    assert_eq!(r.docs.len(), 5, "one object per kind: {:?}", r.kinds());
    // Install order, as helm prints it: RBAC and the ServiceAccount first.
    assert_eq!(r.kinds().last().map(String::as_str), Some("Deployment"));
    assert!(!r.text.contains("NOTES"), "NOTES.txt is not a manifest");
    for d in &r.docs {
        let labels = &d["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"].as_str(),
            Some("fleet-reconciler")
        );
        assert_eq!(labels["app.kubernetes.io/instance"].as_str(), Some("fleet"));
        assert_eq!(
            labels["app.kubernetes.io/managed-by"].as_str(),
            Some("Helm")
        );
        assert_eq!(labels["helm.sh/chart"].as_str(), Some("bootstrap-0.1.0"));
        if d["kind"] != "ClusterRole" && d["kind"] != "ClusterRoleBinding" {
            assert_eq!(
                d["metadata"]["namespace"].as_str(),
                Some(NS),
                "{:?}",
                d["kind"]
            );
        }
    }
}

#[test]
fn deployment_defaults_are_restricted_and_probed() {
    let r = render_default();
    let dep = r.one("Deployment");
    let spec = &dep["spec"];
    assert_eq!(spec["replicas"].as_i64(), Some(1));
    // One replica has no leader election, so updates must never overlap.
    assert_eq!(spec["strategy"]["type"].as_str(), Some("Recreate"));
    let pod = &spec["template"]["spec"];
    // Restricted Pod Security, pod level ...
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(psc["runAsUser"].as_i64(), Some(65532));
    assert_eq!(
        psc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    // ... and container level.
    let c = container(&r);
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(strs(&sc["capabilities"]["drop"]), vec!["ALL"]);
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());

    assert_eq!(
        c["image"].as_str(),
        Some("fleetstack/fleet-reconciler:0.1.0")
    );
    assert_eq!(c["imagePullPolicy"].as_str(), Some("IfNotPresent"));
    assert_eq!(c["resources"]["requests"]["cpu"].as_str(), Some("50m"));
    assert_eq!(c["resources"]["requests"]["memory"].as_str(), Some("64Mi"));
    assert_eq!(c["resources"]["limits"]["memory"].as_str(), Some("256Mi"));

    // Probes hit the controller's own endpoints on its HTTP port.
    let ports = c["ports"].as_sequence().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"].as_str(), Some("http"));
    assert_eq!(ports[0]["containerPort"].as_i64(), Some(8080));
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["port"].as_str(), Some("http"));
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["port"].as_str(),
        Some("http")
    );
    // ... which is where the controller listens.
    assert_eq!(
        env_value(&r, "FLEET_HTTP_ADDR").as_deref(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(
        env_value(&r, "POD_NAME").as_deref(),
        Some("<fieldRef:metadata.name>")
    );
    assert_eq!(env_value(&r, "FLEET_LEADER_ELECTION"), None);
    assert_eq!(
        env_value(&r, "FLEET_WATCH_NAMESPACE"),
        None,
        "all namespaces by default"
    );
    assert_eq!(
        env_value(&r, "FLEET_RECONCILER_CLASS"),
        None,
        "unlabelled FleetStacks by default"
    );

    // The pod runs as the chart's ServiceAccount, selected by its own labels.
    let sa = r.one("ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    let selector = spec["selector"]["matchLabels"]
        .as_mapping()
        .expect("selector");
    let pod_labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(&pod_labels[k.as_str().unwrap()], v, "selector label {k:?}");
    }
    // The metrics Service selects those pods and targets the named port.
    let svc = r.one("Service");
    for (k, v) in svc["spec"]["selector"]
        .as_mapping()
        .expect("service selector")
    {
        assert_eq!(
            &pod_labels[k.as_str().unwrap()],
            v,
            "service selector {k:?}"
        );
    }
    assert_eq!(svc["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));
    assert_eq!(svc["spec"]["ports"][0]["port"].as_i64(), Some(8080));
}

#[test]
fn rbac_has_no_wildcards_and_binds_the_service_account() {
    for r in [render_default(), render_nondefault()] {
        let mut roles = r.of_kind("ClusterRole");
        roles.extend(r.of_kind("Role"));
        assert!(!roles.is_empty());
        for role in roles {
            let name = role["metadata"]["name"].as_str().unwrap_or("?");
            for rule in role["rules"].as_sequence().expect("rules") {
                for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                    for item in strs(&rule[field]) {
                        assert!(!item.contains('*'), "{name}: wildcard in {field}: {rule:?}");
                    }
                }
                assert!(rule["nonResourceURLs"].is_null(), "{name}: {rule:?}");
                for verb in strs(&rule["verbs"]) {
                    assert!(
                        [
                            "get", "list", "watch", "create", "patch", "update", "delete"
                        ]
                        .contains(&verb.as_str()),
                        "{name}: verb {verb} is not one the controller uses: {rule:?}"
                    );
                }
            }
        }
        let sa = r.one("ServiceAccount")["metadata"]["name"].clone();
        let mut bindings = r.of_kind("ClusterRoleBinding");
        bindings.extend(r.of_kind("RoleBinding"));
        for b in bindings {
            let subjects = b["subjects"].as_sequence().expect("subjects");
            assert_eq!(subjects.len(), 1);
            assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
            assert_eq!(subjects[0]["name"], sa);
            assert_eq!(subjects[0]["namespace"].as_str(), Some(NS));
        }
    }
}

/// Verbs granted on (group, resource) by the rendered ClusterRole.
fn granted(r: &Rendered, group: &str, resource: &str) -> BTreeSet<String> {
    let mut verbs = BTreeSet::new();
    for rule in r.one("ClusterRole")["rules"].as_sequence().expect("rules") {
        if strs(&rule["apiGroups"]).iter().any(|g| g == group)
            && strs(&rule["resources"]).iter().any(|x| x == resource)
        {
            verbs.extend(strs(&rule["verbs"]));
        }
    }
    verbs
}

/// The ClusterRole follows the code: what every component needs
/// (`Component::controller_rules`: the child verbs of server-side apply and
/// pruning on every kind it may own, plus what its own Roles delegate, which
/// the RBAC escalation check requires the controller to hold) and nothing
/// else on children. A component that starts owning a new kind fails this
/// until the chart grants it.
#[test]
fn cluster_role_covers_exactly_what_the_controller_touches() {
    let r = render_default();
    let mut needed: std::collections::BTreeMap<(String, String), BTreeSet<String>> =
        Default::default();
    let rules = fleet_scores::Component::ALL
        .into_iter()
        .flat_map(|c| c.controller_rules())
        .chain(fleet_scores::component::wake_rules())
        .chain(fleet_scores::component::diagnosis_rules());
    {
        for rule in rules {
            for g in rule.api_groups.iter().flatten() {
                for res in rule.resources.iter().flatten() {
                    needed
                        .entry((g.clone(), res.clone()))
                        .or_default()
                        .extend(rule.verbs.iter().cloned());
                }
            }
        }
    }
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for ((group, resource), verbs) in &needed {
        if group == "fleet.nationtech.io" && resource == "fleetstacks" {
            continue; // the operator's get: covered by the controller's own watch below
        }
        assert_eq!(
            &granted(&r, group, resource),
            verbs,
            "ClusterRole verbs on {group}/{resource} must equal what the components need"
        );
        expected.insert((group.clone(), resource.clone()));
    }
    // The controller's own resources.
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        granted(&r, "fleet.nationtech.io", "fleetstacks"),
        set(&["get", "list", "watch"])
    );
    assert_eq!(
        granted(&r, "fleet.nationtech.io", "fleetstacks/status"),
        set(&["get", "patch"])
    );
    assert_eq!(
        granted(&r, "events.k8s.io", "events"),
        set(&["create", "patch"])
    );
    expected.insert(("fleet.nationtech.io".into(), "fleetstacks".into()));
    expected.insert(("fleet.nationtech.io".into(), "fleetstacks/status".into()));
    expected.insert(("events.k8s.io".into(), "events".into()));
    // Nothing beyond that list (e.g. no Pods, no Secrets in other groups).
    let mut present = BTreeSet::new();
    for rule in r.one("ClusterRole")["rules"].as_sequence().expect("rules") {
        for g in strs(&rule["apiGroups"]) {
            for res in strs(&rule["resources"]) {
                present.insert((g.clone(), res));
            }
        }
    }
    assert_eq!(
        present, expected,
        "ClusterRole grants more or less than the code uses"
    );
}

#[test]
fn nondefault_values_render_leader_election_monitoring_and_overrides() {
    let r = render_nondefault();
    let dep = r.one("Deployment");
    assert_eq!(dep["spec"]["replicas"].as_i64(), Some(2));
    assert_eq!(
        dep["spec"]["strategy"]["type"].as_str(),
        Some("RollingUpdate")
    );
    assert_eq!(
        dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_i64(),
        Some(0)
    );
    // Leader election on, through a Lease in the release namespace.
    assert_eq!(
        env_value(&r, "FLEET_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_value(&r, "FLEET_LEASE_NAME").as_deref(),
        Some("fleet-reconciler-lock")
    );
    assert_eq!(
        env_value(&r, "FLEET_LEASE_NAMESPACE").as_deref(),
        Some("<fieldRef:metadata.namespace>")
    );
    let role = r.one("Role");
    assert_eq!(role["metadata"]["namespace"].as_str(), Some(NS));
    let rules = role["rules"].as_sequence().expect("rules");
    assert_eq!(rules.len(), 2);
    for rule in rules {
        assert_eq!(strs(&rule["apiGroups"]), vec!["coordination.k8s.io"]);
        assert_eq!(strs(&rule["resources"]), vec!["leases"]);
    }
    // create is unrestricted (no name before it exists); get and update
    // only on the configured Lease.
    assert_eq!(strs(&rules[0]["verbs"]), vec!["create"]);
    assert!(rules[0]["resourceNames"].is_null());
    assert_eq!(strs(&rules[1]["verbs"]), vec!["get", "update"]);
    assert_eq!(
        strs(&rules[1]["resourceNames"]),
        vec!["fleet-reconciler-lock"]
    );
    assert_eq!(
        r.one("RoleBinding")["roleRef"]["name"],
        role["metadata"]["name"]
    );

    // Custom image, pull policy, resources, namespace, log format.
    let c = container(&r);
    assert_eq!(
        c["image"].as_str(),
        Some("registry.example.com/fleet/reconciler:1.2.3-rc.1")
    );
    assert_eq!(c["imagePullPolicy"].as_str(), Some("Always"));
    assert_eq!(c["resources"]["requests"]["cpu"].as_str(), Some("200m"));
    assert_eq!(c["resources"]["requests"]["memory"].as_str(), Some("128Mi"));
    assert_eq!(c["resources"]["limits"]["cpu"].as_str(), Some("1"));
    assert_eq!(c["resources"]["limits"]["memory"].as_str(), Some("512Mi"));
    assert_eq!(
        env_value(&r, "FLEET_WATCH_NAMESPACE").as_deref(),
        Some("fleets")
    );
    assert_eq!(
        env_value(&r, "FLEET_RECONCILER_CLASS").as_deref(),
        Some("canary")
    );
    assert_eq!(env_value(&r, "FLEET_LOG_FORMAT").as_deref(), Some("json"));
    assert_eq!(
        env_value(&r, "FLEET_HTTP_ADDR").as_deref(),
        Some("0.0.0.0:9090")
    );
    assert_eq!(c["ports"][0]["containerPort"].as_i64(), Some(9090));
    let pod = &r.one("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["imagePullSecrets"][0]["name"].as_str(), Some("regcred"));

    // ServiceMonitor: selects the metrics Service, scrapes its named port.
    let sm = r.one("ServiceMonitor");
    assert_eq!(sm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(
        sm["metadata"]["labels"]["release"].as_str(),
        Some("kube-prometheus")
    );
    let svc = r.one("Service");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels")
    {
        assert_eq!(&svc["metadata"]["labels"][k.as_str().unwrap()], v, "{k:?}");
    }
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], svc["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    assert_eq!(endpoint["interval"].as_str(), Some("15s"));
    assert_eq!(
        strs(&sm["spec"]["namespaceSelector"]["matchNames"]),
        vec![NS]
    );
}

#[test]
fn set_flags_override_values_like_helm() {
    let r = helm_template(
        "fleet",
        NS,
        &[
            "--set",
            "image.tag=9.9.9",
            "--set",
            "serviceMonitor.enabled=true",
        ],
    )
    .expect("renders");
    assert_eq!(
        container(&r)["image"].as_str(),
        Some("fleetstack/fleet-reconciler:9.9.9")
    );
    assert_eq!(r.of_kind("ServiceMonitor").len(), 1);
    // Default release name handling: a release named like the controller
    // does not repeat the name.
    let r = helm_template("fleet-reconciler", NS, &[]).expect("renders");
    assert_eq!(
        r.one("Deployment")["metadata"]["name"].as_str(),
        Some("fleet-reconciler")
    );
}

/// Issue 17 item 3: one PodMonitor per component with metrics, selecting
/// exactly the pods the reconciler labels for that component, on the
/// container port the Scores name `http`, at the path each serves.
#[test]
fn pod_monitors_select_each_components_pods_by_the_reconcilers_labels() {
    use fleet_scores::Component;
    let r = helm_template("fleet", NS, &["--set", "podMonitors.enabled=true"]).expect("renders");
    let monitors = r.of_kind("PodMonitor");
    let mut seen = BTreeSet::new();
    for m in &monitors {
        let selector = &m["spec"]["selector"]["matchLabels"];
        assert_eq!(
            selector[fleet_scores::labels::MANAGED_BY].as_str(),
            Some(fleet_scores::labels::FIELD_MANAGER)
        );
        let component = selector[fleet_scores::labels::COMPONENT]
            .as_str()
            .expect("component label")
            .to_string();
        let endpoint = &m["spec"]["podMetricsEndpoints"][0];
        assert_eq!(endpoint["port"].as_str(), Some("http"), "{component}");
        let path = endpoint["path"].as_str().expect("path");
        let want = if component == Component::Identity.name() {
            "/debug/metrics"
        } else {
            "/metrics"
        };
        assert_eq!(path, want, "{component}");
        assert_eq!(m["spec"]["namespaceSelector"]["any"].as_bool(), Some(true));
        seen.insert(component);
    }
    let want: BTreeSet<String> = [Component::Callout, Component::Operator, Component::Identity]
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(seen, want);
    // Watching one namespace scrapes only there.
    let r = helm_template(
        "fleet",
        NS,
        &[
            "--set",
            "podMonitors.enabled=true",
            "--set",
            "watchNamespace=edge",
        ],
    )
    .expect("renders");
    for m in r.of_kind("PodMonitor") {
        assert_eq!(
            m["spec"]["namespaceSelector"]["matchNames"][0].as_str(),
            Some("edge")
        );
    }
    // Off by default.
    assert!(render_default().of_kind("PodMonitor").is_empty());
}

/// The schema refuses bad values before anything renders, naming the key.
#[test]
fn schema_rejects_bad_values() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicas=-1"], "/replicas"),
        (&["--set", "replicas=0"], "/replicas"),
        (&["--set-string", "replicas=two"], "/replicas"),
        (&["--set", "replicsa=2"], "replicsa"),
        (&["--set", "image.registry=docker.io"], "registry"),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "/image/pullPolicy",
        ),
        (
            &["--set", "serviceMonitor.interval=soon"],
            "/serviceMonitor/interval",
        ),
        (&["--set", "httpPort=80"], "/httpPort"),
        (&["--set", "logFormat=xml"], "/logFormat"),
        (&["--set", "reconcilerClass=no spaces"], "/reconcilerClass"),
        (
            &["--set", "resources.requests.cpu=lots"],
            "/resources/requests/cpu",
        ),
        (
            &["--set", "watchNamespace=Not_A_Namespace"],
            "/watchNamespace",
        ),
    ];
    for (args, path) in cases {
        let out = helm_template_raw("fleet", NS, args).expect("scripts/helm runs");
        assert!(!out.success, "{args:?} was accepted:\n{}", out.stdout);
        assert!(
            out.stderr.contains("schema") && out.stderr.contains(path),
            "{args:?}: refusal does not name {path}:\n{}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: rendered despite the refusal"
        );
    }
    // Control: the same keys with good values pass, so the refusals above
    // are about the values.
    let ok = helm_template_raw(
        "fleet",
        NS,
        &[
            "--set",
            "replicas=3",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            "serviceMonitor.interval=1m",
            "--set",
            "httpPort=8081",
            "--set",
            "logFormat=json",
            "--set",
            "resources.requests.cpu=1500m",
            "--set",
            "watchNamespace=team-a",
        ],
    )
    .expect("scripts/helm runs");
    assert!(ok.success, "good values refused:\n{}", ok.stderr);
}

/// Every variable the chart sets is one the controller reads (a variable it
/// ignores is a setting that silently does nothing, e.g. leader election
/// the controller does not implement).
#[test]
fn every_env_var_the_chart_sets_is_read_by_the_controller() {
    let src_dir = repo_root().join("crates/fleet-reconciler/src");
    let mut sources = String::new();
    let mut stack = vec![src_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&read(&path).expect("source readable"));
            }
        }
    }
    let values = nondefault_values();
    // Non-default values turn every optional variable on.
    let r = helm_template("fleet", NS, &["-f", &values]).expect("renders");
    let mut unread = Vec::new();
    for (name, _) in env(&r) {
        let read_by_code = if name == "RUST_LOG" {
            // tracing-subscriber's EnvFilter reads RUST_LOG itself.
            sources.contains("EnvFilter::try_from_default_env")
                || sources.contains("EnvFilter::from_default_env")
        } else {
            sources.contains(&format!("\"{name}\""))
        };
        if !read_by_code {
            unread.push(name);
        }
    }
    assert!(
        unread.is_empty(),
        "the chart sets {unread:?} but crates/fleet-reconciler/src never reads them"
    );
}

/// (group, resource, verb) triples of a list of RBAC rules.
fn triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_sequence().expect("rules") {
        for g in strs(&rule["apiGroups"]) {
            for res in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    out.insert((g.clone(), res.clone(), v));
                }
            }
        }
    }
    out
}

/// The chart grants exactly the ClusterRole the controller's authors wrote
/// down in crates/fleet-reconciler/RBAC.md (its YAML block), rule for rule.
#[test]
fn cluster_role_equals_the_reconcilers_rbac_md() {
    let path = repo_root().join("crates/fleet-reconciler/RBAC.md");
    let md = read(&path).expect("crates/fleet-reconciler/RBAC.md documents the controller's RBAC");
    let block = md
        .split("```yaml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("kind: ClusterRole"))
        .expect("RBAC.md has a ```yaml block with the ClusterRole");
    let documented: Value = serde_yaml::from_str(block).expect("RBAC.md ClusterRole parses");
    let want = triples(&documented["rules"]);
    let have = triples(&render_default().one("ClusterRole")["rules"]);
    let missing: Vec<_> = want.difference(&have).collect();
    let extra: Vec<_> = have.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "chart ClusterRole differs from RBAC.md: missing {missing:?}, extra {extra:?}"
    );
}

/// charts/bootstrap/README.md documents every value the schema accepts, and
/// nothing the schema does not know.
#[test]
fn chart_readme_documents_every_value() {
    let schema: serde_json::Value = serde_json::from_str(
        &read(&chart_dir().join("values.schema.json")).expect("schema readable"),
    )
    .expect("schema parses");
    fn leaves(path: &str, s: &serde_json::Value, out: &mut BTreeSet<String>) {
        match s["properties"].as_object() {
            Some(props) => {
                for (k, v) in props {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaves(&p, v, out);
                }
            }
            None => {
                out.insert(path.to_string());
            }
        }
    }
    let mut keys = BTreeSet::new();
    leaves("", &schema, &mut keys);
    keys.remove("global"); // Helm's own, accepted and unused
    let readme = read(&chart_dir().join("README.md")).expect("README readable");
    let documented: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect();
    let missing: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README values table: undocumented {missing:?}, not in the schema {unknown:?}"
    );
}
