//! `TestIssuerScore`: the project's stand-in OIDC issuer
//! (crates/fleet-test-issuer, docs/adr/0033) as an in-cluster Deployment.
//!
//! It exists for end-to-end tests and demos of `identity.external` where
//! no Zitadel can run: a FleetStack points its `identity.external.issuer`
//! at [`TestIssuerScore::issuer_url`]. It is not a component of a
//! FleetStack (nothing owns it; deleting the namespace removes it) and it
//! is deployed through the same apply machinery as the stack's Scores, so
//! e2e never uses hand-written manifests.
//!
//! Pipeline: build (pure) -> apply ServiceAccount, Service, Deployment ->
//! probe: the discovery document answers with the expected issuer.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PodSpec, SecretVolumeSource, Service, ServiceAccount, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::apply::{self, ApplyReport, DesiredObject};
use crate::http_probe::{self, GetError};
use crate::labels;
use crate::pod;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome};
use crate::topology::KubernetesTopology;

pub const COMPONENT: &str = "test-issuer";
pub const HTTP_PORT: u16 = 8080;
/// Key of the clients Secret: JSON `[{"id","secret","subject"?}]`.
pub const CLIENTS_KEY: &str = "clients.json";
const CLIENTS_DIR: &str = "/etc/fleet/issuer";

/// One stand-in issuer.
#[derive(Debug, Clone)]
pub struct TestIssuerScore {
    /// Deployment, Service and ServiceAccount name.
    pub name: String,
    pub namespace: String,
    pub image: String,
    /// Secret (created by the caller) whose [`CLIENTS_KEY`] lists the
    /// clients allowed to obtain tokens.
    pub clients_secret: String,
    /// `aud` of the issued access tokens.
    pub audience: String,
    pub token_lifetime: Duration,
    pub probe_timeout: Duration,
}

impl TestIssuerScore {
    /// The issuer URL (`iss`) as pods in the cluster reach it.
    pub fn issuer_url(&self) -> String {
        format!(
            "http://{}.{}.svc.cluster.local:{HTTP_PORT}",
            self.name, self.namespace
        )
    }

    /// The desired objects in apply order (pure).
    pub fn build(&self) -> Result<Vec<DesiredObject>, InterpretError> {
        let meta = |name: &str| ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels::component_labels(&self.name, COMPONENT)),
            ..Default::default()
        };
        let container = Container {
            name: "issuer".into(),
            image: Some(self.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            env: Some(vec![
                pod::env("FLEET_TEST_ISSUER_LISTEN", format!("0.0.0.0:{HTTP_PORT}")),
                pod::env("FLEET_TEST_ISSUER_PUBLIC_URL", self.issuer_url()),
                pod::env(
                    "FLEET_TEST_ISSUER_CLIENTS_FILE",
                    format!("{CLIENTS_DIR}/{CLIENTS_KEY}"),
                ),
                pod::env("FLEET_TEST_ISSUER_AUDIENCE", self.audience.clone()),
                pod::env(
                    "FLEET_TEST_ISSUER_TOKEN_LIFETIME_SECS",
                    self.token_lifetime.as_secs().max(1).to_string(),
                ),
                pod::env("RUST_LOG", "info"),
            ]),
            ports: Some(vec![pod::container_port("http", HTTP_PORT)]),
            readiness_probe: Some(pod::http_probe(
                "http",
                "/.well-known/openid-configuration",
                2,
                3,
            )),
            volume_mounts: Some(vec![VolumeMount {
                name: "clients".into(),
                mount_path: CLIENTS_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            }]),
            security_context: Some(pod::restricted_container_security()),
            resources: Some(pod::resources(
                None,
                &[("cpu", "10m", "200m"), ("memory", "16Mi", "64Mi")],
            )),
            ..Default::default()
        };
        let deployment = Deployment {
            metadata: meta(&self.name),
            spec: Some(pod::deployment_spec(
                &self.name,
                COMPONENT,
                1,
                &self.name,
                PodSpec {
                    automount_service_account_token: Some(false),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "clients".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(self.clients_secret.clone()),
                            items: Some(vec![KeyToPath {
                                key: CLIENTS_KEY.into(),
                                path: CLIENTS_KEY.into(),
                                ..Default::default()
                            }]),
                            default_mode: Some(0o440),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        Ok(vec![
            DesiredObject::new(&ServiceAccount {
                metadata: meta(&self.name),
                automount_service_account_token: Some(false),
                ..Default::default()
            })?,
            DesiredObject::new(&Service {
                metadata: meta(&self.name),
                spec: Some(ServiceSpec {
                    selector: Some(labels::selector_labels(&self.name, COMPONENT)),
                    ports: Some(vec![pod::service_port("http", HTTP_PORT)]),
                    ..Default::default()
                }),
                ..Default::default()
            })?,
            DesiredObject::new(&deployment)?,
        ])
    }
}

/// Not a FleetStack component (no [`crate::Component`], nothing prunes
/// it), so not a [`crate::Score`]: it is its own Interpret, applied through
/// the same apply step.
#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for TestIssuerScore {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let ordered = self.build()?;
        let mut report = ApplyReport::default();
        apply::apply_in_order(topology.client(), &self.namespace, &ordered, &mut report).await?;
        let probe = match topology.service_host(&self.namespace, &self.name).await {
            Ok(host) => discovery_probe(&host, &self.issuer_url(), self.probe_timeout).await,
            Err(e) => ProbeOutcome::Failed {
                reason: "ServiceUnreachable",
                message: format!("test issuer: {e}"),
                latency: Duration::ZERO,
            },
        };
        Ok(Outcome {
            written: report.written,
            unchanged: report.unchanged,
            deleted: Vec::new(),
            probe,
            units: None,
            published: None,
        })
    }
}

/// GET discovery at `host` and check it names `issuer`.
async fn discovery_probe(host: &str, issuer: &str, deadline: Duration) -> ProbeOutcome {
    let started = Instant::now();
    let url = format!("http://{host}:{HTTP_PORT}/.well-known/openid-configuration");
    let failed = |reason, message| ProbeOutcome::Failed {
        reason,
        message,
        latency: started.elapsed(),
    };
    let doc: serde_json::Value = match http_probe::get(&url, deadline).await {
        Ok(resp) if resp.status().is_success() => match resp.json().await {
            Ok(doc) => doc,
            Err(e) => return failed("BadDiscovery", format!("test issuer: {url}: {e}")),
        },
        Ok(resp) => {
            return failed(
                "IssuerNotReady",
                format!("test issuer: GET {url} answered {}", resp.status()),
            );
        }
        Err(GetError::Setup(e)) => {
            return failed("ProbeSetupFailed", format!("test issuer: {e}"));
        }
        Err(GetError::Send(e)) => {
            return failed("IssuerUnreachable", format!("test issuer: GET {url}: {e}"));
        }
    };
    match doc.get("issuer").and_then(|v| v.as_str()) {
        Some(i) if i == issuer => ProbeOutcome::Passed {
            latency: started.elapsed(),
            message: format!("test issuer {issuer} serves discovery"),
        },
        other => failed(
            "BadDiscovery",
            format!("test issuer: discovery names issuer {other:?}, expected {issuer}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_url_and_objects_follow_the_name() {
        let s = TestIssuerScore {
            name: "issuer".into(),
            namespace: "e2e".into(),
            image: "fleetstack/fleet-test-issuer:0.1.0".into(),
            clients_secret: "issuer-clients".into(),
            audience: "fleet-nats".into(),
            token_lifetime: Duration::from_secs(300),
            probe_timeout: Duration::from_secs(5),
        };
        assert_eq!(s.issuer_url(), "http://issuer.e2e.svc.cluster.local:8080");
        let keys: Vec<String> = s.build().unwrap().iter().map(|o| o.key()).collect();
        assert_eq!(
            keys,
            [
                "ServiceAccount/issuer",
                "Service/issuer",
                "Deployment/issuer"
            ]
        );
    }
}
