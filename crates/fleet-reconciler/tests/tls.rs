//! TLS bad input against a real API server (control plane is enough: the
//! refusals happen before any pod would run). A user CA Secret without
//! `tls.key`, with a key that is not the certificate's, or expired is
//! Stalled naming `spec.nats.tls.caSecret`, the Secret and the key, with
//! nothing of NATS applied; fixing the Secret (no spec change) clears it
//! on the next timed look. An advertised address that is not a host or IP
//! is Stalled naming the entry.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use fleet_crds::{ExposeSpec, FleetStackSpec, STALLED, SecretRef};
use fleet_scores::tls::CertificateAuthority;
use k8s_openapi::ByteString;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Secret},
};
use kube::api::{Patch, PatchParams};

fn spec_with_ca(secret: &str) -> FleetStackSpec {
    let mut spec = nats_only();
    let nats = spec.nats.as_mut().unwrap();
    nats.tls.ca_secret = Some(SecretRef {
        name: secret.into(),
    });
    // Looked at again every 5 s (the shortest interval) while Stalled on
    // the Secret.
    spec.probe.interval_seconds = 5;
    spec
}

fn ca(lifetime: Duration, now: i64) -> CertificateAuthority {
    CertificateAuthority::generate("company", "corp", "company-ca", lifetime, now).expect("CA")
}

async fn put_secret(env: &TestEnv, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        // Opaque: the API server itself refuses a kubernetes.io/tls Secret
        // without tls.key, and a Secret's type cannot change afterwards;
        // the reconciler reads the keys whatever the type.
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    env.api::<Secret>()
        .patch(
            name,
            &PatchParams::apply("fleet-tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("write the user's CA Secret");
}

async fn stalled_message(env: &TestEnv, stack: &str, needle: &str) -> String {
    let s = env
        .wait_stack(&format!("Stalled mentioning {needle}"), stack, |s| {
            condition(s, STALLED).is_some_and(|c| c.status == "True" && c.message.contains(needle))
        })
        .await;
    let c = condition(&s, STALLED).unwrap();
    assert_eq!(c.reason, "InvalidSpec", "{c:?}");
    c.message.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_ca_that_cannot_serve_is_stalled_naming_it_and_nothing_is_applied() {
    let env = TestEnv::start("fr-tls-ca").await;
    let now = fleet_scores::tls::unix_now();
    let good = ca(Duration::from_secs(3600), now);
    let other = ca(Duration::from_secs(3600), now);

    // No tls.key.
    put_secret(&env, "company-ca", &[("tls.crt", good.cert_pem())]).await;
    env.create("demo", spec_with_ca("company-ca")).await;
    let msg = stalled_message(&env, "demo", "tls.key").await;
    assert!(msg.contains("spec.nats.tls.caSecret"), "{msg}");
    assert!(msg.contains("company-ca"), "{msg}");
    // Nothing of NATS was applied.
    assert!(
        env.api::<StatefulSet>()
            .get_opt("demo-nats")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.api::<ConfigMap>()
            .get_opt("demo-nats-config")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.api::<Secret>()
            .get_opt("demo-nats-credentials")
            .await
            .unwrap()
            .is_none()
    );

    // A key that is another CA's.
    put_secret(
        &env,
        "company-ca",
        &[
            ("tls.crt", good.cert_pem()),
            ("tls.key", other.key_pem().expose()),
        ],
    )
    .await;
    let msg = stalled_message(&env, "demo", "private key matching").await;
    assert!(!msg.contains("BEGIN"), "no key material in status: {msg}");

    // Expired.
    let old = ca(Duration::from_secs(3600), now - 7200);
    put_secret(
        &env,
        "company-ca",
        &[
            ("tls.crt", old.cert_pem()),
            ("tls.key", old.key_pem().expose()),
        ],
    )
    .await;
    stalled_message(&env, "demo", "company-ca").await;

    // Fixed: no spec change, the stall clears and NATS is applied with a
    // certificate the user's CA signed.
    put_secret(
        &env,
        "company-ca",
        &[
            ("tls.crt", good.cert_pem()),
            ("tls.key", good.key_pem().expose()),
        ],
    )
    .await;
    env.wait_stack("the stall cleared", "demo", |s| {
        condition(s, STALLED).is_none_or(|c| c.status != "True")
    })
    .await;
    let cert = wait_for("the server certificate Secret", || async {
        env.api::<Secret>()
            .get_opt("demo-nats-tls")
            .await
            .ok()
            .flatten()
    })
    .await;
    let data = cert.data.unwrap();
    assert_eq!(
        String::from_utf8(data["ca.crt"].0.clone()).unwrap(),
        good.cert_pem()
    );
    let ca_map = wait_for("the CA ConfigMap", || async {
        env.api::<ConfigMap>()
            .get_opt("demo-nats-ca")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(ca_map.data.unwrap()["ca.crt"], good.cert_pem());
    // The user's Secret was never written by us.
    let user = env.api::<Secret>().get("company-ca").await.unwrap();
    assert!(
        user.metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .all(|f| f.manager.as_deref() == Some("fleet-tests")),
        "the reconciler wrote the user's CA Secret"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_advertised_address_that_is_not_a_host_is_stalled_naming_the_entry() {
    let env = TestEnv::start("fr-tls-adv").await;
    let mut spec = nats_only();
    spec.nats.as_mut().unwrap().expose = Some(ExposeSpec {
        advertise: vec!["192.0.2.7".into(), "nats://x:4222".into()],
        ..ExposeSpec::default()
    });
    env.create("demo", spec).await;
    let msg = stalled_message(&env, "demo", "spec.nats.expose.advertise[1]").await;
    assert!(!msg.contains("advertise[0]"), "{msg}");
    assert!(
        env.api::<StatefulSet>()
            .get_opt("demo-nats")
            .await
            .unwrap()
            .is_none()
    );
}
