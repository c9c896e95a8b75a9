//! Whether a stored server certificate can stay or must be (re)issued: a
//! pure function of the Secret's data, the CA, the wanted names and `now`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::ByteString;
use rcgen::{KeyPair, PublicKeyData};
use rustls_pki_types::{CertificateDer, UnixTime, pem::PemObject};
use x509_parser::extensions::GeneralName;

use super::ca::CertificateAuthority;
use super::names::ServerIdentity;
use super::{TLS_CRT, TLS_KEY, Validity};

/// Where `now` falls in a certificate's validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// More than a third of the lifetime is left; renew at `renew_at`.
    Current {
        renew_at: i64,
    },
    /// Less than a third left: renew now.
    Due,
    Expired,
    /// `notBefore` is in the future (a clock far off, or a bad issuer).
    NotYetValid,
}

/// The stored certificate's state, and so whether to issue a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertState {
    /// No Secret, or no `tls.crt` / `tls.key` in it.
    Missing,
    /// The certificate or key does not parse, or the key is not the
    /// certificate's.
    Unreadable,
    /// Not signed by the current CA (the CA was replaced).
    OtherCa,
    /// Issued for other names (a Service, namespace or advertised address
    /// changed).
    NamesChanged,
    /// Valid but with less than a third of its lifetime left, expired, or
    /// not valid yet.
    RenewalDue {
        validity: Validity,
        renewal: Renewal,
    },
    /// Keep it; renew at `renew_at`.
    Current { validity: Validity, renew_at: i64 },
}

impl CertState {
    /// True unless the certificate can stay.
    pub fn must_issue(&self) -> bool {
        match self {
            CertState::Missing
            | CertState::Unreadable
            | CertState::OtherCa
            | CertState::NamesChanged
            | CertState::RenewalDue { .. } => true,
            CertState::Current { .. } => false,
        }
    }

    /// Why a new certificate is issued, for logs and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            CertState::Missing => "CertificateMissing",
            CertState::Unreadable => "CertificateUnreadable",
            CertState::OtherCa => "CaChanged",
            CertState::NamesChanged => "NamesChanged",
            CertState::RenewalDue { .. } => "RenewalDue",
            CertState::Current { .. } => "CertificateCurrent",
        }
    }
}

/// Decides about the certificate in `data` (a Secret's data, `None` when
/// the Secret does not exist) for `wanted`, signed by `ca`, at `now`.
pub fn server_cert_state(
    data: Option<&BTreeMap<String, ByteString>>,
    ca: &CertificateAuthority,
    wanted: &ServerIdentity,
    now: i64,
) -> CertState {
    let (Some(cert), Some(key)) = (
        data.and_then(|d| d.get(TLS_CRT)),
        data.and_then(|d| d.get(TLS_KEY)),
    ) else {
        return CertState::Missing;
    };
    let Some(cert_der) = CertificateDer::pem_slice_iter(&cert.0)
        .next()
        .and_then(Result::ok)
    else {
        return CertState::Unreadable;
    };
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(&cert_der) else {
        return CertState::Unreadable;
    };
    let key_matches = std::str::from_utf8(&key.0)
        .ok()
        .and_then(|pem| KeyPair::from_pem(pem).ok())
        .is_some_and(|k| k.der_bytes() == x509.public_key().subject_public_key.data.as_ref());
    if !key_matches {
        return CertState::Unreadable;
    }
    let validity = Validity {
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
    };
    // The chain is checked at a moment inside the certificate's validity:
    // the question here is "signed by this CA", expiry is decided below.
    if !chains_to(
        &cert_der,
        ca,
        validity.not_before.max(ca.validity().not_before),
    ) {
        return CertState::OtherCa;
    }
    if &identity_of(&x509) != wanted {
        return CertState::NamesChanged;
    }
    match validity.renewal(now) {
        Renewal::Current { renew_at } => CertState::Current { validity, renew_at },
        renewal @ (Renewal::Due | Renewal::Expired | Renewal::NotYetValid) => {
            CertState::RenewalDue { validity, renewal }
        }
    }
}

/// True when `cert` verifies against `ca` as a TLS server certificate at
/// `at` (Unix seconds), the way rustls clients verify it.
pub fn chains_to(cert: &CertificateDer<'_>, ca: &CertificateAuthority, at: i64) -> bool {
    let Ok(anchor) = webpki::anchor_from_trusted_cert(ca.cert_der()) else {
        return false;
    };
    let Ok(end_entity) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at).unwrap_or(0)));
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            time,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok()
}

/// The SANs of a parsed certificate.
fn identity_of(x509: &x509_parser::certificate::X509Certificate<'_>) -> ServerIdentity {
    let mut id = ServerIdentity::new();
    let Ok(Some(san)) = x509.subject_alternative_name() else {
        return id;
    };
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(n) => {
                id.dns_names.insert(n.to_ascii_lowercase());
            }
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                    _ => None,
                };
                if let Some(ip) = ip {
                    id.ip_addresses.insert(ip);
                }
            }
            // Other SAN kinds are never in what we issue; a certificate
            // carrying one reads as "other names" and is reissued.
            GeneralName::OtherName(..)
            | GeneralName::RFC822Name(_)
            | GeneralName::X400Address(_)
            | GeneralName::DirectoryName(_)
            | GeneralName::EDIPartyName(_)
            | GeneralName::URI(_)
            | GeneralName::RegisteredID(_)
            | GeneralName::Invalid(..) => {
                id.dns_names.insert(format!("<other SAN: {name}>"));
            }
        }
    }
    id
}
