//! The chart's RBAC and environment are enough for the real controller.
//!
//! The chart's ServiceAccount, ClusterRole and ClusterRoleBinding are applied
//! for real; the fleet-reconciler binary then runs with that ServiceAccount's
//! token (nothing more) and exactly the environment the rendered Deployment
//! sets, reconciles a FleetStack, prunes a removed component, publishes
//! Events and serves /healthz, /readyz and /metrics on the chart's port. Any
//! 403 in its log, a missing child or a missing endpoint fails the test.
//! Along the way the Argo CD health check runs on the live objects the
//! controller wrote (progressing or failing probe, Ready, paused).
//! A test that only re-read the YAML would agree with whatever the chart
//! says; this one asks the API server and the controller.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_deploy_tests::{Kubectl, Rendered, helm_template};

fn kubectl() -> Kubectl {
    Kubectl::from_env().unwrap_or_else(|e| panic!("{e}"))
}

/// The workspace's fleet-reconciler binary, next to this test's own
/// executable (`<target>/debug/deps/chart_rbac-*` -> `<target>/debug/`).
/// scripts/test builds every binary before running tests.
fn reconciler_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug")
        .join("fleet-reconciler");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p fleet-reconciler --bin fleet-reconciler`, \
         which scripts/test does)",
        bin.display()
    );
    bin
}

/// `n` distinct free ports (all listeners are held until every port is
/// known, so the kernel cannot hand out the same one twice).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("0.0.0.0:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Minimal HTTP/1.0 GET (no client crate needed for three local requests).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for_logged(what, timeout, &[], f)
}

/// Like [`wait_for`], with the controllers' logs in the failure message.
fn wait_for_logged<T>(
    what: &str,
    timeout: Duration,
    logs: &[&Running],
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= timeout {
            let logs: Vec<String> = logs
                .iter()
                .map(|r| format!("---- {}\n{}", r.log.display(), r.log()))
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Deletes the cluster-scoped objects of the test release (the namespace
/// guard only removes namespaced ones).
struct ClusterScoped<'a> {
    kubectl: &'a Kubectl,
    name: String,
}

impl Drop for ClusterScoped<'_> {
    fn drop(&mut self) {
        for kind in ["clusterrolebinding", "clusterrole"] {
            if let Err(e) = self.kubectl.run_ok(
                &[
                    "delete",
                    kind,
                    &self.name,
                    "--ignore-not-found",
                    "--wait=false",
                ],
                None,
            ) {
                eprintln!("could not delete {kind} {}: {e}", self.name);
            }
        }
    }
}

struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The chart's RBAC objects of `kinds`, applied for real; the returned
/// guard deletes the cluster-scoped ones.
fn apply_chart_rbac<'a>(k: &'a Kubectl, rendered: &Rendered, kinds: &[&str]) -> ClusterScoped<'a> {
    let mut rbac = String::new();
    for kind in kinds {
        rbac.push_str("---\n");
        rbac.push_str(&serde_yaml::to_string(rendered.one(kind)).expect("serializes"));
    }
    let cluster_role = rendered.one("ClusterRole")["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let guard = ClusterScoped {
        kubectl: k,
        name: cluster_role,
    };
    k.run_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=fleet-deploy-tests",
            "-f",
            "-",
        ],
        Some(&rbac),
    )
    .expect("RBAC applies");
    guard
}

/// A kubeconfig holding only the chart ServiceAccount's token (Kubernetes
/// 1.20 still creates a token Secret per ServiceAccount).
fn service_account_kubeconfig(k: &Kubectl, ns: &str, rendered: &Rendered, dir: &Path) -> PathBuf {
    let sa = rendered.one("ServiceAccount")["metadata"]["name"]
        .as_str()
        .expect("sa name")
        .to_string();
    let secret = wait_for(
        "the ServiceAccount token Secret",
        Duration::from_secs(60),
        || {
            let out = k
                .run_ok(
                    &[
                        "-n",
                        ns,
                        "get",
                        "sa",
                        &sa,
                        "-o",
                        "jsonpath={.secrets[0].name}",
                    ],
                    None,
                )
                .ok()?;
            (!out.trim().is_empty()).then(|| out.trim().to_string())
        },
    );
    let token = k
        .run_ok(
            &[
                "-n",
                ns,
                "get",
                "secret",
                &secret,
                "-o",
                "go-template={{.data.token | base64decode}}",
            ],
            None,
        )
        .expect("token");
    let admin: serde_json::Value = serde_json::from_str(
        &k.run_ok(&["config", "view", "--raw", "--minify", "-o", "json"], None)
            .expect("kubeconfig"),
    )
    .expect("kubeconfig json");
    let sa_config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": admin["clusters"][0]["cluster"].clone()}],
        "users": [{"name": "sa", "user": {"token": token.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": "sa"}}],
        "current-context": "sa",
    });
    std::fs::create_dir_all(dir).expect("temp dir");
    let path = dir.join("kubeconfig");
    std::fs::write(&path, sa_config.to_string()).expect("write kubeconfig");
    path
}

/// Starts the fleet-reconciler binary as the chart's Deployment would: the
/// rendered container env (downward-API fields filled in for `pod_name`),
/// the ServiceAccount's kubeconfig instead of the in-cluster one.
/// `http_port` overrides FLEET_HTTP_ADDR when several "pods" share this
/// host's network namespace.
fn spawn_reconciler(
    rendered: &Rendered,
    ns: &str,
    kubeconfig: &Path,
    pod_name: &str,
    http_port: Option<u16>,
    log: PathBuf,
) -> Running {
    let dep = rendered.one("Deployment");
    let mut cmd = Command::new(reconciler_bin());
    cmd.env_remove("KUBERNETES_SERVICE_HOST")
        .env("KUBECONFIG", kubeconfig);
    for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env")
    {
        let name = e["name"].as_str().expect("name");
        let value = match e["value"].as_str() {
            Some(v) => v.to_string(),
            None => match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod_name.to_string(),
                Some("metadata.namespace") => ns.to_string(),
                other => panic!("unexpected env source {other:?} for {name}"),
            },
        };
        cmd.env(name, value);
    }
    if let Some(port) = http_port {
        cmd.env("FLEET_HTTP_ADDR", format!("127.0.0.1:{port}"));
    }
    let log_file = std::fs::File::create(&log).expect("log file");
    cmd.stdout(Stdio::from(log_file.try_clone().expect("dup")))
        .stderr(Stdio::from(log_file));
    Running {
        child: cmd.spawn().expect("fleet-reconciler starts"),
        log,
    }
}

#[test]
fn the_reconciler_works_with_only_the_charts_rbac_and_env() {
    let k = kubectl();
    k.install_crds().expect("CRDs install");
    let ns = k.temp_namespace("chart-rbac").expect("namespace");
    let release = format!("t-{}", ns.name);
    let port = free_ports(1)[0];
    // watchNamespace keeps this controller away from other suites' stacks
    // on the shared cluster, and reconcilerClass keeps an installed
    // controller (the e2e suites install the chart) away from ours; both
    // exercise the chart's FLEET_WATCH_NAMESPACE / FLEET_RECONCILER_CLASS.
    let rendered = helm_template(
        &release,
        &ns.name,
        &[
            "--set",
            &format!("httpPort={port}"),
            "--set",
            &format!("watchNamespace={}", ns.name),
            "--set",
            &format!("reconcilerClass={}", ns.name),
        ],
    )
    .expect("renders");

    // 1. The chart's identity and permissions, for real.
    let _cleanup = apply_chart_rbac(
        &k,
        &rendered,
        &["ServiceAccount", "ClusterRole", "ClusterRoleBinding"],
    );
    // 2. Its token, and nothing more.
    let dir = std::env::temp_dir().join(format!("chart-rbac-{}", ns.name));
    let sa_kubeconfig = service_account_kubeconfig(&k, &ns.name, &rendered, &dir);
    let as_sa = |args: &[&str]| {
        let mut full = vec!["--kubeconfig", sa_kubeconfig.to_str().expect("utf-8")];
        full.extend_from_slice(args);
        fleet_deploy_tests::run(std::path::Path::new("kubectl"), &full, None).expect("kubectl runs")
    };
    // The token really is restricted (else the test below proves nothing).
    // (It lists and watches pods to wake probes, but never creates one.)
    let pods = as_sa(&["auth", "can-i", "create", "pods", "-n", &ns.name]);
    assert_eq!(
        pods.stdout.trim(),
        "no",
        "the ServiceAccount may create pods: {pods:?}"
    );
    let sts = as_sa(&["auth", "can-i", "create", "statefulsets", "-n", &ns.name]);
    assert_eq!(sts.stdout.trim(), "yes", "RBAC not effective: {sts:?}");

    // 3. The controller, with the Deployment's environment.
    let running = spawn_reconciler(
        &rendered,
        &ns.name,
        &sa_kubeconfig,
        &format!("{release}-pod"),
        None,
        dir.join("reconciler.log"),
    );
    let dep = rendered.one("Deployment");

    // Probes on the port the chart's probes use.
    let container_port =
        dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
            .as_u64()
            .expect("containerPort");
    assert_eq!(container_port, u64::from(port));
    wait_for("/healthz", Duration::from_secs(30), || {
        http_get(port, "/healthz").filter(|(s, _)| *s == 200)
    });
    wait_for("/readyz", Duration::from_secs(30), || {
        http_get(port, "/readyz").filter(|(s, _)| *s == 200)
    });

    // 4. A stack: every NATS child is created by server-side apply.
    let stack = format!(
        "apiVersion: fleet.nationtech.io/v1alpha1\nkind: FleetStack\nmetadata:\n  name: rbac\n  \
         labels:\n    fleet.nationtech.io/reconciler: {}\nspec:\n  nats:\n    replicas: 1\n",
        ns.name
    );
    k.run_ok(&["-n", &ns.name, "apply", "-f", "-"], Some(&stack))
        .expect("FleetStack applies");
    let get_status = || {
        k.run_ok(
            &["-n", &ns.name, "get", "fleetstack", "rbac", "-o", "json"],
            None,
        )
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    };
    let status = wait_for("the NatsReady condition", Duration::from_secs(120), || {
        let obj = get_status()?;
        let conds = obj["status"]["conditions"].as_array()?.clone();
        conds
            .iter()
            .find(|c| c["type"] == "NatsReady")
            .map(|_| obj["status"].clone())
    });
    let nats = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "NatsReady")
        .expect("NatsReady")
        .clone();
    // The probe may fail (no NATS image on a control-plane-only cluster);
    // applying must not.
    assert_ne!(
        nats["reason"],
        "ApplyFailed",
        "apply failed: {nats}\n{}",
        running.log()
    );
    // Argo CD's view of that live status agrees with its conditions.
    let live = get_status().expect("FleetStack readable");
    let health = fleet_deploy_tests::argocd_health("FleetStack", &live).expect("health.lua runs");
    let cond = |t: &str| {
        live["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
    };
    let expected = if cond("Stalled").as_deref() == Some("True") {
        "Degraded"
    } else if cond("Ready").as_deref() == Some("True") {
        "Healthy"
    } else if cond("Reconciling").as_deref() == Some("True") {
        "Progressing"
    } else {
        "Degraded"
    };
    assert_eq!(health.status, expected, "{health:?} for {live}");
    for kind in [
        "statefulset",
        "service",
        "configmap",
        "secret",
        "serviceaccount",
    ] {
        let out = k
            .run_ok(
                &[
                    "-n",
                    &ns.name,
                    "get",
                    kind,
                    "-l",
                    "app.kubernetes.io/managed-by=fleet-reconciler",
                    "-o",
                    "name",
                ],
                None,
            )
            .expect("kubectl get");
        assert!(
            !out.trim().is_empty(),
            "no {kind} created\n{}",
            running.log()
        );
    }
    let events = wait_for(
        "an Event from the controller",
        Duration::from_secs(30),
        || {
            let out = k
                .run_ok(
                    &["-n", &ns.name, "get", "events.events.k8s.io", "-o", "name"],
                    None,
                )
                .ok()?;
            (!out.trim().is_empty()).then_some(out)
        },
    );
    assert!(!events.is_empty());

    // 5. Pruning: a component removed from the spec loses its objects
    //    (list + delete through the chart's rules).
    k.run_ok(
        &[
            "-n",
            &ns.name,
            "patch",
            "fleetstack",
            "rbac",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/nats"}]"#,
        ],
        None,
    )
    .expect("patch");
    wait_for(
        "the StatefulSet to be pruned",
        Duration::from_secs(60),
        || {
            let out = k
                .run_ok(
                    &[
                        "-n",
                        &ns.name,
                        "get",
                        "statefulset",
                        "-l",
                        "app.kubernetes.io/managed-by=fleet-reconciler",
                        "-o",
                        "name",
                    ],
                    None,
                )
                .ok()?;
            out.trim().is_empty().then_some(())
        },
    );

    // The Argo CD health check on the live object the controller wrote
    // (not a fixture): an empty spec deploys nothing, which is Stalled
    // (NoComponents, issue 12) and Degraded ...
    let live = wait_for(
        "Stalled=True (NoComponents) for generation 2",
        Duration::from_secs(60),
        || {
            let obj = get_status()?;
            let stalled = obj["status"]["conditions"].as_array()?.iter().any(|c| {
                c["type"] == "Stalled"
                    && c["status"] == "True"
                    && c["reason"] == "NoComponents"
                    && c["observedGeneration"] == 2
            });
            (stalled && obj["status"]["observedGeneration"] == 2).then_some(obj)
        },
    );
    let health = fleet_deploy_tests::argocd_health("FleetStack", &live).expect("health.lua runs");
    assert_eq!(health.status, "Degraded", "{health:?} for {live}");
    // ... and a paused one is Suspended.
    k.run_ok(
        &[
            "-n",
            &ns.name,
            "patch",
            "fleetstack",
            "rbac",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":true}}"#,
        ],
        None,
    )
    .expect("pause");
    let live = wait_for("the Paused condition", Duration::from_secs(60), || {
        let obj = get_status()?;
        let paused = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Paused" && c["status"] == "True");
        paused.then_some(obj)
    });
    let health = fleet_deploy_tests::argocd_health("FleetStack", &live).expect("health.lua runs");
    assert_eq!(health.status, "Suspended", "{health:?} for {live}");

    let (code, metrics) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# TYPE"),
        "not Prometheus text:\n{metrics}"
    );

    // 6. Nothing was refused along the way.
    let log = running.log();
    for needle in ["forbidden", "Forbidden"] {
        assert!(
            !log.contains(needle),
            "the controller hit an RBAC refusal:\n{log}"
        );
    }

    // SIGTERM, as the kubelet sends it: a clean, prompt exit.
    let pid = running.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    let mut running = running;
    let start = Instant::now();
    let exit = loop {
        if let Some(status) = running.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "no exit within 25 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        exit.success(),
        "exit after SIGTERM: {exit}\n{}",
        running.log()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `replicas: 2`: the chart turns leader election on; with the chart's
/// Lease Role two controllers elect one leader, and when the leader stops
/// the other takes over and reconciles. Both run with only the chart's
/// ServiceAccount token and the rendered environment.
#[test]
fn two_replicas_elect_a_leader_with_the_charts_lease_role() {
    let k = kubectl();
    k.install_crds().expect("CRDs install");
    let ns = k.temp_namespace("chart-leader").expect("namespace");
    let release = format!("t-{}", ns.name);
    let rendered = helm_template(
        &release,
        &ns.name,
        &[
            "--set",
            "replicas=2",
            "--set",
            &format!("watchNamespace={}", ns.name),
            "--set",
            &format!("reconcilerClass={}", ns.name),
        ],
    )
    .expect("renders");
    let _cleanup = apply_chart_rbac(
        &k,
        &rendered,
        &[
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ],
    );
    let dir = std::env::temp_dir().join(format!("chart-leader-{}", ns.name));
    let kubeconfig = service_account_kubeconfig(&k, &ns.name, &rendered, &dir);
    let lease = rendered.one("Role")["rules"][1]["resourceNames"][0]
        .as_str()
        .expect("lease name")
        .to_string();
    let holder = || {
        k.run_ok(
            &[
                "-n",
                &ns.name,
                "get",
                "lease",
                &lease,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    };

    // Two "pods" of the Deployment (one network namespace here, so each
    // gets its own HTTP port).
    let ports = free_ports(2);
    let (port_a, port_b) = (ports[0], ports[1]);
    let a = spawn_reconciler(
        &rendered,
        &ns.name,
        &kubeconfig,
        "replica-a",
        Some(port_a),
        dir.join("a.log"),
    );
    let first = wait_for_logged(
        "replica-a to take the Lease",
        Duration::from_secs(30),
        &[&a],
        || holder().filter(|h| h == "replica-a"),
    );
    assert_eq!(first, "replica-a");
    let b = spawn_reconciler(
        &rendered,
        &ns.name,
        &kubeconfig,
        "replica-b",
        Some(port_b),
        dir.join("b.log"),
    );
    // A follower is ready (so a rolling update can proceed) but does not lead.
    wait_for_logged("replica-b /readyz", Duration::from_secs(30), &[&b], || {
        http_get(port_b, "/readyz").filter(|(s, _)| *s == 200)
    });

    let stack = format!(
        "apiVersion: fleet.nationtech.io/v1alpha1\nkind: FleetStack\nmetadata:\n  name: led\n  \
         labels:\n    fleet.nationtech.io/reconciler: {}\nspec: {{}}\n",
        ns.name
    );
    k.run_ok(&["-n", &ns.name, "apply", "-f", "-"], Some(&stack))
        .expect("FleetStack applies");
    let observed = |generation: i64| {
        k.run_ok(
            &[
                "-n",
                &ns.name,
                "get",
                "fleetstack",
                "led",
                "-o",
                "jsonpath={.status.observedGeneration}",
            ],
            None,
        )
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|g| *g == generation)
    };
    wait_for_logged(
        "the leader to reconcile generation 1",
        Duration::from_secs(30),
        &[&a, &b],
        || observed(1),
    );
    assert_eq!(
        holder().as_deref(),
        Some("replica-a"),
        "leadership moved while both ran"
    );

    // The leader stops (SIGTERM, as in a rolling update); the follower takes
    // over within the Lease duration and reconciles the next generation.
    Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    wait_for_logged(
        "replica-b to take the Lease",
        Duration::from_secs(45),
        &[&a, &b],
        || holder().filter(|h| h == "replica-b"),
    );
    k.run_ok(
        &[
            "-n",
            &ns.name,
            "patch",
            "fleetstack",
            "led",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":true}}"#,
        ],
        None,
    )
    .expect("patch");
    wait_for_logged(
        "the new leader to reconcile generation 2",
        Duration::from_secs(45),
        &[&a, &b],
        || observed(2),
    );

    for (name, r) in [("replica-a", &a), ("replica-b", &b)] {
        let log = r.log();
        assert!(
            !log.contains("forbidden") && !log.contains("Forbidden"),
            "{name} hit an RBAC refusal:\n{log}"
        );
    }
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
