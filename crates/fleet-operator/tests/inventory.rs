//! FleetAgent inventory against a real API server and a real nats-server,
//! with real agents running in-process.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use fleet_crds::{FleetAgent, FleetAgentSpec, FleetStack, FleetStackSpec, STACK_LABEL};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_appear_go_disconnected_and_are_removed_after_the_ttl() {
    let mut env = TestEnv::start("op-inventory").await;
    // An owner stack. The reconciler-class label keeps any controller
    // installed in the cluster away from it: this test only needs its uid.
    let stacks: Api<FleetStack> = Api::namespaced(env.client.clone(), &env.ns);
    let mut stack = FleetStack::new("stack", FleetStackSpec::default());
    stack.metadata.labels = Some(
        [(
            "fleet.nationtech.io/reconciler".to_string(),
            format!("none-{}", env.ns),
        )]
        .into(),
    );
    let stack = stacks
        .create(&PostParams::default(), &stack)
        .await
        .expect("create FleetStack");
    let mut config = env.run_config();
    config.owner_stack = Some("stack".into());
    env.start_operator(config).await;

    let a = env.spawn_agent("edge-a", &[("site", "north")]).await;
    let b = env.spawn_agent("Edge_B", &[("site", "south")]).await;

    let fa = env
        .wait_agent("edge-a", "connected", |a| {
            a.status.as_ref().is_some_and(|s| s.connected) && is_ready(a, "True")
        })
        .await;
    let status = fa.status.clone().expect("status");
    assert_eq!(fa.spec.agent_id, "edge-a");
    assert_eq!(status.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(status.labels.get("site").map(String::as_str), Some("north"));
    assert!(status.last_heartbeat_time.is_some());
    assert_eq!(status.observed_generation, fa.metadata.generation);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.observed_generation, fa.metadata.generation);
    assert_eq!(ready.reason, "HeartbeatsReceived");
    let owners = fa.owner_references();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].uid, stack.uid().expect("uid"));
    assert_eq!(owners[0].kind, "FleetStack");
    assert_eq!(
        fa.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("fleet-operator")
    );
    assert_eq!(
        fa.labels().get(STACK_LABEL).map(String::as_str),
        Some("stack")
    );
    // An id that is not a valid object name gets a derived name.
    let fb = env
        .wait_agent("Edge_B", "connected", |a| {
            a.status.as_ref().is_some_and(|s| s.connected)
        })
        .await;
    assert_eq!(fb.spec.agent_id, "Edge_B");
    assert!(fb.name_any().starts_with("edge-b-"), "{}", fb.name_any());

    // Steady state: heartbeats keep arriving, nothing changes, nothing is
    // written (the write counters come from the operator's own client calls).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = env.metrics.writes_ok("status") + env.metrics.writes_ok("create");
    tokio::time::sleep(Duration::from_secs(4)).await; // 8 heartbeat intervals
    let after = env.metrics.writes_ok("status") + env.metrics.writes_ok("create");
    assert_eq!(after, before, "an idle fleet must cause no API writes");

    // B stops: disconnected after 3 missed heartbeats; A unaffected.
    b.stop().await;
    let fb = env
        .wait_agent("Edge_B", "disconnected", |a| {
            a.status.as_ref().is_some_and(|s| !s.connected) && is_ready(a, "False")
        })
        .await;
    let s = fb.status.expect("status");
    assert!(s.missed_heartbeats >= 3, "{s:?}");
    let ready = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.reason, "HeartbeatsMissed");
    let fa = env
        .agents()
        .get("edge-a")
        .await
        .expect("edge-a still there");
    assert!(fa.status.expect("status").connected);

    // After the TTL (6 s) B's object is gone, A's stays.
    let name_b = fb.metadata.name.clone().expect("name");
    wait_for("Edge_B's FleetAgent deleted after the TTL", || {
        let api = env.agents();
        let name = name_b.clone();
        async move { api.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert!(env.agents().get_opt("edge-a").await.expect("get").is_some());
    assert!(env.metrics.writes_ok("delete") >= 1);

    a.stop().await;
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_adopts_existing_agents_without_rewriting_them() {
    let mut env = TestEnv::start("op-adopt").await;
    env.start_operator(env.run_config()).await;
    let a = env.spawn_agent("steady", &[]).await;
    env.wait_agent("steady", "connected", |a| {
        a.status.as_ref().is_some_and(|s| s.connected)
    })
    .await;
    let rv = env
        .agents()
        .get("steady")
        .await
        .expect("get")
        .resource_version();

    env.stop_operator().await;
    let writes_before = env.metrics.writes_ok("status") + env.metrics.writes_ok("create");
    env.start_operator(env.run_config()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes_after = env.metrics.writes_ok("status") + env.metrics.writes_ok("create");
    assert_eq!(
        writes_after, writes_before,
        "adoption must not rewrite an unchanged agent"
    );
    let again = env.agents().get("steady").await.expect("get");
    assert_eq!(again.resource_version(), rv);

    a.stop().await;
    env.teardown().await;
}

fn stack_label(a: &FleetAgent) -> Option<String> {
    a.labels().get(STACK_LABEL).cloned()
}

fn connected(a: &FleetAgent) -> bool {
    a.status.as_ref().is_some_and(|s| s.connected)
}

/// Two FleetStacks in one namespace, each with its own NATS and operator
/// runtime: each operator keeps only its own stack's FleetAgents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_in_one_namespace_never_touch_each_others_agents() {
    let mut env = TestEnv::start("op-two-stacks").await;
    let north = env.create_owner_stack("north").await;
    let south = env.create_owner_stack("south").await;
    let mut north_config = env.run_config();
    north_config.owner_stack = Some("north".into());
    let mut south_config = env.run_config();
    south_config.owner_stack = Some("south".into());
    env.start_operator(north_config.clone()).await;
    let mut other = env.start_other_operator(south_config).await;

    let a = env.spawn_agent("agent-a", &[]).await;
    let b = other.spawn_agent("agent-b", &[]).await;
    let fa = env.wait_agent("agent-a", "connected", connected).await;
    let fb = env.wait_agent("agent-b", "connected", connected).await;
    assert_eq!(stack_label(&fa).as_deref(), Some("north"));
    assert_eq!(stack_label(&fb).as_deref(), Some("south"));
    assert_eq!(fa.owner_references()[0].uid, north.uid().expect("uid"));
    assert_eq!(fb.owner_references()[0].uid, south.uid().expect("uid"));

    // Restart both (a rollout, a failover): each adopts what already exists.
    // An operator adopting the other stack's object would never hear its
    // heartbeats, mark it disconnected and delete it after the TTL.
    env.start_operator(north_config).await;
    other.start().await;

    a.stop().await;
    env.wait_agent("agent-a", "disconnected", |a| !connected(a))
        .await;
    let fb = env.agents().get("agent-b").await.expect("agent-b");
    assert!(connected(&fb), "{:?}", fb.status);

    wait_for("agent-a's FleetAgent deleted after the TTL", || {
        let api = env.agents();
        async move { api.get_opt("agent-a").await.ok()?.is_none().then_some(()) }
    })
    .await;
    // Past the TTL (6 s) of its adoption by the restarted operators, and
    // with the other operator having deleted its own agent: still there,
    // still connected, never rewritten.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fb2 = env.agents().get("agent-b").await.expect("agent-b survives");
    assert!(connected(&fb2), "{:?}", fb2.status);
    assert_eq!(fb2.resource_version(), fb.resource_version());

    b.stop().await;
    other.stop().await;
    env.teardown().await;
}

/// FleetAgents written by an operator that did not know the stack label:
/// the operator of the stack owning them (ownerReference) labels and adopts
/// them; other stacks' objects, labelled or not, are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_operator_adopts_its_unlabelled_agents_and_no_others() {
    let mut env = TestEnv::start("op-upgrade").await;
    let north = env.create_owner_stack("north").await;
    let west = env.create_owner_stack("west").await;
    let owner_ref = |s: &FleetStack| OwnerReference {
        api_version: "fleet.nationtech.io/v1alpha1".into(),
        kind: "FleetStack".into(),
        name: s.name_any(),
        uid: s.uid().expect("uid"),
        ..Default::default()
    };
    let make = |name: &str, owner: &FleetStack, stack: Option<&str>| {
        let mut fa = FleetAgent::new(
            name,
            FleetAgentSpec {
                agent_id: name.into(),
                ..Default::default()
            },
        );
        let mut labels = BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "fleet-operator".to_string(),
        )]);
        if let Some(s) = stack {
            labels.insert(STACK_LABEL.to_string(), s.to_string());
        }
        fa.metadata.labels = Some(labels);
        fa.metadata.owner_references = Some(vec![owner_ref(owner)]);
        fa
    };
    for fa in [
        make("old-north", &north, None),
        make("old-west", &west, None),
        make("new-west", &west, Some("west")),
    ] {
        env.agents()
            .create(&PostParams::default(), &fa)
            .await
            .expect("create FleetAgent");
    }

    let mut config = env.run_config();
    config.owner_stack = Some("north".into());
    env.start_operator(config).await;
    env.wait_agent("old-north", "labelled with its stack", |a| {
        stack_label(a).as_deref() == Some("north")
    })
    .await;
    // Adopted: silent, so deleted after the TTL like any of ours.
    wait_for("old-north deleted after the TTL", || {
        let api = env.agents();
        async move { api.get_opt("old-north").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let old_west = env
        .agents()
        .get("old-west")
        .await
        .expect("old-west left alone");
    assert_eq!(stack_label(&old_west), None);
    let new_west = env
        .agents()
        .get("new-west")
        .await
        .expect("new-west left alone");
    assert_eq!(stack_label(&new_west).as_deref(), Some("west"));
    env.teardown().await;
}

/// A device's FleetAgent is its enrollment (ADR 0080): silent past the TTL
/// it is kept, while a silent pod agent's object is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_keeps_its_fleet_agent_past_the_ttl() {
    let mut env = TestEnv::start("op-device-ttl").await;
    let make = |name: &str, public_key: Option<String>| {
        let mut fa = FleetAgent::new(
            name,
            FleetAgentSpec {
                agent_id: name.into(),
                public_key,
                approved: true,
                ..Default::default()
            },
        );
        fa.metadata.labels = Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "fleet-operator".to_string(),
        )]));
        fa
    };
    let device_key = format!("U{}", "A".repeat(55));
    for fa in [
        make("silent-pod", None),
        make("silent-device", Some(device_key)),
    ] {
        env.agents()
            .create(&PostParams::default(), &fa)
            .await
            .expect("create FleetAgent");
    }
    env.start_operator(env.run_config()).await;
    wait_for("silent-pod deleted after the TTL", || {
        let api = env.agents();
        async move {
            api.get_opt("silent-pod")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    // The device's delete would have come in the same TTL pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let device = env
        .agents()
        .get("silent-device")
        .await
        .expect("the device's FleetAgent is kept");
    assert!(device.spec.approved);
    env.teardown().await;
}
