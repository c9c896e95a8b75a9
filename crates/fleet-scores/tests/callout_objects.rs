//! FleetCalloutScore's desired objects (pure): the Deployment runs the
//! callout with exactly the environment crates/fleet-callout/src/config.rs
//! reads, its secrets only from Secrets, restricted pod security and probes
//! on the callout's own endpoints.

use fleet_crds::CalloutSpec;
use fleet_scores::callout::{self, CalloutInput, CalloutOidc};
use fleet_scores::labels::{COMPONENT, MANAGED_BY};
use fleet_scores::nats;
use k8s_openapi::api::core::v1::{Container, PodSpec};

mod common;
use common::{env, value};

fn input(replicas: i32, introspection: bool) -> CalloutInput {
    CalloutInput {
        stack: "demo".into(),
        namespace: "fleet".into(),
        owner: common::owner(),
        spec: CalloutSpec {
            pod: None,
            image: "fleetstack/fleet-callout:0.1.0".into(),
            replicas,
            audience: Some("fleet-nats".into()),
            identity_claim: Some("client_id".into()),
            introspection_credentials: None,
        },
        oidc: CalloutOidc {
            issuer: "http://issuer.fleet.svc:8080".into(),
            audience: fleet_scores::pod::EnvSource::Literal("fleet-nats".into()),
            identity_claim: Some("client_id".into()),
            introspection_secret: introspection.then(|| "callout-client".into()),
        },
        nats_tls: true,
    }
}

fn pod(o: &callout::CalloutObjects) -> &PodSpec {
    common::pod_spec(&o.deployment)
}

fn container(o: &callout::CalloutObjects) -> &Container {
    &pod(o).containers[0]
}

#[test]
fn deployment_runs_the_callout_with_its_configuration() {
    let o = callout::build(&input(2, false));
    let d = o.deployment.spec.as_ref().unwrap();
    assert_eq!(d.replicas, Some(2));
    assert_eq!(o.deployment.metadata.name.as_deref(), Some("demo-callout"));
    let c = container(&o);
    assert_eq!(c.image.as_deref(), Some("fleetstack/fleet-callout:0.1.0"));
    assert_eq!(
        value(c, "FLEET_CALLOUT_NATS_URL"),
        "tls://demo-nats.fleet.svc.cluster.local:4222"
    );
    // TLS: the stack CA (public, from a ConfigMap) verifies the server.
    assert_eq!(
        value(c, "FLEET_CALLOUT_NATS_CA_FILE"),
        "/etc/fleet/nats-ca/ca.crt"
    );
    assert_eq!(value(c, "FLEET_CALLOUT_NATS_USER"), nats::config::AUTH_USER);
    assert_eq!(value(c, "FLEET_CALLOUT_TARGET_ACCOUNT"), "FLEET");
    assert_eq!(
        value(c, "FLEET_CALLOUT_OIDC_ISSUER"),
        "http://issuer.fleet.svc:8080"
    );
    assert_eq!(value(c, "FLEET_CALLOUT_OIDC_AUDIENCE"), "fleet-nats");
    assert_eq!(value(c, "FLEET_CALLOUT_IDENTITY_CLAIM"), "client_id");
    assert_eq!(value(c, "FLEET_CALLOUT_HTTP_ADDR"), "0.0.0.0:8080");
    // Secrets as files from the NATS credentials Secret: only the callout's
    // three keys are projected.
    for (var, key) in [
        ("FLEET_CALLOUT_NATS_PASSWORD_FILE", nats::AUTH_PASSWORD_KEY),
        (
            "FLEET_CALLOUT_ISSUER_SEED_FILE",
            nats::CALLOUT_ISSUER_SEED_KEY,
        ),
        ("FLEET_CALLOUT_XKEY_SEED_FILE", nats::CALLOUT_XKEY_SEED_KEY),
    ] {
        assert_eq!(value(c, var), format!("/etc/fleet/callout/{key}"));
    }
    let volume = &pod(&o).volumes.as_ref().unwrap()[0];
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("demo-nats-credentials"));
    let keys: Vec<&str> = secret
        .items
        .as_ref()
        .unwrap()
        .iter()
        .map(|k| k.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            nats::AUTH_PASSWORD_KEY,
            nats::CALLOUT_ISSUER_SEED_KEY,
            nats::CALLOUT_XKEY_SEED_KEY
        ]
    );
    assert_eq!(c.volume_mounts.as_ref().unwrap()[0].read_only, Some(true));
    // No introspection client configured: no client env.
    assert!(env(c, "FLEET_CALLOUT_OIDC_CLIENT_ID").is_none());
}

#[test]
fn introspection_client_comes_from_a_secret_ref() {
    let o = callout::build(&input(1, true));
    let c = container(&o);
    for (var, key) in [
        ("FLEET_CALLOUT_OIDC_CLIENT_ID", "clientId"),
        ("FLEET_CALLOUT_OIDC_CLIENT_SECRET", "clientSecret"),
    ] {
        let e = env(c, var).unwrap_or_else(|| panic!("{var}"));
        assert!(e.value.is_none(), "{var} is never a literal");
        let r = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), ("callout-client", key));
    }
}

#[test]
fn restricted_pod_security_and_probes_on_the_callout_endpoints() {
    let o = callout::build(&input(1, false));
    let p = pod(&o);
    assert_eq!(p.automount_service_account_token, Some(false));
    let psc = p.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    let c = container(&o);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&c.readiness_probe), "/readyz");
    assert_eq!(path(&c.liveness_probe), "/healthz");
    assert!(c.resources.as_ref().unwrap().limits.is_some());
}

#[test]
fn objects_are_labelled_owned_and_ordered() {
    let o = callout::build(&input(1, false));
    let keys: Vec<String> = o.ordered().unwrap().iter().map(|d| d.key()).collect();
    assert_eq!(
        keys,
        [
            "ServiceAccount/demo-callout",
            "Service/demo-callout",
            "Deployment/demo-callout"
        ]
    );
    for meta in [
        &o.service_account.metadata,
        &o.service.metadata,
        &o.deployment.metadata,
    ] {
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY], "fleet-reconciler");
        assert_eq!(labels[COMPONENT], "callout");
        assert_eq!(meta.owner_references.as_ref().unwrap()[0].uid, "1234");
    }
    let port = &o.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 8080);
    // The Service selects the Deployment's pods.
    let selector = o.service.spec.as_ref().unwrap().selector.clone().unwrap();
    let template = o
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .clone()
        .unwrap();
    for (k, v) in selector {
        assert_eq!(template.labels.as_ref().unwrap()[&k], v);
    }
}

/// The probe against a real callout's HTTP endpoints: 503 before it serves,
/// then a pass; nothing listening is a failure naming the address.
#[tokio::test]
async fn smoke_probe_reads_the_real_callout_readyz() {
    use std::sync::Arc;
    use std::time::Duration;
    let issuer = fleet_test_issuer::TestIssuer::start(Default::default())
        .await
        .expect("issuer");
    let metrics = fleet_callout::Metrics::new();
    let oidc = fleet_callout::OidcValidator::new(
        fleet_callout::OidcConfig::new(issuer.url(), "fleet-nats"),
        metrics.clone(),
    )
    .expect("oidc");
    let account = nkeys::KeyPair::new_account();
    let config = nats::config::callout_block(
        false,
        &nats::config::CalloutAuth {
            issuer: account.public_key(),
            xkey: None,
        },
    )
    .replace("$AUTH_PASSWORD", "\"a\"")
    .replace("$SYS_PASSWORD", "\"s\"")
    .replace("$FLEET_PASSWORD", "\"f\"");
    let server =
        fleet_testkit::NatsServer::start(&config).expect("nats-server with callout config");
    let callout = Arc::new(fleet_callout::Callout::new(
        fleet_callout::RequestVerifier::new(account, None),
        oidc,
        fleet_callout::Policy::default(),
        metrics,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = fleet_callout::http::router(callout.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let outcome = callout::smoke_probe("127.0.0.1", port, Duration::from_secs(2)).await;
    assert!(
        matches!(
            outcome,
            fleet_scores::ProbeOutcome::Failed {
                reason: "CalloutNotReady",
                ..
            }
        ),
        "not subscribed yet: {outcome:?}"
    );

    // The callout's user from the rendered AUTH account.
    let nc = async_nats::ConnectOptions::with_user_and_password("auth".into(), "a".into())
        .connect(server.url())
        .await
        .expect("the AUTH user bypasses the callout");
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = callout.clone();
    let s = stop.clone();
    tokio::spawn(async move { serving.serve(nc, "fleet-callout", s).await });
    callout
        .oidc()
        .expect("the callout has an issuer")
        .warm_up()
        .await
        .expect("discovery");
    let mut outcome = callout::smoke_probe("127.0.0.1", port, Duration::from_secs(2)).await;
    for _ in 0..50 {
        if outcome.passed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        outcome = callout::smoke_probe("127.0.0.1", port, Duration::from_secs(2)).await;
    }
    assert!(outcome.passed(), "{outcome:?}");
    stop.cancel();

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let outcome = callout::smoke_probe("127.0.0.1", closed, Duration::from_secs(2)).await;
    match outcome {
        fleet_scores::ProbeOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, "CalloutUnreachable");
            assert!(
                message.contains(&format!("127.0.0.1:{closed}")),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn credentials_hash_rolls_the_callout_and_is_absent_without_one() {
    use fleet_scores::write_once::CREDENTIALS_HASH;
    let template = |o: &callout::CalloutObjects| {
        o.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .clone()
            .unwrap()
    };
    let plain = callout::build(&input(1, false));
    assert_eq!(
        template(&callout::build(&input(1, false)).with_credentials_hash(None)),
        template(&plain)
    );
    assert!(
        template(&plain)
            .annotations
            .is_none_or(|a| !a.contains_key(CREDENTIALS_HASH))
    );
    let hashed = callout::build(&input(1, false)).with_credentials_hash(Some("abc"));
    assert_eq!(
        template(&hashed).annotations.unwrap()[CREDENTIALS_HASH],
        "abc"
    );
    // The hash covers exactly what the pod mounts from the Secret.
    let mounted: Vec<String> = pod(&plain).volumes.as_ref().unwrap()[0]
        .secret
        .as_ref()
        .unwrap()
        .items
        .as_ref()
        .unwrap()
        .iter()
        .map(|i| i.key.clone())
        .collect();
    assert_eq!(mounted, callout::objects::CREDENTIAL_KEYS);
}
