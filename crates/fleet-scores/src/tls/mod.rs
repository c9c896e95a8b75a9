//! The stack's certificate authority and the server certificates it issues
//! (docs/adr/0060-stack-ca-and-certificate-rotation.md).
//!
//! * [`ca`]: a CA generated once per stack (write-once Secret `<stack>-ca`)
//!   or one the user provides (validated: key present, key matches the
//!   certificate, a CA, not expired);
//! * [`names`]: the SANs a server certificate needs (every Service DNS
//!   form, the pods of a headless Service, advertised addresses);
//! * [`issue`]: issuing a server certificate signed by the CA;
//! * [`renew`]: the pure decision whether a stored certificate must be
//!   (re)issued: missing, unreadable, signed by another CA, for other
//!   names, or less than a third of its lifetime left;
//! * [`secret`]: the Secret objects, and reading them back;
//! * [`ensure`]: the two API calls the NATS Interpret makes (ensure the CA,
//!   ensure the server certificate).
//!
//! Everything but [`ensure`] is pure: time comes in as `now` (Unix
//! seconds), so renewal is tested without waiting. Private keys are only
//! ever held as [`crate::secret::Sensitive`] or inside rcgen's key pair,
//! never formatted into a message.

pub mod ca;
pub mod ensure;
pub mod error;
pub mod issue;
pub mod names;
pub mod renew;
pub mod secret;

use std::time::Duration;

pub use ca::CertificateAuthority;
pub use error::TlsError;
pub use issue::{ServerCert, issue_server_cert};
pub use names::ServerIdentity;
pub use renew::{CertState, Renewal, server_cert_state};

/// Secret keys, as `kubernetes.io/tls` Secrets (and cert-manager) name them.
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
/// The type of every Secret we write here.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Name of the generated CA Secret.
pub fn ca_secret_name(stack: &str) -> String {
    format!("{stack}-ca")
}

/// Name of the NATS server certificate Secret.
pub fn nats_cert_secret_name(stack: &str) -> String {
    format!("{stack}-nats-tls")
}

/// Lifetimes of what we issue. Tests shorten them to see renewal happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPolicy {
    /// Lifetime of a generated CA. Long: replacing a CA means every device
    /// must get the new one (see the ADR).
    pub ca_lifetime: Duration,
    /// Lifetime of a server certificate; renewed with a third left.
    pub server_lifetime: Duration,
}

impl Default for CertPolicy {
    fn default() -> Self {
        CertPolicy {
            ca_lifetime: Duration::from_secs(10 * 365 * 24 * 3600),
            server_lifetime: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl CertPolicy {
    /// FleetStack annotation that shortens the server certificate's
    /// lifetime (whole seconds, at least 60) for that stack only: a
    /// renewal drill, or a test that watches one happen
    /// (docs/adr/0060). Absent or invalid: the controller's policy.
    pub const LIFETIME_ANNOTATION: &'static str = "fleet.nationtech.io/tls-cert-lifetime-seconds";

    /// This policy with the stack's [`Self::LIFETIME_ANNOTATION`] applied.
    pub fn for_stack(mut self, annotations: &std::collections::BTreeMap<String, String>) -> Self {
        if let Some(secs) = annotations
            .get(Self::LIFETIME_ANNOTATION)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s >= 60)
        {
            self.server_lifetime = Duration::from_secs(secs);
        }
        self
    }

    /// The environment variable that shortens server certificates'
    /// lifetime (seconds), for tests that watch a renewal happen.
    pub const LIFETIME_ENV: &'static str = "FLEET_TLS_CERT_LIFETIME_SECONDS";

    /// [`Default`], with the server lifetime from [`Self::LIFETIME_ENV`]
    /// when it is set to a whole number of seconds of at least 60 (a
    /// shorter one could expire between two reconciles).
    pub fn from_env() -> Self {
        let mut policy = Self::default();
        if let Some(secs) = std::env::var(Self::LIFETIME_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s >= 60)
        {
            policy.server_lifetime = Duration::from_secs(secs);
        }
        policy
    }
}

/// `notBefore` is set this far in the past so that a node whose clock is a
/// little behind still accepts a certificate issued right now.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// Validity period of a certificate, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// The period for a certificate issued at `now` that lives `lifetime`.
    pub fn starting(now: i64, lifetime: Duration) -> Self {
        let skew = CLOCK_SKEW_ALLOWANCE.as_secs() as i64;
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4);
        Validity {
            not_before: now.saturating_sub(skew),
            not_after: now.saturating_add(lifetime),
        }
    }

    pub fn lifetime(&self) -> i64 {
        self.not_after.saturating_sub(self.not_before)
    }

    /// The moment from which less than a third of the lifetime is left.
    pub fn renew_at(&self) -> i64 {
        self.not_after.saturating_sub(self.lifetime() / 3)
    }

    /// Where `now` falls in this period.
    pub fn renewal(&self, now: i64) -> Renewal {
        if now >= self.not_after {
            Renewal::Expired
        } else if now < self.not_before {
            Renewal::NotYetValid
        } else if now >= self.renew_at() {
            Renewal::Due
        } else {
            Renewal::Current {
                renew_at: self.renew_at(),
            }
        }
    }
}

/// RFC 3339 text of a Unix time, for status and messages.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix}"))
}

/// Seconds since the Unix epoch, for callers that pass the real clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_with_a_third_of_the_lifetime_left() {
        let v = Validity {
            not_before: 0,
            not_after: 300,
        };
        assert_eq!(v.renew_at(), 200);
        assert_eq!(v.renewal(-1), Renewal::NotYetValid);
        assert_eq!(v.renewal(0), Renewal::Current { renew_at: 200 });
        assert_eq!(v.renewal(199), Renewal::Current { renew_at: 200 });
        assert_eq!(v.renewal(200), Renewal::Due);
        assert_eq!(v.renewal(299), Renewal::Due);
        assert_eq!(v.renewal(300), Renewal::Expired);
    }

    #[test]
    fn a_stack_annotation_shortens_the_server_lifetime_not_below_a_minute() {
        let annotated = |v: &str| {
            std::collections::BTreeMap::from([(
                CertPolicy::LIFETIME_ANNOTATION.to_string(),
                v.to_string(),
            )])
        };
        let base = CertPolicy::default();
        assert_eq!(
            base.for_stack(&annotated("90")).server_lifetime,
            Duration::from_secs(90)
        );
        for ignored in ["59", "soon", ""] {
            assert_eq!(base.for_stack(&annotated(ignored)), base, "{ignored}");
        }
        assert_eq!(base.for_stack(&Default::default()), base);
    }

    #[test]
    fn a_new_period_starts_a_little_in_the_past() {
        let v = Validity::starting(1_000_000, Duration::from_secs(90));
        assert_eq!(v.not_before, 1_000_000 - 300);
        assert_eq!(v.not_after, 1_000_090);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}

#[cfg(test)]
mod cert_tests;
