//! Issue 14 end to end: TLS on by default, and a NATS endpoint devices
//! outside the cluster reach.
//!
//! A stack with NATS (TLS, the default), `nats.expose` (a NodePort
//! advertised on the node's address) and two agent pods turns Ready: the
//! agents connected over TLS (the agents probe pinged them). Then a
//! "device", a process in a network namespace of its own that reaches the
//! cluster only through the node's address, connects with the CA from
//! `status.endpoints` and does a request/reply; a plaintext connection and
//! a client trusting another CA are refused. A packet capture on every
//! interface of the node during all of it finds the plaintext attempt's
//! marker (the capture sees the traffic) and none of the generated
//! passwords.

use std::time::Duration;

use fleet_crds::{AgentsSpec, ExposeSpec, FleetStack, FleetStackSpec, NatsSpec, ProbeSpec};
use fleet_e2e::capture::{self, Capture};
use fleet_e2e::controller::ensure_controller;
use fleet_e2e::netns::{Device, node_address};
use fleet_e2e::stack::{apply_stack, condition, is_ready, wait_stack};
use fleet_e2e::{TestNamespace, image};
use k8s_openapi::api::core::v1::Secret;

const STACK: &str = "tls";
const DEVICE_CLIENT: &str = env!("CARGO_BIN_EXE_fleet-device-client");

fn spec(node: &str) -> FleetStackSpec {
    FleetStackSpec {
        nats: Some(NatsSpec {
            expose: Some(ExposeSpec {
                advertise: vec![node.to_string()],
                ..ExposeSpec::default()
            }),
            ..NatsSpec::default()
        }),
        agents: Some(AgentsSpec {
            replicas: 2,
            image: image("fleet-agent"),
            ..AgentsSpec::default()
        }),
        probe: ProbeSpec {
            interval_seconds: 5,
            ..ProbeSpec::default()
        },
        ..FleetStackSpec::default()
    }
}

fn key(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("Secret data");
    String::from_utf8(data[key].0.clone()).expect("utf-8")
}

#[tokio::test]
async fn devices_reach_nats_over_tls_through_the_exposed_endpoint() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("tls").await.expect("namespace");
    let node = node_address(&ns.client).await.expect("node address");
    // Every NATS client connection ends on port 4222 of a NATS pod (the
    // NodePort's traffic too, after the node translated it).
    let capture = Capture::start(&[4222]).expect("packet capture");

    let stacks = ns.api::<FleetStack>();
    apply_stack(&stacks, STACK, spec(&node))
        .await
        .expect("apply FleetStack");
    let stack = wait_stack(
        &stacks,
        STACK,
        "is Ready with TLS",
        Duration::from_secs(240),
        is_ready,
    )
    .await
    .expect("Ready");
    let status = stack.status.as_ref().expect("status");
    // The agents answered the agents probe: they connected over TLS (the
    // server accepts nothing else).
    assert_eq!(
        status.agents.as_ref().map(|a| a.summary.as_str()),
        Some("2/2"),
        "{status:?}"
    );
    assert!(
        condition(&stack, "TlsDisabled").is_none(),
        "TLS is the default"
    );
    // Ready includes the probe through the exposed NodePort address, TLS
    // verified against that address, as the device below connects.
    let nats = condition(&stack, "NatsReady").expect("NatsReady");
    assert!(
        nats.message
            .contains("1 exposed endpoint(s) answered with TLS verified"),
        "{}",
        nats.message
    );

    // status.endpoints: the URL a device dials and the CA it trusts.
    let endpoint = status.endpoints.first().expect("status.endpoints[0]");
    assert_eq!(endpoint.name, "nats");
    let prefix = format!("tls://{node}:");
    assert!(endpoint.url.starts_with(&prefix), "{endpoint:?}");
    let node_port: u16 = endpoint.url[prefix.len()..].parse().expect("port");
    assert!((30000..=32767).contains(&node_port), "{endpoint:?}");
    let ca_pem = endpoint.ca_cert.clone().expect("caCert");
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let cert = status.certificates.first().expect("status.certificates[0]");
    assert_eq!(cert.secret, format!("{STACK}-nats-tls"));
    assert!(cert.renew_after < cert.not_after, "{cert:?}");

    // What a device operator hands a device: the CA and its credentials.
    let creds = ns
        .api::<Secret>()
        .get(&format!("{STACK}-nats-credentials"))
        .await
        .expect("credentials Secret");
    let (fleet_password, sys_password) =
        (key(&creds, "fleet-password"), key(&creds, "sys-password"));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, &fleet_password).unwrap();
    // Another CA (a device configured for another stack).
    let other = fleet_scores::tls::CertificateAuthority::generate(
        "other",
        "other",
        "other-ca",
        Duration::from_secs(3600),
        fleet_scores::tls::unix_now(),
    )
    .expect("another CA");
    let other_ca = dir.path().join("other-ca.crt");
    std::fs::write(&other_ca, other.cert_pem()).unwrap();

    let device = Device::create(0).expect("device network namespace");
    let run = |args: &[&str]| {
        let out = device
            .command(DEVICE_CLIENT)
            .args(args)
            .output()
            .expect("run fleet-device-client in the device namespace");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ca = ca_file.to_str().unwrap();
    let pw = password_file.to_str().unwrap();

    // The device: TLS verified with the CA from status, request/reply.
    let (code, out, err) = run(&[&endpoint.url, ca, "fleet", pw]);
    assert_eq!(code, Some(0), "device round trip: {out} {err}");
    assert!(out.contains("round trip ok"), "{out}");

    // Trusting another CA: the device refuses the server.
    let (code, out, err) = run(&[&endpoint.url, other_ca.to_str().unwrap(), "fleet", pw]);
    assert_eq!(
        code,
        Some(1),
        "a client trusting another CA connected: {out} {err}"
    );

    // Plaintext: refused by the server. The marker is sent in clear on
    // purpose: the capture must find it, or it saw nothing.
    let marker = format!("plaintext-marker-{:08x}", rand::random::<u32>());
    let (code, out, err) = run(&["--plaintext", &format!("{node}:{node_port}"), &marker]);
    assert_eq!(code, Some(0), "plaintext was accepted: {out} {err}");
    drop(device);

    let pcap = capture.finish().expect("capture");
    assert!(
        capture::contains(&pcap, marker.as_bytes()),
        "the capture ({} bytes) did not see the device's plaintext attempt",
        pcap.len()
    );
    for (what, secret) in [("fleet", &fleet_password), ("sys", &sys_password)] {
        assert!(
            !capture::contains(&pcap, secret.as_bytes()),
            "the {what} password crossed the wire in clear"
        );
    }

    // An advertised address nothing answers on (TEST-NET-1, no route from
    // the cluster): not Ready, the address named; `expose.probe: false`
    // (a NAT without hairpinning) lets the stack be Ready without it.
    let unreachable = "192.0.2.99";
    let mut dark = spec(&node);
    if let Some(e) = dark.nats.as_mut().and_then(|n| n.expose.as_mut()) {
        e.advertise.push(unreachable.into());
    }
    apply_stack(&stacks, STACK, dark.clone())
        .await
        .expect("apply");
    let refused = wait_stack(
        &stacks,
        STACK,
        "reports the unreachable exposed address",
        Duration::from_secs(180),
        |s| {
            condition(s, "NatsReady").is_some_and(|c| {
                c.observed_generation == s.metadata.generation
                    && c.reason == "ExposedEndpointUnreachable"
            })
        },
    )
    .await
    .expect("ExposedEndpointUnreachable");
    let c = condition(&refused, "NatsReady").expect("NatsReady");
    assert!(
        c.message.contains("spec.nats.expose.advertise[1]"),
        "{}",
        c.message
    );
    assert!(c.message.contains(unreachable), "{}", c.message);
    if let Some(e) = dark.nats.as_mut().and_then(|n| n.expose.as_mut()) {
        e.probe = false;
    }
    apply_stack(&stacks, STACK, dark).await.expect("apply");
    wait_stack(
        &stacks,
        STACK,
        "is Ready without the exposed probe",
        Duration::from_secs(180),
        is_ready,
    )
    .await
    .expect("Ready with expose.probe false");
    ns.cleanup().await;
}
