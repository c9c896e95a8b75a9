//! Desired objects of a managed Zitadel (pure): a bundled PostgreSQL
//! (official image) unless an external database is given, the `init` and
//! `setup` Jobs with fixed names (operator-owned and gated on completion by
//! the Interpret: no Helm hooks, which deadlock under Flux and Argo CD), and
//! the Zitadel Deployment and Service.
//!
//! The setup Job also stores the provisioner credential: `zitadel setup`
//! runs as an init container and, on the very first successful setup only,
//! writes the `fleet-provisioner` machine user's Personal Access Token to an
//! emptyDir; the main container, fleet-zitadel-bootstrap (the Zitadel image
//! is distroless and 1.20 has no native sidecars), copies it into the Secret
//! `<stack>-zitadel-provisioner` (key `pat`). That pod alone mounts a
//! ServiceAccount token, whose Role allows exactly that write
//! ([`setup_rules`]).
//!
//! Secrets are referenced, never inlined: the masterkey and the bundled
//! database's passwords live in write-once Secrets the Interpret creates
//! before anything uses them; an external database's settings come from the
//! user's Secret (`spec.identity.managed.database.secretRef`).

use fleet_crds::{DatabaseMode, ManagedZitadelSpec};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, HTTPHeader, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Service,
    ServiceAccount, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

use crate::apply::DesiredObject;
use crate::labels;
use crate::pod;
use crate::pod_overrides::{self, Defaults};
use crate::score::InterpretError;

/// The label value of this component's objects.
pub const COMPONENT: &str = crate::Component::Identity.name();
pub const HTTP_PORT: u16 = 8080;
pub const POSTGRES_PORT: u16 = 5432;
pub const POSTGRES_IMAGE: &str = "postgres:17-alpine";
/// uid/gid of the `postgres` user in the official image.
pub const POSTGRES_UID: i64 = 70;
/// Keys of the write-once Secrets.
pub const MASTERKEY_KEY: &str = "masterkey";
pub const DB_ADMIN_PASSWORD_KEY: &str = "admin-password";
pub const DB_USER_PASSWORD_KEY: &str = "user-password";
/// Keys expected in an external database's Secret.
pub const EXTERNAL_DB_KEYS: [&str; 7] = [
    "host",
    "port",
    "database",
    "username",
    "password",
    "adminUsername",
    "adminPassword",
];
/// The machine user setup creates in the first instance; its credentials
/// are what provisions the per-agent machine users (docs/adr/0034).
pub const PROVISIONER_USER: &str = "fleet-provisioner";
/// The emptyDir `zitadel setup` writes the provisioner's PAT to
/// (`ZITADEL_FIRSTINSTANCE_PATPATH`), shared with the bootstrap container.
pub const PAT_DIR: &str = "/machinekey";
pub const PAT_FILE: &str = "/machinekey/pat";
/// Setup creates the PAT only when an expiration date is configured.
pub const PAT_EXPIRATION: &str = "2099-12-31T00:00:00Z";
/// Key of the provisioner Secret holding the PAT (written by
/// crates/fleet-zitadel-bootstrap).
pub const PROVISIONER_PAT_KEY: &str = "pat";
/// Memory of the `zitadel setup --init-projections` container (request,
/// limit). Zitadel documents ~512MB for a running instance
/// (docs/docs/self-hosting/manage/production.md, zitadel#6032); setup
/// additionally prefills every projection in the same process
/// (zitadel#7194), so the server's 512Mi limit leaves no headroom, and an
/// OOM-killed setup pod loses the PAT it was about to write. See
/// docs/adr/0037.
pub const SETUP_MEMORY: (&str, &str) = ("512Mi", "2Gi");

/// No `<SERVICE>_PORT=tcp://...` variables in Zitadel's pods: a Service
/// named `zitadel` in the namespace would inject `ZITADEL_PORT`, which
/// Zitadel's configuration (env prefix `ZITADEL_`) reads as its `Port`
/// setting and fails to start on. The official chart sets
/// `enableServiceLinks: false` on every pod for this reason.
const ENABLE_SERVICE_LINKS: bool = false;

#[derive(Debug, Clone)]
pub struct ZitadelInput {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: ManagedZitadelSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZitadelNames {
    pub deployment: String,
    pub service: String,
    pub init_job: String,
    pub setup_job: String,
    /// ServiceAccount, Role and RoleBinding of the setup Job's pod.
    pub setup_service_account: String,
    pub setup_role: String,
    pub setup_role_binding: String,
    /// The provisioner's PAT (key [`PROVISIONER_PAT_KEY`]), written by the
    /// setup Job's bootstrap container on the first successful setup.
    pub provisioner_secret: String,
    pub masterkey_secret: String,
    pub db_secret: String,
    pub db_statefulset: String,
    pub db_service: String,
    /// Where agents' client credentials are kept: one key per agent id.
    pub agents_secret: String,
}

impl ZitadelNames {
    pub fn new(stack: &str) -> Self {
        ZitadelNames {
            deployment: format!("{stack}-zitadel"),
            service: format!("{stack}-zitadel"),
            init_job: format!("{stack}-zitadel-init"),
            setup_job: format!("{stack}-zitadel-setup"),
            setup_service_account: format!("{stack}-zitadel-setup"),
            setup_role: format!("{stack}-zitadel-setup"),
            setup_role_binding: format!("{stack}-zitadel-setup"),
            provisioner_secret: format!("{stack}-zitadel-provisioner"),
            masterkey_secret: format!("{stack}-zitadel-masterkey"),
            db_secret: format!("{stack}-zitadel-db"),
            db_statefulset: format!("{stack}-zitadel-db"),
            db_service: format!("{stack}-zitadel-db"),
            agents_secret: format!("{stack}-agent-oidc"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ZitadelObjects {
    /// Bundled database: headless Service and StatefulSet.
    pub database: Option<(Service, StatefulSet)>,
    pub init_job: Job,
    /// The setup pod's own ServiceAccount, Role and RoleBinding.
    pub setup_service_account: ServiceAccount,
    pub setup_role: Role,
    pub setup_role_binding: RoleBinding,
    pub setup_job: Job,
    pub service: Service,
    pub deployment: Deployment,
}

/// Apply stages: each waits for the previous one (database ready, init Job
/// complete, setup Job complete) before the next is applied.
pub struct ZitadelStages {
    pub database: Vec<DesiredObject>,
    pub init: Vec<DesiredObject>,
    pub setup: Vec<DesiredObject>,
    pub run: Vec<DesiredObject>,
}

impl ZitadelObjects {
    pub fn stages(&self) -> Result<ZitadelStages, InterpretError> {
        let mut database = Vec::new();
        if let Some((svc, sts)) = &self.database {
            database.push(DesiredObject::new(svc)?);
            database.push(DesiredObject::new(sts)?);
        }
        Ok(ZitadelStages {
            database,
            init: vec![DesiredObject::new(&self.init_job)?],
            // The rights exist before the pod that uses them.
            setup: vec![
                DesiredObject::new(&self.setup_service_account)?,
                DesiredObject::new(&self.setup_role)?,
                DesiredObject::new(&self.setup_role_binding)?,
                DesiredObject::new(&self.setup_job)?,
            ],
            run: vec![
                DesiredObject::new(&self.service)?,
                DesiredObject::new(&self.deployment)?,
            ],
        })
    }
}

fn meta(input: &ZitadelInput, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(input.namespace.clone()),
        labels: Some(labels::component_labels(&input.stack, COMPONENT)),
        owner_references: Some(vec![input.owner.clone()]),
        ..Default::default()
    }
}

/// Database settings for Zitadel (`ZITADEL_DATABASE_POSTGRES_*`).
fn database_env(input: &ZitadelInput, names: &ZitadelNames) -> Vec<EnvVar> {
    const P: &str = "ZITADEL_DATABASE_POSTGRES_";
    let var = |suffix: &str| format!("{P}{suffix}");
    match (input.spec.database.mode, &input.spec.database.secret_ref) {
        (DatabaseMode::External, Some(secret)) => {
            let s = &secret.name;
            vec![
                pod::secret_env(&var("HOST"), s, "host"),
                pod::secret_env(&var("PORT"), s, "port"),
                pod::secret_env(&var("DATABASE"), s, "database"),
                pod::secret_env(&var("USER_USERNAME"), s, "username"),
                pod::secret_env(&var("USER_PASSWORD"), s, "password"),
                pod::secret_env(&var("ADMIN_USERNAME"), s, "adminUsername"),
                pod::secret_env(&var("ADMIN_PASSWORD"), s, "adminPassword"),
                pod::env(&var("USER_SSL_MODE"), "require"),
                pod::env(&var("ADMIN_SSL_MODE"), "require"),
            ]
        }
        // Bundled (an External without secretRef is refused by validation
        // before build; falling back to bundled keeps build total).
        _ => vec![
            pod::env(
                &var("HOST"),
                format!("{}.{}.svc.cluster.local", names.db_service, input.namespace),
            ),
            pod::env(&var("PORT"), POSTGRES_PORT.to_string()),
            pod::env(&var("DATABASE"), "zitadel"),
            pod::env(&var("USER_USERNAME"), "zitadel"),
            pod::secret_env(
                &var("USER_PASSWORD"),
                &names.db_secret,
                DB_USER_PASSWORD_KEY,
            ),
            pod::env(&var("ADMIN_USERNAME"), "postgres"),
            pod::secret_env(
                &var("ADMIN_PASSWORD"),
                &names.db_secret,
                DB_ADMIN_PASSWORD_KEY,
            ),
            // In-cluster traffic to our own database.
            pod::env(&var("USER_SSL_MODE"), "disable"),
            pod::env(&var("ADMIN_SSL_MODE"), "disable"),
        ],
    }
}

/// Settings every Zitadel process (init, setup, start) shares.
fn zitadel_env(input: &ZitadelInput, names: &ZitadelNames) -> Vec<EnvVar> {
    let mut env = vec![
        pod::env("ZITADEL_EXTERNALDOMAIN", input.spec.external_domain.clone()),
        // TLS is terminated in front of Zitadel (Ingress/Gateway) or not
        // at all in tests; the issuer is http://<domain>:8080 until then.
        pod::env("ZITADEL_EXTERNALPORT", HTTP_PORT.to_string()),
        pod::env("ZITADEL_EXTERNALSECURE", "false"),
        pod::env("ZITADEL_TLS_ENABLED", "false"),
        pod::secret_env("ZITADEL_MASTERKEY", &names.masterkey_secret, MASTERKEY_KEY),
    ];
    env.extend(database_env(input, names));
    env
}

/// Probes must carry `Host: <ExternalDomain>` or Zitadel answers
/// "Instance not found". (`httpGet.host` would not do: it sets the address
/// the kubelet connects to, not the header.)
fn zitadel_probe(input: &ZitadelInput, path: &str, period: i32, failures: i32) -> Probe {
    let mut probe = pod::http_probe("http", path, period, failures);
    if let Some(get) = probe.http_get.as_mut() {
        get.http_headers = Some(vec![HTTPHeader {
            name: "Host".into(),
            value: input.spec.external_domain.clone(),
        }]);
    }
    probe
}

fn zitadel_container(input: &ZitadelInput, names: &ZitadelNames, args: &[&str]) -> Container {
    Container {
        name: "zitadel".into(),
        image: Some(input.spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        env: Some(zitadel_env(input, names)),
        resources: Some(pod::resources(
            None,
            &[("cpu", "100m", "1"), ("memory", "256Mi", "512Mi")],
        )),
        security_context: Some(pod::restricted_container_security()),
        ..Default::default()
    }
}

fn job(input: &ZitadelInput, name: &str, container: Container) -> Job {
    Job {
        metadata: meta(input, name),
        spec: Some(JobSpec {
            backoff_limit: Some(6),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::component_labels(&input.stack, COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("OnFailure".into()),
                    enable_service_links: Some(ENABLE_SERVICE_LINKS),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod::restricted_pod_security()),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The setup pod's Role: exactly what fleet-zitadel-bootstrap does, one
/// server-side apply of the provisioner Secret. An apply is authorized as
/// `patch`, and also as `create` when it creates the object; unlike a POST,
/// an apply names the object, so `create` is limited to that name as well
/// (checked against the 1.20 API server by
/// crates/fleet-zitadel-bootstrap/tests/binary.rs). No `get`: the binary
/// never reads the Secret.
pub fn setup_rules(names: &ZitadelNames) -> Vec<PolicyRule> {
    vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["secrets".into()]),
        resource_names: Some(vec![names.provisioner_secret.clone()]),
        verbs: vec!["create".into(), "patch".into()],
        ..Default::default()
    }]
}

fn setup_rbac(input: &ZitadelInput, names: &ZitadelNames) -> (ServiceAccount, Role, RoleBinding) {
    let service_account = ServiceAccount {
        metadata: meta(input, &names.setup_service_account),
        // Off like every other account; the setup pod opts in (the pod
        // field wins), so the token is mounted only there.
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let role = Role {
        metadata: meta(input, &names.setup_role),
        rules: Some(setup_rules(names)),
    };
    let role_binding = RoleBinding {
        metadata: meta(input, &names.setup_role_binding),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names.setup_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.setup_service_account.clone(),
            namespace: Some(input.namespace.clone()),
            ..Default::default()
        }]),
    };
    (service_account, role, role_binding)
}

/// `k=v,k=v` for FLEET_PAT_SECRET_LABELS.
fn label_list(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The bootstrap container's environment
/// (crates/fleet-zitadel-bootstrap/src/main.rs): the Secret gets the
/// component's labels and the FleetStack as owner, like every object the
/// reconciler writes, so pruning, `.owns()` watches and garbage collection
/// treat it as the reconciler's own.
pub fn bootstrap_env(input: &ZitadelInput, names: &ZitadelNames) -> Vec<EnvVar> {
    vec![
        pod::env("FLEET_PAT_FILE", PAT_FILE),
        pod::env("FLEET_PAT_SECRET", names.provisioner_secret.clone()),
        pod::field_env("POD_NAMESPACE", "metadata.namespace"),
        pod::env(
            "FLEET_PAT_SECRET_LABELS",
            label_list(&labels::component_labels(&input.stack, COMPONENT)),
        ),
        pod::env("FLEET_OWNER_API_VERSION", input.owner.api_version.clone()),
        pod::env("FLEET_OWNER_KIND", input.owner.kind.clone()),
        pod::env("FLEET_OWNER_NAME", input.owner.name.clone()),
        pod::env("FLEET_OWNER_UID", input.owner.uid.clone()),
    ]
}

/// `zitadel setup` as the init container (creates the provisioner machine
/// user with a PAT in [`PAT_FILE`]), fleet-zitadel-bootstrap as the main
/// container (stores it), with the pod's own ServiceAccount token.
fn setup_job(input: &ZitadelInput, names: &ZitadelNames) -> Job {
    let pat_mount = |read_only: bool| VolumeMount {
        name: "machinekey".into(),
        mount_path: PAT_DIR.into(),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut setup = zitadel_container(
        input,
        names,
        &["setup", "--masterkeyFromEnv", "--init-projections=true"],
    );
    setup.name = "zitadel-setup".into();
    setup.resources = Some(pod::resources(
        None,
        &[
            ("cpu", "100m", "1"),
            ("memory", SETUP_MEMORY.0, SETUP_MEMORY.1),
        ],
    ));
    if let Some(env) = setup.env.as_mut() {
        // The first instance gets a machine user whose PAT provisions the
        // per-agent machine users (ADR 0034). Setup creates the PAT only
        // with an expiration date, and writes it only on its first success.
        env.extend([
            pod::env(
                "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_MACHINE_USERNAME",
                PROVISIONER_USER,
            ),
            pod::env(
                "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_MACHINE_NAME",
                PROVISIONER_USER,
            ),
            pod::env(
                "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_PAT_EXPIRATIONDATE",
                PAT_EXPIRATION,
            ),
            pod::env("ZITADEL_FIRSTINSTANCE_PATPATH", PAT_FILE),
        ]);
    }
    setup.volume_mounts = Some(vec![pat_mount(false)]);
    let bootstrap = Container {
        name: "bootstrap".into(),
        image: Some(input.spec.bootstrap_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(bootstrap_env(input, names)),
        volume_mounts: Some(vec![pat_mount(true)]),
        resources: Some(pod::resources(
            None,
            &[("cpu", "10m", "200m"), ("memory", "16Mi", "64Mi")],
        )),
        security_context: Some(pod::restricted_container_security()),
        ..Default::default()
    };
    let mut job = job(input, &names.setup_job, bootstrap);
    if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod.init_containers = Some(vec![setup]);
        pod.service_account_name = Some(names.setup_service_account.clone());
        // The bootstrap container is a Kubernetes client (in-cluster
        // config). The ServiceAccount admission plugin mounts the token in
        // the init container too; its Role allows only the write above.
        pod.automount_service_account_token = Some(true);
        pod.volumes = Some(vec![Volume {
            name: "machinekey".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]);
    }
    job
}

fn postgres(input: &ZitadelInput, names: &ZitadelNames) -> (Service, StatefulSet) {
    let selector = {
        let mut s = labels::selector_labels(&input.stack, COMPONENT);
        s.insert(labels::NAME.into(), "postgres".into());
        s
    };
    let mut pod_labels = labels::component_labels(&input.stack, COMPONENT);
    pod_labels.extend(selector.clone());
    let service = Service {
        metadata: meta(input, &names.db_service),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector.clone()),
            ports: Some(vec![pod::service_port("postgres", POSTGRES_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut security = pod::restricted_container_security();
    security.run_as_user = Some(POSTGRES_UID);
    security.run_as_group = Some(POSTGRES_UID);
    let container = Container {
        name: "postgres".into(),
        image: Some(POSTGRES_IMAGE.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vec![
            pod::env("POSTGRES_USER", "postgres"),
            pod::secret_env("POSTGRES_PASSWORD", &names.db_secret, DB_ADMIN_PASSWORD_KEY),
            // A subdirectory: the volume root holds lost+found on many
            // provisioners, which initdb refuses.
            pod::env("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ]),
        ports: Some(vec![pod::container_port("postgres", POSTGRES_PORT)]),
        readiness_probe: Some(Probe {
            exec: Some(k8s_openapi::api::core::v1::ExecAction {
                command: Some(vec!["pg_isready".into(), "-U".into(), "postgres".into()]),
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/var/lib/postgresql/data".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "run".into(),
                mount_path: "/var/run/postgresql".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..Default::default()
            },
        ]),
        resources: Some(pod::resources(
            None,
            &[("cpu", "50m", "1"), ("memory", "128Mi", "512Mi")],
        )),
        security_context: Some(security),
        ..Default::default()
    };
    let empty = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    let mut statefulset = StatefulSet {
        metadata: meta(input, &names.db_statefulset),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names.db_service.clone()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    enable_service_links: Some(ENABLE_SERVICE_LINKS),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(POSTGRES_UID),
                        run_as_group: Some(POSTGRES_UID),
                        fs_group: Some(POSTGRES_UID),
                        ..pod::restricted_pod_security()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![empty("run"), empty("tmp")]),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(labels::component_labels(&input.stack, COMPONENT)),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity("5Gi".into()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    pod_overrides::apply(
        &mut statefulset,
        input.spec.database.pod.as_ref(),
        &Defaults::none(),
    );
    (service, statefulset)
}

/// Builds every desired object of a managed Zitadel (pure).
pub fn build(input: &ZitadelInput) -> ZitadelObjects {
    let names = ZitadelNames::new(&input.stack);
    let database = (input.spec.database.mode == DatabaseMode::Bundled
        || input.spec.database.secret_ref.is_none())
    .then(|| postgres(input, &names));

    let mut init_job = job(
        input,
        &names.init_job,
        zitadel_container(input, &names, &["init"]),
    );
    let (setup_service_account, setup_role, setup_role_binding) = setup_rbac(input, &names);
    let mut setup_job = setup_job(input, &names);

    let selector = labels::selector_labels(&input.stack, COMPONENT);
    let mut pod_labels = labels::component_labels(&input.stack, COMPONENT);
    pod_labels.extend(selector.clone());
    let mut server = zitadel_container(
        input,
        &names,
        &["start", "--masterkeyFromEnv", "--tlsMode", "disabled"],
    );
    server.ports = Some(vec![pod::container_port("http", HTTP_PORT)]);
    server.startup_probe = Some(zitadel_probe(input, "/debug/ready", 2, 60));
    server.readiness_probe = Some(zitadel_probe(input, "/debug/ready", 5, 3));
    server.liveness_probe = Some(zitadel_probe(input, "/debug/healthz", 10, 3));
    let service = Service {
        metadata: meta(input, &names.service),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![pod::service_port("http", HTTP_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut deployment = Deployment {
        metadata: meta(input, &names.deployment),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    enable_service_links: Some(ENABLE_SERVICE_LINKS),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod::restricted_pod_security()),
                    containers: vec![server],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = input.spec.pod.as_ref();
    pod_overrides::apply(&mut deployment, pod, &Defaults::none());
    pod_overrides::apply(&mut init_job, pod, &Defaults::none());
    pod_overrides::apply(&mut setup_job, pod, &Defaults::none());
    ZitadelObjects {
        database,
        init_job,
        setup_service_account,
        setup_role,
        setup_role_binding,
        setup_job,
        service,
        deployment,
    }
}
