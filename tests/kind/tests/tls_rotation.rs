//! Issue 14, rotation: a 3-server NATS whose certificate lives 4 minutes
//! (the stack's `fleet.nationtech.io/tls-cert-lifetime-seconds`
//! annotation) renews it at a third of its life left. The reconciler
//! writes the new certificate, the kubelet swaps the mounted files, and
//! the probe reloads each server until all serve the new certificate.
//! Meanwhile a publisher and a subscriber connected through the exposed
//! endpoint keep going: no message is lost, neither reconnects, and new
//! connections verify against the same CA throughout. The measured
//! rotation time (certificate written -> every server serving it) is
//! printed, never asserted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleet_crds::{FleetStack, FleetStackSpec, NatsSpec, ProbeSpec};
use fleet_e2e::controller::ensure_controller;
use fleet_e2e::stack::{
    condition, connect_exposed, describe, expose_on_node, is_ready, wait_stack,
};
use fleet_e2e::{TestNamespace, api_err};
use fleet_scores::tls::CertPolicy;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};

const STACK: &str = "rot";
const LIFETIME_SECS: u64 = 240;

fn not_after(stack: &FleetStack) -> Option<String> {
    Some(
        stack
            .status
            .as_ref()?
            .certificates
            .first()?
            .not_after
            .clone(),
    )
}

#[tokio::test]
async fn a_renewed_certificate_is_served_by_three_servers_without_losing_a_message() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("rot").await.expect("namespace");
    let stacks = ns.api::<FleetStack>();
    let mut stack = FleetStack::new(
        STACK,
        FleetStackSpec {
            nats: Some(NatsSpec {
                replicas: 3,
                expose: Some(expose_on_node(&ns.client).await.expect("node address")),
                ..NatsSpec::default()
            }),
            probe: ProbeSpec {
                interval_seconds: 5,
                ..ProbeSpec::default()
            },
            ..FleetStackSpec::default()
        },
    );
    stack.metadata.annotations = Some(BTreeMap::from([(
        CertPolicy::LIFETIME_ANNOTATION.to_string(),
        LIFETIME_SECS.to_string(),
    )]));
    stacks
        .patch(
            STACK,
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(&stack),
        )
        .await
        .map_err(api_err("applying the stack"))
        .expect("apply");
    let ready = wait_stack(
        &stacks,
        STACK,
        "is Ready",
        Duration::from_secs(240),
        is_ready,
    )
    .await
    .expect("Ready");
    let first = not_after(&ready).expect("status.certificates");

    let password = {
        let s = ns
            .api::<Secret>()
            .get(&format!("{STACK}-nats-credentials"))
            .await
            .expect("credentials");
        String::from_utf8(s.data.unwrap()["fleet-password"].0.clone()).unwrap()
    };
    let options =
        || async_nats::ConnectOptions::with_user_and_password("fleet".into(), password.clone());
    let publisher = connect_exposed(&ready, options()).await.expect("publisher");
    let subscriber = connect_exposed(&ready, options())
        .await
        .expect("subscriber");
    let mut sub = subscriber.subscribe("rotation.seq").await.unwrap();
    subscriber.flush().await.unwrap();
    let received = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(msg) = sub.next().await {
            let n: u64 = String::from_utf8_lossy(&msg.payload)
                .parse()
                .unwrap_or(u64::MAX);
            if n == u64::MAX - 1 {
                break;
            }
            seen.push(n);
        }
        seen
    });

    // Publish 20 per second until the renewed certificate is served by
    // every server (the stack is Ready again on a new notAfter).
    let started = Instant::now();
    let mut seq = 0u64;
    let mut renewed_at: Option<Instant> = None;
    let mut served_at: Option<Instant> = None;
    let deadline = Duration::from_secs(LIFETIME_SECS + 180);
    let mut last = String::new();
    while served_at.is_none() {
        assert!(
            started.elapsed() < deadline,
            "no renewal served within {deadline:?}; last status: {last}"
        );
        publisher
            .publish("rotation.seq", seq.to_string().into())
            .await
            .unwrap();
        seq += 1;
        if seq.is_multiple_of(20) {
            let s = stacks.get(STACK).await.expect("get stack");
            last = describe(&s);
            let renewed = not_after(&s).is_some_and(|n| n != first);
            if renewed && renewed_at.is_none() {
                renewed_at = Some(Instant::now());
            }
            let nats_ready = condition(&s, "NatsReady").is_some_and(|c| c.status == "True");
            if renewed && nats_ready && is_ready(&s) {
                served_at = Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few more after the rotation, then the end marker.
    for _ in 0..40 {
        publisher
            .publish("rotation.seq", seq.to_string().into())
            .await
            .unwrap();
        seq += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher
        .publish("rotation.seq", (u64::MAX - 1).to_string().into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), received)
        .await
        .expect("subscriber got the end marker")
        .unwrap();
    let missing: Vec<u64> = (0..seq)
        .filter(|n| seen.binary_search(n).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {seq} messages lost across the rotation (first: {:?})",
        missing.len(),
        missing.first()
    );
    for (who, c) in [("publisher", &publisher), ("subscriber", &subscriber)] {
        assert_eq!(
            c.statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "the {who} had to reconnect during the rotation"
        );
    }
    // A new connection verifies the new certificate with the same CA.
    let after = stacks.get(STACK).await.expect("stack");
    connect_exposed(&after, options())
        .await
        .expect("a new client verifies the renewed certificate");
    let (renewed_at, served_at) = (renewed_at.unwrap(), served_at.unwrap());
    println!(
        "rotation on 3 servers: certificate renewed after {:.0}s, served by all 3 {:.1}s after it was written; {seq} messages, none lost, no reconnect",
        (renewed_at - started).as_secs_f64(),
        (served_at - renewed_at).as_secs_f64()
    );
    ns.cleanup().await;
}
