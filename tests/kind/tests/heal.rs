//! Issue 13, one regression test per item, against the real cluster and
//! asserting what a user sees:
//!
//! 1. a deleted `<stack>-nats-credentials` Secret heals by itself, and an
//!    agent pod that restarts afterwards gets in;
//! 2. after a NATS outage, Ready comes back within one probe interval (plus
//!    one reconcile) of every FleetAgent being connected again;
//! 3. specs the API server refuses are Stalled `InvalidSpec` naming the
//!    field, including a Pod refused only in a `FailedCreate` Event;
//! 4. a stuck stack is reconciled a bounded number of times per minute
//!    (the controller's `fleet_reconciler_stack_reconciles_total`);
//! 5. a field is validated whether or not its feature is on.
//!
//! Measured times are printed (`--nocapture`) for the record.

use std::time::Duration;

use fleet_crds::FleetStack;
use fleet_e2e::controller::ensure_controller;
use fleet_e2e::heal::{connected_agents, minimal, reconciles_of, spec, wait_settled};
use fleet_e2e::stack::{apply_stack, condition, describe, is_ready, wait_stack};
use fleet_e2e::{TestNamespace, pod_logs, poll};
use k8s_openapi::api::core::v1::{LimitRange, Pod, Secret};
use kube::api::{DeleteParams, PostParams};
use tokio::time::Instant;

const STACK: &str = "heal";
/// Probe interval of the tests' stacks.
const INTERVAL: Duration = Duration::from_secs(10);

fn now_delete() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    }
}

/// Stalled=True with reason InvalidSpec and a message naming `field`.
fn stalled_naming(field: &'static str) -> impl Fn(&FleetStack) -> bool {
    move |s| {
        condition(s, "Stalled").is_some_and(|c| {
            c.status == "True" && c.reason == "InvalidSpec" && c.message.contains(field)
        })
    }
}

/// Applies `json` and expects it refused naming `field`: either by the API
/// server at apply (the CRD schema) or as Stalled InvalidSpec.
async fn expect_refused(prefix: &str, json: serde_json::Value, field: &'static str) {
    ensure_controller().await.expect("controller");
    let ns = TestNamespace::create(prefix).await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    match apply_stack(&stacks, STACK, spec(json)).await {
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(field.trim_start_matches("spec.")), "{text}");
        }
        Ok(_) => {
            let started = Instant::now();
            let s = wait_stack(
                &stacks,
                STACK,
                &format!("Stalled naming {field}"),
                Duration::from_secs(120),
                stalled_naming(field),
            )
            .await
            .expect("Stalled InvalidSpec naming the field");
            println!(
                "{prefix}: Stalled naming {field} after {:?}: {}",
                started.elapsed(),
                describe(&s)
            );
            assert!(
                !describe(&s).contains("Status {"),
                "no Rust dump: {}",
                describe(&s)
            );
        }
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn item1_a_deleted_credentials_secret_heals_and_restarted_agents_get_in() {
    ensure_controller().await.expect("controller");
    let ns = TestNamespace::create("heal1").await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    apply_stack(&stacks, STACK, minimal(2, INTERVAL.as_secs() as i32))
        .await
        .expect("apply");
    wait_settled(&ns, STACK, 2, Instant::now(), Duration::from_secs(300))
        .await
        .expect("Ready first");

    let secrets = ns.api::<Secret>();
    let name = format!("{STACK}-nats-credentials");
    let old = secrets.get(&name).await.expect("credentials Secret");
    secrets
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete credentials");
    let t0 = Instant::now();
    // Ready may still be the stale one of before the fault: first the
    // Secret must be back, then everything settled on it.
    poll(
        "the credentials Secret recreated",
        Duration::from_secs(60),
        || async {
            match secrets.get_opt(&name).await {
                Ok(Some(s)) if s.metadata.uid != old.metadata.uid => Ok(Some(())),
                Ok(_) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .expect("recreated");
    // The reconcile that recreated it applies the rolled NATS template
    // right after: do not take the stale Ready of before for healed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healed = wait_settled(&ns, STACK, 2, t0, Duration::from_secs(240))
        .await
        .expect("back to Ready by itself after the Secret was deleted");
    println!("item 1: credentials Secret deleted -> Ready, all agents connected: {healed:?}");

    // An agent that restarts after the incident reads the new password.
    let pods = ns.api::<Pod>();
    let agent = format!("{STACK}-agent-0");
    let old_agent = pods.get(&agent).await.expect("agent pod").metadata.uid;
    pods.delete(&agent, &now_delete())
        .await
        .expect("delete agent");
    let t1 = Instant::now();
    poll(
        "the agent pod recreated",
        Duration::from_secs(60),
        || async {
            match pods.get_opt(&agent).await {
                Ok(Some(p)) if p.metadata.uid != old_agent => Ok(Some(())),
                Ok(_) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .expect("agent pod recreated");
    let back = wait_settled(&ns, STACK, 2, t1, Duration::from_secs(180))
        .await
        .expect("a restarted agent gets in");
    let logs = pod_logs(&pods, &agent).await.unwrap_or_default();
    assert!(!logs.contains("refused the credentials"), "{logs}");
    println!("item 1: agent pod restarted after the incident -> connected: {back:?}");
    // Bound: NATS and the operator roll once (one pod each) plus the
    // kubelet's refresh of the agents' mounted password file.
    assert!(healed < Duration::from_secs(180), "{healed:?}");
    ns.cleanup().await;
}

#[tokio::test]
async fn item2_after_a_nats_outage_ready_returns_within_one_probe_interval() {
    ensure_controller().await.expect("controller");
    let ns = TestNamespace::create("heal2").await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    apply_stack(&stacks, STACK, minimal(2, INTERVAL.as_secs() as i32))
        .await
        .expect("apply");
    wait_settled(&ns, STACK, 2, Instant::now(), Duration::from_secs(300))
        .await
        .expect("Ready first");
    let pods = ns.api::<Pod>();
    let nats = format!("{STACK}-nats-0");
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(45) {
        let _ = pods.delete(&nats, &now_delete()).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let outage_end = Instant::now();
    let outage_took = outage_end - outage;
    // The fault clears when every FleetAgent is connected again ...
    let agents_back: Instant = poll(
        "every FleetAgent connected again",
        Duration::from_secs(240),
        || async {
            match connected_agents(&ns).await {
                Ok(2) => Ok(Some(Instant::now())),
                Ok(n) => Err(format!("{n}/2 connected")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .expect("agents reconnect");
    // ... and Ready must follow within one probe interval plus one
    // reconcile (a probe round: the probe timeout, 5 s by default).
    let s = wait_stack(
        &stacks,
        STACK,
        "Ready after the agents reconnected",
        Duration::from_secs(120),
        is_ready,
    )
    .await
    .expect("Ready");
    let lag = agents_back.elapsed();
    println!(
        "item 2: outage of {outage_took:?}; every FleetAgent connected {:?} after it ended; \
         Ready {lag:?} after that ({:?} after the outage ended)",
        agents_back.saturating_duration_since(outage_end),
        outage_end.elapsed()
    );
    assert!(
        lag <= INTERVAL + Duration::from_secs(5),
        "Ready {lag:?} after the agents were back: {}",
        describe(&s)
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn item3_an_unparseable_cpu_request_is_stalled_naming_the_field() {
    expect_refused(
        "heal3a",
        serde_json::json!({
            "nats": {"replicas": 1},
            "agents": {"replicas": 1, "resources": {"requests": {"cpu": "banana"}}},
        }),
        "spec.agents.resources.requests.cpu",
    )
    .await;
}

#[tokio::test]
async fn item3_nats_memory_limit_below_request_is_stalled_naming_the_field() {
    expect_refused(
        "heal3b",
        serde_json::json!({
            "nats": {"replicas": 1, "resources": {
                "requests": {"memory": "128Mi"}, "limits": {"memory": "64Mi"}}},
        }),
        "spec.nats.resources",
    )
    .await;
}

/// A pod refused only at creation (a LimitRange defaults a cpu limit below
/// the agents' request): the StatefulSet is accepted, the only trace is a
/// FailedCreate Event, and the stack must still be Stalled naming the
/// field.
#[tokio::test]
async fn item3_a_pod_refused_in_a_failed_create_event_is_stalled_naming_the_field() {
    ensure_controller().await.expect("controller");
    let ns = TestNamespace::create("heal3c").await.expect("namespace");
    let limits: LimitRange = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "small-cpu"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "200m"}}]},
    }))
    .expect("LimitRange");
    ns.api::<LimitRange>()
        .create(&PostParams::default(), &limits)
        .await
        .expect("create LimitRange");
    let stacks = ns.api::<FleetStack>();
    let mut s = minimal(1, INTERVAL.as_secs() as i32);
    s.agents.as_mut().expect("agents").resources = Some(
        serde_json::from_value(serde_json::json!({"requests": {"cpu": "500m"}}))
            .expect("resources"),
    );
    apply_stack(&stacks, STACK, s).await.expect("apply");
    let started = Instant::now();
    let s = wait_stack(
        &stacks,
        STACK,
        "Stalled naming spec.agents.resources",
        Duration::from_secs(240),
        stalled_naming("spec.agents.resources.requests.cpu"),
    )
    .await
    .expect("Stalled InvalidSpec from the FailedCreate event");
    println!(
        "item 3 (event): Stalled after {:?}: {}",
        started.elapsed(),
        describe(&s)
    );
    // And it stays so: the pods' and StatefulSets' changes that wake the
    // stack must not flip it back to Reconciling and Stalled again.
    let since = condition(&s, "Stalled").map(|c| c.last_transition_time.clone());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let later = stacks.get(STACK).await.expect("stack");
    assert_eq!(
        condition(&later, "Stalled").map(|c| c.last_transition_time.clone()),
        since,
        "Stalled must hold without flapping: {}",
        describe(&later)
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn item4_a_stuck_stack_is_reconciled_a_bounded_number_of_times_per_minute() {
    ensure_controller().await.expect("controller");
    let ns = TestNamespace::create("heal4").await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    // An image that does not exist: NATS never starts.
    let stuck = spec(serde_json::json!({
        "nats": {"replicas": 1, "image": "fleetstack/does-not-exist:0"},
    }));
    let before = reconciles_of(&ns.name, STACK).await.expect("metrics");
    apply_stack(&stacks, STACK, stuck).await.expect("apply");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let minute1 = reconciles_of(&ns.name, STACK).await.expect("metrics") - before;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let minute2 = reconciles_of(&ns.name, STACK).await.expect("metrics") - before - minute1;
    let s = stacks.get(STACK).await.expect("stack");
    assert!(!is_ready(&s), "the stack must be stuck: {}", describe(&s));
    println!("item 4: a stuck stack: {minute1} reconciles in minute 1, {minute2} in minute 2");
    // 8 quick retries, then 1, 2, 4, 8, 16 s, then one per probe interval
    // (30 s), plus wake-ups when the stuck pod's status changes.
    assert!(minute1 <= 25, "{minute1} reconciles in minute 1");
    assert!(minute2 <= 10, "{minute2} reconciles in minute 2");
    ns.cleanup().await;
}

#[tokio::test]
async fn item5_a_field_of_a_disabled_feature_is_validated() {
    expect_refused(
        "heal5",
        serde_json::json!({
            "nats": {"replicas": 1, "jetstream": {"enabled": false, "storageSize": "lots"}},
        }),
        "spec.nats.jetstream.storageSize",
    )
    .await;
}
