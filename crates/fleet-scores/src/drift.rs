//! Drift: fields of a live object someone changed behind the reconciler's
//! back while its desired-hash annotation stayed intact (`kubectl scale`,
//! `kubectl set image`, editing a ConfigMap or widening a Role).
//!
//! Only fields the API server stores exactly as we send them are compared,
//! so an unchanged stack never looks drifted (a false positive would mean a
//! write on every reconcile): workload `spec.replicas`, container and
//! init-container images by container name (not Jobs: their pod template is
//! immutable), ConfigMap `data`, Role `rules`,
//! RoleBinding `roleRef`/`subjects`. Defaults the API server adds, and
//! fields other controllers own, are deliberately not looked at.
//!
//! Pure: (desired JSON, live JSON) -> the first drifted field, for the log.

use serde_json::Value;

/// `Some("spec.replicas: 5, want 3")` when a checked field differs.
pub fn drifted(desired: &Value, live: &Value) -> Option<String> {
    let field = |v: &Value, path: &[&str]| -> Option<Value> {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .cloned()
            .filter(|v| !v.is_null())
    };
    let differs = |path: &[&str]| -> Option<String> {
        let want = field(desired, path)?;
        let have = field(live, path);
        (have.as_ref() != Some(&want)).then(|| {
            format!(
                "{}: {}, want {}",
                path.join("."),
                have.map(|v| v.to_string())
                    .unwrap_or_else(|| "absent".into()),
                want
            )
        })
    };
    let kind = desired.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "StatefulSet" | "Deployment" => differs(&["spec", "replicas"])
            .or_else(|| images(desired, live, "containers"))
            .or_else(|| images(desired, live, "initContainers")),
        "Job" => {
            images(desired, live, "containers").or_else(|| images(desired, live, "initContainers"))
        }
        "ConfigMap" => differs(&["data"]),
        "Role" => differs(&["rules"]),
        "RoleBinding" => differs(&["roleRef"]).or_else(|| differs(&["subjects"])),
        _ => None,
    }
}

/// Images of the pod template's `list` (containers or initContainers),
/// matched by container name.
fn images(desired: &Value, live: &Value, list: &str) -> Option<String> {
    let containers = |v: &Value| -> Vec<(String, Option<String>)> {
        v.pointer(&format!("/spec/template/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["image"].as_str().map(str::to_string),
                )
            })
            .collect()
    };
    let have = containers(live);
    containers(desired).into_iter().find_map(|(name, want)| {
        let want = want?;
        let got = have
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, i)| i.clone());
        (got.as_deref() != Some(want.as_str())).then(|| {
            format!(
                "{list}[{name}].image: {}, want {want}",
                got.as_deref().unwrap_or("absent")
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(replicas: i64, image: &str) -> Value {
        json!({"kind": "StatefulSet", "spec": {"replicas": replicas, "template": {"spec": {
            "containers": [{"name": "nats", "image": image}]}}}})
    }

    #[test]
    fn scaled_or_reimaged_workloads_have_drifted() {
        let want = sts(3, "fleetstack/nats-server:2.15.1");
        assert_eq!(drifted(&want, &want), None);
        assert_eq!(
            drifted(&want, &sts(5, "fleetstack/nats-server:2.15.1")).as_deref(),
            Some("spec.replicas: 5, want 3")
        );
        let reimaged = drifted(&want, &sts(3, "evil/nats:latest")).unwrap();
        assert!(
            reimaged.starts_with("containers[nats].image: evil/nats:latest"),
            "{reimaged}"
        );
    }

    #[test]
    fn server_defaults_and_extra_fields_are_not_drift() {
        let want = sts(3, "img");
        let mut live = sts(3, "img");
        live["spec"]["revisionHistoryLimit"] = json!(10);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar-injected", "image": "mesh"}));
        live["status"] = json!({"replicas": 3});
        assert_eq!(drifted(&want, &live), None);
        // Kinds without checked fields never drift.
        assert_eq!(
            drifted(&json!({"kind": "Service"}), &json!({"kind": "Service"})),
            None
        );
    }

    #[test]
    fn config_and_rbac_edits_have_drifted() {
        let cm = json!({"kind": "ConfigMap", "data": {"nats.conf": "a"}});
        let edited = json!({"kind": "ConfigMap", "data": {"nats.conf": "b"}});
        assert!(drifted(&cm, &edited).unwrap().starts_with("data:"));
        let role = json!({"kind": "Role", "rules": [{"verbs": ["get"]}]});
        let wider = json!({"kind": "Role", "rules": [{"verbs": ["*"]}]});
        assert!(drifted(&role, &wider).is_some());
        assert_eq!(drifted(&role, &role), None);
    }
}
