//! fleet-reconciler against a real API server (tests/kind/cluster, control
//! plane mode is enough: no pod needs to run). Run via scripts/test.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use fleet_crds::{AgentTarget, AgentsSpec, FleetStack, READY, RECONCILING, STALLED};
use fleet_reconciler::kstatus::{KStatus, check_contract, compute};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Secret, Service, ServiceAccount},
};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const CHILDREN: [(&str, &str); 6] = [
    ("ServiceAccount", "demo-nats"),
    ("Secret", "demo-nats-credentials"),
    ("ConfigMap", "demo-nats-config"),
    ("Service", "demo-nats-headless"),
    ("Service", "demo-nats"),
    ("StatefulSet", "demo-nats"),
];

async fn owner_uids(env: &TestEnv, kind: &str, name: &str) -> Option<Vec<String>> {
    let meta = match kind {
        "ServiceAccount" => {
            env.api::<ServiceAccount>()
                .get_opt(name)
                .await
                .ok()??
                .metadata
        }
        "Secret" => env.api::<Secret>().get_opt(name).await.ok()??.metadata,
        "ConfigMap" => env.api::<ConfigMap>().get_opt(name).await.ok()??.metadata,
        "Service" => env.api::<Service>().get_opt(name).await.ok()??.metadata,
        "StatefulSet" => env.api::<StatefulSet>().get_opt(name).await.ok()??.metadata,
        _ => unreachable!("kind {kind}"),
    };
    Some(
        meta.owner_references
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.controller == Some(true))
            .map(|o| o.uid)
            .collect(),
    )
}

async fn all_children_exist(env: &TestEnv, uid: &str) -> bool {
    for (kind, name) in CHILDREN {
        match owner_uids(env, kind, name).await {
            Some(uids) if uids == vec![uid.to_string()] => {}
            _ => return false,
        }
    }
    true
}

async fn no_children_left(env: &TestEnv) -> bool {
    for (kind, name) in CHILDREN {
        if owner_uids(env, kind, name).await.is_some() {
            return false;
        }
    }
    true
}

/// The probe ran and reported: on the control-plane cluster it fails
/// (no pods run); on a node cluster with the image loaded it may pass.
fn probe_reported(s: &FleetStack) -> bool {
    match condition(s, READY) {
        Some(c) if c.status == "False" => {
            c.reason == "ProbeFailed" && c.message.starts_with("nats: ")
        }
        Some(c) if c.status == "True" => {
            condition(s, "NatsReady").is_some_and(|n| n.status == "True")
        }
        _ => false,
    }
}

fn config_hash(sts: &StatefulSet) -> String {
    sts.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(fleet_scores::labels::CONFIG_HASH))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_objects_are_created_owned_and_status_obeys_kstatus_at_every_step() {
    let env = TestEnv::start("fr-create").await;
    let created = env.create("demo", nats_only()).await;
    let uid = created.uid().expect("uid");
    wait_for("every NATS object with an ownerReference", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    let s = env
        .wait_stack("probe result in status", "demo", probe_reported)
        .await;
    let nats = s
        .status
        .as_ref()
        .and_then(|st| st.components.get("nats"))
        .expect("components.nats");
    assert_eq!(nats.observed_generation, 1);
    if condition(&s, READY).expect("ready").status == "False" {
        // Still converging generation 1: kstatus InProgress, not Failed.
        assert_eq!(
            condition(&s, RECONCILING).expect("reconciling").status,
            "True"
        );
    }

    // Every status the watcher observed satisfies the contract, and none of
    // them reads as Current unless Ready=True for the current generation.
    let seen = env.seen.lock().expect("lock").clone();
    assert!(seen.len() >= 2, "watcher saw {} versions", seen.len());
    for (i, obj) in seen.iter().enumerate() {
        let generation = obj.metadata.generation;
        match &obj.status {
            // The creation event precedes our first write; kstatus calls
            // that Current, which is why we stamp Reconciling immediately.
            None => assert_eq!(i, 0, "status vanished after being written"),
            Some(st) => {
                check_contract(generation, st).unwrap_or_else(|e| panic!("step {i}: {e}\n{st:#?}"));
                let k = compute(generation, false, Some(st));
                if k == KStatus::Current {
                    assert_eq!(
                        condition(obj, READY).map(|c| c.status.as_str()),
                        Some("True"),
                        "step {i}"
                    );
                }
            }
        }
    }
    let first_status = seen
        .iter()
        .find_map(|o| o.status.clone())
        .expect("a status");
    let first_ready =
        fleet_crds::find_condition(&first_status.conditions, READY).expect("Ready in first status");
    assert_eq!(
        first_ready.status, "Unknown",
        "first write must be the Reconciling stamp"
    );
    assert!(fleet_crds::is_true(&first_status.conditions, RECONCILING));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_child_service_is_restored() {
    let env = TestEnv::start("fr-restore").await;
    let uid = env.create("demo", nats_only()).await.uid().expect("uid");
    wait_for("children", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    let services = env.api::<Service>();
    let old_uid = services.get("demo-nats").await.expect("svc").uid();
    services
        .delete("demo-nats", &DeleteParams::default())
        .await
        .expect("delete svc");
    let restored = wait_for("Service demo-nats restored", || {
        let services = services.clone();
        let old_uid = old_uid.clone();
        async move {
            services
                .get_opt("demo-nats")
                .await
                .ok()
                .flatten()
                .filter(|s| s.uid() != old_uid)
        }
    })
    .await;
    assert_eq!(
        restored
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("fleet-reconciler")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_edits_under_an_intact_hash_are_reverted() {
    let env = TestEnv::start("fr-drift").await;
    let uid = env.create("demo", nats_only()).await.uid().expect("uid");
    wait_for("children", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    // `kubectl scale` and a ConfigMap edit by someone else: the desired-hash
    // annotation is untouched, so only drift detection can notice.
    let sts = env.api::<StatefulSet>();
    sts.patch(
        "demo-nats",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 4}})),
    )
    .await
    .expect("scale by hand");
    let cms = env.api::<k8s_openapi::api::core::v1::ConfigMap>();
    cms.patch(
        "demo-nats-config",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"nats.conf": "debug: true"}})),
    )
    .await
    .expect("edit config by hand");
    wait_for("replicas and nats.conf restored", || {
        let (sts, cms) = (sts.clone(), cms.clone());
        async move {
            let replicas = sts.get("demo-nats").await.ok()?.spec?.replicas;
            let conf = cms
                .get("demo-nats-config")
                .await
                .ok()?
                .data?
                .remove("nats.conf")?;
            (replicas == Some(1) && conf.contains("server_name")).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_and_config_changes_roll_the_statefulset() {
    let env = TestEnv::start("fr-roll").await;
    let uid = env.create("demo", nats_only()).await.uid().expect("uid");
    wait_for("children", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    let sts_api = env.api::<StatefulSet>();
    let h1 = config_hash(&sts_api.get("demo-nats").await.expect("sts"));
    assert!(!h1.is_empty());

    env.stacks()
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nats": {"replicas": 3}}})),
        )
        .await
        .expect("scale to 3");
    let sts = wait_for("3 replicas with a new config hash", || {
        let api = sts_api.clone();
        let h1 = h1.clone();
        async move {
            api.get("demo-nats").await.ok().filter(|s| {
                s.spec.as_ref().and_then(|sp| sp.replicas) == Some(3) && config_hash(s) != h1
            })
        }
    })
    .await;
    let cm = env
        .api::<ConfigMap>()
        .get("demo-nats-config")
        .await
        .expect("cm");
    // A third route: referenced by env var in nats.conf (its URL carries the
    // route password), composed in the pod's env.
    assert!(cm.data.expect("data")["nats.conf"].contains("$ROUTE_2"));
    let route_2 = sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "ROUTE_2")
        .and_then(|e| e.value.clone())
        .expect("ROUTE_2 env");
    assert!(
        route_2.contains("demo-nats-2.demo-nats-headless"),
        "{route_2}"
    );
    let h2 = config_hash(&sts);

    // JetStream changes the config and adds a volumeClaimTemplate (an
    // immutable field): the StatefulSet is replaced, pods orphaned then adopted.
    env.stacks()
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nats": {"jetstream": {"enabled": true}}}})),
        )
        .await
        .expect("enable jetstream");
    let sts = wait_for("JetStream StatefulSet", || {
        let api = sts_api.clone();
        let h2 = h2.clone();
        async move {
            api.get("demo-nats").await.ok().filter(|s| {
                config_hash(s) != h2
                    && s.spec
                        .as_ref()
                        .and_then(|sp| sp.volume_claim_templates.as_ref())
                        .is_some()
            })
        }
    })
    .await;
    assert_eq!(sts.owner_references()[0].uid, uid);
    // The status follows the new generation.
    env.wait_stack("observedGeneration 3", "demo", |s| {
        s.status.as_ref().and_then(|st| st.observed_generation) == Some(3) && probe_reported(s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_are_rejected_by_the_api_or_stalled_naming_the_field() {
    let env = TestEnv::start("fr-invalid").await;
    // Schema: range, enum, pattern.
    for bad in [
        json!({"nats": {"replicas": 12}}),
        json!({"nats": {"auth": {"mode": "Token"}}}),
        json!({"agents": {"target": "Bare"}}),
        json!({"identity": {"external": {"issuer": "not a url", "clientCredentials": {"name": "x"}}}}),
    ] {
        let obj = json!({"apiVersion": "fleet.nationtech.io/v1alpha1", "kind": "FleetStack",
                         "metadata": {"name": "bad"}, "spec": bad});
        let err = env
            .stacks()
            .patch(
                "bad",
                &PatchParams::apply("fleet-tests"),
                &Patch::Apply(&obj),
            )
            .await
            .expect_err(&format!("API must reject {bad}"));
        assert!(
            matches!(err, kube::Error::Api(ref e) if e.code == 422),
            "{err}"
        );
    }

    // Controller-side: Vm agents and bad label keys -> Stalled with the path.
    let mut spec = nats_only();
    spec.agents = Some(AgentsSpec {
        pod: None,
        target: AgentTarget::Vm,
        replicas: 1,
        image: "x".into(),
        labels: [("bad key".to_string(), "v".to_string())].into(),
        resources: None,
    });
    env.create("vm", spec).await;
    let s = env
        .wait_stack("Stalled", "vm", |s| {
            condition(s, STALLED).is_some_and(|c| c.status == "True")
        })
        .await;
    let stalled = condition(&s, STALLED).expect("stalled");
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("spec.agents.target"),
        "{}",
        stalled.message
    );
    assert!(
        stalled.message.contains("spec.agents.labels[\"bad key\"]"),
        "{}",
        stalled.message
    );
    assert!(
        condition(&s, RECONCILING).is_none(),
        "a stalled stack must not claim progress"
    );
    assert_eq!(
        compute(s.metadata.generation, false, s.status.as_ref()),
        KStatus::Failed
    );
    // Nothing was deployed for an invalid spec.
    assert!(
        env.api::<StatefulSet>()
            .get_opt("vm-nats")
            .await
            .expect("get")
            .is_none()
    );

    // A name its children could not carry (the API allows 253 characters).
    let long = "n".repeat(fleet_crds::MAX_STACK_NAME + 1);
    env.create(&long, nats_only()).await;
    let s = env
        .wait_stack("Stalled on its name", &long, |s| {
            condition(s, STALLED).is_some_and(|c| c.status == "True")
        })
        .await;
    let stalled = condition(&s, STALLED).expect("stalled");
    assert!(
        stalled.message.contains("metadata.name"),
        "{}",
        stalled.message
    );
    assert!(
        env.api::<StatefulSet>()
            .get_opt(&format!("{long}-nats"))
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_stack_per_namespace_may_run_the_operator() {
    let env = TestEnv::start("fr-twoops").await;
    let with_operator = || {
        let mut spec = nats_only();
        spec.operator = Some(fleet_crds::OperatorSpec {
            pod: None,
            image: "fleetstack/fleet-operator:0.1.0".into(),
            replicas: 1,
        });
        spec
    };
    env.create("first", with_operator()).await;
    // Make "first" the older one whatever the clock resolution.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    env.create("second", with_operator()).await;
    let s = env
        .wait_stack("Stalled naming the other stack", "second", |s| {
            condition(s, STALLED).is_some_and(|c| c.status == "True")
        })
        .await;
    let stalled = condition(&s, STALLED).expect("stalled");
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("spec.operator") && stalled.message.contains("first"),
        "{}",
        stalled.message
    );
    // The older stack is not refused.
    let first = env
        .wait_stack("reconciled", "first", |s| s.status.is_some())
        .await;
    assert!(
        condition(&first, STALLED).is_none_or(|c| c.reason != "InvalidSpec"),
        "{:?}",
        first.status
    );
    // Once the first stack is gone the second may run it (no change to the
    // second stack wakes it: the reconciler looks again by itself).
    env.stacks()
        .delete("first", &Default::default())
        .await
        .expect("delete first");
    env.wait_stack("no longer refused", "second", |s| {
        condition(s, STALLED).is_none_or(|c| c.reason != "InvalidSpec")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_stack_gets_no_child_writes() {
    let env = TestEnv::start("fr-paused").await;
    let uid = env.create("demo", nats_only()).await.uid().expect("uid");
    wait_for("children", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    env.stacks()
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await
        .expect("pause");
    env.wait_stack("Paused", "demo", |s| {
        condition(s, "Paused").is_some_and(|c| c.status == "True")
    })
    .await;
    env.writes.clear();
    let before = env.reconciles();
    // A deleted child is not restored while paused, and nothing else is written.
    env.api::<Service>()
        .delete("demo-nats", &DeleteParams::default())
        .await
        .expect("delete svc");
    wait_for("a reconcile after the deletion", || async {
        (env.reconciles() > before).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        env.api::<Service>()
            .get_opt("demo-nats")
            .await
            .expect("get")
            .is_none(),
        "paused stack was repaired"
    );
    let writes = env.writes.entries();
    assert!(writes.is_empty(), "writes while paused: {writes:?}");

    // Resuming repairs it.
    env.stacks()
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .expect("resume");
    wait_for("children after resume", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    // The write log does see the controller's writes (the check above is not vacuous).
    let writes = env.writes.entries();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("PATCH ") && w.contains("/services/demo-nats")),
        "{writes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_stack_costs_zero_writes_per_reconcile() {
    let env = TestEnv::start("fr-idle").await;
    // Probe every 5 s so a Ready stack (on a cluster that runs pods) is
    // re-reconciled often enough to measure.
    let mut spec = nats_only();
    spec.probe.interval_seconds = 5;
    let uid = env.create("demo", spec).await.uid().expect("uid");
    wait_for("children", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    env.wait_stack("probe result", "demo", probe_reported).await;
    // Where pods run, NATS turns Ready once its pod starts: wait for that,
    // or the status change would be counted as an idle write.
    let nodes = kube::Api::<k8s_openapi::api::core::v1::Node>::all(env.client.clone())
        .list(&Default::default())
        .await
        .expect("list nodes");
    if !nodes.items.is_empty() {
        env.wait_stack("Ready (pods run on this cluster)", "demo", |s| {
            condition(s, READY).is_some_and(|c| c.status == "True")
        })
        .await;
    }
    // Let the status settle: on a control-plane cluster the probe keeps
    // failing the same way. Settled = two consecutive reconciles left the
    // status unchanged.
    let mut last = env.stacks().get("demo").await.expect("stack").status;
    for round in 0.. {
        assert!(round < 10, "the status never settled: {last:?}");
        let settle = env.reconciles();
        wait_for("two more reconciles", || async {
            (env.reconciles() >= settle + 2).then_some(())
        })
        .await;
        let now = env.stacks().get("demo").await.expect("stack").status;
        if now == last {
            break;
        }
        last = now;
    }
    env.writes.clear();
    let before = env.reconciles();
    wait_for("three more reconciles", || async {
        (env.reconciles() >= before + 3).then_some(())
    })
    .await;
    let writes = env.writes.entries();
    let history: Vec<String> = env
        .seen
        .lock()
        .expect("lock")
        .iter()
        .rev()
        .take(4)
        .map(|s| serde_json::to_string(&s.status).unwrap_or_default())
        .collect();
    assert!(
        writes.is_empty(),
        "an idle stack wrote: {writes:?}\nlast statuses:\n{}",
        history.join("\n")
    );
    // Reads: GETs of what it applies and probes, and no LIST of children
    // (pruning lists only after a write; docs/adr/0012).
    let reconciles = (env.reconciles() - before).max(1);
    let reads: Vec<String> = env
        .writes
        .requests()
        .into_iter()
        .filter(|r| !r.contains("watch=true"))
        .collect();
    let child_plurals: Vec<String> = fleet_scores::component::all_owned_kinds(true)
        .into_iter()
        .map(|k| format!("/{}", k.plural))
        .collect();
    let lists: Vec<&String> = reads
        .iter()
        .filter(|r| {
            let path = r.split('?').next().unwrap_or(r);
            child_plurals.iter().any(|p| path.ends_with(p.as_str()))
        })
        .collect();
    assert!(lists.is_empty(), "an idle stack listed children: {lists:?}");
    eprintln!(
        "idle NATS-only stack: {} API requests in {reconciles} reconciles ({:.1} per reconcile, 0 writes, 0 LIST)",
        reads.len(),
        reads.len() as f64 / reconciles as f64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_nats_from_the_spec_deletes_its_objects() {
    let env = TestEnv::start("fr-orphan").await;
    let uid = env.create("demo", nats_only()).await.uid().expect("uid");
    wait_for("children", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    env.stacks()
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nats": null}})),
        )
        .await
        .expect("remove nats");
    wait_for("NATS objects deleted", || async {
        no_children_left(&env).await.then_some(())
    })
    .await;
    // Nothing left in the spec deploys nothing: not Ready but Stalled
    // NoComponents (issue 12 item 7), for the current generation.
    let s = env
        .wait_stack("Stalled NoComponents with nothing deployed", "demo", |s| {
            condition(s, "Stalled").is_some_and(|c| {
                c.status == "True"
                    && c.reason == "NoComponents"
                    && c.observed_generation == s.metadata.generation
            }) && condition(s, READY).is_some_and(|c| c.status == "False")
        })
        .await;
    assert!(condition(&s, "NatsReady").is_none());
    assert!(s.status.as_ref().expect("status").components.is_empty());
    assert!(
        env.api::<FleetStack>()
            .get_opt("demo")
            .await
            .expect("get")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_stack_garbage_collects_its_children() {
    let env = TestEnv::start("fr-gc").await;
    let uid = env.create("demo", nats_only()).await.uid().expect("uid");
    wait_for("children", || async {
        all_children_exist(&env, &uid).await.then_some(())
    })
    .await;
    let ready_series = || {
        let mut text = String::new();
        let registry = fleet_runtime::http::MetricsSource::registry(env.metrics.as_ref());
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        text.lines()
            .any(|l| l.starts_with("fleet_reconciler_stack_ready") && l.contains(&env.ns))
    };
    wait_for("stack_ready of the stack exported", || async {
        ready_series().then_some(())
    })
    .await;
    env.stacks()
        .delete("demo", &DeleteParams::default())
        .await
        .expect("delete stack");
    // The controller-manager's garbage collector follows ownerReferences.
    wait_for("children garbage-collected", || async {
        no_children_left(&env).await.then_some(())
    })
    .await;
    // And the controller forgets the deleted stack's Ready gauge.
    wait_for("stack_ready of the deleted stack removed", || async {
        (!ready_series()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_shuts_down_gracefully_and_events_are_published() {
    let mut env = TestEnv::start("fr-events").await;
    env.create("demo", nats_only()).await;
    env.wait_stack("probe result", "demo", probe_reported).await;
    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let evs = wait_for("an Event about the stack", || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            let ours: Vec<_> = list
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("demo"))
                .collect();
            (!ours.is_empty()).then_some(ours)
        }
    })
    .await;
    let reasons: BTreeSet<String> = evs.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(
        reasons.contains("ProbeFailed") || reasons.contains("Ready"),
        "{reasons:?}"
    );
    env.stop_controller().await;
}
