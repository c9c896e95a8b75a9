//! Desired objects of a managed Zitadel (pure): a bundled PostgreSQL
//! (official image) unless an external database is given, the `init` and
//! `setup` Jobs with fixed names (operator-owned and gated on completion by
//! the Interpret: no Helm hooks, which deadlock under Flux and Argo CD), and
//! the Zitadel Deployment and Service.
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
    ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

use crate::apply::DesiredObject;
use crate::labels;
use crate::pod;
use crate::score::InterpretError;

pub const COMPONENT: &str = "identity";
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
            setup: vec![DesiredObject::new(&self.setup_job)?],
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
    let statefulset = StatefulSet {
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
    (service, statefulset)
}

/// Builds every desired object of a managed Zitadel (pure).
pub fn build(input: &ZitadelInput) -> ZitadelObjects {
    let names = ZitadelNames::new(&input.stack);
    let database = (input.spec.database.mode == DatabaseMode::Bundled
        || input.spec.database.secret_ref.is_none())
    .then(|| postgres(input, &names));

    let init_job = job(
        input,
        &names.init_job,
        zitadel_container(input, &names, &["init"]),
    );
    let mut setup = zitadel_container(
        input,
        &names,
        &["setup", "--masterkeyFromEnv", "--init-projections=true"],
    );
    if let Some(env) = setup.env.as_mut() {
        // The first instance gets a machine user whose credentials
        // provision the per-agent machine users (ADR 0034).
        env.push(pod::env(
            "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_MACHINE_USERNAME",
            PROVISIONER_USER,
        ));
        env.push(pod::env(
            "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_MACHINE_NAME",
            "FleetStack provisioner",
        ));
    }
    let setup_job = job(input, &names.setup_job, setup);

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
    let deployment = Deployment {
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
    ZitadelObjects {
        database,
        init_job,
        setup_job,
        service,
        deployment,
    }
}
