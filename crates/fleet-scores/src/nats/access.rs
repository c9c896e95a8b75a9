//! How the stack's own workloads (agents, callout, operator runtime) and
//! the smoke probes reach NATS: one definition of the URL, of the CA they
//! verify the server with, and of where that CA is mounted
//! (docs/adr/0060-stack-ca-and-certificate-rotation.md).
//!
//! The NATS Score publishes the CA certificate (public) in the ConfigMap
//! `<stack>-nats-ca`. Pods mount that ConfigMap, never a certificate
//! Secret: `<stack>-ca` holds the CA's private key and `<stack>-nats-tls`
//! the server's, and neither belongs in an agent pod.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fleet_proto::client::ClientTls;
use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, PodSpec, Volume, VolumeMount};
use kube::{Api, Client};
use sha2::{Digest, Sha256};

use super::NatsNames;
use super::config::CLIENT_PORT;
use crate::labels;
use crate::pod;
use crate::stack_ref::StackRef;

/// Key of the CA certificate in the ConfigMap (and in the Secrets).
pub const CA_KEY: &str = crate::tls::CA_CRT;
/// Where pods find the CA certificate.
pub const CA_MOUNT_DIR: &str = "/etc/fleet/nats-ca";
const CA_VOLUME: &str = "nats-ca";

/// Name of the ConfigMap holding the CA certificate.
pub fn ca_config_map_name(stack: &str) -> String {
    format!("{stack}-nats-ca")
}

/// The CA file's path inside a pod.
pub fn ca_file_in_pod() -> String {
    format!("{CA_MOUNT_DIR}/{CA_KEY}")
}

/// `tls` or `nats`: with TLS the client refuses a server that offers
/// plaintext.
pub fn scheme(tls: bool) -> &'static str {
    if tls { "tls" } else { "nats" }
}

/// URL of the client port at `host`.
pub fn url(host: &str, tls: bool) -> String {
    format!("{}://{host}:{CLIENT_PORT}", scheme(tls))
}

/// The URL pods of the stack dial: the client Service's cluster DNS name,
/// which the server certificate covers.
pub fn in_cluster_url(stack: &StackRef) -> String {
    pod_url(&stack.name, &stack.namespace, stack.nats_tls)
}

/// [`in_cluster_url`] for builders that hold the stack's name and
/// namespace rather than its [`StackRef`].
pub fn pod_url(stack: &str, namespace: &str, tls: bool) -> String {
    let service = NatsNames::new(stack).client_service;
    url(&format!("{service}.{namespace}.svc.cluster.local"), tls)
}

/// The ConfigMap with the CA certificate (pure).
pub fn ca_config_map(stack: &StackRef, ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: labels::object_meta(
            &stack.name,
            super::COMPONENT,
            &stack.namespace,
            &stack.owner,
            &ca_config_map_name(&stack.name),
        ),
        data: Some(BTreeMap::from([(CA_KEY.to_string(), ca_pem.to_string())])),
        ..Default::default()
    }
}

/// With TLS: mounts the CA ConfigMap into every container of `pod` and
/// sets `ca_env` (the binary's "CA file" variable) to the file. Without
/// TLS: leaves `pod` as it is, so a plaintext stack renders as before.
pub fn mount_ca(pod: &mut PodSpec, stack: &str, tls: bool, ca_env: &str) {
    if !tls {
        return;
    }
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: CA_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: ca_config_map_name(stack),
            ..Default::default()
        }),
        ..Default::default()
    });
    for c in &mut pod.containers {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: CA_VOLUME.into(),
                mount_path: CA_MOUNT_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            });
        c.env
            .get_or_insert_with(Vec::new)
            .push(pod::env(ca_env, ca_file_in_pod()));
    }
}

/// Why a probe cannot verify the server yet.
#[derive(Debug, thiserror::Error)]
pub enum ProbeTlsError {
    #[error("ConfigMap {namespace}/{name} with the NATS CA ({CA_KEY}) does not exist yet")]
    Missing { namespace: String, name: String },
    #[error("reading ConfigMap {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("writing the NATS CA of {namespace}/{stack} to {path}: {source}")]
    Write {
        namespace: String,
        stack: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How a probe verifies the stack's NATS: without TLS plaintext; with TLS
/// the CA from the ConfigMap, written to a file named by its hash (the
/// client library reads CAs from files; the same CA is one file, however
/// many stacks or reconciles use it).
pub async fn probe_tls(client: &Client, stack: &StackRef) -> Result<ClientTls, ProbeTlsError> {
    if !stack.nats_tls {
        return Ok(ClientTls::default());
    }
    let name = ca_config_map_name(&stack.name);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &stack.namespace);
    let pem = api
        .get_opt(&name)
        .await
        .map_err(|e| ProbeTlsError::Read {
            namespace: stack.namespace.clone(),
            name: name.clone(),
            source: Box::new(e),
        })?
        .and_then(|cm| cm.data)
        .and_then(|mut d| d.remove(CA_KEY))
        .ok_or_else(|| ProbeTlsError::Missing {
            namespace: stack.namespace.clone(),
            name: name.clone(),
        })?;
    let path = ca_file_for(&pem).map_err(|(path, source)| ProbeTlsError::Write {
        namespace: stack.namespace.clone(),
        stack: stack.name.clone(),
        path,
        source,
    })?;
    Ok(ClientTls::with_ca_file(path))
}

/// Writes `pem` (once) to `<tmp>/fleetstack-ca/<sha256>.pem`.
pub fn ca_file_for(pem: &str) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let dir = std::env::temp_dir().join("fleetstack-ca");
    let digest = Sha256::digest(pem.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{hex}.pem"));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| (dir.clone(), e))?;
    // Written under a temporary name and renamed: two probes racing never
    // read a half-written file.
    let partial = dir.join(format!("{hex}.{}.partial", std::process::id()));
    std::fs::write(&partial, pem).map_err(|e| (partial.clone(), e))?;
    std::fs::rename(&partial, &path).map_err(|e| (path.clone(), e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    #[test]
    fn the_ca_is_mounted_only_with_tls() {
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "agent".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        mount_ca(&mut spec, "demo", false, "FLEET_NATS_CA_FILE");
        assert_eq!(
            spec,
            PodSpec {
                containers: vec![Container {
                    name: "agent".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }
        );
        mount_ca(&mut spec, "demo", true, "FLEET_NATS_CA_FILE");
        let volume = &spec.volumes.as_ref().unwrap()[0];
        assert_eq!(volume.config_map.as_ref().unwrap().name, "demo-nats-ca");
        let c = &spec.containers[0];
        assert_eq!(
            c.volume_mounts.as_ref().unwrap()[0].mount_path,
            CA_MOUNT_DIR
        );
        let env = &c.env.as_ref().unwrap()[0];
        assert_eq!(env.name, "FLEET_NATS_CA_FILE");
        assert_eq!(env.value.as_deref(), Some("/etc/fleet/nats-ca/ca.crt"));
    }

    #[test]
    fn urls_say_whether_tls_is_required() {
        assert_eq!(url("demo-nats", true), "tls://demo-nats:4222");
        assert_eq!(url("demo-nats", false), "nats://demo-nats:4222");
    }

    #[test]
    fn one_ca_is_one_file() {
        let a = ca_file_for("-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let b = ca_file_for("-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let c = ca_file_for("-----BEGIN CERTIFICATE-----\nBBBB\n").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            "-----BEGIN CERTIFICATE-----\nAAAA\n"
        );
    }
}
