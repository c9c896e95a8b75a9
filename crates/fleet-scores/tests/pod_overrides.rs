//! Every workload renders the one `PodOverrides` the same way (issue 17
//! item 1): each component's pods carry every override field, their
//! security contexts are exactly what they are without overrides, and the
//! container names validation accepts (`fleet_crds::pod_overrides::Workload`)
//! are the containers the Scores build.

use fleet_crds::pod_overrides::Workload;
use fleet_crds::{
    AgentTarget, AgentsSpec, CalloutSpec, ManagedZitadelSpec, NatsSpec, OperatorSpec, PodOverrides,
    ZitadelDatabaseSpec,
};
use fleet_scores::agents::{self, AgentAuth, AgentsInput};
use fleet_scores::callout::{self, CalloutInput, CalloutOidc};
use fleet_scores::nats::{self, NatsInput};
use fleet_scores::operator::{self, OperatorInput};
use fleet_scores::zitadel::{self, ZitadelInput};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ServiceAccount};

mod common;

fn overrides() -> PodOverrides {
    serde_yaml::from_str(
        r#"
nodeSelector: {fleet.example/pool: edge}
tolerations: [{key: dedicated, operator: Equal, value: fleet, effect: NoSchedule}]
priorityClassName: fleet-critical
imagePullSecrets: [{name: mirror}]
labels: {team: edge}
annotations: {example.com/owner: edge}
serviceAccountAnnotations: {iam.gke.io/gcp-service-account: fleet@example.iam.gserviceaccount.com}
"#,
    )
    .expect("overrides")
}

/// The pod templates (and ServiceAccount, if any) of one workload built
/// with `pod`.
fn build(
    workload: Workload,
    pod: Option<PodOverrides>,
) -> (Vec<PodTemplateSpec>, Option<ServiceAccount>) {
    let stack = "demo".to_string();
    let namespace = "fleet".to_string();
    let owner = common::owner();
    match workload {
        Workload::Nats => {
            let o = nats::build(&NatsInput {
                stack,
                namespace,
                owner,
                spec: NatsSpec {
                    replicas: 3,
                    pod,
                    ..NatsSpec::default()
                },
                pdb_v1: true,
                callout: None,
            });
            (
                vec![o.statefulset.spec.expect("sts").template],
                Some(o.service_account),
            )
        }
        Workload::Zitadel | Workload::ZitadelDatabase => {
            let (server_pod, db_pod) = match workload {
                Workload::Zitadel => (pod, None),
                _ => (None, pod),
            };
            let o = zitadel::objects::build(&ZitadelInput {
                stack,
                namespace,
                owner,
                spec: ManagedZitadelSpec {
                    image: fleet_crds::DEFAULT_ZITADEL_IMAGE.into(),
                    external_domain: "id.fleet.example".into(),
                    database: ZitadelDatabaseSpec {
                        pod: db_pod,
                        ..ZitadelDatabaseSpec::default()
                    },
                    bootstrap_image: fleet_crds::DEFAULT_ZITADEL_BOOTSTRAP_IMAGE.into(),
                    pod: server_pod,
                },
            });
            match workload {
                Workload::Zitadel => (
                    vec![
                        o.deployment.spec.expect("deployment").template,
                        o.init_job.spec.expect("init").template,
                        o.setup_job.spec.expect("setup").template,
                    ],
                    None,
                ),
                _ => (
                    vec![o.database.expect("bundled").1.spec.expect("db").template],
                    None,
                ),
            }
        }
        Workload::Callout => {
            let o = callout::build(&CalloutInput {
                nats_tls: true,
                stack,
                namespace,
                owner,
                spec: CalloutSpec {
                    image: "fleetstack/fleet-callout:0.1.0".into(),
                    replicas: 2,
                    audience: Some("fleet".into()),
                    identity_claim: None,
                    introspection_credentials: None,
                    pod,
                },
                oidc: CalloutOidc {
                    issuer: "http://issuer.fleet.svc:8080".into(),
                    audience: fleet_scores::pod::EnvSource::Literal("fleet".into()),
                    identity_claim: None,
                    introspection_secret: None,
                },
            });
            (
                vec![o.deployment.spec.expect("deployment").template],
                Some(o.service_account),
            )
        }
        Workload::Operator => {
            let o = operator::build(&OperatorInput {
                nats_tls: true,
                stack,
                namespace,
                owner,
                spec: OperatorSpec {
                    image: fleet_crds::DEFAULT_OPERATOR_IMAGE.into(),
                    replicas: 1,
                    pod,
                },
                nats_servers: 1,
            });
            (
                vec![o.deployment.spec.expect("deployment").template],
                Some(o.service_account),
            )
        }
        Workload::Agents => {
            let o = agents::build(&AgentsInput {
                nats_tls: true,
                stack,
                namespace,
                owner,
                spec: AgentsSpec {
                    target: AgentTarget::Pod,
                    replicas: 2,
                    pod,
                    ..AgentsSpec::default()
                },
                nats_url: "nats://demo-nats.fleet.svc.cluster.local:4222".into(),
                auth: AgentAuth::Password {
                    user: "fleet".into(),
                    secret: "demo-nats-credentials".into(),
                    key: "fleet-password".into(),
                },
            });
            (
                vec![o.statefulset.spec.expect("sts").template],
                Some(o.service_account),
            )
        }
    }
}

#[test]
fn every_workload_carries_every_override() {
    for workload in Workload::ALL {
        let mut pod = overrides();
        if !workload.has_service_account() {
            pod.service_account_annotations.clear();
        }
        let (templates, sa) = build(workload, Some(pod));
        for t in &templates {
            let spec = t.spec.as_ref().expect("pod spec");
            let w = workload.path();
            assert_eq!(
                spec.node_selector
                    .as_ref()
                    .map(|n| n["fleet.example/pool"].as_str()),
                Some("edge"),
                "{w}"
            );
            assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(1), "{w}");
            assert_eq!(
                spec.priority_class_name.as_deref(),
                Some("fleet-critical"),
                "{w}"
            );
            assert_eq!(
                spec.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()),
                Some("mirror"),
                "{w}"
            );
            let meta = t.metadata.as_ref().expect("meta");
            assert_eq!(meta.labels.as_ref().expect("labels")["team"], "edge", "{w}");
            assert_eq!(
                meta.annotations.as_ref().expect("annotations")["example.com/owner"],
                "edge",
                "{w}"
            );
        }
        if workload.has_service_account() {
            let sa = sa.expect("service account");
            assert!(
                sa.metadata
                    .annotations
                    .is_some_and(|a| a.contains_key("iam.gke.io/gcp-service-account")),
                "{}",
                workload.path()
            );
        }
    }
}

#[test]
fn overrides_leave_every_security_context_as_built() {
    for workload in Workload::ALL {
        let mut pod = overrides();
        pod.service_account_annotations.clear();
        let (plain, _) = build(workload, None);
        let (overridden, _) = build(workload, Some(pod));
        for (a, b) in plain.iter().zip(&overridden) {
            let (a, b) = (
                a.spec.as_ref().expect("spec"),
                b.spec.as_ref().expect("spec"),
            );
            assert_eq!(
                a.security_context,
                b.security_context,
                "{}",
                workload.path()
            );
            assert_eq!(a.volumes, b.volumes);
            assert_eq!(
                a.automount_service_account_token,
                b.automount_service_account_token
            );
            assert_eq!(a.service_account_name, b.service_account_name);
            let contexts = |p: &k8s_openapi::api::core::v1::PodSpec| {
                p.containers
                    .iter()
                    .chain(p.init_containers.iter().flatten())
                    .map(|c| {
                        (
                            c.name.clone(),
                            c.security_context.clone(),
                            c.command.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(contexts(a), contexts(b), "{}", workload.path());
        }
    }
}

#[test]
fn resources_can_be_set_for_exactly_the_containers_validation_names() {
    for workload in Workload::ALL {
        let (templates, _) = build(workload, None);
        let mut built: Vec<String> = templates
            .iter()
            .flat_map(|t| {
                let spec = t.spec.as_ref().expect("spec");
                spec.containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        built.sort();
        built.dedup();
        let mut named: Vec<String> = workload
            .containers()
            .iter()
            .map(|s| s.to_string())
            .collect();
        named.sort();
        assert_eq!(built, named, "{}", workload.path());
        // And each of them takes its override.
        let mut pod = PodOverrides::default();
        for c in workload.containers() {
            pod.resources.insert(
                c.to_string(),
                serde_yaml::from_str("{limits: {memory: 777Mi}}").expect("resources"),
            );
        }
        let (templates, _) = build(workload, Some(pod));
        for t in &templates {
            let spec = t.spec.as_ref().expect("spec");
            for c in spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
            {
                let limit = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref())
                    .map(|l| l["memory"].0.clone());
                assert_eq!(
                    limit.as_deref(),
                    Some("777Mi"),
                    "{} {}",
                    workload.path(),
                    c.name
                );
            }
        }
    }
}
