//! `status.endpoints`, `status.certificates` and the two warning
//! conditions that go with them (docs/adr/0060, docs/adr/0061):
//!
//! * `TlsDisabled=True` while `spec.nats.tls.mode` is `Disabled`: an
//!   explicit opt-out stays visible (passwords and tokens cross the
//!   network in clear);
//! * `CertificateRenewalOverdue=True` when a certificate in status is past
//!   its renewal time: the NATS Score renews at that moment, so a
//!   certificate still there means renewal is failing (the NATS condition
//!   says why), with `notAfter` as the deadline before clients refuse it.
//!
//! Both are warnings, not readiness: kstatus reads neither, and Ready
//! keeps meaning "probed end to end". Turning True publishes a Warning
//! Event ([`crate::status::transitions`]).

use fleet_crds::{
    CondStatus, FleetStackSpec, FleetStackStatus, TlsMode, remove_condition, set_condition,
};
use fleet_scores::Published;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const TLS_DISABLED: &str = "TlsDisabled";
pub const RENEWAL_OVERDUE: &str = "CertificateRenewalOverdue";

/// The warning condition types, for [`crate::status::transitions`].
pub const WARNING_CONDITIONS: [&str; 2] = [TLS_DISABLED, RENEWAL_OVERDUE];

/// Applies what the Scores published this reconcile. `published` is `None`
/// when NATS did not run to the end (a failure before its probe, or it
/// waits): status keeps the endpoints and certificates it had, which is
/// what the servers still serve.
pub fn publish(
    status: &mut FleetStackStatus,
    spec: &FleetStackSpec,
    published: Option<&Published>,
    generation: i64,
    now: &Time,
    now_unix: i64,
) {
    match (&spec.nats, published) {
        (None, _) => {
            status.endpoints.clear();
            status.certificates.clear();
        }
        (Some(_), Some(p)) => {
            status.endpoints = p.endpoints.clone();
            status.certificates = p.certificates.clone();
        }
        (Some(_), None) => {}
    }

    let tls_disabled = spec.nats.as_ref().is_some_and(|n| match n.tls.mode {
        TlsMode::Enabled => false,
        TlsMode::Disabled => true,
    });
    if tls_disabled {
        set_condition(
            &mut status.conditions,
            TLS_DISABLED,
            CondStatus::True,
            "ExplicitOptOut",
            "spec.nats.tls.mode is Disabled: NATS passwords and tokens cross the network in clear",
            generation,
            now,
        );
    } else {
        remove_condition(&mut status.conditions, TLS_DISABLED);
    }

    match overdue(status, now_unix) {
        Some(message) => set_condition(
            &mut status.conditions,
            RENEWAL_OVERDUE,
            CondStatus::True,
            "RenewalFailing",
            &message,
            generation,
            now,
        ),
        None => remove_condition(&mut status.conditions, RENEWAL_OVERDUE),
    }
}

/// The certificates past their renewal time, as a message.
fn overdue(status: &FleetStackStatus, now_unix: i64) -> Option<String> {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    };
    let late: Vec<String> = status
        .certificates
        .iter()
        .filter(|c| parse(&c.renew_after).is_some_and(|r| now_unix >= r))
        .map(|c| {
            format!(
                "Secret {} was due for renewal at {} and expires at {}",
                c.secret, c.renew_after, c.not_after
            )
        })
        .collect();
    (!late.is_empty()).then(|| format!("{}; see the NatsReady condition", late.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_crds::{CertificateStatus, Endpoint, NatsSpec, find_condition};

    fn t() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap())
    }

    fn spec(mode: TlsMode) -> FleetStackSpec {
        let mut nats = NatsSpec::default();
        nats.tls.mode = mode;
        FleetStackSpec {
            nats: Some(nats),
            ..Default::default()
        }
    }

    fn published(renew_after: &str) -> Published {
        Published {
            endpoints: vec![Endpoint {
                name: "nats".into(),
                url: "tls://192.0.2.7:30422".into(),
                ca_cert: Some("-----BEGIN CERTIFICATE-----".into()),
            }],
            certificates: vec![CertificateStatus {
                secret: "demo-nats-tls".into(),
                not_after: "2027-03-01T12:00:00Z".into(),
                renew_after: renew_after.into(),
            }],
            recheck_at: None,
        }
    }

    #[test]
    fn published_values_replace_kept_values_survive_a_failed_run() {
        let mut s = FleetStackStatus::default();
        let p = published("2026-12-30T12:00:00Z");
        publish(&mut s, &spec(TlsMode::Enabled), Some(&p), 1, &t(), 0);
        assert_eq!(s.endpoints, p.endpoints);
        assert_eq!(s.certificates, p.certificates);
        // NATS failed this time: what the servers serve stays in status.
        publish(&mut s, &spec(TlsMode::Enabled), None, 1, &t(), 0);
        assert_eq!(s.endpoints, p.endpoints);
        // NATS left the spec: nothing is served.
        publish(&mut s, &FleetStackSpec::default(), None, 2, &t(), 0);
        assert!(s.endpoints.is_empty() && s.certificates.is_empty());
    }

    #[test]
    fn plaintext_is_a_warning_condition_until_tls_is_back() {
        let mut s = FleetStackStatus::default();
        publish(&mut s, &spec(TlsMode::Disabled), None, 1, &t(), 0);
        let c = find_condition(&s.conditions, TLS_DISABLED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "ExplicitOptOut")
        );
        publish(&mut s, &spec(TlsMode::Enabled), None, 2, &t(), 0);
        assert!(find_condition(&s.conditions, TLS_DISABLED).is_none());
    }

    #[test]
    fn a_certificate_past_its_renewal_time_means_renewal_is_failing() {
        let mut s = FleetStackStatus::default();
        let p = published("2026-12-30T12:00:00Z");
        let before = 1_798_630_000; // 2026-12-30T11:26:40Z
        publish(&mut s, &spec(TlsMode::Enabled), Some(&p), 1, &t(), before);
        assert!(find_condition(&s.conditions, RENEWAL_OVERDUE).is_none());
        publish(
            &mut s,
            &spec(TlsMode::Enabled),
            None,
            1,
            &t(),
            before + 3_600,
        );
        let c = find_condition(&s.conditions, RENEWAL_OVERDUE).unwrap();
        assert_eq!(c.reason, "RenewalFailing");
        assert!(c.message.contains("demo-nats-tls"), "{}", c.message);
        assert!(c.message.contains("2027-03-01T12:00:00Z"), "{}", c.message);
    }
}
