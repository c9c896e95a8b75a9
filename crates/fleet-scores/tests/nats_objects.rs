//! The NATS desired state is a pure function of the spec: checked here
//! without a cluster, and the rendered nats.conf is checked by a real
//! nats-server (`-t`).

use std::process::Command;

use fleet_crds::NatsSpec;
use fleet_scores::labels::{CONFIG_HASH, DESIRED_HASH};
use fleet_scores::nats::{self, NatsInput, NatsObjects};
use fleet_scores::secret::Sensitive;

mod common;

fn input(spec: NatsSpec, pdb_v1: bool) -> NatsInput {
    NatsInput {
        stack: "demo".into(),
        namespace: "fleet".into(),
        owner: common::owner(),
        spec,
        pdb_v1,
        callout: None,
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
    let plain = [replicas(1), replicas(3), js.clone()]
        .into_iter()
        .map(|spec| input(spec, false));
    let callout = [replicas(1), js].into_iter().map(|spec| NatsInput {
        callout: Some(callout_keys().1),
        ..input(spec, false)
    });
    for (i, input) in plain.chain(callout).enumerate() {
        let o = nats::build(&input);
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
            .env("AUTH_PASSWORD", "auth-s3cret")
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

/// Seeds as the write-once Secret holds them, and the public keys the
/// Interpret derives from them.
fn callout_keys() -> (
    std::collections::BTreeMap<String, Sensitive>,
    nats::config::CalloutAuth,
) {
    let account = nkeys::KeyPair::new_account();
    let xkey = nkeys::XKey::new();
    let values = std::collections::BTreeMap::from([
        (
            nats::CALLOUT_ISSUER_SEED_KEY.to_string(),
            Sensitive::new(account.seed().unwrap()),
        ),
        (
            nats::CALLOUT_XKEY_SEED_KEY.to_string(),
            Sensitive::new(xkey.seed().unwrap()),
        ),
    ]);
    let auth = nats::callout_auth(&values, "fleet", "demo-nats-credentials").expect("valid seeds");
    assert_eq!(auth.issuer, account.public_key());
    assert_eq!(auth.xkey.as_deref(), Some(xkey.public_key().as_str()));
    (values, auth)
}

#[test]
fn callout_mode_renders_auth_callout_with_public_keys_only() {
    let (seeds, keys) = callout_keys();
    let o = nats::build(&NatsInput {
        callout: Some(keys.clone()),
        ..input(replicas(1), true)
    });
    let c = &o.config;
    assert!(c.contains(&format!("issuer: \"{}\"", keys.issuer)), "{c}");
    assert!(
        c.contains(&format!("xkey: \"{}\"", keys.xkey.clone().unwrap())),
        "{c}"
    );
    assert!(c.contains("account: AUTH"), "{c}");
    // The probe (sys) and operator (fleet) users bypass the callout.
    assert!(c.contains("auth_users: [auth, sys, fleet]"), "{c}");
    assert!(c.contains("password: $AUTH_PASSWORD"), "{c}");
    for seed in seeds.values() {
        assert!(!c.contains(seed.expose()), "a seed is in the ConfigMap");
    }
    let env = o
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
        .clone()
        .unwrap();
    let auth = env
        .iter()
        .find(|e| e.name == "AUTH_PASSWORD")
        .expect("AUTH_PASSWORD env");
    let key = auth
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from the Secret");
    assert_eq!(
        (key.name.as_str(), key.key.as_str()),
        ("demo-nats-credentials", nats::AUTH_PASSWORD_KEY)
    );

    // UserPass mode: no callout, no AUTH_PASSWORD; switching modes changes
    // the config hash, which rolls the pods.
    let plain = nats::build(&input(replicas(1), true));
    assert!(!plain.config.contains("auth_callout"));
    let plain_env = plain
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
        .clone()
        .unwrap();
    assert!(plain_env.iter().all(|e| e.name != "AUTH_PASSWORD"));
    assert_ne!(config_hash(&plain), config_hash(&o));
}

#[test]
fn invalid_callout_seeds_are_named_without_their_value() {
    let (mut seeds, _) = callout_keys();
    let user_seed = nkeys::KeyPair::new_user().seed().unwrap();
    seeds.insert(
        nats::CALLOUT_ISSUER_SEED_KEY.into(),
        Sensitive::new(user_seed.clone()),
    );
    let err = nats::callout_auth(&seeds, "fleet", "demo-nats-credentials").unwrap_err();
    let text = err.to_string();
    assert!(text.contains(nats::CALLOUT_ISSUER_SEED_KEY), "{text}");
    assert!(!text.contains(&user_seed), "{text}");
    assert_eq!(err.reason(), "SecretInvalid");
    seeds.remove(nats::CALLOUT_XKEY_SEED_KEY);
    seeds.insert(
        nats::CALLOUT_ISSUER_SEED_KEY.into(),
        Sensitive::new(nkeys::KeyPair::new_account().seed().unwrap()),
    );
    let err = nats::callout_auth(&seeds, "fleet", "demo-nats-credentials").unwrap_err();
    assert!(
        err.to_string().contains(nats::CALLOUT_XKEY_SEED_KEY),
        "{err}"
    );
}
