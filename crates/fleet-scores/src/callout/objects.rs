//! The desired objects of a FleetStack's auth callout (a pure function):
//! ServiceAccount, a Service for `/metrics` (and the smoke probe's
//! `/readyz`), and a Deployment. The callout is stateless (any replica can
//! answer any request: they share a NATS queue group), so a Deployment, not
//! a StatefulSet.
//!
//! Its secrets come from the NATS credentials Secret that FleetNatsScore
//! creates write-once in callout mode (the AUTH user's password, the issuer
//! account seed, the curve seed), mounted as files; the OIDC client for
//! introspection, if any, from a user-provided Secret as env vars from
//! `secretKeyRef`. No secret is ever a literal in the pod spec.

use fleet_crds::CalloutSpec;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PodSpec, SecretVolumeSource, Service, ServiceAccount, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::apply::DesiredObject;
use crate::labels;
use crate::nats::{self, NatsNames};
use crate::pod;
use crate::pod_overrides::{self, Defaults};
use crate::score::InterpretError;

/// The label value of this component's objects.
pub const COMPONENT: &str = crate::Component::Callout.name();
/// `/metrics`, `/healthz`, `/readyz` (FLEET_CALLOUT_HTTP_ADDR).
pub const HTTP_PORT: u16 = 8080;
/// Where the seeds and the NATS password are mounted.
pub const KEYS_DIR: &str = "/etc/fleet/callout";
pub const DEFAULT_RESOURCES: [(&str, &str, &str); 2] =
    [("cpu", "20m", "500m"), ("memory", "32Mi", "128Mi")];

/// The keys of the NATS credentials Secret the callout mounts and reads
/// once at start: what [`CalloutObjects::with_credentials_hash`] covers.
pub const CREDENTIAL_KEYS: [&str; 3] = [
    nats::AUTH_PASSWORD_KEY,
    nats::CALLOUT_ISSUER_SEED_KEY,
    nats::CALLOUT_XKEY_SEED_KEY,
];

/// How the callout validates tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutOidc {
    /// Issuer URL exactly as in the tokens' `iss`.
    pub issuer: String,
    /// Audience tokens must carry (Zitadel: the project id, published by
    /// the managed identity in a ConfigMap).
    pub audience: pod::EnvSource,
    /// Claim holding the agent id; `None` = the callout's default `sub`
    /// (docs/adr/0034: `client_id`/`azp` with Zitadel).
    pub identity_claim: Option<String>,
    /// Secret with keys `clientId` and `clientSecret` for introspection of
    /// opaque tokens; `None` = JWT access tokens only.
    pub introspection_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CalloutInput {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: CalloutSpec,
    pub oidc: CalloutOidc,
    /// The stack's NATS speaks TLS: the CA is mounted and
    /// `FLEET_CALLOUT_NATS_CA_FILE` points at it.
    pub nats_tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutNames {
    pub deployment: String,
    pub service: String,
    pub service_account: String,
}

impl CalloutNames {
    pub fn new(stack: &str) -> Self {
        CalloutNames {
            deployment: format!("{stack}-callout"),
            service: format!("{stack}-callout"),
            service_account: format!("{stack}-callout"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CalloutObjects {
    pub service_account: ServiceAccount,
    pub service: Service,
    pub deployment: Deployment,
}

impl CalloutObjects {
    /// Marks the Deployment's pod template with the hash of the seeds and the password the callout reads once at start
    /// from the NATS credentials Secret, so regenerated values roll the pods
    /// ([`crate::write_once::credentials_hash`]). `None` leaves the objects
    /// as they are.
    pub fn with_credentials_hash(mut self, hash: Option<&str>) -> Self {
        if let (Some(hash), Some(spec)) = (hash, self.deployment.spec.as_mut()) {
            crate::write_once::annotate_template(&mut spec.template, hash);
        }
        self
    }

    /// ServiceAccount, Service, Deployment last.
    pub fn ordered(&self) -> Result<Vec<DesiredObject>, InterpretError> {
        Ok(vec![
            DesiredObject::new(&self.service_account)?,
            DesiredObject::new(&self.service)?,
            DesiredObject::new(&self.deployment)?,
        ])
    }
}

fn meta(input: &CalloutInput, name: &str) -> ObjectMeta {
    let CalloutInput {
        stack,
        namespace,
        owner,
        ..
    } = input;
    labels::object_meta(stack, COMPONENT, namespace, owner, name)
}

/// `pod` with the stack's NATS CA mounted when NATS speaks TLS.
fn callout_pod(input: &CalloutInput, mut pod: PodSpec) -> PodSpec {
    nats::access::mount_ca(
        &mut pod,
        &input.stack,
        input.nats_tls,
        "FLEET_CALLOUT_NATS_CA_FILE",
    );
    pod
}

/// The callout container's environment (see crates/fleet-callout/src/config.rs).
fn env(input: &CalloutInput) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    let file = |key: &str| format!("{KEYS_DIR}/{key}");
    let mut env = vec![
        pod::env(
            "FLEET_CALLOUT_NATS_URL",
            nats::access::pod_url(&input.stack, &input.namespace, input.nats_tls),
        ),
        pod::env("FLEET_CALLOUT_NATS_USER", nats::config::AUTH_USER),
        pod::env(
            "FLEET_CALLOUT_NATS_PASSWORD_FILE",
            file(nats::AUTH_PASSWORD_KEY),
        ),
        pod::env(
            "FLEET_CALLOUT_ISSUER_SEED_FILE",
            file(nats::CALLOUT_ISSUER_SEED_KEY),
        ),
        pod::env(
            "FLEET_CALLOUT_XKEY_SEED_FILE",
            file(nats::CALLOUT_XKEY_SEED_KEY),
        ),
        pod::env("FLEET_CALLOUT_TARGET_ACCOUNT", nats::config::FLEET_ACCOUNT),
        pod::env("FLEET_CALLOUT_OIDC_ISSUER", input.oidc.issuer.clone()),
        pod::env_from("FLEET_CALLOUT_OIDC_AUDIENCE", &input.oidc.audience),
        pod::env("FLEET_CALLOUT_HTTP_ADDR", format!("0.0.0.0:{HTTP_PORT}")),
        pod::env("RUST_LOG", "info"),
    ];
    if let Some(claim) = &input.oidc.identity_claim {
        env.push(pod::env("FLEET_CALLOUT_IDENTITY_CLAIM", claim.clone()));
    }
    if let Some(secret) = &input.oidc.introspection_secret {
        env.push(pod::secret_env(
            "FLEET_CALLOUT_OIDC_CLIENT_ID",
            secret,
            "clientId",
        ));
        env.push(pod::secret_env(
            "FLEET_CALLOUT_OIDC_CLIENT_SECRET",
            secret,
            "clientSecret",
        ));
    }
    env
}

/// Builds every desired object (pure).
pub fn build(input: &CalloutInput) -> CalloutObjects {
    let names = CalloutNames::new(&input.stack);
    let selector = labels::selector_labels(&input.stack, COMPONENT);
    let mut service_account = ServiceAccount {
        metadata: meta(input, &names.service_account),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    pod_overrides::annotate_service_account(&mut service_account, input.spec.pod.as_ref());
    let service = Service {
        metadata: meta(input, &names.service),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![pod::service_port("http", HTTP_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let container = Container {
        name: "callout".into(),
        image: Some(input.spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env(input)),
        ports: Some(vec![pod::container_port("http", HTTP_PORT)]),
        // Ready = subscribed to $SYS.REQ.USER.AUTH and discovery loaded.
        readiness_probe: Some(pod::http_probe(
            "http",
            "/readyz",
            pod::READINESS_PERIOD_SECS,
            3,
        )),
        liveness_probe: Some(pod::http_probe("http", "/healthz", 10, 3)),
        resources: Some(pod::resources(None, &DEFAULT_RESOURCES)),
        volume_mounts: Some(vec![VolumeMount {
            name: "keys".into(),
            mount_path: KEYS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        security_context: Some(pod::restricted_container_security()),
        ..Default::default()
    };
    let key = |k: &str| KeyToPath {
        key: k.into(),
        path: k.into(),
        ..Default::default()
    };
    let mut deployment = Deployment {
        metadata: meta(input, &names.deployment),
        spec: Some(pod::deployment_spec(
            &input.stack,
            COMPONENT,
            input.spec.replicas,
            &names.service_account,
            callout_pod(
                input,
                PodSpec {
                    automount_service_account_token: Some(false),
                    // SIGTERM: stop taking requests, finish those in flight
                    // (each bounded by the 1 s budget).
                    termination_grace_period_seconds: Some(15),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "keys".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(NatsNames::new(&input.stack).credentials_secret),
                            // Only the callout's keys, not the other users'
                            // passwords of the same Secret.
                            items: Some(CREDENTIAL_KEYS.iter().map(|k| key(k)).collect()),
                            default_mode: Some(0o440),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
            ),
        )),
        ..Default::default()
    };
    pod_overrides::apply(&mut deployment, input.spec.pod.as_ref(), &Defaults::none());
    CalloutObjects {
        service_account,
        service,
        deployment,
    }
}
