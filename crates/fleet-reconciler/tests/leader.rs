//! Two controllers, one Lease: only the leader reconciles; when it stops,
//! the other takes over. Real API server (run via scripts/test).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleet_reconciler::{Config, Metrics, leader::LeaseConfig};
use fleet_scores::ProbeRoute;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use tokio::sync::oneshot;

fn start(
    client: Client,
    ns: &str,
    identity: &str,
) -> (
    Arc<Metrics>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut lease = LeaseConfig::new("fleet-reconciler-test".into(), ns.into(), identity.into());
    lease.lease_duration = Duration::from_secs(4);
    lease.renew_every = Duration::from_secs(1);
    lease.retry_every = Duration::from_millis(500);
    let config = Config {
        probe_route: ProbeRoute::ClusterIp,
        http_addr: None,
        namespace: Some(ns.into()),
        class: Some(ns.into()),
        instance: Some(identity.into()),
        leader_election: Some(lease),
        concurrency: 16,
        cert_policy: fleet_scores::tls::CertPolicy::from_env(),
    };
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = oneshot::channel::<()>();
    let m = metrics.clone();
    let handle = tokio::spawn(async move {
        fleet_reconciler::run_with_metrics(client, config, m, async {
            let _ = rx.await;
        })
        .await
        .expect("controller");
    });
    (metrics, tx, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_lease_holder_reconciles_and_a_follower_takes_over() {
    let env = TestEnv::start_with("fr-leader", false).await;
    let (m_a, stop_a, a) = start(env.client.clone(), &env.ns, "replica-a");
    let leases: kube::Api<Lease> = env.api();
    let holder = wait_for("a Lease holder", || {
        let leases = leases.clone();
        async move {
            leases
                .get_opt("fleet-reconciler-test")
                .await
                .ok()
                .flatten()?
                .spec?
                .holder_identity
        }
    })
    .await;
    assert_eq!(holder, "replica-a");
    let (m_b, stop_b, b) = start(env.client.clone(), &env.ns, "replica-b");

    env.create("demo", nats_only()).await;
    wait_for("the leader reconciles", || async {
        (m_a.reconciles.get() > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(m_b.reconciles.get(), 0, "the follower reconciled");

    // The leader stops (graceful shutdown); the follower takes over after
    // the lease expires and reconciles the stack.
    stop_a.send(()).expect("stop a");
    a.await.expect("a stopped");
    wait_for("the follower takes over and reconciles", || async {
        (m_b.reconciles.get() > 0).then_some(())
    })
    .await;
    let lease = leases.get("fleet-reconciler-test").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    let _ = stop_b.send(());
    let _ = b.await;
}
