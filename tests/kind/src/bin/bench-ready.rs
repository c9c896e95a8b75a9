//! `bench-ready`: apply-to-Ready of a FleetStack next to the bare pods it
//! wraps (issue 18). A benchmark, not a test: it prints numbers and asserts
//! nothing.
//!
//! For each scenario, alternating and each in a fresh namespace, it times
//! (a) **bare pods** of the same images, started in the same dependency
//! order (NATS first; the operator and agents once NATS is Ready), each with
//! a 1 s readiness probe, from the first create to every pod Ready; and (b)
//! the **FleetStack**, from its create to `Ready=True` for its generation
//! (every component rolled out and its smoke probe passed end to end, the
//! agents answering pings through NATS).
//!
//! Scenarios: `nats` (`nats: {replicas: 1}`), `minimal`
//! (`examples/minimal.yaml`: NATS, operator, 3 agents), `nats3` (3 NATS
//! servers). The bare NATS runs without authentication or TLS, the
//! FleetStack with its defaults (TLS, generated credentials): the bare side
//! is the floor the pods allow, not a configuration we ship.
//!
//! Usage: `bench-ready [--runs N] [scenario ...]` with `KUBECONFIG` set, the
//! images loaded and the controller installed (`scripts/up`, or
//! `tests/kind/bench-ready`, which does that first).

use std::time::{Duration, Instant};

use fleet_crds::{FleetStack, FleetStackSpec};
use fleet_e2e::stack::is_ready;
use fleet_e2e::{E2eError, TestNamespace, api_err, image};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Nats,
    /// NATS-only with `tls.mode: Disabled`: next to `Nats`, what TLS costs
    /// (issue 14's benchmark).
    NatsPlaintext,
    Minimal,
    Nats3,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Nats,
        Scenario::NatsPlaintext,
        Scenario::Minimal,
        Scenario::Nats3,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Nats => "nats",
            Scenario::NatsPlaintext => "nats-plain",
            Scenario::Minimal => "minimal",
            Scenario::Nats3 => "nats3",
        }
    }

    fn servers(self) -> usize {
        match self {
            Scenario::Nats | Scenario::NatsPlaintext | Scenario::Minimal => 1,
            Scenario::Nats3 => 3,
        }
    }

    fn spec(self) -> FleetStackSpec {
        let spec = match self {
            Scenario::Nats => json!({"nats": {"replicas": 1}}),
            Scenario::NatsPlaintext => {
                json!({"nats": {"replicas": 1, "tls": {"mode": "Disabled"}}})
            }
            Scenario::Nats3 => json!({"nats": {"replicas": 3}}),
            Scenario::Minimal => json!({
                "nats": {"replicas": 1, "auth": {"mode": "UserPass"}},
                "operator": {"replicas": 1},
                "agents": {"target": "Pod", "replicas": 3}
            }),
        };
        let mut spec: FleetStackSpec = serde_json::from_value(spec).expect("static spec");
        // The images this repository builds (the CRD defaults name the
        // published ones).
        if let Some(n) = spec.nats.as_mut() {
            n.image = image_of("nats-server");
        }
        if let Some(o) = spec.operator.as_mut() {
            o.image = image("fleet-operator");
        }
        if let Some(a) = spec.agents.as_mut() {
            a.image = image("fleet-agent");
        }
        spec
    }
}

/// `fleetstack/nats-server:<its version>`, as `tests/kind/images` tags it.
fn image_of(binary: &str) -> String {
    match binary {
        "nats-server" => fleet_crds::NatsSpec::default().image,
        other => image(other),
    }
}

fn readiness(port: u16, path: &str) -> Value {
    json!({"httpGet": {"port": port, "path": path}, "periodSeconds": 1, "failureThreshold": 3})
}

async fn create(client: &Client, ns: &str, manifest: Value) -> Result<(), E2eError> {
    let kind = manifest["kind"].as_str().unwrap_or_default().to_string();
    let name = manifest["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let doing = format!("creating {kind} {ns}/{name}");
    let (group, version) = match manifest["apiVersion"]
        .as_str()
        .unwrap_or("v1")
        .split_once('/')
    {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            manifest["apiVersion"].as_str().unwrap_or("v1").to_string(),
        ),
    };
    let plural = match kind.as_str() {
        "ConfigMap" => "configmaps",
        "Service" => "services",
        "Pod" => "pods",
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => {
            return Err(E2eError::Command {
                what: doing,
                output: format!("unknown kind {other}"),
            });
        }
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &kind);
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object: kube::api::DynamicObject =
        serde_json::from_value(manifest).map_err(|e| E2eError::Command {
            what: doing.clone(),
            output: e.to_string(),
        })?;
    // Kubernetes < 1.24 refuses a pod until its ServiceAccount's token
    // Secret exists (a new one gets it within a moment); as a workload
    // controller would, try again.
    let start = Instant::now();
    loop {
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(e))
                if e.message.contains("No API token found")
                    && start.elapsed() < Duration::from_secs(30) =>
            {
                tokio::time::sleep(POLL).await;
            }
            other => {
                other.map_err(api_err(doing))?;
                return Ok(());
            }
        }
    }
}

/// The bare NATS servers: a config, a headless Service (routes and the
/// clients' name), `servers` pods with a 1 s readiness probe.
async fn bare_nats(client: &Client, ns: &str, servers: usize) -> Result<Vec<String>, E2eError> {
    let mut conf =
        String::from("server_name: $SERVER_NAME\nlisten: 0.0.0.0:4222\nhttp: 0.0.0.0:8222\n");
    if servers > 1 {
        let routes: Vec<String> = (0..servers)
            .map(|i| format!("nats-route://bare-nats-{i}.bare-nats:6222"))
            .collect();
        conf.push_str(&format!(
            "cluster {{\n  name: bare\n  listen: 0.0.0.0:6222\n  routes: [{}]\n}}\n",
            routes.join(", ")
        ));
    }
    create(
        client,
        ns,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "bare-nats"}, "data": {"nats.conf": conf}
        }),
    )
    .await?;
    create(
        client,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "bare-nats"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                     "selector": {"bench": "bare-nats"},
                     "ports": [{"name": "client", "port": 4222}, {"name": "route", "port": 6222}]}
        }),
    )
    .await?;
    create(client, ns, json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "bare-nats-client"},
        "spec": {"selector": {"bench": "bare-nats"}, "ports": [{"name": "client", "port": 4222}]}
    })).await?;
    let mut names = Vec::new();
    for i in 0..servers {
        let name = format!("bare-nats-{i}");
        create(client, ns, json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "bare-nats"}},
            "spec": {
                "hostname": name, "subdomain": "bare-nats",
                "containers": [{
                    "name": "nats", "image": image_of("nats-server"),
                    "command": ["nats-server", "--config", "/etc/nats/nats.conf"],
                    "env": [{"name": "SERVER_NAME", "value": name}],
                    "ports": [{"containerPort": 4222}, {"containerPort": 6222}, {"containerPort": 8222}],
                    "readinessProbe": readiness(8222, "/healthz"),
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/nats"}]
                }],
                "volumes": [{"name": "config", "configMap": {"name": "bare-nats"}}]
            }
        })).await?;
        names.push(name);
    }
    Ok(names)
}

/// The bare operator (with the Role our Score gives it) and 3 agents,
/// against the bare NATS.
async fn bare_fleet(client: &Client, ns: &str) -> Result<Vec<String>, E2eError> {
    let url = "nats://bare-nats-client:4222";
    let input = fleet_scores::operator::objects::OperatorInput {
        stack: "bare".into(),
        namespace: ns.into(),
        owner: Default::default(),
        spec: serde_json::from_value(json!({"replicas": 1})).expect("operator spec"),
        nats_tls: false,
        nats_servers: 1,
    };
    let rules = serde_json::to_value(fleet_scores::operator::objects::rules(&input))
        .expect("rules serialize");
    create(client, ns, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bare-operator"}})).await?;
    create(
        client,
        ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "bare-operator"}, "rules": rules
        }),
    )
    .await?;
    create(client, ns, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bare-operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bare-operator"},
        "subjects": [{"kind": "ServiceAccount", "name": "bare-operator", "namespace": ns}]
    })).await?;
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    create(
        client,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bare-operator"},
            "spec": {
                "serviceAccountName": "bare-operator",
                "containers": [{
                    "name": "operator", "image": image("fleet-operator"),
                    "env": [{"name": "FLEET_NATS_URL", "value": url},
                            field("FLEET_NAMESPACE", "metadata.namespace"),
                            field("POD_NAME", "metadata.name")],
                    "readinessProbe": readiness(8080, "/readyz")
                }]
            }
        }),
    )
    .await?;
    let mut names = vec!["bare-operator".to_string()];
    for i in 0..3 {
        let name = format!("bare-agent-{i}");
        create(
            client,
            ns,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "agent", "image": image("fleet-agent"),
                        "env": [{"name": "FLEET_NATS_URL", "value": url},
                                field("FLEET_AGENT_ID", "metadata.name")],
                        "readinessProbe": readiness(8080, "/readyz")
                    }]
                }
            }),
        )
        .await?;
        names.push(name);
    }
    Ok(names)
}

async fn wait_pods_ready(pods: &Api<Pod>, names: &[String]) -> Result<(), E2eError> {
    let start = Instant::now();
    loop {
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(api_err("listing pods"))?;
        let ready = |name: &String| {
            list.items.iter().any(|p| {
                p.metadata.name.as_ref() == Some(name)
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
        };
        if names.iter().all(ready) {
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            return Err(E2eError::Timeout {
                what: format!("bare pods {names:?} Ready"),
                waited: DEADLINE,
                last: String::new(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn run_bare(scenario: Scenario) -> Result<Duration, E2eError> {
    let ns = TestNamespace::create(&format!("bench-bare-{}", scenario.name())).await?;
    let pods = ns.api::<Pod>();
    let start = Instant::now();
    let servers = bare_nats(&ns.client, &ns.name, scenario.servers()).await?;
    wait_pods_ready(&pods, &servers).await?;
    if scenario == Scenario::Minimal {
        let fleet = bare_fleet(&ns.client, &ns.name).await?;
        wait_pods_ready(&pods, &fleet).await?;
    }
    let took = start.elapsed();
    teardown(ns).await;
    Ok(took)
}

async fn run_stack(scenario: Scenario) -> Result<Duration, E2eError> {
    let ns = TestNamespace::create(&format!("bench-stack-{}", scenario.name())).await?;
    let stacks = ns.api::<FleetStack>();
    let stack = FleetStack::new("bench", scenario.spec());
    let start = Instant::now();
    stacks
        .create(&PostParams::default(), &stack)
        .await
        .map_err(api_err("creating the FleetStack"))?;
    loop {
        let s = stacks
            .get("bench")
            .await
            .map_err(api_err("reading the FleetStack"))?;
        if is_ready(&s) {
            break;
        }
        if start.elapsed() > DEADLINE {
            return Err(E2eError::Timeout {
                what: format!("FleetStack {}/bench Ready", ns.name),
                waited: DEADLINE,
                last: fleet_e2e::stack::describe(&s),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    let took = start.elapsed();
    let _ = stacks.delete("bench", &DeleteParams::background()).await;
    teardown(ns).await;
    Ok(took)
}

/// Pods go at once (NATS' lame-duck mode would keep a server busy 30 s
/// into the next measurement), then the namespace; waits until no pod of
/// it runs, so runs do not overlap.
async fn teardown(ns: TestNamespace) {
    let pods = ns.api::<Pod>();
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::background()
    };
    let client = ns.client.clone();
    let name = ns.name.clone();
    let _ = pods.delete_collection(&now, &ListParams::default()).await;
    ns.cleanup().await;
    let all: Api<Pod> = Api::namespaced(client, &name);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        match all.list(&ListParams::default()).await {
            Ok(list) if list.items.is_empty() => return,
            Err(_) => return,
            Ok(_) => {
                let _ = all.delete_collection(&now, &ListParams::default()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut runs = 5usize;
    let mut scenarios = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(5),
            name => match Scenario::ALL.iter().find(|s| s.name() == name) {
                Some(s) => scenarios.push(*s),
                None => {
                    eprintln!(
                        "bench-ready: unknown scenario {name} (nats, nats-plain, minimal, nats3)"
                    );
                    std::process::exit(2);
                }
            },
        }
    }
    if scenarios.is_empty() {
        scenarios = Scenario::ALL.to_vec();
    }
    let mut summary = Vec::new();
    for scenario in scenarios {
        let (mut bare, mut stack) = (Vec::new(), Vec::new());
        for i in 0..runs {
            // Alternate which goes first, so drift in the machine's load
            // does not favour one side.
            let order = if i % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_bare in order {
                let result = if is_bare {
                    run_bare(scenario).await
                } else {
                    run_stack(scenario).await
                };
                match result {
                    Ok(d) => {
                        let secs = d.as_secs_f64();
                        println!(
                            "{:10} run {} {:10} {:6.2} s",
                            scenario.name(),
                            i + 1,
                            if is_bare { "bare pods" } else { "FleetStack" },
                            secs
                        );
                        if is_bare {
                            bare.push(secs)
                        } else {
                            stack.push(secs)
                        }
                    }
                    Err(e) => {
                        eprintln!("bench-ready: {} run {}: {e}", scenario.name(), i + 1);
                        std::process::exit(1);
                    }
                }
            }
        }
        summary.push((scenario, bare, stack));
    }
    println!();
    println!("scenario     bare pods median [range]     FleetStack median [range]    ratio");
    let stack_median = |which: Scenario| {
        summary
            .iter()
            .find(|(s, _, _)| *s == which)
            .map(|(_, _, stack)| median(stack))
    };
    let tls_cost = stack_median(Scenario::Nats).zip(stack_median(Scenario::NatsPlaintext));
    for (scenario, bare, stack) in summary {
        let (bm, sm) = (median(&bare), median(&stack));
        let (b0, b1) = range(&bare);
        let (s0, s1) = range(&stack);
        println!(
            "{:10}   {bm:5.2} s [{b0:5.2}-{b1:5.2}]       {sm:5.2} s [{s0:5.2}-{s1:5.2}]       {:.2}",
            scenario.name(),
            sm / bm
        );
    }
    if let Some((tls, plain)) = tls_cost {
        println!(
            "TLS cost: FleetStack nats {tls:.2} s vs nats-plain {plain:.2} s: {:+.0}%",
            (tls / plain - 1.0) * 100.0
        );
    }
}
