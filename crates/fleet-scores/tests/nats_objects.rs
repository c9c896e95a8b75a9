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
    // No JetStream, no slow start: no startup probe holding readiness back.
    assert!(c.startup_probe.is_none());
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
    // Routes authenticate; the password never enters the ConfigMap.
    assert!(
        o.config
            .contains("authorization {\n    user: route\n    password: $ROUTE_PASSWORD"),
        "{}",
        o.config
    );
    let c = common::sts_container(&o.statefulset);
    let names: Vec<&str> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let password = common::env(c, "ROUTE_PASSWORD").expect("route password env");
    let from = password
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(from.key, nats::ROUTE_PASSWORD_KEY);
    for i in 0..3 {
        assert!(
            o.config.contains(&format!("    $ROUTE_{i}\n")),
            "route {i} missing:\n{}",
            o.config
        );
        assert_eq!(
            common::value(c, &format!("ROUTE_{i}")),
            format!(
                "nats-route://route:$(ROUTE_PASSWORD)@demo-nats-{i}.demo-nats-headless.fleet.svc.cluster.local:6222"
            )
        );
        // $(ROUTE_PASSWORD) only expands from an earlier entry.
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(pos("ROUTE_PASSWORD") < pos(&format!("ROUTE_{i}")));
    }
    let single = nats::build(&input(replicas(1), true));
    let c1 = common::sts_container(&single.statefulset);
    assert!(common::env(c1, "ROUTE_PASSWORD").is_none());
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
    // Store recovery can be slow: a startup probe (15 min) holds off
    // liveness.
    let c = common::sts_container(&o.statefulset);
    let startup = c
        .startup_probe
        .as_ref()
        .expect("startup probe with JetStream");
    assert_eq!(
        (startup.period_seconds, startup.failure_threshold),
        (Some(1), Some(900))
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
fn memory_jetstream_claims_no_volume_and_allows_no_file_streams() {
    let mut spec = replicas(1);
    spec.jetstream.enabled = true;
    spec.jetstream.storage = fleet_crds::JetStreamStorage::Memory;
    spec.jetstream.max_memory_store = Some(
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("256Mi".into()),
    );
    let o = nats::build(&input(spec, true));
    assert!(o.config.contains("store_dir: /data/jetstream"));
    assert!(o.config.contains("  max_file_store: 0\n"), "{}", o.config);
    assert!(
        o.config
            .contains(&format!("max_memory_store: {}", 256u64 << 20))
    );
    let sts = o.statefulset.spec.as_ref().unwrap();
    assert!(sts.volume_claim_templates.is_none());
    let pod = sts.template.spec.as_ref().unwrap();
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "jetstream")
        .expect("jetstream volume");
    assert!(volume.empty_dir.is_some());
}

/// Reloadable keys (ADR 0073) change the ConfigMap but not the pod
/// template: the probe reloads the servers instead of the roll.
#[test]
fn reloadable_changes_keep_the_pod_template_hash() {
    let with = |key: &str, value: &str| {
        let mut spec = replicas(3);
        spec.config.insert(key.into(), value.into());
        nats::build(&input(spec, true))
    };
    let (a, b) = (with("max_payload", "1MB"), with("max_payload", "2MB"));
    assert_eq!(config_hash(&a), config_hash(&b));
    assert_eq!(a.marker.restart, b.marker.restart);
    assert_ne!(a.marker.config, b.marker.config);
    assert_ne!(a.config, b.config);
    assert!(b.config.contains(&format!(
        "server_metadata: {{ fleet_restart: \"{}\", fleet_config: \"{}\" }}",
        b.marker.restart, b.marker.config
    )));
    // Server tags are reloadable too; a key that is not rolls.
    let mut tagged = replicas(3);
    tagged.config.insert("max_payload".into(), "1MB".into());
    tagged.server_tags = vec!["az:b".into()];
    assert_eq!(
        config_hash(&a),
        config_hash(&nats::build(&input(tagged, true)))
    );
    let (c, d) = (
        with("max_subscriptions", "10"),
        with("max_subscriptions", "20"),
    );
    assert_ne!(config_hash(&c), config_hash(&d));
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
            .env("ROUTE_PASSWORD", "r0ute")
            .env("ROUTE_0", "nats-route://route:r0ute@127.0.0.1:6222")
            .env("ROUTE_1", "nats-route://route:r0ute@127.0.0.1:6223")
            .env("ROUTE_2", "nats-route://route:r0ute@127.0.0.1:6224")
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
    let env = common::sts_container(&o.statefulset).env.clone().unwrap();
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
    let plain_env = common::sts_container(&plain.statefulset)
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

/// Two real nats-servers with the rendered 2-replica config (ports moved to
/// free ones, route URLs pointed at loopback through the same env vars the
/// pod sets) form a cluster, and a route without the password is refused:
/// nothing that merely reaches port 6222 can join.
#[test]
fn rendered_cluster_forms_with_route_auth_and_refuses_a_rogue_route() {
    use std::io::{Read, Write};
    let bin = fleet_testkit::nats_server_binary().expect("nats-server binary");
    let dir = tempfile::tempdir().expect("tempdir");
    let o = nats::build(&input(replicas(2), false));
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let ports: Vec<(u16, u16, u16)> = (0..2).map(|_| (free(), free(), free())).collect();
    let routes: Vec<String> = ports
        .iter()
        .map(|(_, cluster, _)| format!("nats-route://route:r0ute@127.0.0.1:{cluster}"))
        .collect();
    struct Kill(Vec<std::process::Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut servers = Kill(Vec::new());
    for (i, (client, cluster, monitor)) in ports.iter().enumerate() {
        let sub = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let conf = o
            .config
            .replace("/var/run/nats", sub.to_str().unwrap())
            .replace("0.0.0.0:4222", &format!("127.0.0.1:{client}"))
            .replace("0.0.0.0:6222", &format!("127.0.0.1:{cluster}"))
            .replace("0.0.0.0:8222", &format!("127.0.0.1:{monitor}"));
        let path = sub.join("nats.conf");
        std::fs::write(&path, &conf).unwrap();
        servers.0.push(
            Command::new(&bin)
                .arg("-c")
                .arg(&path)
                .env("SERVER_NAME", format!("demo-nats-{i}"))
                .env("SYS_PASSWORD", "s3cret")
                .env("FLEET_PASSWORD", "f1eet")
                .env("ROUTE_PASSWORD", "r0ute")
                .env("ROUTE_0", &routes[0])
                .env("ROUTE_1", &routes[1])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start nats-server"),
        );
    }
    // Both servers report the other as a route.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let routez = |monitor: u16| -> Option<u64> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", monitor)).ok()?;
        s.write_all(b"GET /routez HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let json = body.split("\r\n\r\n").nth(1)?;
        serde_json::from_str::<serde_json::Value>(json).ok()?["num_routes"].as_u64()
    };
    loop {
        if ports.iter().all(|p| routez(p.2).unwrap_or(0) >= 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the two servers never formed a cluster"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A route that does not know the password is refused.
    let mut rogue = std::net::TcpStream::connect(("127.0.0.1", ports[0].1)).unwrap();
    rogue
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let _info = rogue.read(&mut buf).unwrap();
    rogue
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"rogue\",\"cluster\":\"demo\"}\r\nPING\r\n")
        .unwrap();
    let n = rogue.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        answer.contains("Authorization Violation"),
        "rogue route answered: {answer:?}"
    );
}

/// Issue 13 item 1: regenerated credentials roll the servers (the template
/// changes), and without a hash the objects are exactly as before.
#[test]
fn credentials_hash_rolls_the_statefulset_and_is_absent_without_one() {
    use fleet_scores::write_once::{CREDENTIALS_HASH, credentials_hash};
    let plain = nats::build(&input(replicas(3), true));
    let unchanged = nats::build(&input(replicas(3), true)).with_credentials_hash(None);
    let hashes = |o: &NatsObjects| -> Vec<String> {
        o.ordered()
            .unwrap()
            .iter()
            .map(|d| d.hash.clone())
            .collect()
    };
    assert_eq!(hashes(&plain), hashes(&unchanged));
    let annotations = |o: &NatsObjects| {
        o.statefulset
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap()
    };
    assert!(!annotations(&plain).contains_key(CREDENTIALS_HASH));

    let keys = nats::objects::credential_keys(&replicas(3), false);
    assert_eq!(keys, ["sys-password", "fleet-password", "route-password"]);
    assert_eq!(
        nats::objects::credential_keys(&replicas(1), true),
        ["sys-password", "fleet-password", "auth-password"]
    );
    let old: std::collections::BTreeMap<String, Sensitive> = keys
        .iter()
        .map(|k| (k.to_string(), Sensitive::new(format!("old-{k}"))))
        .collect();
    let mut new = old.clone();
    new.insert("fleet-password".into(), Sensitive::new("new"));
    let h_old = credentials_hash(&old, &keys);
    let h_new = credentials_hash(&new, &keys);
    let a = nats::build(&input(replicas(3), true)).with_credentials_hash(Some(&h_old));
    let b = nats::build(&input(replicas(3), true)).with_credentials_hash(Some(&h_new));
    assert_eq!(annotations(&a)[CREDENTIALS_HASH], h_old);
    // The config hash stays next to it.
    assert_eq!(annotations(&a)[CONFIG_HASH], config_hash(&plain));
    let (ha, hb) = (hashes(&a), hashes(&b));
    assert_ne!(ha.last(), hb.last(), "the StatefulSet must change");
    assert_eq!(
        ha[..ha.len() - 1],
        hb[..hb.len() - 1],
        "nothing else changes"
    );
    // Rolling one server at a time is the StatefulSet default.
    assert_eq!(a.statefulset.spec.as_ref().unwrap().update_strategy, None);
}
