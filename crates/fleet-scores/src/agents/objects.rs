//! The desired Kubernetes objects of a FleetStack's agents (target `Pod`):
//! a pure function of the resolved spec. Apply order is the order of
//! [`AgentObjects::ordered`].
//!
//! Agents run as a StatefulSet, not a Deployment: the smoke probe must know
//! the id of every agent it expects to answer, and a StatefulSet gives each
//! pod a stable name (`<stack>-agent-<i>`) that is also its agent id, so a
//! missing agent can be named and a replaced pod keeps its identity
//! (docs/adr/0014-agents-as-statefulset.md).

use std::collections::BTreeMap;

use fleet_crds::AgentsSpec;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PodSpec, PodTemplateSpec, SecretVolumeSource, Service, ServiceAccount,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::apply::DesiredObject;
use crate::callout::agent_env;
use crate::labels;
use crate::pod;
use crate::pod_overrides::{self, Defaults};
use crate::score::InterpretError;

/// The label value of this component's objects.
pub const COMPONENT: &str = crate::Component::Agents.name();
/// Port of the agent's `/healthz` and `/readyz`.
pub const HTTP_PORT: u16 = 8080;
/// Where the NATS password is mounted; the agent re-reads it on every
/// (re)connect, so a rotated Secret is picked up without a restart.
pub const PASSWORD_DIR: &str = "/etc/fleet/nats";
pub const PASSWORD_FILE: &str = "password";
/// Default compute resources: agents are small (idle RSS is a few MB).
pub const DEFAULT_RESOURCES: [(&str, &str, &str); 2] =
    [("cpu", "10m", "200m"), ("memory", "16Mi", "64Mi")];

/// Everything the objects depend on.
#[derive(Debug, Clone)]
pub struct AgentsInput {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: AgentsSpec,
    /// NATS URL as seen from inside the cluster.
    pub nats_url: String,
    pub auth: AgentAuth,
    /// The stack's NATS speaks TLS: the CA is mounted and
    /// `FLEET_NATS_CA_FILE` points at it ([`crate::nats::access`]).
    pub nats_tls: bool,
}

/// How agent pods log in to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAuth {
    /// `nats.auth.mode: UserPass`: the shared static user; its password is
    /// a key of the NATS credentials Secret.
    Password {
        user: String,
        secret: String,
        key: String,
    },
    /// `nats.auth.mode: Callout`: each agent is its own OAuth client
    /// (client id = agent id) and presents a token on every (re)connect
    /// (docs/adr/0034). `secret` holds one key per agent id.
    Oidc {
        issuer: String,
        scope: Option<pod::EnvSource>,
        secret: String,
    },
}

/// Object names, derived from the stack name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentNames {
    pub statefulset: String,
    pub headless_service: String,
    pub service_account: String,
}

impl AgentNames {
    pub fn new(stack: &str) -> Self {
        AgentNames {
            statefulset: format!("{stack}-agent"),
            headless_service: format!("{stack}-agent"),
            service_account: format!("{stack}-agent"),
        }
    }

    /// The agent ids the stack must have: the StatefulSet's pod names.
    pub fn agent_ids(&self, replicas: i32) -> Vec<String> {
        (0..replicas.max(0))
            .map(|i| format!("{}-{i}", self.statefulset))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct AgentObjects {
    pub service_account: ServiceAccount,
    pub headless_service: Service,
    pub statefulset: StatefulSet,
}

impl AgentObjects {
    /// ServiceAccount, the governing headless Service, then the StatefulSet.
    pub fn ordered(&self) -> Result<Vec<DesiredObject>, InterpretError> {
        Ok(vec![
            DesiredObject::new(&self.service_account)?,
            DesiredObject::new(&self.headless_service)?,
            DesiredObject::new(&self.statefulset)?,
        ])
    }
}

fn meta(input: &AgentsInput, name: &str) -> ObjectMeta {
    let AgentsInput {
        stack,
        namespace,
        owner,
        ..
    } = input;
    labels::object_meta(stack, COMPONENT, namespace, owner, name)
}

/// `k=v,k=v` for `FLEET_AGENT_LABELS`; BTreeMap order keeps it deterministic.
fn labels_env(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Only the password key of the NATS credentials Secret, as a file.
fn password_volume(secret: &str, key: &str) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "nats-password".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                items: Some(vec![KeyToPath {
                    key: key.into(),
                    path: PASSWORD_FILE.into(),
                    ..Default::default()
                }]),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: "nats-password".into(),
            mount_path: PASSWORD_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    )
}

/// Builds every desired object (pure).
pub fn build(input: &AgentsInput) -> AgentObjects {
    let names = AgentNames::new(&input.stack);
    let selector = labels::selector_labels(&input.stack, COMPONENT);
    // User labels go on the pods (and into the agent's identity), never into
    // the selector, which is immutable.
    let mut pod_labels = input.spec.labels.clone();
    pod_labels.extend(labels::component_labels(&input.stack, COMPONENT));

    // FLEET_AGENT_ID first: the OIDC variables expand $(FLEET_AGENT_ID).
    let mut env = vec![
        pod::field_env("FLEET_AGENT_ID", "metadata.name"),
        pod::env("FLEET_NATS_URL", input.nats_url.clone()),
    ];
    let (volume, mount) = match &input.auth {
        AgentAuth::Password { user, secret, key } => {
            env.push(pod::env("FLEET_NATS_USER", user.clone()));
            env.push(pod::env(
                "FLEET_NATS_PASSWORD_FILE",
                format!("{PASSWORD_DIR}/{PASSWORD_FILE}"),
            ));
            password_volume(secret, key)
        }
        AgentAuth::Oidc {
            issuer,
            scope,
            secret,
        } => {
            env.extend(agent_env::oidc_env(issuer, scope.as_ref()));
            agent_env::oidc_volume(secret)
        }
    };
    env.extend([
        pod::env("FLEET_AGENT_LABELS", labels_env(&input.spec.labels)),
        pod::env("FLEET_HTTP_ADDR", format!("0.0.0.0:{HTTP_PORT}")),
        pod::env("FLEET_LOG_FORMAT", "json"),
    ]);

    let container = Container {
        name: "agent".into(),
        image: Some(input.spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env),
        ports: Some(vec![pod::container_port("http", HTTP_PORT)]),
        readiness_probe: Some(pod::http_probe(
            "http",
            "/readyz",
            pod::READINESS_PERIOD_SECS,
            3,
        )),
        liveness_probe: Some(pod::http_probe("http", "/healthz", 10, 3)),
        resources: Some(pod::resources(
            input.spec.resources.as_ref(),
            &DEFAULT_RESOURCES,
        )),
        volume_mounts: Some(vec![mount]),
        security_context: Some(pod::restricted_container_security()),
        ..Default::default()
    };

    let mut pod_spec = PodSpec {
        service_account_name: Some(names.service_account.clone()),
        automount_service_account_token: Some(false),
        // The agent drains within FLEET_DRAIN_TIMEOUT (10 s).
        termination_grace_period_seconds: Some(15),
        security_context: Some(pod::restricted_pod_security()),
        containers: vec![container],
        volumes: Some(vec![volume]),
        ..Default::default()
    };
    crate::nats::access::mount_ca(
        &mut pod_spec,
        &input.stack,
        input.nats_tls,
        "FLEET_NATS_CA_FILE",
    );
    let mut statefulset = StatefulSet {
        metadata: meta(input, &names.statefulset),
        spec: Some(StatefulSetSpec {
            replicas: Some(input.spec.replicas),
            service_name: Some(names.headless_service.clone()),
            // Agents are independent: start and replace them all at once.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    };

    pod_overrides::apply(&mut statefulset, input.spec.pod.as_ref(), &Defaults::none());
    let mut service_account = ServiceAccount {
        metadata: meta(input, &names.service_account),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    pod_overrides::annotate_service_account(&mut service_account, input.spec.pod.as_ref());
    AgentObjects {
        service_account,
        headless_service: Service {
            metadata: meta(input, &names.headless_service),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                selector: Some(selector),
                ports: Some(vec![pod::service_port("http", HTTP_PORT)]),
                publish_not_ready_addresses: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
        statefulset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_crds::AgentTarget;

    fn input(replicas: i32) -> AgentsInput {
        AgentsInput {
            stack: "demo".into(),
            namespace: "fleet".into(),
            owner: OwnerReference {
                api_version: "fleet.nationtech.io/v1alpha1".into(),
                kind: "FleetStack".into(),
                name: "demo".into(),
                uid: "uid-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            spec: AgentsSpec {
                pod: None,
                target: AgentTarget::Pod,
                replicas,
                image: "fleetstack/fleet-agent:0.1.0".into(),
                labels: BTreeMap::from([
                    ("site".to_string(), "lab".to_string()),
                    ("rack".to_string(), "7".to_string()),
                ]),
                resources: None,
            },
            nats_url: "nats://demo-nats.fleet.svc.cluster.local:4222".into(),
            auth: AgentAuth::Password {
                user: "fleet".into(),
                secret: "demo-nats-credentials".into(),
                key: "fleet-password".into(),
            },
            nats_tls: false,
        }
    }

    #[test]
    fn with_tls_the_agents_mount_the_ca_and_not_a_secret_with_a_key() {
        let mut i = input(2);
        i.nats_tls = true;
        let pod = build(&i).statefulset.spec.unwrap().template.spec.unwrap();
        let env = pod.containers[0].env.clone().unwrap();
        let ca = env.iter().find(|e| e.name == "FLEET_NATS_CA_FILE").unwrap();
        assert_eq!(ca.value.as_deref(), Some("/etc/fleet/nats-ca/ca.crt"));
        let volumes = pod.volumes.unwrap();
        let ca_volume = volumes.iter().find(|v| v.name == "nats-ca").unwrap();
        assert_eq!(ca_volume.config_map.as_ref().unwrap().name, "demo-nats-ca");
        // The only Secret the pod mounts is its NATS password.
        let secrets: Vec<_> = volumes.iter().filter_map(|v| v.secret.as_ref()).collect();
        assert_eq!(secrets.len(), 1);
        assert_eq!(
            secrets[0].secret_name.as_deref(),
            Some("demo-nats-credentials")
        );
    }

    #[test]
    fn callout_mode_gives_each_agent_its_own_client_and_no_nats_password() {
        let mut i = input(2);
        i.auth = AgentAuth::Oidc {
            issuer: "http://issuer.fleet.svc.cluster.local:8080".into(),
            scope: None,
            secret: "demo-agent-oidc".into(),
        };
        let o = build(&i);
        let env = env_of(&o);
        assert!(!env.contains_key("FLEET_NATS_USER"));
        assert!(!env.contains_key("FLEET_NATS_PASSWORD_FILE"));
        assert_eq!(
            env["FLEET_OIDC_CLIENT_ID"].value.as_deref(),
            Some("$(FLEET_AGENT_ID)")
        );
        // $(FLEET_AGENT_ID) only expands from an earlier entry.
        let names: Vec<String> = o
            .statefulset
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.name.clone())
            .collect();
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(pos("FLEET_AGENT_ID") < pos("FLEET_OIDC_CLIENT_ID"));
        let pod = o.statefulset.spec.unwrap().template.spec.unwrap();
        let vol = &pod.volumes.as_ref().unwrap()[0];
        assert_eq!(
            vol.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("demo-agent-oidc")
        );
        assert_eq!(
            pod.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path,
            agent_env::OIDC_DIR
        );
    }

    fn env_of(o: &AgentObjects) -> BTreeMap<String, k8s_openapi::api::core::v1::EnvVar> {
        let pod = o
            .statefulset
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        pod.containers[0]
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    #[test]
    fn agent_ids_are_the_statefulset_pod_names() {
        let names = AgentNames::new("demo");
        assert_eq!(
            names.agent_ids(3),
            ["demo-agent-0", "demo-agent-1", "demo-agent-2"]
        );
        assert!(names.agent_ids(0).is_empty());
        assert!(names.agent_ids(-1).is_empty());
    }

    #[test]
    fn statefulset_wires_identity_credentials_and_labels() {
        let o = build(&input(3));
        let sts = o.statefulset.spec.as_ref().unwrap();
        assert_eq!(sts.replicas, Some(3));
        assert_eq!(sts.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(sts.service_name.as_deref(), Some("demo-agent"));
        let env = env_of(&o);
        // The agent id is the pod name: the probe's expected ids match.
        let id = env["FLEET_AGENT_ID"].value_from.as_ref().unwrap();
        assert_eq!(id.field_ref.as_ref().unwrap().field_path, "metadata.name");
        assert_eq!(
            env["FLEET_AGENT_LABELS"].value.as_deref(),
            Some("rack=7,site=lab")
        );
        // The password comes from a mounted Secret file, never a literal.
        assert!(env.values().all(|e| e.name != "FLEET_NATS_PASSWORD"));
        let pod = sts.template.spec.as_ref().unwrap();
        let vol = &pod.volumes.as_ref().unwrap()[0];
        assert_eq!(
            vol.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("demo-nats-credentials")
        );
        // User labels on pods, not in the immutable selector.
        let pod_labels = sts
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(pod_labels.get("site").map(String::as_str), Some("lab"));
        assert!(
            !sts.selector
                .match_labels
                .as_ref()
                .unwrap()
                .contains_key("site")
        );
    }

    #[test]
    fn pods_are_restricted_and_probed() {
        let o = build(&input(1));
        let pod = o.statefulset.spec.unwrap().template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let readiness = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(readiness.path.as_deref(), Some("/readyz"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert!(
            c.resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()
                .contains_key("memory")
        );
    }

    #[test]
    fn build_is_deterministic_and_hashes_change_with_the_spec() {
        let a = build(&input(3)).ordered().unwrap();
        let b = build(&input(3)).ordered().unwrap();
        let c = build(&input(4)).ordered().unwrap();
        let hashes = |v: &[DesiredObject]| v.iter().map(|o| o.hash.clone()).collect::<Vec<_>>();
        assert_eq!(hashes(&a), hashes(&b));
        assert_ne!(
            hashes(&a)[2],
            hashes(&c)[2],
            "replicas change must change the StatefulSet hash"
        );
        assert_eq!(hashes(&a)[..2], hashes(&c)[..2]);
    }
}
