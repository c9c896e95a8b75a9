//! The Argo CD health checks in deploy/argocd, run by a real Lua 5.1
//! interpreter against every fixture their `health_test.yaml` lists, the way
//! Argo CD's own `resource_customizations` tests run them: the object is the
//! global `obj`, the script returns `{status, message}`.
//!
//! Argo CD embeds gopher-lua (Lua 5.1) with only the base, table, string and
//! math libraries open; the interpreter here is the reference Lua 5.1 with the
//! same libraries, so a script that reaches for `os` or uses 5.2+ syntax
//! fails here too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use fleet_deploy_tests::{HealthStatus, argocd_health, argocd_kind_dir, read, repo_root};
use mlua::{Lua, LuaOptions, LuaSerdeExt, StdLib};
use serde::Deserialize;

const GROUP: &str = "fleet.nationtech.io";
const KINDS: &[&str] = &["FleetStack", "FleetAgent", "FleetCommand"];
/// Every status Argo CD knows (gitops-engine pkg/health).
const ARGO_STATUSES: &[&str] = &[
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

#[derive(Debug, Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthTest {
    health_status: HealthStatus,
    input_path: String,
}

fn kind_dir(kind: &str) -> PathBuf {
    argocd_kind_dir(kind)
}

fn health_tests(kind: &str) -> HealthTests {
    let path = kind_dir(kind).join("health_test.yaml");
    serde_yaml::from_str(&read(&path).expect("health_test.yaml readable"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(kind: &str, input_path: &str) -> serde_json::Value {
    let path = kind_dir(kind).join(input_path);
    serde_yaml::from_str(&read(&path).expect("fixture readable"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn evaluate(kind: &str, obj: &serde_json::Value) -> Result<HealthStatus, mlua::Error> {
    argocd_health(kind, obj)
}

#[test]
fn every_health_check_matches_its_health_test_yaml() {
    let mut failures = Vec::new();
    let mut count = 0;
    for kind in KINDS {
        for t in health_tests(kind).tests {
            count += 1;
            let obj = fixture(kind, &t.input_path);
            match evaluate(kind, &obj) {
                Ok(got) if got == t.health_status => {}
                Ok(got) => failures.push(format!(
                    "{kind}/{}: expected {:?}, got {:?}",
                    t.input_path, t.health_status, got
                )),
                Err(e) => failures.push(format!("{kind}/{}: Lua error: {e}", t.input_path)),
            }
        }
    }
    assert!(count >= 20, "only {count} health cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each kind's fixtures cover the states users see, and no fixture sits
/// unused next to the test file (Argo's own test runner only runs listed
/// ones, so an unlisted fixture would be silently untested).
#[test]
fn fixtures_cover_every_state_and_are_all_listed() {
    let required: &[(&str, &[&str], &[&str])] = &[
        (
            "FleetStack",
            &["Progressing", "Healthy", "Degraded", "Suspended"],
            &[
                "no-status",
                "progressing",
                "healthy",
                "stalled-invalid-spec",
                "stalled-timeout",
                "paused",
                "stale-generation",
                "stale-condition",
                "deleting",
            ],
        ),
        (
            "FleetAgent",
            &["Progressing", "Healthy", "Degraded"],
            &["no-status", "connected", "disconnected", "stale-generation"],
        ),
        (
            "FleetCommand",
            &["Progressing", "Healthy", "Degraded"],
            &[
                "no-status",
                "in-flight",
                "complete",
                "failed",
                "stale-generation",
            ],
        ),
    ];
    for (kind, statuses, fixtures) in required {
        let tests = health_tests(kind).tests;
        let listed: BTreeSet<String> = tests.iter().map(|t| t.input_path.clone()).collect();
        let seen: BTreeSet<&str> = tests
            .iter()
            .map(|t| t.health_status.status.as_str())
            .collect();
        for s in *statuses {
            assert!(seen.contains(s), "{kind}: no fixture expects {s}");
        }
        for f in *fixtures {
            let p = format!("testdata/{f}.yaml");
            assert!(
                listed.contains(&p),
                "{kind}: {p} missing from health_test.yaml"
            );
        }
        let on_disk = std::fs::read_dir(kind_dir(kind).join("testdata")).expect("testdata dir");
        for entry in on_disk {
            let name = entry.expect("dir entry").file_name();
            let p = format!("testdata/{}", name.to_string_lossy());
            assert!(
                listed.contains(&p),
                "{kind}: {p} is not listed in health_test.yaml"
            );
        }
        for t in &tests {
            assert!(
                ARGO_STATUSES.contains(&t.health_status.status.as_str()),
                "{kind}/{}: {} is not an Argo CD health status",
                t.input_path,
                t.health_status.status
            );
            let obj = fixture(kind, &t.input_path);
            assert_eq!(obj["kind"], *kind, "{kind}/{}: wrong kind", t.input_path);
            assert_eq!(
                obj["apiVersion"],
                format!("{GROUP}/v1alpha1"),
                "{kind}/{}",
                t.input_path
            );
        }
    }
}

/// The FleetStack fixtures are real FleetStacks: they deserialize into the
/// API types of fleet-crds (spec and the status contract), so the health
/// check is tested on the shapes the controller actually writes.
#[test]
fn fleetstack_fixtures_are_valid_fleetstacks() {
    for t in health_tests("FleetStack").tests {
        let obj = fixture("FleetStack", &t.input_path);
        let stack: fleet_crds::FleetStack = serde_json::from_value(obj.clone())
            .unwrap_or_else(|e| panic!("FleetStack/{}: {e}", t.input_path));
        // Round trip: no field of the fixture is unknown to the API types
        // (serde ignores unknown fields, so compare what survives).
        let back = serde_json::to_value(&stack).expect("serializes");
        assert_eq!(
            strip_nulls(back["status"].clone()),
            strip_nulls(obj["status"].clone()),
            "FleetStack/{}: status has fields the API does not know",
            t.input_path
        );
    }
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(strip_nulls).collect())
        }
        other => other,
    }
}

/// The scripts are robust to what a live object may lack: missing metadata
/// fields, empty conditions, a status that is an empty map.
#[test]
fn health_checks_survive_sparse_objects() {
    let sparse = [
        serde_json::json!({"apiVersion": "fleet.nationtech.io/v1alpha1", "metadata": {}}),
        serde_json::json!({"metadata": {"generation": 1}, "spec": {}, "status": {}}),
        serde_json::json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": []}}),
    ];
    for kind in KINDS {
        for obj in &sparse {
            let hs =
                evaluate(kind, obj).unwrap_or_else(|e| panic!("{kind} on {obj}: Lua error: {e}"));
            assert_eq!(hs.status, "Progressing", "{kind} on {obj}: {hs:?}");
            assert!(!hs.message.is_empty(), "{kind} on {obj}: empty message");
        }
    }
}

/// A script that needs a library Argo CD does not open fails here too.
#[test]
fn the_interpreter_has_argo_cds_libraries_only() {
    let obj = serde_json::json!({});
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )
    .expect("lua");
    lua.globals()
        .set("obj", lua.to_value(&obj).expect("value"))
        .expect("set");
    let err = lua.load("return os.time()").eval::<i64>();
    assert!(err.is_err(), "os must not be available");
    // Lua 5.1, like gopher-lua: no integer division operator.
    assert!(lua.load("return 7 // 2").eval::<f64>().is_err());
}

fn argocd_cm_path() -> PathBuf {
    repo_root().join("deploy/argocd/argocd-cm-patch.yaml")
}

/// The argocd-cm patch users apply, generated from the health.lua files.
fn render_argocd_cm() -> String {
    let mut out = String::from(
        "# Generated from deploy/argocd/resource_customizations by the test\n\
         # argocd_health::argocd_cm_patch_is_in_sync (crates/fleet-deploy-tests).\n\
         # Regenerate: FLEET_UPDATE_GOLDEN=1 cargo test -p fleet-deploy-tests --test argocd_health\n\
         # Apply: kubectl -n argocd patch configmap argocd-cm --patch-file deploy/argocd/argocd-cm-patch.yaml\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  name: argocd-cm\n  namespace: argocd\n  labels:\n    \
         app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\n\
         data:\n",
    );
    for kind in KINDS {
        let script = read(&kind_dir(kind).join("health.lua")).expect("health.lua readable");
        out.push_str(&format!(
            "  resource.customizations.health.{GROUP}_{kind}: |\n"
        ));
        for line in script.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn argocd_cm_patch_is_in_sync() {
    let want = render_argocd_cm();
    let path = argocd_cm_path();
    if std::env::var_os("FLEET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &want).expect("write argocd-cm patch");
    }
    let have = read(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date with the health.lua files; regenerate it with \
         FLEET_UPDATE_GOLDEN=1 cargo test -p fleet-deploy-tests --test argocd_health",
        path.display()
    );
    // The YAML carries each script byte for byte (block scalars are easy to
    // get subtly wrong: indentation, trailing newlines).
    let cm: serde_yaml::Value = serde_yaml::from_str(&have).expect("argocd-cm patch parses");
    for kind in KINDS {
        let key = format!("resource.customizations.health.{GROUP}_{kind}");
        let script = read(&kind_dir(kind).join("health.lua")).expect("health.lua readable");
        assert_eq!(
            cm["data"][key.as_str()].as_str(),
            Some(script.as_str()),
            "{key} differs from health.lua"
        );
    }
}

/// Argo CD and Flux read the same FleetStack status; they must not tell a
/// user different stories. Every status the reconciler's contract allows
/// (`fleet_reconciler::kstatus::check_contract`: Ready/Reconciling/Stalled/
/// Paused present or not, each True/False/Unknown where meaningful, status
/// and condition generations current or one behind) goes through both the
/// reconciler's kstatus computation (what Flux concludes) and health.lua.
#[test]
fn fleetstack_health_agrees_with_kstatus_on_every_contract_status() {
    use fleet_crds::FleetStackStatus;
    use fleet_reconciler::kstatus::{KStatus, check_contract, compute};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    let generation = 2_i64;
    let at = Time(k8s_openapi::jiff::Timestamp::from_second(1_790_000_000).expect("time"));
    let mut checked = 0;
    for ready in [None, Some("True"), Some("False"), Some("Unknown")] {
        for reconciling in [None, Some("True")] {
            for stalled in [None, Some("True")] {
                for paused in [None, Some("True")] {
                    for observed in [None, Some(1_i64), Some(2)] {
                        let present: Vec<(&str, &str)> = [
                            ("Ready", ready),
                            ("Reconciling", reconciling),
                            ("Stalled", stalled),
                            ("Paused", paused),
                        ]
                        .into_iter()
                        .filter_map(|(t, s)| s.map(|s| (t, s)))
                        .collect();
                        // Each condition's own generation: current or one behind.
                        for mask in 0..(1_u32 << present.len()) {
                            let conditions: Vec<Condition> = present
                                .iter()
                                .enumerate()
                                .map(|(i, (t, s))| Condition {
                                    type_: t.to_string(),
                                    status: s.to_string(),
                                    reason: "Because".into(),
                                    message: format!("{t} is {s}"),
                                    observed_generation: Some(if mask >> i & 1 == 1 {
                                        generation - 1
                                    } else {
                                        generation
                                    }),
                                    last_transition_time: at.clone(),
                                })
                                .collect();
                            let status = FleetStackStatus {
                                observed_generation: observed,
                                conditions,
                                ..Default::default()
                            };
                            if check_contract(Some(generation), &status).is_err() {
                                continue;
                            }
                            let kstatus = compute(Some(generation), false, Some(&status));
                            let lagging = status.conditions.iter().any(|c| {
                                c.type_ != "Paused" && c.observed_generation != Some(generation)
                            });
                            for spec_paused in [false, true] {
                                let obj = serde_json::json!({
                                    "apiVersion": "fleet.nationtech.io/v1alpha1",
                                    "kind": "FleetStack",
                                    "metadata": {"name": "x", "namespace": "n", "generation": generation},
                                    "spec": {"paused": spec_paused},
                                    "status": serde_json::to_value(&status).expect("status json"),
                                });
                                let hs = evaluate("FleetStack", &obj)
                                    .unwrap_or_else(|e| panic!("Lua error on {obj}: {e}"));
                                let case = format!("{hs:?} vs kstatus {kstatus:?} for {obj}");
                                assert!(!hs.message.is_empty(), "empty message: {case}");
                                checked += 1;
                                if spec_paused {
                                    assert_eq!(hs.status, "Suspended", "{case}");
                                    continue;
                                }
                                // Argo never calls Healthy what Flux still waits on.
                                if hs.status == "Healthy" {
                                    assert_eq!(kstatus, KStatus::Current, "{case}");
                                }
                                if observed != Some(generation) || lagging {
                                    // A status (or a condition) about an older
                                    // generation says nothing about this one.
                                    assert_eq!(hs.status, "Progressing", "{case}");
                                    continue;
                                }
                                // Both directions: the contract leaves no
                                // status Flux and Argo CD read differently.
                                match kstatus {
                                    KStatus::Failed => assert_eq!(hs.status, "Degraded", "{case}"),
                                    KStatus::Current if paused.is_some() => {
                                        assert_ne!(hs.status, "Degraded", "{case}")
                                    }
                                    // kstatus never reads Ready; the contract
                                    // makes Current mean Ready=True anyway.
                                    KStatus::Current => {
                                        assert_eq!(ready, Some("True"), "{case}");
                                        assert_eq!(hs.status, "Healthy", "{case}")
                                    }
                                    KStatus::InProgress => {
                                        assert_eq!(hs.status, "Progressing", "{case}")
                                    }
                                    KStatus::Terminating => {
                                        assert_eq!(hs.status, "Progressing", "{case}")
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 100, "only {checked} contract-valid cases");
}
