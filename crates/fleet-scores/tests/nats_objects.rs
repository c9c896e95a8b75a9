//! The NATS desired state is a pure function of the spec: checked here
//! without a cluster, and the rendered nats.conf is checked by a real
//! nats-server (`-t`).

use std::process::Command;

use fleet_crds::NatsSpec;
use fleet_scores::labels::{CONFIG_HASH, DESIRED_HASH};
use fleet_scores::nats::{self, NatsInput, NatsObjects};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

fn input(spec: NatsSpec, pdb_v1: bool) -> NatsInput {
    NatsInput {
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
        spec,
        pdb_v1,
    }
}

fn replicas(n: i32) -> NatsSpec {
    NatsSpec {
        replicas: n,
        ..NatsSpec::default()
    }
}

fn config_hash(o: &NatsObjects) -> String {
    o.statefulset
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH]
        .clone()
}

#[test]
fn single_server_statefulset_follows_the_nats_chart_and_restricted_pss() {
    let o = nats::build(&input(replicas(1), true));
    let sts = o.statefulset.spec.as_ref().expect("spec");
    assert_eq!(sts.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(sts.service_name.as_deref(), Some("demo-nats-headless"));
    assert_eq!(sts.replicas, Some(1));
    let pod = sts.template.spec.as_ref().expect("pod");
    let c = &pod.containers[0];
    assert_eq!(
        c.command.as_deref(),
        Some(
            &[
                "nats-server".to_string(),
                "--config".into(),
                "/etc/nats/nats.conf".into()
            ][..]
        )
    );
    assert_eq!(c.image.as_deref(), Some(fleet_crds::DEFAULT_NATS_IMAGE));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    // Server name from the pod name.
    let env = c.env.as_ref().expect("env");
    let server_name = env
        .iter()
        .find(|e| e.name == "SERVER_NAME")
        .expect("SERVER_NAME");
    assert_eq!(
        server_name
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.name"
    );
    // Passwords only by reference.
    assert!(
        env.iter()
            .filter(|e| e.name.ends_with("PASSWORD"))
            .all(|e| e.value.is_none()
                && e.value_from
                    .as_ref()
                    .unwrap()
                    .secret_key_ref
                    .as_ref()
                    .unwrap()
                    .name
                    == "demo-nats-credentials")
    );
    // Probes: the chart's /healthz variants.
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&c.startup_probe), "/healthz");
    assert_eq!(path(&c.readiness_probe), "/healthz?js-server-only=true");
    assert_eq!(path(&c.liveness_probe), "/healthz?js-enabled-only=true");
    // Lame duck on stop.
    let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    assert!(
        pre_stop.exec.as_ref().unwrap().command.as_ref().unwrap()[1].starts_with("--signal=ldm=")
    );
    // Restricted Pod Security.
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    // Services.
    let headless = o.headless_service.spec.as_ref().unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
    let client_ports: Vec<i32> = o
        .client_service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(client_ports, vec![4222, 8222]);
    // No PDB and no cluster block for one server; no JetStream by default.
    assert!(o.pdb.is_none());
    assert!(!o.config.contains("cluster {"));
    assert!(!o.config.contains("jetstream {"));
    assert!(sts.volume_claim_templates.is_none());
    // Every object owned by the stack and labelled for the controller.
    for obj in o.ordered().expect("ordered") {
        assert_eq!(
            obj.object.metadata.owner_references.as_ref().unwrap()[0].uid,
            "1234"
        );
        assert_eq!(
            obj.object.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "fleet-reconciler"
        );
        assert!(
            obj.object
                .metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(DESIRED_HASH)
        );
    }
}

#[test]
fn apply_order_is_serviceaccount_configmap_services_pdb_statefulset() {
    let o = nats::build(&input(replicas(3), true));
    let keys: Vec<String> = o
        .ordered()
        .expect("ordered")
        .iter()
        .map(|d| d.key())
        .collect();
    assert_eq!(
        keys,
        vec![
            "ServiceAccount/demo-nats",
            "ConfigMap/demo-nats-config",
            "Service/demo-nats-headless",
            "Service/demo-nats",
            "PodDisruptionBudget/demo-nats",
            "StatefulSet/demo-nats",
        ]
    );
}

#[test]
fn cluster_routes_and_pdb_only_with_several_replicas_and_policy_v1() {
    let o = nats::build(&input(replicas(3), true));
    assert!(o.config.contains("cluster {"));
    for i in 0..3 {
        assert!(
            o.config.contains(&format!(
                "nats://demo-nats-{i}.demo-nats-headless.fleet.svc.cluster.local:6222"
            )),
            "route {i} missing:\n{}",
            o.config
        );
    }
    assert!(o.pdb.is_some());
    // Kubernetes 1.20 does not serve policy/v1: no PDB.
    assert!(nats::build(&input(replicas(3), false)).pdb.is_none());
}

#[test]
fn jetstream_gets_a_volume_claim_and_a_store() {
    let mut spec = replicas(1);
    spec.jetstream.enabled = true;
    spec.jetstream.storage_class_name = Some("fast".into());
    let o = nats::build(&input(spec, true));
    assert!(o.config.contains("store_dir: /data/jetstream"));
    assert!(
        o.config
            .contains(&format!("max_file_store: {}", 1u64 << 30))
    );
    let claims = o
        .statefulset
        .spec
        .as_ref()
        .unwrap()
        .volume_claim_templates
        .as_ref()
        .expect("pvc");
    assert_eq!(
        claims[0]
            .spec
            .as_ref()
            .unwrap()
            .storage_class_name
            .as_deref(),
        Some("fast")
    );
}

#[test]
fn config_changes_change_the_pod_template_hash_and_nothing_else_does() {
    let base = nats::build(&input(replicas(1), true));
    let same = nats::build(&input(replicas(1), true));
    assert_eq!(config_hash(&base), config_hash(&same));
    let mut js = replicas(1);
    js.jetstream.enabled = true;
    assert_ne!(
        config_hash(&base),
        config_hash(&nats::build(&input(js, true)))
    );
    // replicas 1 -> 3 changes the config (routes) and so rolls the pods.
    assert_ne!(
        config_hash(&base),
        config_hash(&nats::build(&input(replicas(3), true)))
    );
    // The image is not config: it changes the StatefulSet, not the config hash.
    let mut img = replicas(1);
    img.image = "other/nats:1".into();
    let other = nats::build(&input(img, true));
    assert_eq!(config_hash(&base), config_hash(&other));
    let h = |o: &NatsObjects| o.ordered().unwrap().last().unwrap().hash.clone();
    assert_ne!(h(&base), h(&other));
}

#[test]
fn configmap_holds_no_secret() {
    let o = nats::build(&input(replicas(3), true));
    assert!(o.config.contains("password: $SYS_PASSWORD"));
    assert!(o.config.contains("password: $FLEET_PASSWORD"));
    assert!(o.config.contains("system_account: SYS"));
}

/// A real nats-server accepts every rendered variant (`nats-server -t`).
#[test]
fn real_nats_server_accepts_the_rendered_config() {
    let bin = fleet_testkit::nats_server_binary().expect("nats-server binary");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut js = replicas(3);
    js.jetstream.enabled = true;
    for (i, spec) in [replicas(1), replicas(3), js].into_iter().enumerate() {
        let o = nats::build(&input(spec, false));
        // Paths of the pod are not writable here; point them at the tempdir.
        let conf = o
            .config
            .replace("/var/run/nats", dir.path().to_str().unwrap())
            .replace("/data", dir.path().to_str().unwrap());
        let path = dir.path().join(format!("nats-{i}.conf"));
        std::fs::write(&path, &conf).expect("write");
        let out = Command::new(&bin)
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .env("SERVER_NAME", "demo-nats-0")
            .env("SYS_PASSWORD", "s3cret")
            .env("FLEET_PASSWORD", "f1eet")
            .output()
            .expect("run nats-server -t");
        assert!(
            out.status.success(),
            "nats-server rejected:\n{conf}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
