//! Two operators with leader election: only the Lease holder writes
//! FleetAgents; the other takes over when the leader stops.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleet_operator::Metrics;
use fleet_operator::leader::LeaseConfig;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio_util::sync::CancellationToken;

fn lease(ns: &str, identity: &str) -> LeaseConfig {
    let mut l = LeaseConfig::new("fleet-operator".into(), ns.into(), identity.into());
    l.lease_duration = Duration::from_secs(3);
    l.renew_every = Duration::from_secs(1);
    l.retry_every = Duration::from_millis(300);
    l
}

fn writes(m: &Metrics) -> u64 {
    m.writes_ok("create") + m.writes_ok("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_writes_and_a_follower_takes_over() {
    let env = TestEnv::start("op-leader").await;
    let start = |identity: &str, metrics: Arc<Metrics>| {
        let mut config = env.run_config();
        config.leader_election = Some(lease(&env.ns, identity));
        let (client, url, token) = (env.client.clone(), env.nats.url(), CancellationToken::new());
        let t = token.clone();
        let handle = tokio::spawn(async move {
            let nc = async_nats::connect(url).await.expect("connect");
            fleet_operator::run(client, nc, config, metrics, t).await
        });
        (token, handle)
    };
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let holder = |leases: Api<Lease>| async move {
        leases
            .get_opt("fleet-operator")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };

    let (m1, m2) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
    let (stop1, op1) = start("op-1", m1.clone());
    wait_for("op-1 holds the Lease", || {
        let l = leases.clone();
        async move { (holder(l).await.as_deref() == Some("op-1")).then_some(()) }
    })
    .await;
    let (stop2, op2) = start("op-2", m2.clone());

    let agent = env.spawn_agent("led", &[]).await;
    env.wait_agent("led", "connected", |a| {
        a.status.as_ref().is_some_and(|s| s.connected)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(writes(&m1) >= 2, "the leader wrote the FleetAgent");
    assert_eq!(writes(&m2), 0, "the follower must not write");

    stop1.cancel();
    op1.await.expect("op-1 task").expect("op-1 stops cleanly");
    // op-1 released the Lease on its way out: right after it returns, the
    // holder is nobody (or already op-2), never op-1 (which, unreleased,
    // it would stay until the Lease expires).
    let after_stop = holder(leases.clone()).await;
    assert_ne!(
        after_stop.as_deref(),
        Some("op-1"),
        "the Lease was not released"
    );
    wait_for("op-2 holds the Lease", || {
        let l = leases.clone();
        async move { (holder(l).await.as_deref() == Some("op-2")).then_some(()) }
    })
    .await;
    // The new leader adopts the FleetAgent and notices the agent leaving.
    agent.stop().await;
    env.wait_agent("led", "disconnected by the new leader", |a| {
        a.status.as_ref().is_some_and(|s| !s.connected)
    })
    .await;
    assert!(writes(&m2) >= 1, "the new leader wrote the disconnect");

    stop2.cancel();
    op2.await.expect("op-2 task").expect("op-2 stops cleanly");
    env.teardown().await;
}
