//! FleetZitadelScore: managed-mode objects (pure; Zitadel cannot run in
//! this environment) and the identity smoke probe against the real
//! stand-in issuer over HTTP (external mode).

use std::time::Duration;

use fleet_crds::{DatabaseMode, ManagedZitadelSpec, SecretRef, ZitadelDatabaseSpec};
use fleet_scores::ProbeOutcome;
use fleet_scores::secret::Sensitive;
use fleet_scores::zitadel::{self, IdentityProbeTarget, ZitadelInput, objects};
use fleet_test_issuer::{Client, IssuerConfig, TestIssuer};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

fn input(database: ZitadelDatabaseSpec) -> ZitadelInput {
    ZitadelInput {
        stack: "demo".into(),
        namespace: "fleet".into(),
        owner: OwnerReference {
            api_version: "fleet.nationtech.io/v1alpha1".into(),
            kind: "FleetStack".into(),
            name: "demo".into(),
            uid: "1234".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        spec: ManagedZitadelSpec {
            pod: None,
            image: fleet_crds::DEFAULT_ZITADEL_IMAGE.into(),
            external_domain: "id.fleet.example".into(),
            database,
            bootstrap_image: fleet_crds::DEFAULT_ZITADEL_BOOTSTRAP_IMAGE.into(),
        },
    }
}

fn bundled() -> ZitadelInput {
    input(ZitadelDatabaseSpec::default())
}

fn server(o: &zitadel::ZitadelObjects) -> &Container {
    &o.deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

fn env_value(c: &Container, name: &str) -> Option<String> {
    c.env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn env_secret(c: &Container, name: &str) -> (String, String) {
    let e = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name}"));
    assert!(e.value.is_none(), "{name} must not be a literal");
    let r = e
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap_or_else(|| panic!("{name} from a Secret"));
    (r.name.clone(), r.key.clone())
}

fn host_header(p: &Option<Probe>) -> String {
    let headers = p
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap()
        .http_headers
        .clone()
        .unwrap();
    assert_eq!(headers[0].name, "Host");
    headers[0].value.clone()
}

#[test]
fn zitadel_deployment_uses_the_masterkey_secret_external_domain_and_host_probes() {
    let o = zitadel::build(&bundled());
    let c = server(&o);
    assert_eq!(
        env_secret(c, "ZITADEL_MASTERKEY"),
        ("demo-zitadel-masterkey".into(), "masterkey".into())
    );
    assert_eq!(
        env_value(c, "ZITADEL_EXTERNALDOMAIN").as_deref(),
        Some("id.fleet.example")
    );
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "start");
    assert!(args.contains(&"--masterkeyFromEnv".to_string()));
    for p in [&c.startup_probe, &c.readiness_probe, &c.liveness_probe] {
        assert_eq!(host_header(p), "id.fleet.example");
    }
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/debug/ready")
    );
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/debug/healthz")
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
}

#[test]
fn init_and_setup_are_fixed_name_jobs_without_helm_hooks() {
    let o = zitadel::build(&bundled());
    assert_eq!(
        o.init_job.metadata.name.as_deref(),
        Some("demo-zitadel-init")
    );
    assert_eq!(
        o.setup_job.metadata.name.as_deref(),
        Some("demo-zitadel-setup")
    );
    for job in [&o.init_job, &o.setup_job] {
        let annotations = job.metadata.annotations.clone().unwrap_or_default();
        assert!(
            annotations.keys().all(|k| !k.starts_with("helm.sh/")),
            "{annotations:?}"
        );
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
        assert_eq!(
            job.metadata.owner_references.as_ref().unwrap()[0].uid,
            "1234"
        );
    }
    let init = &o
        .init_job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(init.args.as_deref(), Some(&["init".to_string()][..]));
    let setup = &pod_of(&o.setup_job).init_containers.as_ref().unwrap()[0];
    assert_eq!(setup.args.as_ref().unwrap()[0], "setup");
    assert_eq!(
        env_value(setup, "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_MACHINE_USERNAME").as_deref(),
        Some(objects::PROVISIONER_USER)
    );
    // Stages: database, init, setup, then the server.
    let stages = o.stages().unwrap();
    let keys = |v: &[fleet_scores::apply::DesiredObject]| -> Vec<String> {
        v.iter().map(|d| d.key()).collect()
    };
    assert_eq!(
        keys(&stages.database),
        ["Service/demo-zitadel-db", "StatefulSet/demo-zitadel-db"]
    );
    assert_eq!(keys(&stages.init), ["Job/demo-zitadel-init"]);
    // The setup pod's rights exist before the pod.
    assert_eq!(
        keys(&stages.setup),
        [
            "ServiceAccount/demo-zitadel-setup",
            "Role/demo-zitadel-setup",
            "RoleBinding/demo-zitadel-setup",
            "Job/demo-zitadel-setup"
        ]
    );
    assert_eq!(
        keys(&stages.run),
        ["Service/demo-zitadel", "Deployment/demo-zitadel"]
    );
}

fn pod_of(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn assert_restricted(c: &Container) {
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(
        sc,
        &fleet_scores::pod::restricted_container_security(),
        "{}",
        c.name
    );
}

#[test]
fn setup_runs_zitadel_setup_as_an_init_container_writing_the_pat_to_an_emptydir() {
    let o = zitadel::build(&bundled());
    let pod = pod_of(&o.setup_job);
    let init = pod.init_containers.as_ref().expect("init containers");
    assert_eq!(init.len(), 1);
    let setup = &init[0];
    assert_eq!(
        setup.image.as_deref(),
        Some(fleet_crds::DEFAULT_ZITADEL_IMAGE)
    );
    assert_eq!(
        setup.args.as_deref().unwrap(),
        ["setup", "--masterkeyFromEnv", "--init-projections=true"]
    );
    for (var, value) in [
        ("ZITADEL_FIRSTINSTANCE_PATPATH", "/machinekey/pat"),
        (
            "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_MACHINE_USERNAME",
            "fleet-provisioner",
        ),
        (
            "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_MACHINE_NAME",
            "fleet-provisioner",
        ),
        (
            "ZITADEL_FIRSTINSTANCE_ORG_MACHINE_PAT_EXPIRATIONDATE",
            "2099-12-31T00:00:00Z",
        ),
    ] {
        assert_eq!(env_value(setup, var).as_deref(), Some(value), "{var}");
    }
    // Setup still gets the masterkey from its Secret.
    assert_eq!(
        env_secret(setup, "ZITADEL_MASTERKEY"),
        ("demo-zitadel-masterkey".into(), "masterkey".into())
    );
    // /machinekey is an emptyDir, writable for setup, read-only for the
    // bootstrap container.
    let volumes = pod.volumes.as_ref().unwrap();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].name, "machinekey");
    assert!(volumes[0].empty_dir.is_some());
    let mounts = setup.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(
        (
            mounts[0].name.as_str(),
            mounts[0].mount_path.as_str(),
            mounts[0].read_only
        ),
        ("machinekey", "/machinekey", Some(false))
    );
    assert_restricted(setup);
    assert_eq!(
        pod.security_context.as_ref(),
        Some(&fleet_scores::pod::restricted_pod_security())
    );
}

#[test]
fn setup_main_container_is_the_bootstrap_storing_the_pat_in_the_provisioner_secret() {
    let mut i = bundled();
    i.spec.bootstrap_image = "registry.example/bootstrap:9".into();
    let o = zitadel::build(&i);
    let pod = pod_of(&o.setup_job);
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(c.name, "bootstrap");
    assert_eq!(c.image.as_deref(), Some("registry.example/bootstrap:9"));
    assert!(c.args.is_none() && c.command.is_none());
    let names = zitadel::ZitadelNames::new("demo");
    assert_eq!(names.provisioner_secret, "demo-zitadel-provisioner");
    assert_eq!(
        env_value(c, "FLEET_PAT_FILE").as_deref(),
        Some("/machinekey/pat")
    );
    assert_eq!(
        env_value(c, "FLEET_PAT_SECRET").as_deref(),
        Some("demo-zitadel-provisioner")
    );
    let ns = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "POD_NAMESPACE")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .expect("POD_NAMESPACE from the downward API");
    assert_eq!(ns.field_path, "metadata.namespace");
    assert_eq!(
        env_value(c, "FLEET_PAT_SECRET_LABELS").as_deref(),
        Some(
            "app.kubernetes.io/component=identity,app.kubernetes.io/instance=demo,\
             app.kubernetes.io/managed-by=fleet-reconciler,app.kubernetes.io/name=identity,\
             app.kubernetes.io/part-of=fleetstack"
        )
    );
    for (var, value) in [
        ("FLEET_OWNER_API_VERSION", "fleet.nationtech.io/v1alpha1"),
        ("FLEET_OWNER_KIND", "FleetStack"),
        ("FLEET_OWNER_NAME", "demo"),
        ("FLEET_OWNER_UID", "1234"),
    ] {
        assert_eq!(env_value(c, var).as_deref(), Some(value), "{var}");
    }
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert_eq!(
        (
            mounts[0].name.as_str(),
            mounts[0].mount_path.as_str(),
            mounts[0].read_only
        ),
        ("machinekey", "/machinekey", Some(true))
    );
    assert_restricted(c);
    // The CRD default.
    assert_eq!(
        fleet_crds::DEFAULT_ZITADEL_BOOTSTRAP_IMAGE,
        "fleetstack/fleet-zitadel-bootstrap:0.1.0"
    );
}

#[test]
fn setup_role_allows_exactly_create_and_patch_of_the_provisioner_secret() {
    let o = zitadel::build(&bundled());
    let expected = vec![PolicyRule {
        api_groups: Some(vec!["".into()]),
        resources: Some(vec!["secrets".into()]),
        resource_names: Some(vec!["demo-zitadel-provisioner".into()]),
        verbs: vec!["create".into(), "patch".into()],
        ..Default::default()
    }];
    assert_eq!(o.setup_role.rules.as_ref(), Some(&expected));
    assert_eq!(
        o.setup_role.metadata.name.as_deref(),
        Some("demo-zitadel-setup")
    );
    let binding = &o.setup_role_binding;
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, "demo-zitadel-setup");
    let subjects = binding.subjects.as_ref().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (
            subjects[0].kind.as_str(),
            subjects[0].name.as_str(),
            subjects[0].namespace.as_deref()
        ),
        ("ServiceAccount", "demo-zitadel-setup", Some("fleet"))
    );
    for meta in [
        &o.setup_service_account.metadata,
        &o.setup_role.metadata,
        &binding.metadata,
    ] {
        assert_eq!(meta.owner_references.as_ref().unwrap()[0].uid, "1234");
        assert_eq!(
            meta.labels.as_ref().unwrap()["app.kubernetes.io/component"],
            "identity"
        );
    }
}

#[test]
fn only_the_setup_pod_mounts_a_service_account_token() {
    let o = zitadel::build(&bundled());
    let setup = pod_of(&o.setup_job);
    assert_eq!(
        setup.service_account_name.as_deref(),
        Some("demo-zitadel-setup")
    );
    assert_eq!(setup.automount_service_account_token, Some(true));
    // The account itself does not automount: only the pod that opts in.
    assert_eq!(
        o.setup_service_account.automount_service_account_token,
        Some(false)
    );
    let (_, sts) = o.database.as_ref().unwrap();
    let others = [
        pod_of(&o.init_job),
        o.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap(),
        sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap(),
    ];
    for pod in others {
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert!(pod.service_account_name.is_none());
    }
}

#[test]
fn bundled_postgres_uses_the_official_image_and_the_write_once_password() {
    let o = zitadel::build(&bundled());
    let (svc, sts) = o.database.as_ref().expect("bundled database");
    assert_eq!(
        svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    let spec = sts.spec.as_ref().unwrap();
    let c = &spec.template.spec.as_ref().unwrap().containers[0];
    assert!(c.image.as_deref().unwrap().starts_with("postgres:"));
    assert_eq!(
        env_secret(c, "POSTGRES_PASSWORD"),
        (
            "demo-zitadel-db".into(),
            objects::DB_ADMIN_PASSWORD_KEY.into()
        )
    );
    assert_eq!(spec.volume_claim_templates.as_ref().unwrap().len(), 1);
    assert_eq!(
        c.security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );
    // Zitadel reaches it by its Service name with the same passwords.
    let z = server(&o);
    assert_eq!(
        env_value(z, "ZITADEL_DATABASE_POSTGRES_HOST").as_deref(),
        Some("demo-zitadel-db.fleet.svc.cluster.local")
    );
    assert_eq!(
        env_secret(z, "ZITADEL_DATABASE_POSTGRES_ADMIN_PASSWORD"),
        (
            "demo-zitadel-db".into(),
            objects::DB_ADMIN_PASSWORD_KEY.into()
        )
    );
    assert_eq!(
        env_secret(z, "ZITADEL_DATABASE_POSTGRES_USER_PASSWORD"),
        (
            "demo-zitadel-db".into(),
            objects::DB_USER_PASSWORD_KEY.into()
        )
    );
}

#[test]
fn external_database_comes_from_the_secret_ref_and_no_postgres_is_built() {
    let o = zitadel::build(&input(ZitadelDatabaseSpec {
        pod: None,
        mode: DatabaseMode::External,
        secret_ref: Some(SecretRef {
            name: "pg-conn".into(),
        }),
    }));
    assert!(o.database.is_none());
    assert!(o.stages().unwrap().database.is_empty());
    let z = server(&o);
    for (var, key) in [
        ("ZITADEL_DATABASE_POSTGRES_HOST", "host"),
        ("ZITADEL_DATABASE_POSTGRES_USER_PASSWORD", "password"),
        ("ZITADEL_DATABASE_POSTGRES_ADMIN_PASSWORD", "adminPassword"),
    ] {
        assert_eq!(env_secret(z, var), ("pg-conn".into(), key.into()));
    }
}

#[test]
fn the_masterkey_generator_gives_exactly_32_ascii_characters() {
    // The Interpret fills the masterkey with the write-once password
    // generator; Zitadel requires exactly 32 characters.
    for _ in 0..20 {
        let k = fleet_scores::secret::generate_password();
        assert_eq!(k.expose().len(), 32);
        assert!(k.expose().is_ascii());
    }
}

async fn issuer() -> TestIssuer {
    TestIssuer::start(IssuerConfig {
        clients: vec![Client::new("fleet-probe", "probe-secret")],
        ..IssuerConfig::default()
    })
    .await
    .expect("issuer starts")
}

fn target(issuer: &str, secret: &str) -> IdentityProbeTarget {
    IdentityProbeTarget {
        issuer: issuer.into(),
        reach_at: None,
        zitadel_ready: false,
        client: Some(("fleet-probe".into(), Sensitive::new(secret))),
        scope: Some("openid".into()),
    }
}

#[tokio::test]
async fn external_probe_passes_when_discovery_answers_and_the_probe_identity_gets_a_token() {
    let issuer = issuer().await;
    let outcome = zitadel::smoke_probe(
        &target(issuer.url(), "probe-secret"),
        Duration::from_secs(5),
    )
    .await;
    assert!(outcome.passed(), "{outcome:?}");
}

#[tokio::test]
async fn external_probe_fails_on_a_refused_client_without_echoing_the_secret() {
    let issuer = issuer().await;
    let outcome =
        zitadel::smoke_probe(&target(issuer.url(), "wrong-7c1e"), Duration::from_secs(5)).await;
    match outcome {
        ProbeOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, "TokenRefused");
            assert!(
                message.contains("fleet-probe") && message.contains("invalid_client"),
                "{message}"
            );
            assert!(!message.contains("wrong-7c1e"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn external_probe_fails_on_an_issuer_mismatch_or_an_unreachable_issuer() {
    let issuer = issuer().await;
    // Reached at the right place but configured with another issuer URL.
    let mut t = target("http://idp.other.example", "probe-secret");
    t.reach_at = Some(issuer.url().to_string());
    let outcome = zitadel::smoke_probe(&t, Duration::from_secs(5)).await;
    assert!(
        matches!(
            outcome,
            ProbeOutcome::Failed {
                reason: "IssuerMismatch",
                ..
            }
        ),
        "{outcome:?}"
    );
    let url = issuer.url().to_string();
    issuer.shutdown().await;
    let outcome = zitadel::smoke_probe(&target(&url, "probe-secret"), Duration::from_secs(5)).await;
    match outcome {
        ProbeOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, "IdentityUnreachable");
            assert!(message.contains(&url), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn managed_style_probe_checks_debug_ready_first() {
    // The stand-in issuer has no /debug/ready: a Zitadel-style probe must
    // fail there, proving the readiness step runs.
    let issuer = issuer().await;
    let mut t = target(issuer.url(), "probe-secret");
    t.zitadel_ready = true;
    let outcome = zitadel::smoke_probe(&t, Duration::from_secs(5)).await;
    assert!(
        matches!(
            outcome,
            ProbeOutcome::Failed {
                reason: "IdentityNotReady",
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn no_pod_of_the_identity_component_gets_service_link_variables() {
    // A Service named `zitadel` would otherwise inject ZITADEL_PORT=tcp://...,
    // which Zitadel reads as its Port setting.
    for i in [
        bundled(),
        input(ZitadelDatabaseSpec {
            pod: None,
            mode: DatabaseMode::External,
            secret_ref: Some(SecretRef {
                name: "pg-conn".into(),
            }),
        }),
    ] {
        let o = zitadel::build(&i);
        let mut pods = vec![
            ("init Job", pod_of(&o.init_job)),
            ("setup Job", pod_of(&o.setup_job)),
            (
                "Deployment",
                o.deployment
                    .spec
                    .as_ref()
                    .unwrap()
                    .template
                    .spec
                    .as_ref()
                    .unwrap(),
            ),
        ];
        if let Some((_, sts)) = &o.database {
            pods.push((
                "PostgreSQL",
                sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap(),
            ));
        }
        assert_eq!(
            pods.len(),
            if o.database.is_some() { 4 } else { 3 },
            "every pod template is checked"
        );
        for (what, pod) in pods {
            assert_eq!(pod.enable_service_links, Some(false), "{what}");
        }
    }
}

#[test]
fn the_setup_container_may_use_2gi_for_init_projections() {
    let o = zitadel::build(&bundled());
    let setup = &pod_of(&o.setup_job).init_containers.as_ref().unwrap()[0];
    let resources = setup.resources.as_ref().unwrap();
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let memory = |m: &Option<std::collections::BTreeMap<String, Quantity>>| {
        m.as_ref().unwrap()["memory"].clone()
    };
    assert_eq!(memory(&resources.limits), Quantity("2Gi".into()));
    assert_eq!(memory(&resources.requests), Quantity("512Mi".into()));
    assert_eq!(objects::SETUP_MEMORY, ("512Mi", "2Gi"));
    // The server keeps its own (smaller) limit.
    let server = server(&o).resources.as_ref().unwrap();
    assert_eq!(memory(&server.limits), Quantity("512Mi".into()));
}
