//! Issuing a server certificate signed by the stack CA.

use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::ca::{CertificateAuthority, unix_to_time};
use super::error::TlsError;
use super::names::ServerIdentity;
use super::{TLS_CRT, Validity};
use crate::secret::Sensitive;

/// A server certificate and its fresh private key.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: Sensitive,
    pub validity: Validity,
}

/// Issues a certificate for `identity` valid from `now` for `lifetime`,
/// with a new ECDSA P-256 key. Its extended key usages are serverAuth and
/// clientAuth: a NATS server dialing a route presents this certificate as
/// a client, and the peer (`verify: true`) checks it. `secret` names the
/// Secret it is for, in errors.
pub fn issue_server_cert(
    ca: &CertificateAuthority,
    identity: &ServerIdentity,
    lifetime: Duration,
    now: i64,
    secret: (&str, &str),
) -> Result<ServerCert, TlsError> {
    let fail = |reason: String| TlsError::Generate {
        namespace: secret.0.into(),
        name: secret.1.into(),
        what: "a server certificate",
        reason,
    };
    let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
    let validity = Validity::starting(now, lifetime);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "FleetStack");
    dn.push(DnType::CommonName, identity.common_name());
    params.distinguished_name = dn;
    let mut sans = Vec::new();
    for name in &identity.dns_names {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|e: rcgen::Error| fail(format!("DNS name {name:?}: {e}")))?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(
        identity
            .ip_addresses
            .iter()
            .copied()
            .map(SanType::IpAddress),
    );
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = unix_to_time(validity.not_before);
    // Never outlive the CA: a client would reject the chain at the CA's
    // expiry anyway, and renewal is computed from this certificate alone.
    params.not_after = unix_to_time(validity.not_after.min(ca.validity().not_after));
    let validity = Validity {
        not_before: validity.not_before,
        not_after: validity.not_after.min(ca.validity().not_after),
    };
    // The serial number is derived from the (fresh) public key by rcgen.
    let cert = params
        .signed_by(&key, ca.issuer())
        .map_err(|e| fail(format!("signing ({TLS_CRT}): {e}")))?;
    Ok(ServerCert {
        cert_pem: cert.pem(),
        key_pem: Sensitive::new(key.serialize_pem()),
        validity,
    })
}
