//! NATS with TLS, against real nats-servers on loopback: the rendered
//! config with a certificate from the stack CA code is accepted by
//! `nats-server -t`; a server running it accepts a client that verifies
//! the CA and host name (the smoke probe), refuses plaintext, and a client
//! trusting another CA or dialing a name the certificate lacks fails; two
//! servers form a cluster over mutually verified TLS routes.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_crds::NatsSpec;
use fleet_proto::client::ClientTls;
use fleet_scores::nats::objects::{NatsTlsInput, build_with_tls};
use fleet_scores::nats::probe::{ProbeRoutes, ProbeTarget, smoke_probe_with};
use fleet_scores::nats::{self, NatsInput, config};
use fleet_scores::score::ProbeOutcome;
use fleet_scores::secret::Sensitive;
use fleet_scores::tls::{self, CertificateAuthority, ServerIdentity};

mod common;

const NOW_LIFETIME: Duration = Duration::from_secs(3600);

fn input(replicas: i32) -> NatsInput {
    NatsInput {
        stack: "demo".into(),
        namespace: "fleet".into(),
        owner: common::owner(),
        spec: NatsSpec {
            replicas,
            ..NatsSpec::default()
        },
        pdb_v1: true,
        callout: None,
    }
}

fn tls_input() -> NatsTlsInput {
    NatsTlsInput {
        secret: tls::nats_cert_secret_name("demo"),
        client_advertise: Some("nats.example.com:30422".into()),
    }
}

/// A fresh CA and a server certificate for `localhost` (and the Service
/// names), written into `dir` as the Secret volume would hold them.
fn write_cert_files(dir: &Path) -> CertificateAuthority {
    let now = tls::unix_now();
    let ca =
        CertificateAuthority::generate("demo", "fleet", "demo-ca", NOW_LIFETIME, now).expect("CA");
    write_server_cert(dir, &ca, NOW_LIFETIME);
    ca
}

/// A server certificate from `ca` living `lifetime`, written into `dir`
/// (as a renewal would); returns its `notAfter`.
fn write_server_cert(dir: &Path, ca: &CertificateAuthority, lifetime: Duration) -> i64 {
    let now = tls::unix_now();
    let id = ServerIdentity::new()
        .with_service("demo-nats", "fleet")
        .with_headless_pods("demo-nats-headless", "fleet")
        .with_name("localhost");
    let cert =
        tls::issue_server_cert(ca, &id, lifetime, now, ("fleet", "demo-nats-tls")).expect("cert");
    let secret = tls::secret::server_cert_secret(
        "fleet",
        "demo-nats-tls",
        &Default::default(),
        &common::owner(),
        &cert,
        ca,
    );
    std::fs::create_dir_all(dir).unwrap();
    for (k, v) in secret.data.unwrap() {
        std::fs::write(dir.join(k), v.0).unwrap();
    }
    cert.validity.not_after
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The rendered config with pod paths and ports moved to `dir` and free
/// loopback ports.
fn localize(conf: &str, dir: &Path, tls_dir: &Path, ports: (u16, u16, u16)) -> String {
    conf.replace(config::TLS_DIR, tls_dir.to_str().unwrap())
        .replace("/var/run/nats", dir.to_str().unwrap())
        .replace("/data", dir.to_str().unwrap())
        .replace("0.0.0.0:4222", &format!("127.0.0.1:{}", ports.0))
        .replace("0.0.0.0:6222", &format!("127.0.0.1:{}", ports.1))
        .replace("0.0.0.0:8222", &format!("127.0.0.1:{}", ports.2))
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn nats_server(conf_path: &Path, name: &str, routes: &[String]) -> Command {
    let bin = fleet_testkit::nats_server_binary().expect("nats-server binary");
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(conf_path)
        .env("SERVER_NAME", name)
        .env("SYS_PASSWORD", "s3cret")
        .env("FLEET_PASSWORD", "f1eet")
        .env("AUTH_PASSWORD", "auth-s3cret")
        .env("ROUTE_PASSWORD", "r0ute");
    for (i, r) in routes.iter().enumerate() {
        cmd.env(format!("ROUTE_{i}"), r);
    }
    cmd
}

/// Starts one server from the rendered `conf` on fresh loopback ports and
/// waits until it accepts connections. Its output goes to a log file that
/// a failure prints. Ports come from binding port 0 and releasing it, so a
/// parallel test can take one in between: a server that exits before
/// listening is started again on other ports (three attempts).
fn start_single(conf: &str, dir: &Path, tls_dir: &Path) -> (Kill, (u16, u16, u16)) {
    let log_path = dir.join("nats-server.log");
    let mut last_log = String::new();
    for _attempt in 0..3 {
        let ports = (free_port(), free_port(), free_port());
        let path = dir.join("nats.conf");
        std::fs::write(&path, localize(conf, dir, tls_dir, ports)).unwrap();
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = nats_server(&path, "demo-nats-0", &[])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", ports.0)).is_ok() {
                return (Kill(vec![child]), ports);
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    panic!("nats-server never listened (3 attempts); its last log:\n{last_log}");
}

#[test]
fn the_rendered_tls_config_passes_nats_server_t() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    write_cert_files(&tls_dir);
    for replicas in [1, 3] {
        let o = build_with_tls(&input(replicas), Some(&tls_input()));
        assert!(
            o.config
                .contains("tls {\n  cert_file: \"/etc/nats-tls/tls.crt\""),
            "{}",
            o.config
        );
        assert!(
            o.config
                .contains("client_advertise: \"nats.example.com:30422\""),
            "{}",
            o.config
        );
        if replicas > 1 {
            assert!(
                o.config.contains("  tls {\n    cert_file: \"/etc/nats-tls/tls.crt\"\n    key_file: \"/etc/nats-tls/tls.key\"\n    ca_file: \"/etc/nats-tls/ca.crt\"\n    verify: true\n"),
                "{}",
                o.config
            );
        }
        let conf = localize(&o.config, dir.path(), &tls_dir, (4222, 6222, 8222));
        let path = dir.path().join(format!("nats-{replicas}.conf"));
        std::fs::write(&path, &conf).unwrap();
        let out = nats_server(
            &path,
            "demo-nats-0",
            &[
                "nats-route://route:r0ute@localhost:6222".into(),
                "nats-route://route:r0ute@localhost:6223".into(),
                "nats-route://route:r0ute@localhost:6224".into(),
            ],
        )
        .arg("-t")
        .output()
        .expect("nats-server -t");
        assert!(
            out.status.success(),
            "nats-server rejected:\n{conf}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn with_tls_the_certificate_is_mounted_and_monitoring_has_its_own_service() {
    let o = build_with_tls(&input(1), Some(&tls_input()));
    let pod = o
        .statefulset
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "tls")
        .expect("tls volume");
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("demo-nats-tls"));
    assert_eq!(secret.default_mode, Some(0o440));
    let mount = pod.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "tls")
        .expect("tls mount");
    assert_eq!(mount.mount_path, config::TLS_DIR);
    assert_eq!(mount.read_only, Some(true));
    let ports = |s: &k8s_openapi::api::core::v1::Service| -> Vec<i32> {
        s.spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect()
    };
    assert_eq!(ports(&o.client_service), vec![4222]);
    let monitor = o.monitor_service.as_ref().expect("monitor Service");
    assert_eq!(monitor.metadata.name.as_deref(), Some("demo-nats-monitor"));
    assert_eq!(ports(monitor), vec![8222]);
    let keys: Vec<String> = o.ordered().unwrap().iter().map(|d| d.key()).collect();
    assert!(
        keys.contains(&"Service/demo-nats-monitor".to_string()),
        "{keys:?}"
    );
    // Without TLS nothing changes (what the Interpret builds until it
    // passes the certificate).
    let plain = nats::build(&input(1));
    assert!(plain.monitor_service.is_none());
    assert_eq!(ports(&plain.client_service), vec![4222, 8222]);
    assert!(!plain.config.contains("tls {"));
    // TLS changes the config hash, so the pods roll onto it.
    let hash = |o: &nats::NatsObjects| {
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
            .unwrap()[fleet_scores::labels::CONFIG_HASH]
            .clone()
    };
    assert_ne!(hash(&plain), hash(&o));
}

fn probe_target(port: u16, monitor: u16, host: &str) -> ProbeTarget {
    ProbeTarget {
        host: host.into(),
        client_port: port,
        monitor_port: monitor,
        user: config::SYS_USER.into(),
        password: Sensitive::new("s3cret"),
    }
}

#[tokio::test]
async fn a_tls_server_accepts_verified_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    write_cert_files(&tls_dir);
    let other_dir = dir.path().join("other");
    write_cert_files(&other_dir);
    let o = build_with_tls(&input(1), Some(&tls_input()));
    let (_server, ports) = start_single(&o.config, dir.path(), &tls_dir);

    let routes = |ca: &Path| ProbeRoutes {
        monitor_host: Some("127.0.0.1".into()),
        tls: ClientTls::with_ca_file(ca.join("ca.crt")),
        verify_name: None,
        expect: None,
    };
    // The smoke probe: TLS verified against the stack CA, host name
    // `localhost` in the certificate, pub/sub round trip.
    let deadline = Duration::from_secs(5);
    let target = probe_target(ports.0, ports.2, "localhost");
    let outcome = smoke_probe_with(&target, &routes(&tls_dir), deadline).await;
    assert!(
        matches!(outcome, ProbeOutcome::Passed { .. }),
        "{outcome:?}"
    );

    // Trusting another CA: the client refuses the server.
    let outcome = smoke_probe_with(&target, &routes(&other_dir), deadline).await;
    match &outcome {
        ProbeOutcome::Failed { reason, .. } => assert_eq!(*reason, "ConnectFailed", "{outcome:?}"),
        ProbeOutcome::Passed { .. } => panic!("a client trusting another CA connected"),
    }
    // Dialing an address the certificate does not name.
    let by_ip = probe_target(ports.0, ports.2, "127.0.0.1");
    let outcome = smoke_probe_with(&by_ip, &routes(&tls_dir), deadline).await;
    assert!(
        matches!(
            outcome,
            ProbeOutcome::Failed {
                reason: "ConnectFailed",
                ..
            }
        ),
        "{outcome:?}"
    );

    // Dialing the address but verifying a name the certificate carries
    // (the probe of a pod address, issue 18): passes; a name it does not
    // carry, or another CA, still fails.
    let named = |ca: &Path, name: &str| ProbeRoutes {
        verify_name: Some(name.into()),
        ..routes(ca)
    };
    let outcome = smoke_probe_with(&by_ip, &named(&tls_dir, "demo-nats.fleet.svc"), deadline).await;
    assert!(
        matches!(outcome, ProbeOutcome::Passed { .. }),
        "{outcome:?}"
    );
    for (ca, name) in [
        (&tls_dir, "elsewhere.example.com"),
        (&other_dir, "demo-nats.fleet.svc"),
    ] {
        let outcome = smoke_probe_with(&by_ip, &named(ca, name), deadline).await;
        assert!(
            matches!(
                outcome,
                ProbeOutcome::Failed {
                    reason: "ConnectFailed",
                    ..
                }
            ),
            "{name}: {outcome:?}"
        );
    }

    // The exposed-endpoint check (a device's connection): CA and the
    // dialed name verified; another CA or a name the certificate lacks fail.
    let sys = Sensitive::new("s3cret");
    let device_url = format!("tls://localhost:{}", ports.0);
    let verified = ClientTls::with_ca_file(tls_dir.join("ca.crt"));
    nats::probe::round_trip(&device_url, "sys", &sys, &verified, deadline)
        .await
        .expect("a verified round trip");
    let other = ClientTls::with_ca_file(other_dir.join("ca.crt"));
    assert!(
        nats::probe::round_trip(&device_url, "sys", &sys, &other, deadline)
            .await
            .is_err()
    );
    let by_ip_url = format!("tls://127.0.0.1:{}", ports.0);
    assert!(
        nats::probe::round_trip(&by_ip_url, "sys", &sys, &verified, deadline)
            .await
            .is_err()
    );
    let wrong = nats::probe::round_trip(
        &device_url,
        "sys",
        &Sensitive::new("nope"),
        &verified,
        deadline,
    )
    .await
    .expect_err("a wrong password");
    assert!(!wrong.contains("nope"), "{wrong}");

    // Plaintext: the server says TLS is required and never reads the
    // password.
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", ports.0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let info = String::from_utf8_lossy(&buf[..n]).into_owned();
        let _ = s.write_all(
            b"CONNECT {\"user\":\"sys\",\"pass\":\"s3cret\",\"tls_required\":false}\r\nPING\r\n",
        );
        let n = s.read(&mut buf).unwrap_or(0);
        (info, String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .unwrap();
    assert!(
        answer.0.contains("\"tls_required\":true"),
        "INFO: {}",
        answer.0
    );
    assert!(
        !answer.1.contains("PONG"),
        "a plaintext client was served: {:?}",
        answer.1
    );
}

#[test]
fn two_servers_form_a_cluster_over_verified_tls_routes() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    write_cert_files(&tls_dir);
    let o = build_with_tls(&input(2), Some(&tls_input()));
    let ports: Vec<(u16, u16, u16)> = (0..2)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    // The certificate names `localhost`, as the pods' wildcard names the
    // route hosts in the cluster.
    let routes: Vec<String> = ports
        .iter()
        .map(|p| format!("nats-route://route:r0ute@localhost:{}", p.1))
        .collect();
    let mut servers = Kill(Vec::new());
    for (i, p) in ports.iter().enumerate() {
        let sub = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join("nats.conf");
        std::fs::write(&path, localize(&o.config, &sub, &tls_dir, *p)).unwrap();
        let log = std::fs::File::create(sub.join("nats-server.log")).unwrap();
        servers.0.push(
            nats_server(&path, &format!("demo-nats-{i}"), &routes)
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start nats-server"),
        );
    }
    let routez = |monitor: u16| -> Option<u64> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", monitor)).ok()?;
        s.write_all(b"GET /routez HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let json = body.split("\r\n\r\n").nth(1)?;
        serde_json::from_str::<serde_json::Value>(json).ok()?["num_routes"].as_u64()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ports.iter().all(|p| routez(p.2).unwrap_or(0) >= 1) {
        if Instant::now() > deadline {
            let logs: Vec<String> = (0..2)
                .map(|i| {
                    std::fs::read_to_string(dir.path().join(format!("s{i}/nats-server.log")))
                        .unwrap_or_default()
                })
                .collect();
            panic!(
                "the servers never formed a TLS cluster; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A plaintext route (even with the password) gets no cluster.
    let mut rogue = std::net::TcpStream::connect(("127.0.0.1", ports[0].1)).unwrap();
    rogue
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    // The server either announces that TLS is required or waits for a
    // TLS handshake; it never serves plaintext.
    let n = rogue.read(&mut buf).unwrap_or(0);
    let info = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        info.is_empty() || info.contains("\"tls_required\":true"),
        "route INFO: {info}"
    );
    let _ = rogue.write_all(
        b"CONNECT {\"user\":\"route\",\"pass\":\"r0ute\",\"cluster\":\"demo\"}\r\nPING\r\n",
    );
    let n = rogue.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        !answer.contains("PONG"),
        "plaintext route answered: {answer:?}"
    );
}

#[test]
fn expose_builds_a_node_port_or_load_balancer_service_for_the_client_port() {
    use fleet_crds::{ExposeSpec, ExposeType};
    use fleet_scores::nats::objects::{external_service, network_policy};
    assert!(external_service(&input(1)).is_none());
    let mut exposed = input(1);
    exposed.spec.expose = Some(ExposeSpec {
        type_: ExposeType::NodePort,
        node_port: Some(30422),
        advertise: vec!["192.0.2.7".into()],
        ..ExposeSpec::default()
    });
    let svc = external_service(&exposed).expect("Service");
    assert_eq!(svc.metadata.name.as_deref(), Some("demo-nats-external"));
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let ports = spec.ports.unwrap();
    assert_eq!((ports[0].port, ports[0].node_port), (4222, Some(30422)));
    assert_eq!(
        spec.selector.unwrap()[fleet_scores::labels::INSTANCE],
        "demo"
    );
    exposed.spec.expose.as_mut().unwrap().type_ = ExposeType::LoadBalancer;
    let lb = external_service(&exposed).unwrap().spec.unwrap();
    assert_eq!(lb.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(lb.ports.unwrap()[0].node_port, None);
    assert_eq!(
        config::client_advertise(exposed.spec.expose.as_ref(), None).as_deref(),
        Some("192.0.2.7:4222")
    );
    exposed.spec.expose.as_mut().unwrap().type_ = ExposeType::NodePort;
    assert_eq!(
        config::client_advertise(exposed.spec.expose.as_ref(), None).as_deref(),
        Some("192.0.2.7:30422")
    );

    // NetworkPolicy: client port open, routes only from NATS pods,
    // monitoring only from the given peers.
    let peer = k8s_openapi::api::networking::v1::NetworkPolicyPeer {
        namespace_selector: Some(Default::default()),
        ..Default::default()
    };
    let np = network_policy(&input(3), vec![peer.clone()]).spec.unwrap();
    assert_eq!(
        np.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    let rules = np.ingress.unwrap();
    let port_of = |r: &k8s_openapi::api::networking::v1::NetworkPolicyIngressRule| {
        r.ports.as_ref().unwrap()[0].port.clone()
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(port_of(&rules[0]), Some(IntOrString::Int(4222)));
    assert!(rules[0].from.is_none());
    assert_eq!(port_of(&rules[1]), Some(IntOrString::Int(6222)));
    assert_eq!(
        rules[1].from.as_ref().unwrap()[0].pod_selector,
        np.pod_selector
    );
    assert_eq!(port_of(&rules[2]), Some(IntOrString::Int(8222)));
    assert_eq!(rules[2].from.as_deref(), Some(&[peer][..]));
}

/// Renewal without a restart: the certificate files change under a
/// running server (as the kubelet swaps a Secret volume); the probe, told
/// which certificate the Secret holds, finds the server serving the old
/// one, sends it a config reload and reports RollingOut; the next probe
/// passes, the new certificate is served, and a client connected before
/// the reload never lost its connection or subscription.
#[tokio::test]
async fn a_renewed_certificate_is_served_after_a_reload_without_dropping_clients() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    let now = tls::unix_now();
    let ca =
        CertificateAuthority::generate("demo", "fleet", "demo-ca", NOW_LIFETIME * 10, now).unwrap();
    let first = write_server_cert(&tls_dir, &ca, NOW_LIFETIME);
    let o = build_with_tls(&input(1), Some(&tls_input()));
    let (_server, ports) = start_single(&o.config, dir.path(), &tls_dir);
    let deadline = Duration::from_secs(5);
    let target = probe_target(ports.0, ports.2, "localhost");
    let routes = |not_after| ProbeRoutes {
        monitor_host: Some("127.0.0.1".into()),
        tls: ClientTls::with_ca_file(tls_dir.join("ca.crt")),
        verify_name: None,
        expect: Some(nats::Expected {
            servers: 1,
            not_after: Some(not_after),
            config: Some(o.marker.clone()),
        }),
    };
    let outcome = smoke_probe_with(&target, &routes(first), deadline).await;
    assert!(
        matches!(outcome, ProbeOutcome::Passed { .. }),
        "{outcome:?}"
    );

    // A client that stays connected across the renewal.
    let url = format!("tls://localhost:{}", ports.0);
    let before = ClientTls::with_ca_file(tls_dir.join("ca.crt"))
        .apply(async_nats::ConnectOptions::with_user_and_password(
            "fleet".into(),
            "f1eet".into(),
        ))
        .connect(&url)
        .await
        .expect("connect before the renewal");
    let mut sub = before.subscribe("renewal.check").await.unwrap();
    before.flush().await.unwrap();

    // Renewal: another certificate (one more minute of life, so another
    // notAfter) lands in the files.
    let second = write_server_cert(&tls_dir, &ca, NOW_LIFETIME + Duration::from_secs(60));
    assert_ne!(first, second);
    let outcome = smoke_probe_with(&target, &routes(second), deadline).await;
    match &outcome {
        ProbeOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(*reason, fleet_scores::rollout::ROLLING_OUT, "{outcome:?}");
            assert!(message.contains("0/1 servers"), "{message}");
        }
        ProbeOutcome::Passed { .. } => panic!("the old certificate was still served: {outcome:?}"),
    }
    let outcome = smoke_probe_with(&target, &routes(second), deadline).await;
    assert!(
        matches!(outcome, ProbeOutcome::Passed { .. }),
        "{outcome:?}"
    );
    // The old one is not accepted as current any more.
    let outcome = smoke_probe_with(&target, &routes(first), deadline).await;
    assert!(
        matches!(outcome, ProbeOutcome::Failed { .. }),
        "{outcome:?}"
    );

    // The client from before is still connected and subscribed.
    assert_eq!(
        before.connection_state(),
        async_nats::connection::State::Connected
    );
    before
        .publish("renewal.check", "after".into())
        .await
        .unwrap();
    before.flush().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(2), futures::StreamExt::next(&mut sub))
        .await
        .expect("message after the reload")
        .expect("subscription open");
    assert_eq!(msg.payload.as_ref(), b"after");
    assert_eq!(
        before
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
