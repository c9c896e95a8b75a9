//! The desired objects of a FleetStack's fleet operator runtime
//! (crates/fleet-operator), as a pure function: ServiceAccount, Role,
//! RoleBinding, a Service for `/metrics` (and the smoke probe's `/readyz`),
//! and a Deployment.
//!
//! Unlike the other components, the operator talks to the API server
//! (FleetAgents, FleetCommands, its owner FleetStack, the leader Lease), so
//! its pods mount a ServiceAccount token and its Role grants exactly the
//! calls the runtime makes, nothing more (see [`rules`]).
//!
//! Its NATS password comes from the NATS credentials Secret that
//! FleetNatsScore creates write-once, mounted as a file (only that key); no
//! secret is ever a literal in the pod spec.

use fleet_crds::OperatorSpec;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, KeyToPath, PodSpec, SecretVolumeSource, Service, ServiceAccount,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::apply::DesiredObject;
use crate::labels;
use crate::nats::{self, NatsNames};
use crate::pod;
use crate::pod_overrides::{self, Defaults};
use crate::score::InterpretError;

/// The label value of this component's objects.
pub const COMPONENT: &str = crate::Component::Operator.name();
/// `/metrics`, `/healthz`, `/readyz` (FLEET_HTTP_ADDR).
pub const HTTP_PORT: u16 = 8080;
/// Where the NATS password file is mounted.
pub const PASSWORD_DIR: &str = "/etc/fleet/nats";
/// Same defaults as the callout. Measured: 18 MB RSS with 1000 agents
/// (crates/fleet-operator/README.md), well under the limit.
pub const DEFAULT_RESOURCES: [(&str, &str, &str); 2] =
    [("cpu", "20m", "500m"), ("memory", "32Mi", "128Mi")];

/// The API group of FleetAgent, FleetCommand and FleetStack.
pub const FLEET_GROUP: &str = "fleet.nationtech.io";
/// The API group of Lease.
pub const COORDINATION_GROUP: &str = "coordination.k8s.io";

/// The key of the NATS credentials Secret the operator mounts: what
/// [`OperatorObjects::with_credentials_hash`] covers.
pub const CREDENTIAL_KEYS: [&str; 1] = [nats::FLEET_PASSWORD_KEY];

#[derive(Debug, Clone)]
pub struct OperatorInput {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: OperatorSpec,
    /// The stack's NATS speaks TLS: the CA is mounted and
    /// `FLEET_NATS_CA_FILE` points at it.
    pub nats_tls: bool,
    /// `spec.nats.replicas`: the operator polls each server's monitoring
    /// endpoint for the NATS metrics it serves (docs/adr/0071).
    pub nats_servers: i32,
}

impl OperatorInput {
    /// More than one replica: only the Lease holder works
    /// (FLEET_LEADER_ELECTION), so FleetAgents keep one writer.
    pub fn leader_election(&self) -> bool {
        self.spec.replicas > 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorNames {
    pub deployment: String,
    pub service: String,
    pub service_account: String,
    pub role: String,
    pub role_binding: String,
    /// FLEET_LEASE_NAME (only used with leader election).
    pub lease: String,
}

impl OperatorNames {
    pub fn new(stack: &str) -> Self {
        let name = format!("{stack}-operator");
        OperatorNames {
            deployment: name.clone(),
            service: name.clone(),
            service_account: name.clone(),
            role: name.clone(),
            role_binding: name.clone(),
            lease: name,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OperatorObjects {
    pub service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub service: Service,
    pub deployment: Deployment,
}

impl OperatorObjects {
    /// Marks the Deployment's pod template with the hash of the `fleet` password the operator reads
    /// from the NATS credentials Secret, so regenerated values roll the pods
    /// ([`crate::write_once::credentials_hash`]). `None` leaves the objects
    /// as they are.
    pub fn with_credentials_hash(mut self, hash: Option<&str>) -> Self {
        if let (Some(hash), Some(spec)) = (hash, self.deployment.spec.as_mut()) {
            crate::write_once::annotate_template(&mut spec.template, hash);
        }
        self
    }

    /// ServiceAccount, Role, RoleBinding (the rights exist before a pod
    /// that uses them), Service, Deployment last.
    pub fn ordered(&self) -> Result<Vec<DesiredObject>, InterpretError> {
        Ok(vec![
            DesiredObject::new(&self.service_account)?,
            DesiredObject::new(&self.role)?,
            DesiredObject::new(&self.role_binding)?,
            DesiredObject::new(&self.service)?,
            DesiredObject::new(&self.deployment)?,
        ])
    }
}

fn meta(input: &OperatorInput, name: &str) -> ObjectMeta {
    let OperatorInput {
        stack,
        namespace,
        owner,
        ..
    } = input;
    labels::object_meta(stack, COMPONENT, namespace, owner, name)
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

/// The Role's rules: exactly the API calls crates/fleet-operator makes, in
/// its namespace. No wildcards, no `get`/`watch` it does not do.
///
/// Server-side apply of an object that does not exist yet is authorized as
/// `create` as well as `patch` (k8s.io/apiserver patch.go), hence both
/// where the operator creates objects by applying them.
pub fn rules(input: &OperatorInput) -> Vec<PolicyRule> {
    let mut rules = vec![
        // inventory.rs: apply (create + patch) a FleetAgent for a new agent,
        // delete it after FLEET_AGENT_TTL of silence; list: adopting the
        // existing ones at start, the FleetCommand agent selection and the
        // start-up CRD check (lib.rs).
        rule(
            FLEET_GROUP,
            &["fleetagents"],
            &["create", "delete", "list", "patch"],
        ),
        // inventory.rs: the status (connected, version, labels) by
        // server-side apply of the status subresource.
        rule(FLEET_GROUP, &["fleetagents/status"], &["patch"]),
        // commands.rs: the FleetCommand controller (list + watch), and the
        // start-up CRD check (lib.rs, list).
        rule(FLEET_GROUP, &["fleetcommands"], &["list", "watch"]),
        // commands.rs: reading the live status of an interrupted generation
        // (get_status) and writing results (status apply).
        rule(FLEET_GROUP, &["fleetcommands/status"], &["get", "patch"]),
        // lib.rs: reading the FLEET_OWNER_STACK FleetStack for the
        // ownerReference of every FleetAgent (always set by this Score).
        rule(FLEET_GROUP, &["fleetstacks"], &["get"]),
    ];
    // Leases only with leader election, i.e. replicas > 1: without
    // FLEET_LEADER_ELECTION the runtime never touches a Lease, so a
    // single-replica operator gets no rights it does not use. Scaling up is
    // safe because the Role is applied before the Deployment whose pods
    // start electing.
    if input.leader_election() {
        let lease = OperatorNames::new(&input.stack).lease;
        // fleet-runtime leader.rs: create when absent (create cannot be
        // limited to a name: the object does not exist yet) ...
        rules.push(rule(COORDINATION_GROUP, &["leases"], &["create"]));
        // ... get + update (replace) to take, renew and release: only ours.
        let mut own = rule(COORDINATION_GROUP, &["leases"], &["get", "update"]);
        own.resource_names = Some(vec![lease]);
        rules.push(own);
    }
    // No events: the runtime publishes none (no Recorder).
    rules
}

/// The operator container's environment (crates/fleet-operator/src/config.rs).
pub fn env(input: &OperatorInput) -> Vec<EnvVar> {
    let mut env = vec![
        pod::env(
            "FLEET_NATS_URL",
            nats::access::pod_url(&input.stack, &input.namespace, input.nats_tls),
        ),
        pod::env("FLEET_NATS_USER", nats::config::FLEET_USER),
        pod::env(
            "FLEET_NATS_PASSWORD_FILE",
            format!("{PASSWORD_DIR}/{}", nats::FLEET_PASSWORD_KEY),
        ),
        pod::field_env("FLEET_NAMESPACE", "metadata.namespace"),
        pod::env("FLEET_OWNER_STACK", input.stack.clone()),
        pod::field_env("POD_NAME", "metadata.name"),
        pod::env("FLEET_HTTP_ADDR", format!("0.0.0.0:{HTTP_PORT}")),
    ];
    if input.nats_servers > 0 {
        env.push(pod::env("FLEET_NATS_MONITOR_URLS", monitor_urls(input)));
    }
    if input.leader_election() {
        env.push(pod::env("FLEET_LEADER_ELECTION", "true"));
        env.push(pod::env(
            "FLEET_LEASE_NAME",
            OperatorNames::new(&input.stack).lease,
        ));
    }
    env
}

/// Each NATS server's monitoring base URL, through the headless Service
/// (one per pod: the metrics are per server, the client Service would
/// answer from whichever server it picks).
pub fn monitor_urls(input: &OperatorInput) -> String {
    let nats = NatsNames::new(&input.stack);
    (0..input.nats_servers)
        .map(|i| {
            format!(
                "http://{}-{i}.{}.{}.svc.cluster.local:{}",
                nats.statefulset,
                nats.headless_service,
                input.namespace,
                nats::config::MONITOR_PORT
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Builds every desired object (pure).
pub fn build(input: &OperatorInput) -> OperatorObjects {
    let names = OperatorNames::new(&input.stack);
    let selector = labels::selector_labels(&input.stack, COMPONENT);
    let mut service_account = ServiceAccount {
        metadata: meta(input, &names.service_account),
        // Off by default like every other component's account; the
        // operator's pods opt in below (the pod field wins), so the token is
        // mounted only where it is used.
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    pod_overrides::annotate_service_account(&mut service_account, input.spec.pod.as_ref());
    let role = Role {
        metadata: meta(input, &names.role),
        rules: Some(rules(input)),
    };
    let role_binding = RoleBinding {
        metadata: meta(input, &names.role_binding),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names.role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.service_account.clone(),
            namespace: Some(input.namespace.clone()),
            ..Default::default()
        }]),
    };
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
        name: "operator".into(),
        image: Some(input.spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env(input)),
        ports: Some(vec![pod::container_port("http", HTTP_PORT)]),
        // Ready = connected to NATS and both CRDs served (a follower waiting
        // for the Lease is ready too).
        readiness_probe: Some(pod::http_probe(
            "http",
            "/readyz",
            pod::READINESS_PERIOD_SECS,
            3,
        )),
        liveness_probe: Some(pod::http_probe("http", "/healthz", 10, 3)),
        resources: Some(pod::resources(None, &DEFAULT_RESOURCES)),
        volume_mounts: Some(vec![VolumeMount {
            name: "nats-password".into(),
            mount_path: PASSWORD_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        security_context: Some(pod::restricted_container_security()),
        ..Default::default()
    };
    let mut pod_spec = PodSpec {
        // The operator is a Kubernetes client (in-cluster config): it needs
        // its ServiceAccount token.
        automount_service_account_token: Some(true),
        // SIGTERM: FleetAgent writes in flight get up to 5 s, the Lease is
        // released, then NATS drains (up to 5 s).
        termination_grace_period_seconds: Some(15),
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "nats-password".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(NatsNames::new(&input.stack).credentials_secret),
                // Only the fleet user's password, not the other users'
                // passwords of the same Secret.
                items: Some(vec![KeyToPath {
                    key: nats::FLEET_PASSWORD_KEY.into(),
                    path: nats::FLEET_PASSWORD_KEY.into(),
                    ..Default::default()
                }]),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    nats::access::mount_ca(
        &mut pod_spec,
        &input.stack,
        input.nats_tls,
        "FLEET_NATS_CA_FILE",
    );
    let mut deployment = Deployment {
        metadata: meta(input, &names.deployment),
        spec: Some(DeploymentSpec {
            // Without leader election a rolling update would run the old and
            // the new pod side by side: two FleetAgent writers, and a
            // FleetCommand generation could be sent twice. Recreate keeps
            // one writer; with a Lease, rolling is safe (only the holder
            // works).
            strategy: (!input.leader_election()).then(|| DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            ..pod::deployment_spec(
                &input.stack,
                COMPONENT,
                input.spec.replicas,
                &names.service_account,
                pod_spec,
            )
        }),
        ..Default::default()
    };
    pod_overrides::apply(&mut deployment, input.spec.pod.as_ref(), &Defaults::none());
    OperatorObjects {
        service_account,
        role,
        role_binding,
        service,
        deployment,
    }
}
