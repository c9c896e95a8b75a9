//! The Secrets holding the CA and the server certificates (pure builders).
//!
//! Both are `kubernetes.io/tls` Secrets, so tools that read TLS Secrets
//! (cert-manager's conventions, ingress controllers, `kubectl`) understand
//! them. The server certificate Secret also carries `ca.crt`, so a pod that
//! mounts it has the CA that verifies its peers (NATS routes).

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};

use super::ca::CertificateAuthority;
use super::issue::ServerCert;
use super::{CA_CRT, TLS_CRT, TLS_KEY, TLS_SECRET_TYPE};

/// The component label of the CA Secret. It is not any Score's component,
/// so no component's orphan cleanup deletes it: removing `spec.nats` and
/// adding it back keeps the CA devices already trust. It goes with the
/// FleetStack (ownerReference).
pub const CA_COMPONENT: &str = "tls";

fn meta(
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// The generated CA's Secret (`tls.crt`, `tls.key`), created once.
pub fn ca_secret(
    ca: &CertificateAuthority,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
) -> Secret {
    let (namespace, name) = ca.secret();
    Secret {
        metadata: meta(namespace, name, labels, owner),
        type_: Some(TLS_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([
            (
                TLS_CRT.to_string(),
                ByteString(ca.cert_pem().as_bytes().to_vec()),
            ),
            (
                TLS_KEY.to_string(),
                ByteString(ca.key_pem().expose().as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// A server certificate's Secret (`tls.crt`, `tls.key`, `ca.crt`).
pub fn server_cert_secret(
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    cert: &ServerCert,
    ca: &CertificateAuthority,
) -> Secret {
    Secret {
        metadata: meta(namespace, name, labels, owner),
        type_: Some(TLS_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([
            (
                TLS_CRT.to_string(),
                ByteString(cert.cert_pem.as_bytes().to_vec()),
            ),
            (
                TLS_KEY.to_string(),
                ByteString(cert.key_pem.expose().as_bytes().to_vec()),
            ),
            (
                CA_CRT.to_string(),
                ByteString(ca.cert_pem().as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}
