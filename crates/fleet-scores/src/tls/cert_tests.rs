//! The CA and certificates, read back and verified the way clients verify
//! them (rustls-webpki), without a cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};

use super::renew::chains_to;
use super::*;
use crate::score::InterpretError;

const NOW: i64 = 1_800_000_000;
const NS: &str = "fleet";

fn ca_at(now: i64, lifetime: Duration) -> CertificateAuthority {
    CertificateAuthority::generate("demo", NS, "demo-ca", lifetime, now).expect("generate CA")
}

fn new_ca() -> CertificateAuthority {
    ca_at(NOW, CertPolicy::default().ca_lifetime)
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "fleet.nationtech.io/v1alpha1".into(),
        kind: "FleetStack".into(),
        name: "demo".into(),
        uid: "1234".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn nats_identity() -> ServerIdentity {
    ServerIdentity::new()
        .with_service("demo-nats", NS)
        .with_headless_pods("demo-nats-headless", NS)
        .with_advertised(&[
            fleet_crds::parse_advertise_address("nats.example.com:30422").unwrap(),
            fleet_crds::parse_advertise_address("192.0.2.7").unwrap(),
        ])
}

fn issue(
    ca: &CertificateAuthority,
    id: &ServerIdentity,
    lifetime: Duration,
    now: i64,
) -> ServerCert {
    issue_server_cert(ca, id, lifetime, now, (NS, "demo-nats-tls")).expect("issue")
}

fn secret_data(cert: &ServerCert, ca: &CertificateAuthority) -> BTreeMap<String, ByteString> {
    secret::server_cert_secret(NS, "demo-nats-tls", &BTreeMap::new(), &owner(), cert, ca)
        .data
        .unwrap()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

/// Verifies `cert` for `host` against `ca` as rustls clients do.
fn verifies_for(
    cert: &ServerCert,
    ca: &CertificateAuthority,
    host: &str,
    usage: webpki::KeyUsage,
) -> bool {
    let cert_der = der(&cert.cert_pem);
    let ee = webpki::EndEntityCert::try_from(&cert_der).expect("end-entity");
    let anchors = [webpki::anchor_from_trusted_cert(ca.cert_der()).expect("anchor")];
    let time = UnixTime::since_unix_epoch(Duration::from_secs(NOW as u64 + 60));
    let chain = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        time,
        usage,
        None,
        None,
    );
    let name = ServerName::try_from(host.to_string()).expect("server name");
    chain.is_ok() && ee.verify_is_valid_for_subject_name(&name).is_ok()
}

#[test]
fn a_generated_ca_signs_a_certificate_clients_accept_for_every_name() {
    let ca = new_ca();
    let cert = issue(&ca, &nats_identity(), Duration::from_secs(90 * 86400), NOW);
    for host in [
        "demo-nats",
        "demo-nats.fleet",
        "demo-nats.fleet.svc",
        "demo-nats.fleet.svc.cluster.local",
        "demo-nats-0.demo-nats-headless.fleet.svc.cluster.local",
        "demo-nats-2.demo-nats-headless.fleet.svc",
        "nats.example.com",
        "192.0.2.7",
    ] {
        assert!(
            verifies_for(&cert, &ca, host, webpki::KeyUsage::server_auth()),
            "{host} not accepted"
        );
    }
    // Routes: the dialing server presents the same certificate as a client.
    assert!(verifies_for(
        &cert,
        &ca,
        "demo-nats",
        webpki::KeyUsage::client_auth()
    ));
    for host in [
        "other",
        "demo-nats.other.svc",
        "192.0.2.8",
        "a.b.demo-nats-headless.fleet.svc",
    ] {
        assert!(
            !verifies_for(&cert, &ca, host, webpki::KeyUsage::server_auth()),
            "{host} accepted"
        );
    }
    // Another CA does not verify it.
    let other = new_ca();
    assert!(!verifies_for(
        &cert,
        &other,
        "demo-nats",
        webpki::KeyUsage::server_auth()
    ));
    assert!(!chains_to(&der(&cert.cert_pem), &other, NOW));
    assert!(chains_to(&der(&cert.cert_pem), &ca, NOW));
}

#[test]
fn the_generated_ca_reads_back_from_its_secret_and_keeps_signing() {
    let ca = new_ca();
    let secret = secret::ca_secret(&ca, &BTreeMap::new(), &owner());
    assert_eq!(secret.type_.as_deref(), Some(TLS_SECRET_TYPE));
    assert_eq!(secret.metadata.name.as_deref(), Some("demo-ca"));
    let data = secret.data.unwrap();
    let read =
        CertificateAuthority::from_secret_data(NS, "demo-ca", &data, NOW + 10).expect("valid");
    assert_eq!(read.cert_pem(), ca.cert_pem());
    assert_eq!(read.validity(), ca.validity());
    // A certificate signed by the re-read CA verifies against the original.
    let cert = issue(&read, &nats_identity(), Duration::from_secs(3600), NOW);
    assert!(verifies_for(
        &cert,
        &ca,
        "demo-nats.fleet.svc",
        webpki::KeyUsage::server_auth()
    ));
    // Debug never shows the key.
    let debug = format!("{ca:?}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
    assert!(debug.contains("fleet/demo-ca"), "{debug}");
}

fn user_ca_error(data: &BTreeMap<String, ByteString>, now: i64) -> TlsError {
    CertificateAuthority::from_secret_data(NS, "corp-ca", data, now).expect_err("refused")
}

#[test]
fn a_user_ca_is_refused_naming_the_secret_and_key_never_the_key_material() {
    let good = secret::ca_secret(&new_ca(), &BTreeMap::new(), &owner())
        .data
        .unwrap();
    let key_text = String::from_utf8(good[TLS_KEY].0.clone()).unwrap();

    let mut no_key = good.clone();
    no_key.remove(TLS_KEY);
    let e = user_ca_error(&no_key, NOW);
    assert_eq!(
        e,
        TlsError::MissingKey {
            namespace: NS.into(),
            name: "corp-ca".into(),
            key: TLS_KEY
        }
    );
    assert_eq!(e.to_string(), "Secret fleet/corp-ca has no key tls.key");

    let mut no_cert = good.clone();
    no_cert.remove(TLS_CRT);
    assert!(matches!(
        user_ca_error(&no_cert, NOW),
        TlsError::MissingKey { key: TLS_CRT, .. }
    ));

    // The key of another CA.
    let mut mismatch = good.clone();
    let other = secret::ca_secret(&new_ca(), &BTreeMap::new(), &owner())
        .data
        .unwrap();
    mismatch.insert(TLS_KEY.into(), other[TLS_KEY].clone());
    let e = user_ca_error(&mismatch, NOW);
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("fleet/corp-ca"), "{e}");

    // Expired (a CA that lived one hour, read a day later), and not yet valid.
    let short = ca_at(NOW, Duration::from_secs(3600));
    let short_data = secret::ca_secret(&short, &BTreeMap::new(), &owner())
        .data
        .unwrap();
    let e = user_ca_error(&short_data, NOW + 86400);
    assert!(matches!(e, TlsError::Expired { .. }), "{e}");
    assert!(
        e.to_string().contains("expired at 2027-01-15T09:00:00Z"),
        "{e}"
    );
    assert!(matches!(
        user_ca_error(&short_data, NOW - 86400),
        TlsError::NotYetValid { .. }
    ));

    // A server certificate is not a CA.
    let ca = new_ca();
    let leaf = issue(&ca, &nats_identity(), Duration::from_secs(3600), NOW);
    let leaf_data = BTreeMap::from([
        (
            TLS_CRT.to_string(),
            ByteString(leaf.cert_pem.clone().into_bytes()),
        ),
        (
            TLS_KEY.to_string(),
            ByteString(leaf.key_pem.expose().as_bytes().to_vec()),
        ),
    ]);
    assert!(matches!(
        user_ca_error(&leaf_data, NOW),
        TlsError::NotCa { .. }
    ));

    // Garbage, and a SEC1 ("EC PRIVATE KEY") key that ring cannot use.
    let mut garbage = good.clone();
    garbage.insert(TLS_CRT.into(), ByteString(b"not a certificate".to_vec()));
    assert!(matches!(
        user_ca_error(&garbage, NOW),
        TlsError::Unreadable { key: TLS_CRT, .. }
    ));
    let mut sec1 = good.clone();
    let relabelled = key_text.replace("PRIVATE KEY", "EC PRIVATE KEY");
    sec1.insert(TLS_KEY.into(), ByteString(relabelled.into_bytes()));
    let e = user_ca_error(&sec1, NOW);
    assert!(e.to_string().contains("PKCS#8"), "{e}");

    // No message carries key material; each maps to Stalled's SecretInvalid.
    for e in [
        user_ca_error(&no_key, NOW),
        user_ca_error(&mismatch, NOW),
        user_ca_error(&sec1, NOW),
        user_ca_error(&short_data, NOW + 86400),
    ] {
        let body: String = key_text.lines().nth(1).unwrap().into();
        assert!(!e.to_string().contains(&body), "{e}");
        let ie = InterpretError::from(e);
        assert_eq!(ie.reason(), "SecretInvalid");
        assert!(ie.to_string().contains("fleet/corp-ca"), "{ie}");
    }
}

#[test]
fn a_stored_certificate_is_kept_until_a_third_of_its_life_is_left() {
    let ca = new_ca();
    let id = nats_identity();
    assert_eq!(server_cert_state(None, &ca, &id, NOW), CertState::Missing);
    assert!(CertState::Missing.must_issue());

    let cert = issue(&ca, &id, Duration::from_secs(3000), NOW);
    // Lifetime from notBefore (backdated 300 s) to notAfter: 3300 s, so
    // renewal is due with 1100 s left.
    assert_eq!(cert.validity.lifetime(), 3300);
    let renew_at = cert.validity.renew_at();
    assert_eq!(renew_at, NOW + 3000 - 1100);
    let data = secret_data(&cert, &ca);
    let state = server_cert_state(Some(&data), &ca, &id, NOW);
    assert_eq!(
        state,
        CertState::Current {
            validity: cert.validity,
            renew_at
        }
    );
    assert!(!state.must_issue());
    assert!(!server_cert_state(Some(&data), &ca, &id, renew_at - 1).must_issue());
    assert_eq!(
        server_cert_state(Some(&data), &ca, &id, renew_at),
        CertState::RenewalDue {
            validity: cert.validity,
            renewal: Renewal::Due
        }
    );
    assert!(matches!(
        server_cert_state(Some(&data), &ca, &id, NOW + 3000),
        CertState::RenewalDue {
            renewal: Renewal::Expired,
            ..
        }
    ));
}

#[test]
fn a_stored_certificate_is_reissued_for_new_names_a_new_ca_or_a_foreign_key() {
    let ca = new_ca();
    let id = nats_identity();
    let cert = issue(&ca, &id, Duration::from_secs(86400), NOW);
    let data = secret_data(&cert, &ca);
    let more = id.clone().with_name("nats2.example.com");
    assert_eq!(
        server_cert_state(Some(&data), &ca, &more, NOW),
        CertState::NamesChanged
    );
    let fewer = ServerIdentity::new().with_service("demo-nats", NS);
    assert_eq!(
        server_cert_state(Some(&data), &ca, &fewer, NOW),
        CertState::NamesChanged
    );
    assert_eq!(
        server_cert_state(Some(&data), &new_ca(), &id, NOW),
        CertState::OtherCa
    );

    let other = issue(&ca, &id, Duration::from_secs(86400), NOW);
    let mut foreign_key = data.clone();
    foreign_key.insert(
        TLS_KEY.into(),
        ByteString(other.key_pem.expose().as_bytes().to_vec()),
    );
    assert_eq!(
        server_cert_state(Some(&foreign_key), &ca, &id, NOW),
        CertState::Unreadable
    );
    let mut no_key = data.clone();
    no_key.remove(TLS_KEY);
    assert_eq!(
        server_cert_state(Some(&no_key), &ca, &id, NOW),
        CertState::Missing
    );
    // The Secret carries the CA for peers.
    assert_eq!(data[CA_CRT].0, ca.cert_pem().as_bytes());
}

#[test]
fn a_server_certificate_never_outlives_its_ca() {
    let ca = ca_at(NOW, Duration::from_secs(3600));
    let cert = issue(&ca, &nats_identity(), Duration::from_secs(86400), NOW);
    assert_eq!(cert.validity.not_after, ca.validity().not_after);
    let cert_der = der(&cert.cert_pem);
    let (_, x509) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    assert_eq!(
        x509.validity().not_after.timestamp(),
        ca.validity().not_after
    );
}
