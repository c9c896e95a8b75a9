//! The desired Kubernetes objects of a FleetStack's NATS: a pure function
//! of the resolved spec. Apply order is the order of [`NatsObjects::ordered`].

use std::collections::BTreeMap;

use fleet_crds::{JetStreamStorage, NatsSpec};
use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
            EnvVarSource, ExecAction, Lifecycle, LifecycleHandler, ObjectFieldSelector,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
            ResourceRequirements, SecretVolumeSource, Service, ServiceAccount, ServiceSpec, Volume,
            VolumeMount, VolumeResourceRequirements,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};

use super::config::{self, CLIENT_PORT, CLUSTER_PORT, MONITOR_PORT};
use crate::apply::DesiredObject;
use crate::labels::{self, CONFIG_HASH};
use crate::pod;
use crate::pod_overrides::{self, Defaults};
use crate::score::InterpretError;

/// The label value of this component's objects.
pub const COMPONENT: &str = crate::Component::Nats.name();
/// Non-root uid/gid of the restricted Pod Security profile.
pub const RUN_AS: i64 = pod::RUN_AS;

/// Everything the objects depend on.
#[derive(Debug, Clone)]
pub struct NatsInput {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: NatsSpec,
    /// Whether policy/v1 is served (a PDB is built only then).
    pub pdb_v1: bool,
    /// Public keys of the auth callout; `Some` renders callout auth (the
    /// Interpret sets it when `spec.auth.mode` is `Callout`).
    pub callout: Option<config::CalloutAuth>,
}

/// The keys of the credentials Secret the NATS servers read (as env, at
/// start): what [`NatsObjects::with_credentials_hash`] must cover. The
/// callout seeds are not among them: the servers only know the issuer's
/// public key, which is in nats.conf and so already in the config hash.
pub fn credential_keys(spec: &NatsSpec, callout: bool) -> Vec<&'static str> {
    let mut keys = vec![super::SYS_PASSWORD_KEY, super::FLEET_PASSWORD_KEY];
    if spec.replicas > 1 {
        keys.push(super::ROUTE_PASSWORD_KEY);
    }
    if callout {
        keys.push(super::AUTH_PASSWORD_KEY);
    }
    keys
}

/// TLS of the NATS listeners, as the Interpret passes it once the
/// certificate Secret exists ([`crate::tls::ensure::ensure_server_cert`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTlsInput {
    /// The server certificate Secret (`tls.crt`, `tls.key`, `ca.crt`),
    /// [`crate::tls::nats_cert_secret_name`].
    pub secret: String,
    /// `host:port` told to clients ([`config::client_advertise`]).
    pub client_advertise: Option<String>,
}

/// Object names, derived from the stack name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsNames {
    pub statefulset: String,
    pub headless_service: String,
    pub client_service: String,
    /// The monitoring port (8222, no authentication) on a Service of its
    /// own, so that nothing reaching the client Service reaches `/connz`.
    pub monitor_service: String,
    pub config_map: String,
    pub credentials_secret: String,
    pub service_account: String,
    pub pdb: String,
}

impl NatsNames {
    pub fn new(stack: &str) -> Self {
        NatsNames {
            statefulset: format!("{stack}-nats"),
            headless_service: format!("{stack}-nats-headless"),
            client_service: format!("{stack}-nats"),
            monitor_service: format!("{stack}-nats-monitor"),
            config_map: format!("{stack}-nats-config"),
            credentials_secret: format!("{stack}-nats-credentials"),
            service_account: format!("{stack}-nats"),
            pdb: format!("{stack}-nats"),
        }
    }
}

/// The typed desired objects (the write-once Secret is not among them: it
/// is created once by [`crate::write_once`], never applied).
#[derive(Debug, Clone)]
pub struct NatsObjects {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub client_service: Service,
    /// Built with TLS ([`build_with_tls`]); without, the client Service
    /// still carries the monitoring port as before.
    pub monitor_service: Option<Service>,
    /// `spec.nats.expose`: the client port for clients outside the cluster.
    pub external_service: Option<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    pub statefulset: StatefulSet,
    /// The rendered nats.conf (also inside `config_map`).
    pub config: String,
    /// Its hashes, which every server must report once it runs it.
    pub marker: config::ConfigMarker,
}

impl NatsObjects {
    /// Marks the StatefulSet's pod template with the hash of the
    /// credentials Secret values the servers read at start (their env), so
    /// regenerated values roll the servers one at a time
    /// ([`crate::write_once::credentials_hash`]). `None` leaves the objects
    /// as they are.
    pub fn with_credentials_hash(mut self, hash: Option<&str>) -> Self {
        if let (Some(hash), Some(spec)) = (hash, self.statefulset.spec.as_mut()) {
            crate::write_once::annotate_template(&mut spec.template, hash);
        }
        self
    }

    /// Objects in apply order: ServiceAccount, ConfigMap, Services, PDB,
    /// StatefulSet last (so the pods never start against a missing
    /// config or service). The Secret goes between ServiceAccount and
    /// ConfigMap; the Interpret handles it.
    pub fn ordered(&self) -> Result<Vec<DesiredObject>, InterpretError> {
        let mut out = vec![
            DesiredObject::new(&self.service_account)?,
            DesiredObject::new(&self.config_map)?,
            DesiredObject::new(&self.headless_service)?,
            DesiredObject::new(&self.client_service)?,
        ];
        if let Some(monitor) = &self.monitor_service {
            out.push(DesiredObject::new(monitor)?);
        }
        if let Some(external) = &self.external_service {
            out.push(DesiredObject::new(external)?);
        }
        if let Some(pdb) = &self.pdb {
            out.push(DesiredObject::new(pdb)?);
        }
        out.push(DesiredObject::new(&self.statefulset)?);
        Ok(out)
    }

    /// The Services: applied before the certificate is issued, because
    /// the client Service's cluster IP and the external Service's node
    /// port go into the certificate and `client_advertise`.
    pub fn services(&self) -> Result<Vec<DesiredObject>, InterpretError> {
        let mut out = vec![
            DesiredObject::new(&self.headless_service)?,
            DesiredObject::new(&self.client_service)?,
        ];
        for s in [&self.monitor_service, &self.external_service]
            .into_iter()
            .flatten()
        {
            out.push(DesiredObject::new(s)?);
        }
        Ok(out)
    }

    /// ConfigMap, PDB and StatefulSet last (the pods never start against a
    /// missing config or certificate).
    pub fn workload(&self) -> Result<Vec<DesiredObject>, InterpretError> {
        let mut out = vec![DesiredObject::new(&self.config_map)?];
        if let Some(pdb) = &self.pdb {
            out.push(DesiredObject::new(pdb)?);
        }
        out.push(DesiredObject::new(&self.statefulset)?);
        Ok(out)
    }
}

fn meta(input: &NatsInput, name: &str) -> ObjectMeta {
    let NatsInput {
        stack,
        namespace,
        owner,
        ..
    } = input;
    labels::object_meta(stack, COMPONENT, namespace, owner, name)
}

/// Builds every desired object (pure), without TLS.
pub fn build(input: &NatsInput) -> NatsObjects {
    build_with_tls(input, None)
}

/// Builds every desired object (pure). With `tls`: the client port and
/// routes speak TLS with the certificate Secret mounted at
/// [`config::TLS_DIR`], and the monitoring port moves from the client
/// Service to [`NatsNames::monitor_service`].
pub fn build_with_tls(input: &NatsInput, tls: Option<&NatsTlsInput>) -> NatsObjects {
    let names = NatsNames::new(&input.stack);
    let tls_files = tls.map(|t| config::TlsFiles {
        dir: config::TLS_DIR.into(),
        client_advertise: t.client_advertise.clone(),
    });
    let config_input = config::ConfigInput {
        stack: &input.stack,
        namespace: &input.namespace,
        headless_service: &names.headless_service,
        statefulset: &names.statefulset,
        spec: &input.spec,
        callout: input.callout.as_ref(),
        tls: tls_files.as_ref(),
    };
    let rendered = config::render_marked(&config_input);
    let config = rendered.text;
    // Cluster routes (replicas > 1): the route password from the Secret,
    // then one URL per replica composed from it by Kubernetes' $(VAR)
    // expansion, which nats.conf references as `$ROUTE_<i>`.
    let route_env: Vec<EnvVar> = if input.spec.replicas > 1 {
        std::iter::once(pod::secret_env(
            config::ROUTE_PASSWORD_ENV,
            &names.credentials_secret,
            super::ROUTE_PASSWORD_KEY,
        ))
        .chain(
            (0..input.spec.replicas)
                .map(|i| pod::env(&config::route_env(i), config::route_url(&config_input, i))),
        )
        .collect()
    } else {
        Vec::new()
    };
    // The pod template carries the hash of what only a restart changes;
    // the reloadable rest reaches the servers by a reload (reload.rs).
    let config_hash = rendered.marker.restart.clone();
    let selector = labels::selector_labels(&input.stack, COMPONENT);

    let mut service_account = ServiceAccount {
        metadata: meta(input, &names.service_account),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    pod_overrides::annotate_service_account(&mut service_account, input.spec.pod.as_ref());
    let config_map = ConfigMap {
        metadata: meta(input, &names.config_map),
        data: Some(BTreeMap::from([(
            config::CONFIG_FILE.to_string(),
            config.clone(),
        )])),
        ..Default::default()
    };
    let headless_service = Service {
        metadata: meta(input, &names.headless_service),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Routes must resolve peers before they are Ready, or a cluster
            // never forms.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector.clone()),
            ports: Some(vec![
                pod::service_port("client", CLIENT_PORT),
                pod::service_port("cluster", CLUSTER_PORT),
                pod::service_port("monitor", MONITOR_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let client_ports = match tls {
        Some(_) => vec![pod::service_port("client", CLIENT_PORT)],
        None => vec![
            pod::service_port("client", CLIENT_PORT),
            pod::service_port("monitor", MONITOR_PORT),
        ],
    };
    let client_service = Service {
        metadata: meta(input, &names.client_service),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(client_ports),
            ..Default::default()
        }),
        ..Default::default()
    };
    let monitor_service = tls.map(|_| Service {
        metadata: meta(input, &names.monitor_service),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![pod::service_port("monitor", MONITOR_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pdb = (input.spec.replicas > 1 && input.pdb_v1).then(|| PodDisruptionBudget {
        metadata: meta(input, &names.pdb),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut statefulset = statefulset(input, &names, &selector, &config_hash, route_env, tls);
    pod_overrides::apply(
        &mut statefulset,
        input.spec.pod.as_ref(),
        &Defaults::nats(&input.stack, COMPONENT),
    );
    NatsObjects {
        service_account,
        config_map,
        headless_service,
        client_service,
        monitor_service,
        external_service: external_service(input),
        pdb,
        statefulset,
        config,
        marker: rendered.marker,
    }
}

fn statefulset(
    input: &NatsInput,
    names: &NatsNames,
    selector: &BTreeMap<String, String>,
    config_hash: &str,
    route_env: Vec<EnvVar>,
    tls: Option<&NatsTlsInput>,
) -> StatefulSet {
    let spec = &input.spec;
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: config::CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "pid".into(),
            mount_path: config::PID_DIR.into(),
            ..Default::default()
        },
    ];
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "pid".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    if let Some(tls) = tls {
        // A renewed certificate reaches the mounted files without a pod
        // restart (kubelet updates Secret volumes); nats-server reads them
        // again on a config reload (docs/adr/0060).
        mounts.push(VolumeMount {
            name: "tls".into(),
            mount_path: config::TLS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret.clone()),
                // Readable by the pod's fsGroup only: the key is in it.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut claims = Vec::new();
    if spec.jetstream.enabled {
        mounts.push(VolumeMount {
            name: "jetstream".into(),
            mount_path: config::DATA_DIR.into(),
            ..Default::default()
        });
        match spec.jetstream.storage {
            JetStreamStorage::File => claims.push(PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("jetstream".into()),
                    labels: Some(labels::component_labels(&input.stack, COMPONENT)),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: spec.jetstream.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            spec.jetstream.storage_size.clone(),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            // Memory streams only: the store directory holds JetStream's
            // metadata, a few KiB, in an emptyDir.
            JetStreamStorage::Memory => volumes.push(Volume {
                name: "jetstream".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                        "64Mi".into(),
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }
    let resources = spec.resources.as_ref().map(|r| ResourceRequirements {
        requests: (!r.requests.is_empty()).then(|| r.requests.clone()),
        limits: (!r.limits.is_empty()).then(|| r.limits.clone()),
        ..Default::default()
    });
    let container_ports = vec![
        pod::container_port("client", CLIENT_PORT),
        pod::container_port("cluster", CLUSTER_PORT),
        pod::container_port("monitor", MONITOR_PORT),
    ];
    let container = Container {
        name: "nats".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        // Works with any image that has nats-server on its PATH.
        command: Some(vec![
            "nats-server".into(),
            "--config".into(),
            format!("{}/{}", config::CONFIG_DIR, config::CONFIG_FILE),
        ]),
        ports: Some(container_ports),
        env: Some(
            vec![
                EnvVar {
                    name: "SERVER_NAME".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                pod::secret_env(
                    config::SYS_PASSWORD_ENV,
                    &names.credentials_secret,
                    super::SYS_PASSWORD_KEY,
                ),
                pod::secret_env(
                    config::FLEET_PASSWORD_ENV,
                    &names.credentials_secret,
                    super::FLEET_PASSWORD_KEY,
                ),
            ]
            .into_iter()
            .chain(route_env)
            // The callout's user exists only in callout mode.
            .chain(input.callout.is_some().then(|| {
                pod::secret_env(
                    config::AUTH_PASSWORD_ENV,
                    &names.credentials_secret,
                    super::AUTH_PASSWORD_KEY,
                )
            }))
            .collect(),
        ),
        volume_mounts: Some(mounts),
        resources,
        // The NATS chart's probes: startup and readiness on /healthz
        // variants that do not fail on a JetStream catch-up, liveness only
        // when JetStream itself is broken.
        // The startup probe only with JetStream, whose store recovery can
        // take minutes before /healthz answers: it holds off liveness so a
        // recovering server is not killed. Without JetStream a server
        // listens within milliseconds, and a startup probe would delay the
        // first readiness check by up to a period (issue 18).
        startup_probe: spec
            .jetstream
            .enabled
            .then(|| pod::http_probe("monitor", "/healthz", 1, 900)),
        readiness_probe: Some(pod::http_probe(
            "monitor",
            "/healthz?js-server-only=true",
            pod::READINESS_PERIOD_SECS,
            3,
        )),
        liveness_probe: Some(pod::http_probe(
            "monitor",
            "/healthz?js-enabled-only=true",
            30,
            3,
        )),
        lifecycle: Some(Lifecycle {
            // Lame-duck mode: clients are told to move before the pod goes.
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "nats-server".into(),
                        format!("--signal=ldm={}/nats.pid", config::PID_DIR),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        security_context: Some(pod::restricted_container_security()),
        ..Default::default()
    };
    let mut template_labels = labels::component_labels(&input.stack, COMPONENT);
    template_labels.extend(selector.clone());
    StatefulSet {
        metadata: meta(input, &names.statefulset),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names.headless_service.clone()),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH.to_string(),
                        config_hash.to_string(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(names.service_account.clone()),
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(60),
                    security_context: Some(pod::restricted_pod_security()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            volume_claim_templates: (!claims.is_empty()).then_some(claims),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Name of the Service for clients outside the cluster.
pub fn external_service_name(stack: &str) -> String {
    format!("{stack}-nats-external")
}

/// The Service of `spec.nats.expose` (pure): the client port on a
/// NodePort or LoadBalancer Service; `None` without `expose`. The Interpret
/// applies it after the client Service. (The WebSocket port joins it when
/// nats.conf renders a `websocket {}` block.)
pub fn external_service(input: &NatsInput) -> Option<Service> {
    let expose = input.spec.expose.as_ref()?;
    let type_ = match expose.type_ {
        fleet_crds::ExposeType::NodePort => "NodePort",
        fleet_crds::ExposeType::LoadBalancer => "LoadBalancer",
    };
    let mut port = pod::service_port("client", CLIENT_PORT);
    port.node_port = match expose.type_ {
        fleet_crds::ExposeType::NodePort => expose.node_port,
        fleet_crds::ExposeType::LoadBalancer => None,
    };
    Some(Service {
        metadata: meta(input, &external_service_name(&input.stack)),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(labels::selector_labels(&input.stack, COMPONENT)),
            ports: Some(vec![port]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The NATS pods' NetworkPolicy (pure): default deny for ingress, then
/// exactly the flows NATS needs: the client port from anywhere (in-cluster
/// clients, and devices whose NodePort traffic arrives with a node
/// address), routes only from the other NATS pods, the monitoring port only
/// from `monitor_peers` (the controller running the smoke probe,
/// Prometheus).
pub fn network_policy(
    input: &NatsInput,
    monitor_peers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    use k8s_openapi::api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    };
    let selector = LabelSelector {
        match_labels: Some(labels::selector_labels(&input.stack, COMPONENT)),
        ..Default::default()
    };
    let port = |p: u16| NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(p))),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: meta(input, &format!("{}-nats", input.stack)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector.clone()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![port(CLIENT_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(selector),
                        ..Default::default()
                    }]),
                    ports: Some(vec![port(CLUSTER_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(monitor_peers),
                    ports: Some(vec![port(MONITOR_PORT)]),
                },
            ]),
            ..Default::default()
        }),
    }
}
