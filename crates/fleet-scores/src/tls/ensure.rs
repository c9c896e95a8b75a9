//! The API calls around the pure parts: read or create the CA, read the
//! server certificate and write a new one when [`server_cert_state`] says
//! so. The NATS Interpret calls [`ensure_ca`] then [`ensure_server_cert`]
//! before it applies the StatefulSet that mounts the certificate.

use std::collections::BTreeMap;

use fleet_crds::NatsTlsSpec;
use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};

use super::ca::{CaOrigin, CertificateAuthority};
use super::error::TlsError;
use super::names::ServerIdentity;
use super::renew::{CertState, server_cert_state};
use super::secret::{ca_secret, server_cert_secret};
use super::{CertPolicy, TLS_CRT, Validity, ca_secret_name, issue_server_cert};
use crate::labels::{FIELD_MANAGER, MANAGED_BY};
use crate::score::InterpretError;
use crate::write_once::SecretWrite;

fn api_err(verb: &'static str, namespace: &str, name: &str, source: kube::Error) -> InterpretError {
    InterpretError::Api {
        verb,
        kind: "Secret".into(),
        namespace: namespace.into(),
        name: name.into(),
        source: Box::new(source),
    }
}

fn require_managed(live: &Secret, namespace: &str, name: &str) -> Result<(), InterpretError> {
    if live.labels().get(MANAGED_BY).map(String::as_str) == Some(FIELD_MANAGER) {
        Ok(())
    } else {
        Err(InterpretError::NotOwned {
            kind: "Secret".into(),
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

/// The stack's CA: the user's Secret (`tls.caSecret`, read and validated,
/// never written) or the generated `<stack>-ca` (created once with
/// `labels`/`owner`, then only read). A CA that fails validation is an
/// error naming the Secret and key (reason `SecretInvalid`: Stalled).
#[allow(clippy::too_many_arguments)]
pub async fn ensure_ca(
    client: &Client,
    namespace: &str,
    stack: &str,
    tls: &NatsTlsSpec,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    policy: &CertPolicy,
    now: i64,
) -> Result<(CertificateAuthority, CaOrigin, SecretWrite), InterpretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(user) = &tls.ca_secret {
        let live = api
            .get_opt(&user.name)
            .await
            .map_err(|e| api_err("get", namespace, &user.name, e))?
            .ok_or_else(|| InterpretError::SecretInvalid {
                namespace: namespace.into(),
                name: user.name.clone(),
                key: TLS_CRT.into(),
                expected: "CA certificate (the Secret named in spec.nats.tls.caSecret does not exist)",
            })?;
        let ca = CertificateAuthority::from_secret_data(
            namespace,
            &user.name,
            live.data.as_ref().unwrap_or(&BTreeMap::new()),
            now,
        )?;
        return Ok((ca, CaOrigin::Provided, SecretWrite::Unchanged));
    }
    let name = ca_secret_name(stack);
    // Two rounds: if a concurrent creator wins, read its CA.
    for _ in 0..2 {
        if let Some(live) = api
            .get_opt(&name)
            .await
            .map_err(|e| api_err("get", namespace, &name, e))?
        {
            require_managed(&live, namespace, &name)?;
            let ca = CertificateAuthority::from_secret_data(
                namespace,
                &name,
                live.data.as_ref().unwrap_or(&BTreeMap::new()),
                now,
            )?;
            return Ok((ca, CaOrigin::Generated, SecretWrite::Unchanged));
        }
        let ca = CertificateAuthority::generate(stack, namespace, &name, policy.ca_lifetime, now)?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.create(&pp, &ca_secret(&ca, labels, owner)).await {
            Ok(_) => return Ok((ca, CaOrigin::Generated, SecretWrite::Created)),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(api_err("create", namespace, &name, e)),
        }
    }
    Err(InterpretError::SecretRace {
        namespace: namespace.into(),
        name,
    })
}

/// What [`ensure_server_cert`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCertOutcome {
    /// The stored certificate's state before this call.
    pub found: CertState,
    /// Validity of the certificate now in the Secret.
    pub validity: Validity,
    /// True when a new certificate was written.
    pub written: bool,
}

/// Makes Secret `namespace/name` hold a certificate for `identity` signed
/// by `ca` with more than a third of its lifetime left; writes (server-side
/// apply) only when [`server_cert_state`] says it must. Requeue the stack
/// before the returned `validity.renew_at()`.
#[allow(clippy::too_many_arguments)]
pub async fn ensure_server_cert(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    ca: &CertificateAuthority,
    identity: &ServerIdentity,
    policy: &CertPolicy,
    now: i64,
) -> Result<ServerCertOutcome, InterpretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let live = api
        .get_opt(name)
        .await
        .map_err(|e| api_err("get", namespace, name, e))?;
    if let Some(live) = &live {
        require_managed(live, namespace, name)?;
    }
    let found = server_cert_state(
        live.as_ref().and_then(|s| s.data.as_ref()),
        ca,
        identity,
        now,
    );
    if let CertState::Current { validity, .. } = &found {
        return Ok(ServerCertOutcome {
            validity: *validity,
            found,
            written: false,
        });
    }
    let cert = issue_server_cert(ca, identity, policy.server_lifetime, now, (namespace, name))
        .map_err(|e: TlsError| InterpretError::from(e))?;
    let secret = server_cert_secret(namespace, name, labels, owner, &cert, ca);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &pp, &Patch::Apply(&secret))
        .await
        .map_err(|e| api_err("apply", namespace, name, e))?;
    Ok(ServerCertOutcome {
        found,
        validity: cert.validity,
        written: true,
    })
}
