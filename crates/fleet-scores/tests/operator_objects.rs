//! FleetOperatorScore's desired objects (pure): the Deployment runs the
//! operator runtime with exactly the environment
//! crates/fleet-operator/src/config.rs reads, its NATS password only from a
//! file mounted from the Secret, its API token mounted (it is a Kubernetes
//! client), a Role with exactly the calls the runtime makes, restricted pod
//! security and probes on its own endpoints.

use std::collections::BTreeSet;

use fleet_crds::OperatorSpec;
use fleet_scores::labels::{COMPONENT, INSTANCE, MANAGED_BY};
use fleet_scores::nats;
use fleet_scores::operator::{self, OperatorInput, OperatorObjects};
use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

mod common;
use common::{env, value};

fn input(replicas: i32) -> OperatorInput {
    OperatorInput {
        stack: "demo".into(),
        namespace: "fleet".into(),
        owner: common::owner(),
        spec: OperatorSpec {
            pod: None,
            image: "fleetstack/fleet-operator:0.1.0".into(),
            replicas,
        },
        nats_tls: true,
        nats_servers: 3,
    }
}

fn pod(o: &OperatorObjects) -> &PodSpec {
    common::pod_spec(&o.deployment)
}

fn container(o: &OperatorObjects) -> &Container {
    &pod(o).containers[0]
}

fn field_ref(c: &Container, name: &str) -> String {
    let e = env(c, name).unwrap_or_else(|| panic!("{name} is set"));
    assert!(e.value.is_none(), "{name} is not a literal");
    e.value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone())
        .unwrap_or_else(|| panic!("{name} comes from a fieldRef"))
}

/// The Role's rules as `(apiGroup, resource, verb, resourceNames)` tuples,
/// one per combination, so the comparison does not depend on how rules are
/// grouped.
fn grants(o: &OperatorObjects) -> BTreeSet<(String, String, String, Vec<String>)> {
    let mut set = BTreeSet::new();
    for rule in o.role.rules.as_ref().unwrap() {
        let names = rule.resource_names.clone().unwrap_or_default();
        for group in rule.api_groups.as_ref().unwrap() {
            for resource in rule.resources.as_ref().unwrap() {
                for verb in &rule.verbs {
                    set.insert((group.clone(), resource.clone(), verb.clone(), names.clone()));
                }
            }
        }
    }
    set
}

fn expected_grants(lease: Option<&str>) -> BTreeSet<(String, String, String, Vec<String>)> {
    let fleet = "fleet.nationtech.io";
    let mut v: Vec<(&str, &str, &str, Vec<String>)> = vec![
        (fleet, "fleetagents", "create", vec![]),
        (fleet, "fleetagents", "delete", vec![]),
        (fleet, "fleetagents", "list", vec![]),
        (fleet, "fleetagents", "patch", vec![]),
        (fleet, "fleetagents/status", "patch", vec![]),
        (fleet, "fleetcommands", "list", vec![]),
        (fleet, "fleetcommands", "watch", vec![]),
        (fleet, "fleetcommands/status", "get", vec![]),
        (fleet, "fleetcommands/status", "patch", vec![]),
        (fleet, "fleetstacks", "get", vec![]),
    ];
    if let Some(lease) = lease {
        let coord = "coordination.k8s.io";
        v.push((coord, "leases", "create", vec![]));
        v.push((coord, "leases", "get", vec![lease.to_string()]));
        v.push((coord, "leases", "update", vec![lease.to_string()]));
    }
    v.into_iter()
        .map(|(g, r, verb, n)| (g.to_string(), r.to_string(), verb.to_string(), n))
        .collect()
}

#[test]
fn role_grants_exactly_the_calls_the_runtime_makes() {
    let o = operator::build(&input(1));
    assert_eq!(grants(&o), expected_grants(None));
    let o = operator::build(&input(3));
    assert_eq!(grants(&o), expected_grants(Some("demo-operator")));
    for rule in o.role.rules.as_ref().unwrap() {
        let all = rule
            .api_groups
            .iter()
            .chain(rule.resources.iter())
            .flatten()
            .chain(rule.verbs.iter());
        for s in all {
            assert!(!s.contains('*'), "no wildcards: {rule:?}");
        }
        assert!(rule.non_resource_urls.is_none());
    }
}

#[test]
fn role_binding_binds_the_role_to_the_operator_account() {
    let o = operator::build(&input(1));
    let rb = &o.role_binding;
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(rb.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(rb.role_ref.name, "demo-operator");
    let subjects = rb.subjects.as_ref().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, "demo-operator");
    assert_eq!(subjects[0].namespace.as_deref(), Some("fleet"));
    assert_eq!(
        pod(&o).service_account_name.as_deref(),
        Some("demo-operator")
    );
}

#[test]
fn deployment_runs_the_operator_with_its_configuration() {
    let o = operator::build(&input(1));
    let d = o.deployment.spec.as_ref().unwrap();
    assert_eq!(d.replicas, Some(1));
    assert_eq!(o.deployment.metadata.name.as_deref(), Some("demo-operator"));
    let c = container(&o);
    assert_eq!(c.image.as_deref(), Some("fleetstack/fleet-operator:0.1.0"));
    assert_eq!(
        value(c, "FLEET_NATS_URL"),
        "tls://demo-nats.fleet.svc.cluster.local:4222"
    );
    // TLS: the stack CA (public, from a ConfigMap) verifies the server.
    assert_eq!(value(c, "FLEET_NATS_CA_FILE"), "/etc/fleet/nats-ca/ca.crt");
    assert_eq!(value(c, "FLEET_NATS_USER"), nats::config::FLEET_USER);
    assert_eq!(value(c, "FLEET_OWNER_STACK"), "demo");
    assert_eq!(value(c, "FLEET_HTTP_ADDR"), "0.0.0.0:8080");
    assert_eq!(field_ref(c, "FLEET_NAMESPACE"), "metadata.namespace");
    assert_eq!(field_ref(c, "POD_NAME"), "metadata.name");
    // One replica: no Lease, and no second writer during a rollout.
    assert!(env(c, "FLEET_LEADER_ELECTION").is_none());
    assert!(env(c, "FLEET_LEASE_NAME").is_none());
    assert_eq!(
        d.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate")
    );
    // Never a password literal, never the inline variable.
    assert!(env(c, "FLEET_NATS_PASSWORD").is_none());
    // Every variable the container gets is one config.rs reads.
    let names: BTreeSet<&str> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "FLEET_NATS_URL",
            "FLEET_NATS_USER",
            "FLEET_NATS_PASSWORD_FILE",
            "FLEET_NATS_CA_FILE",
            "FLEET_NAMESPACE",
            "FLEET_OWNER_STACK",
            "POD_NAME",
            "FLEET_HTTP_ADDR",
            "FLEET_NATS_MONITOR_URLS",
        ])
    );
    // One monitoring URL per NATS server (the operator serves their
    // metrics, crates/fleet-operator/src/nats_monitor.rs), each pod by its
    // headless-Service name.
    assert_eq!(
        value(c, "FLEET_NATS_MONITOR_URLS"),
        "http://demo-nats-0.demo-nats-headless.fleet.svc.cluster.local:8222,\
         http://demo-nats-1.demo-nats-headless.fleet.svc.cluster.local:8222,\
         http://demo-nats-2.demo-nats-headless.fleet.svc.cluster.local:8222"
    );
    let without = operator::build(&OperatorInput {
        nats_servers: 0,
        ..input(1)
    });
    assert!(env(container(&without), "FLEET_NATS_MONITOR_URLS").is_none());
}

#[test]
fn leader_election_only_with_more_than_one_replica() {
    let o = operator::build(&input(3));
    let d = o.deployment.spec.as_ref().unwrap();
    assert_eq!(d.replicas, Some(3));
    let c = container(&o);
    assert_eq!(value(c, "FLEET_LEADER_ELECTION"), "true");
    assert_eq!(value(c, "FLEET_LEASE_NAME"), "demo-operator");
    // With a Lease only the holder works: rolling updates are fine.
    assert!(d.strategy.is_none());
    let o = operator::build(&input(2));
    assert_eq!(value(container(&o), "FLEET_LEADER_ELECTION"), "true");
}

#[test]
fn password_is_a_file_from_the_secret_with_only_that_key() {
    let o = operator::build(&input(1));
    let c = container(&o);
    let file = value(c, "FLEET_NATS_PASSWORD_FILE");
    let mounts = c.volume_mounts.as_ref().unwrap();
    // The password, and the stack CA (public: a ConfigMap).
    assert_eq!(mounts.len(), 2);
    let mount = &mounts[0];
    assert_eq!(mount.read_only, Some(true));
    let volumes = pod(&o).volumes.as_ref().unwrap();
    assert_eq!(volumes.len(), 2);
    assert!(volumes[1].config_map.is_some() && volumes[1].secret.is_none());
    let volume = &volumes[0];
    assert_eq!(volume.name, mount.name);
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("demo-nats-credentials"));
    let items = secret.items.as_ref().unwrap();
    assert_eq!(items.len(), 1, "only the fleet password: {items:?}");
    assert_eq!(items[0].key, nats::FLEET_PASSWORD_KEY);
    assert_eq!(file, format!("{}/{}", mount.mount_path, items[0].path));
    // No env var anywhere carries a Secret value.
    for e in c.env.as_ref().unwrap() {
        let from_secret = e
            .value_from
            .as_ref()
            .is_some_and(|v| v.secret_key_ref.is_some());
        assert!(!from_secret, "{} comes from a file instead", e.name);
    }
}

#[test]
fn restricted_pod_security_token_mounted_and_probes_on_the_named_port() {
    let o = operator::build(&input(1));
    let p = pod(&o);
    // The operator is an API client: its pods mount the token (the pod
    // field overrides the account's default, which stays off).
    assert_eq!(p.automount_service_account_token, Some(true));
    assert_eq!(
        o.service_account.automount_service_account_token,
        Some(false)
    );
    let psc = p.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let c = container(&o);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http"), 8080)
    );
    let http = |p: &Option<Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (get.path.clone().unwrap(), get.port.clone())
    };
    let named = IntOrString::String("http".into());
    assert_eq!(
        http(&c.readiness_probe),
        ("/readyz".to_string(), named.clone())
    );
    assert_eq!(http(&c.liveness_probe), ("/healthz".to_string(), named));
    let resources = c.resources.as_ref().unwrap();
    assert!(resources.limits.is_some() && resources.requests.is_some());
}

#[test]
fn objects_are_labelled_owned_and_ordered() {
    for replicas in [1, 3] {
        let o = operator::build(&input(replicas));
        let keys: Vec<String> = o.ordered().unwrap().iter().map(|d| d.key()).collect();
        assert_eq!(
            keys,
            [
                "ServiceAccount/demo-operator",
                "Role/demo-operator",
                "RoleBinding/demo-operator",
                "Service/demo-operator",
                "Deployment/demo-operator"
            ]
        );
        for meta in [
            &o.service_account.metadata,
            &o.role.metadata,
            &o.role_binding.metadata,
            &o.service.metadata,
            &o.deployment.metadata,
        ] {
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels[MANAGED_BY], "fleet-reconciler");
            assert_eq!(labels[COMPONENT], "operator");
            assert_eq!(labels[INSTANCE], "demo");
            assert_eq!(meta.namespace.as_deref(), Some("fleet"));
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].uid, "1234");
            assert_eq!(owners[0].kind, "FleetStack");
        }
    }
    let o = operator::build(&input(1));
    let port = &o.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("http"));
    assert_eq!(port.port, 8080);
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    // The Service selects the Deployment's pods, and so does the Deployment.
    let spec = o.deployment.spec.as_ref().unwrap();
    let template = spec.template.metadata.clone().unwrap().labels.unwrap();
    let selector = o.service.spec.as_ref().unwrap().selector.clone().unwrap();
    for (k, v) in selector
        .iter()
        .chain(spec.selector.match_labels.as_ref().unwrap())
    {
        assert_eq!(&template[k], v);
    }
}

#[test]
fn owned_kinds_cover_every_kind_built() {
    let kinds: BTreeSet<String> = fleet_scores::Component::Operator
        .owned_kinds(false)
        .into_iter()
        .map(|k| k.kind)
        .collect();
    let o = operator::build(&input(3));
    for d in o.ordered().unwrap() {
        assert!(kinds.contains(&d.resource.kind), "{} pruned", d.key());
    }
}

/// The `/readyz` step against a real HTTP server: 503 (not ready yet) is a
/// failure, 200 a pass, nothing listening a failure naming the address.
#[tokio::test]
async fn readyz_step_reads_the_status_code() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use axum::http::StatusCode;
    use fleet_scores::ProbeOutcome;

    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    let router = axum::Router::new().route(
        "/readyz",
        axum::routing::get(move || {
            let flag = flag.clone();
            async move {
                if flag.load(Ordering::Relaxed) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let deadline = Duration::from_secs(2);

    let outcome = operator::probe::readyz("127.0.0.1", port, deadline).await;
    assert!(
        matches!(
            outcome,
            ProbeOutcome::Failed {
                reason: "OperatorNotReady",
                ..
            }
        ),
        "{outcome:?}"
    );
    ready.store(true, Ordering::Relaxed);
    let outcome = operator::probe::readyz("127.0.0.1", port, deadline).await;
    assert!(outcome.passed(), "{outcome:?}");

    // A port nobody listens on (bound, then released).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    match operator::probe::readyz("127.0.0.1", closed, deadline).await {
        ProbeOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, "OperatorUnreachable");
            assert!(
                message.contains(&format!("127.0.0.1:{closed}")),
                "{message}"
            );
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn credentials_hash_rolls_the_operator_and_is_absent_without_one() {
    use fleet_scores::write_once::CREDENTIALS_HASH;
    let template = |o: &OperatorObjects| {
        o.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .clone()
            .unwrap()
    };
    let plain = operator::build(&input(1));
    assert_eq!(
        template(&operator::build(&input(1)).with_credentials_hash(None)),
        template(&plain)
    );
    assert!(
        template(&plain)
            .annotations
            .is_none_or(|a| !a.contains_key(CREDENTIALS_HASH))
    );
    let hashed = operator::build(&input(1)).with_credentials_hash(Some("abc"));
    assert_eq!(
        template(&hashed).annotations.unwrap()[CREDENTIALS_HASH],
        "abc"
    );
    let mounted: Vec<String> = pod(&plain).volumes.as_ref().unwrap()[0]
        .secret
        .as_ref()
        .unwrap()
        .items
        .as_ref()
        .unwrap()
        .iter()
        .map(|i| i.key.clone())
        .collect();
    assert_eq!(mounted, operator::objects::CREDENTIAL_KEYS);
}
