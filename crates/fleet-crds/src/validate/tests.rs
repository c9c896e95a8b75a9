use super::*;

fn paths(spec: &FleetStackSpec) -> Vec<String> {
    match validate_spec(spec) {
        Ok(()) => vec![],
        Err(errors) => errors.into_iter().map(|e| e.path).collect(),
    }
}

fn messages(spec: &FleetStackSpec) -> Vec<String> {
    match validate_spec(spec) {
        Ok(()) => vec![],
        Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn nats_only() -> FleetStackSpec {
    FleetStackSpec {
        nats: Some(NatsSpec::default()),
        ..Default::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn with_agent_resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> FleetStackSpec {
    FleetStackSpec {
        agents: Some(AgentsSpec {
            resources: Some(ComputeResources {
                requests: quantities(requests),
                limits: quantities(limits),
            }),
            ..AgentsSpec::default()
        }),
        ..nats_only()
    }
}

#[test]
fn a_nats_only_stack_and_the_defaults_are_valid() {
    assert_eq!(paths(&nats_only()), Vec::<String>::new());
    let everything = FleetStackSpec {
        nats: Some(NatsSpec {
            auth: NatsAuthSpec {
                mode: NatsAuthMode::Callout,
            },
            ..NatsSpec::default()
        }),
        identity: Some(external_identity()),
        callout: Some(CalloutSpec {
            audience: Some("fleet".into()),
            ..callout()
        }),
        operator: Some(OperatorSpec {
            pod: None,
            image: DEFAULT_OPERATOR_IMAGE.into(),
            replicas: 1,
        }),
        agents: Some(AgentsSpec::default()),
        ..Default::default()
    };
    assert_eq!(paths(&everything), Vec::<String>::new());
}

#[test]
fn vm_agents_are_refused_with_the_field_path() {
    let spec = FleetStackSpec {
        agents: Some(AgentsSpec {
            target: AgentTarget::Vm,
            ..AgentsSpec::default()
        }),
        ..nats_only()
    };
    let errors = validate_spec(&spec).expect_err("Vm must be refused");
    assert_eq!(errors[0].path, "spec.agents.target");
    assert!(errors[0].to_string().contains("not implemented"));
}

#[test]
fn agents_without_nats_and_bad_labels_are_reported() {
    let mut labels = BTreeMap::new();
    labels.insert("bad key".to_string(), "ok".to_string());
    labels.insert("site".to_string(), "-bad".to_string());
    labels.insert("app.kubernetes.io/name".to_string(), "x".to_string());
    let spec = FleetStackSpec {
        agents: Some(AgentsSpec {
            replicas: 2,
            labels,
            ..AgentsSpec::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec![
            "spec.agents.replicas",
            "spec.agents.labels[\"app.kubernetes.io/name\"]",
            "spec.agents.labels[\"bad key\"]",
            "spec.agents.labels[\"site\"]",
        ]
    );
}

fn managed(database: ZitadelDatabaseSpec) -> ManagedZitadelSpec {
    ManagedZitadelSpec {
        pod: None,
        image: DEFAULT_ZITADEL_IMAGE.into(),
        external_domain: "id.example.com".into(),
        database,
        bootstrap_image: DEFAULT_ZITADEL_BOOTSTRAP_IMAGE.into(),
    }
}

#[test]
fn identity_needs_exactly_one_source() {
    let spec = FleetStackSpec {
        identity: Some(IdentitySpec::default()),
        ..Default::default()
    };
    assert_eq!(paths(&spec), vec!["spec.identity"]);
    let spec = FleetStackSpec {
        identity: Some(IdentitySpec {
            managed: Some(managed(ZitadelDatabaseSpec {
                pod: None,
                mode: DatabaseMode::External,
                secret_ref: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec!["spec.identity.managed.database.secretRef"]
    );
}

/// Item 5 of issue 13: both sections are checked even while they conflict.
#[test]
fn conflicting_identity_sections_are_both_checked() {
    let mut bad_managed = managed(ZitadelDatabaseSpec::default());
    bad_managed.external_domain = "ID.example.com".into();
    let mut bad_external = external_identity().external.expect("external");
    bad_external.issuer = "ftp://issuer".into();
    let spec = FleetStackSpec {
        identity: Some(IdentitySpec {
            managed: Some(bad_managed),
            external: Some(bad_external),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec![
            "spec.identity",
            "spec.identity.managed.externalDomain",
            "spec.identity.external.issuer"
        ]
    );
}

#[test]
fn stack_names_must_make_valid_child_names() {
    assert!(validate_name(&"a".repeat(MAX_STACK_NAME)).is_ok());
    let e = validate_name(&"a".repeat(MAX_STACK_NAME + 1)).unwrap_err();
    assert_eq!(e.path, "metadata.name");
    assert!(e.message.contains("41 given"), "{}", e.message);
    // Valid FleetStack names, invalid Service names.
    for bad in ["1demo", "de.mo"] {
        let e = validate_name(bad).unwrap_err();
        assert_eq!(e.path, "metadata.name");
        assert!(e.message.contains("<name>-nats"), "{}", e.message);
    }
}

/// Item 5 of issue 13: the storage size is checked with JetStream off.
#[test]
fn storage_size_is_checked_whether_or_not_jetstream_is_on() {
    for enabled in [false, true] {
        let mut spec = nats_only();
        if let Some(n) = spec.nats.as_mut() {
            n.jetstream.enabled = enabled;
            n.jetstream.storage_size = Quantity("lots".into());
            n.jetstream.storage_class_name = Some("Fast SSD".into());
        }
        assert_eq!(
            paths(&spec),
            vec![
                "spec.nats.jetstream.storageSize",
                "spec.nats.jetstream.storageClassName"
            ],
            "enabled: {enabled}"
        );
    }
    let mut spec = nats_only();
    if let Some(n) = spec.nats.as_mut() {
        n.jetstream.storage_size = Quantity("0".into());
    }
    assert_eq!(
        messages(&spec),
        vec!["spec.nats.jetstream.storageSize: \"0\" must be greater than zero"]
    );
}

/// Issue 13 item 3: `agents.resources.requests.cpu: banana` reached the API
/// server as a 500.
#[test]
fn agent_quantities_are_checked_naming_the_field() {
    let spec = with_agent_resources(&[("cpu", "banana")], &[]);
    let errors = messages(&spec);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "spec.agents.resources.requests.cpu: \"banana\" is not a Kubernetes quantity"
        ),
        "{}",
        errors[0]
    );
}

/// Issue 13 item 3: limits below requests only showed as a StatefulSet event.
#[test]
fn limits_below_requests_are_refused() {
    let mut spec = nats_only();
    if let Some(n) = spec.nats.as_mut() {
        n.resources = Some(ComputeResources {
            requests: quantities(&[("memory", "128Mi"), ("cpu", "1")]),
            limits: quantities(&[("memory", "64Mi"), ("cpu", "1000m")]),
        });
    }
    assert_eq!(
        messages(&spec),
        vec![
            "spec.nats.resources.requests.memory: 128Mi must be less than or equal to the memory limit 64Mi"
        ]
    );
    // Equal values written differently are fine.
    let spec = with_agent_resources(&[("memory", "1Gi")], &[("memory", "1073741824")]);
    assert_eq!(paths(&spec), Vec::<String>::new());
}

#[test]
fn resource_names_and_overcommit_follow_the_api_server() {
    let spec = with_agent_resources(
        &[
            ("cpus", "1"),
            ("memory", "-1"),
            ("example.com/dongle", "1"),
            ("example.com/widget", "500m"),
        ],
        &[("example.com/widget", "500m")],
    );
    assert_eq!(
        paths(&spec),
        vec![
            "spec.agents.resources.requests.cpus",
            "spec.agents.resources.requests[\"example.com/widget\"]",
            "spec.agents.resources.requests.memory",
            "spec.agents.resources.limits[\"example.com/widget\"]",
            "spec.agents.resources.limits[\"example.com/dongle\"]",
        ]
    );
    let spec = with_agent_resources(&[("hugepages-2Mi", "2Mi")], &[("hugepages-2Mi", "4Mi")]);
    assert_eq!(
        paths(&spec),
        vec![
            "spec.agents.resources.requests[\"hugepages-2Mi\"]",
            "spec.agents.resources"
        ]
    );
}

#[test]
fn images_secret_names_and_env_text_are_checked() {
    let spec = FleetStackSpec {
        nats: Some(NatsSpec {
            image: "nats:".into(),
            auth: NatsAuthSpec {
                mode: NatsAuthMode::Callout,
            },
            ..NatsSpec::default()
        }),
        identity: Some(IdentitySpec {
            agent_credentials: Some(SecretRef {
                name: "Agent_Creds".into(),
            }),
            scope: Some("openid\nprofile".into()),
            ..external_identity()
        }),
        callout: Some(CalloutSpec {
            image: "Fleet/Callout".into(),
            audience: Some(String::new()),
            introspection_credentials: Some(SecretRef { name: "".into() }),
            ..callout()
        }),
        operator: Some(OperatorSpec {
            pod: None,
            image: " fleet-operator".into(),
            replicas: 10,
        }),
        agents: Some(AgentsSpec {
            image: "fleet agent".into(),
            replicas: 1001,
            ..AgentsSpec::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec![
            "spec.nats.image",
            "spec.identity.agentCredentials.name",
            "spec.identity.scope",
            "spec.callout.image",
            "spec.callout.audience",
            "spec.callout.introspectionCredentials.name",
            "spec.operator.image",
            "spec.operator.replicas",
            "spec.agents.replicas",
            "spec.agents.image",
        ]
    );
}

#[test]
fn probe_ranges_are_checked() {
    let spec = FleetStackSpec {
        probe: ProbeSpec {
            interval_seconds: 1,
            timeout_seconds: 0,
            ready_deadline_seconds: 100_000,
        },
        ..nats_only()
    };
    assert_eq!(
        paths(&spec),
        vec![
            "spec.probe.intervalSeconds",
            "spec.probe.timeoutSeconds",
            "spec.probe.readyDeadlineSeconds"
        ]
    );
}

/// The ranges checked here are the ones the CRD schema carries.
#[test]
fn ranges_match_the_crd_schema() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(crate::FleetStack::crd()).expect("crd json");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for (section, field, range) in [
        ("nats", "replicas", SERVER_REPLICAS),
        ("callout", "replicas", SERVER_REPLICAS),
        ("operator", "replicas", SERVER_REPLICAS),
        ("agents", "replicas", AGENT_REPLICAS),
        ("probe", "intervalSeconds", PROBE_INTERVAL_SECONDS),
        ("probe", "timeoutSeconds", PROBE_TIMEOUT_SECONDS),
        ("probe", "readyDeadlineSeconds", READY_DEADLINE_SECONDS),
    ] {
        let schema = &spec[section]["properties"][field];
        assert_eq!(
            (schema["minimum"].as_f64(), schema["maximum"].as_f64()),
            (
                Some(f64::from(*range.start())),
                Some(f64::from(*range.end()))
            ),
            "{section}.{field}: {schema}"
        );
    }
}

fn external_identity() -> IdentitySpec {
    IdentitySpec {
        external: Some(ExternalIdentitySpec {
            issuer: "http://issuer:8080".into(),
            client_credentials: SecretRef {
                name: "probe".into(),
            },
        }),
        ..Default::default()
    }
}

fn callout() -> CalloutSpec {
    CalloutSpec {
        pod: None,
        image: "c".into(),
        replicas: 1,
        audience: None,
        identity_claim: None,
        introspection_credentials: None,
    }
}

#[test]
fn callout_needs_callout_mode_and_an_audience_with_an_external_issuer() {
    let spec = FleetStackSpec {
        nats: Some(NatsSpec::default()),
        identity: Some(external_identity()),
        callout: Some(CalloutSpec {
            identity_claim: Some("client id".into()),
            ..callout()
        }),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec![
            "spec.callout",
            "spec.callout.audience",
            "spec.callout.identityClaim"
        ]
    );
    let mut nats = NatsSpec::default();
    nats.auth.mode = NatsAuthMode::Callout;
    let spec = FleetStackSpec {
        nats: Some(nats),
        identity: Some(external_identity()),
        callout: Some(CalloutSpec {
            audience: Some("fleet-nats".into()),
            ..callout()
        }),
        ..Default::default()
    };
    assert_eq!(paths(&spec), Vec::<String>::new());
}

#[test]
fn callout_mode_needs_callout_and_identity() {
    let mut nats = NatsSpec::default();
    nats.auth.mode = NatsAuthMode::Callout;
    let spec = FleetStackSpec {
        nats: Some(nats),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec!["spec.nats.auth.mode", "spec.nats.auth.mode"]
    );
}

#[test]
fn key_paths_quote_names_that_would_read_as_segments() {
    assert_eq!(key_path("r", "cpu"), "r.cpu");
    assert_eq!(key_path("r", "ephemeral-storage"), "r.ephemeral-storage");
    assert_eq!(key_path("r", "example.com/gpu"), "r[\"example.com/gpu\"]");
    assert_eq!(key_path("r", "hugepages-2Mi"), "r[\"hugepages-2Mi\"]");
}

fn nats_with_pod(pod: PodOverrides) -> FleetStackSpec {
    FleetStackSpec {
        nats: Some(NatsSpec {
            pod: Some(pod),
            ..NatsSpec::default()
        }),
        ..Default::default()
    }
}

fn yaml_pod(yaml: &str) -> PodOverrides {
    serde_yaml::from_str(yaml).expect("PodOverrides YAML")
}

#[test]
fn pod_overrides_that_the_api_server_accepts_pass() {
    let pod = yaml_pod(
        r#"
nodeSelector: {fleet.example/pool: edge}
tolerations:
  - {key: dedicated, operator: Equal, value: fleet, effect: NoSchedule}
  - {operator: Exists}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}
priorityClassName: fleet-critical
imagePullSecrets: [{name: mirror}]
labels: {team: edge}
annotations: {example.com/owner: edge}
serviceAccountAnnotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::1:role/x"}
resources:
  nats: {requests: {cpu: 100m, memory: 128Mi}}
"#,
    );
    assert_eq!(paths(&nats_with_pod(pod)), Vec::<String>::new());
}

#[test]
fn every_bad_override_is_refused_naming_its_field() {
    let pod = yaml_pod(
        r#"
nodeSelector: {"bad key!": x}
tolerations:
  - {key: a, operator: Maybe}
  - {operator: Exists, value: x}
  - {key: a, effect: NoSchedule, tolerationSeconds: 5}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 0
        podAffinityTerm: {topologyKey: ""}
topologySpreadConstraints:
  - {maxSkew: 0, topologyKey: zone, whenUnsatisfiable: Never}
priorityClassName: Not_A_Name
imagePullSecrets: [{name: ""}]
labels: {app.kubernetes.io/instance: other, fleet.nationtech.io/x: y}
annotations: {fleet.nationtech.io/config-hash: forged}
resources:
  sidecar: {requests: {cpu: 1m}}
  nats: {requests: {cpu: 2}, limits: {cpu: 1}}
"#,
    );
    let got = paths(&nats_with_pod(pod));
    for want in [
        "spec.nats.pod.nodeSelector[\"bad key!\"]",
        "spec.nats.pod.tolerations[0].operator",
        "spec.nats.pod.tolerations[1].value",
        "spec.nats.pod.tolerations[2].tolerationSeconds",
        "spec.nats.pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        "spec.nats.pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey",
        "spec.nats.pod.topologySpreadConstraints[0].maxSkew",
        "spec.nats.pod.topologySpreadConstraints[0].whenUnsatisfiable",
        "spec.nats.pod.priorityClassName",
        "spec.nats.pod.imagePullSecrets[0].name",
        "spec.nats.pod.labels[\"app.kubernetes.io/instance\"]",
        "spec.nats.pod.labels[\"fleet.nationtech.io/x\"]",
        "spec.nats.pod.annotations[\"fleet.nationtech.io/config-hash\"]",
        "spec.nats.pod.resources.sidecar",
        "spec.nats.pod.resources.nats.requests.cpu",
    ] {
        assert!(got.contains(&want.to_string()), "{want} not in {got:#?}");
    }
}

#[test]
fn main_container_resources_are_set_in_one_place() {
    let mut spec = nats_with_pod(yaml_pod("resources: {nats: {requests: {cpu: 1m}}}"));
    spec.nats.as_mut().expect("nats").resources = Some(ComputeResources::default());
    assert_eq!(paths(&spec), vec!["spec.nats.pod.resources.nats"]);
}

#[test]
fn service_account_annotations_need_a_service_account() {
    let spec = FleetStackSpec {
        identity: Some(IdentitySpec {
            managed: Some(ManagedZitadelSpec {
                pod: Some(yaml_pod("serviceAccountAnnotations: {a.example/b: c}")),
                ..managed(ZitadelDatabaseSpec::default())
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec!["spec.identity.managed.pod.serviceAccountAnnotations"]
    );
}

#[test]
fn nats_config_keys_we_own_are_refused_by_name() {
    let nats = NatsSpec {
        config: BTreeMap::from([
            ("max_payload".to_string(), "2MB".to_string()),
            ("Accounts".to_string(), "{}".to_string()),
            ("jetstream.max_buffered_msgs".to_string(), "100".to_string()),
            ("cluster.pool_size".to_string(), "3".to_string()),
            (
                "write_deadline".to_string(),
                "1s\nlisten: 0.0.0.0:1".to_string(),
            ),
        ]),
        ..NatsSpec::default()
    };
    let spec = FleetStackSpec {
        nats: Some(nats),
        ..Default::default()
    };
    let got = messages(&spec);
    assert!(
        got.iter()
            .any(|m| m
                .starts_with("spec.nats.config[\"Accounts\"]: Accounts is set by the reconciler")),
        "{got:#?}"
    );
    assert!(got.iter().any(|m| m.starts_with(
        "spec.nats.config[\"jetstream.max_buffered_msgs\"]: requires spec.nats.jetstream.enabled"
    )));
    assert!(got.iter().any(|m| {
        m.starts_with("spec.nats.config[\"cluster.pool_size\"]: requires spec.nats.replicas")
    }));
    assert!(
        got.iter()
            .any(|m| m.starts_with("spec.nats.config[\"write_deadline\"]: not one nats.conf value"))
    );
    assert_eq!(got.len(), 4, "{got:#?}");
}

#[test]
fn jetstream_limits_stay_within_the_volume() {
    let mut nats = NatsSpec::default();
    nats.jetstream.max_file_store = Some(Quantity("2Gi".into()));
    nats.jetstream.max_memory_store = Some(Quantity("0".into()));
    nats.jetstream.max_streams = Some(0);
    nats.server_tags = vec!["az:1".into(), "bad\"tag".into()];
    let spec = FleetStackSpec {
        nats: Some(nats),
        ..Default::default()
    };
    assert_eq!(
        paths(&spec),
        vec![
            "spec.nats.jetstream.maxMemoryStore",
            "spec.nats.jetstream.maxFileStore",
            "spec.nats.jetstream.maxStreams",
            "spec.nats.serverTags[1]",
        ]
    );
}

/// Issue 17 item 2: memory-only JetStream is capped, has no file settings,
/// and fits in the container.
#[test]
fn memory_storage_needs_a_cap_below_the_memory_limit_and_no_file_settings() {
    let memory = |f: &dyn Fn(&mut NatsSpec)| {
        let mut spec = nats_only();
        if let Some(n) = spec.nats.as_mut() {
            n.jetstream.enabled = true;
            n.jetstream.storage = JetStreamStorage::Memory;
            f(n);
        }
        spec
    };
    assert_eq!(
        paths(&memory(&|_| {})),
        vec!["spec.nats.jetstream.maxMemoryStore"]
    );
    let capped = |n: &mut NatsSpec| n.jetstream.max_memory_store = Some(Quantity("256Mi".into()));
    assert!(paths(&memory(&capped)).is_empty());
    assert_eq!(
        paths(&memory(&|n| {
            capped(n);
            n.jetstream.max_file_store = Some(Quantity("1Gi".into()));
            n.jetstream.storage_class_name = Some("fast".into());
        })),
        vec![
            "spec.nats.jetstream.maxFileStore",
            "spec.nats.jetstream.storageClassName"
        ]
    );
    // At or above the container's memory limit (either storage).
    let limited = memory(&|n| {
        capped(n);
        n.resources = Some(ComputeResources {
            requests: BTreeMap::new(),
            limits: quantities(&[("memory", "256Mi")]),
        });
    });
    let errors = messages(&limited);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "spec.nats.jetstream.maxMemoryStore: 256Mi must be below spec.nats.resources.limits.memory 256Mi"
        ),
        "{}",
        errors[0]
    );
    // JetStream off: the storage setting alone is nothing to refuse.
    let mut off = memory(&|_| {});
    if let Some(n) = off.nats.as_mut() {
        n.jetstream.enabled = false;
    }
    assert!(paths(&off).is_empty());
}
