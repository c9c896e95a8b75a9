//! Building blocks every workload Score uses: the restricted Pod Security
//! settings, probes on named ports, ports and Secret-backed env vars. One
//! definition here keeps every component's pods equally locked down.

use fleet_crds::ComputeResources;
use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::core::v1::{
    Capabilities, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, ServicePort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::labels;

/// Non-root uid/gid of every container we run (the images' `nonroot` user).
pub const RUN_AS: i64 = 65532;

/// Pod-level settings of the `restricted` Pod Security Standard.
pub fn restricted_pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container-level settings of the `restricted` Pod Security Standard, plus
/// a read-only root filesystem.
pub fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The spec of a Deployment running `replicas` pods of `component` of
/// `stack`: selected by the component's selector labels, pods labelled like
/// every object of the component, running as `service_account` under the
/// restricted Pod Security settings. `pod` holds what differs per
/// component (containers, volumes, token mount, grace period); set further
/// Deployment fields (e.g. `strategy`) with `..deployment_spec(..)`.
pub fn deployment_spec(
    stack: &str,
    component: &str,
    replicas: i32,
    service_account: &str,
    pod: PodSpec,
) -> DeploymentSpec {
    let selector = labels::selector_labels(stack, component);
    let mut template_labels = labels::component_labels(stack, component);
    template_labels.extend(selector.clone());
    DeploymentSpec {
        replicas: Some(replicas),
        selector: LabelSelector {
            match_labels: Some(selector),
            ..Default::default()
        },
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(template_labels),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(service_account.into()),
                security_context: Some(restricted_pod_security()),
                ..pod
            }),
        },
        ..Default::default()
    }
}

/// An HTTP GET probe on a named container port.
/// Period of every readiness probe we render: a pod is Ready (and the
/// stack's smoke probe wakes on its Endpoints) within a second of serving,
/// as a bare pod with a 1 s probe would be (issue 18). A kubelet GET per
/// second per pod costs next to nothing.
pub const READINESS_PERIOD_SECS: i32 = 1;

pub fn http_probe(port_name: &str, path: &str, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port_name.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

pub fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port.into(),
        ..Default::default()
    }
}

/// A Service port that targets the container port of the same name.
pub fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: port.into(),
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// An env var filled from a pod field (`metadata.name`, ...).
pub fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An env var filled from a key of a Secret (never from a literal: secrets
/// stay out of pod specs, and so out of `kubectl get -o yaml`).
pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The spec's resources, or `defaults` (requests and limits) when absent.
pub fn resources(
    spec: Option<&ComputeResources>,
    defaults: &[(&str, &str, &str)],
) -> ResourceRequirements {
    match spec {
        Some(r) => ResourceRequirements {
            requests: (!r.requests.is_empty()).then(|| r.requests.clone()),
            limits: (!r.limits.is_empty()).then(|| r.limits.clone()),
            ..Default::default()
        },
        None => {
            let requests = defaults
                .iter()
                .map(|(name, request, _)| (name.to_string(), Quantity(request.to_string())))
                .collect();
            let limits = defaults
                .iter()
                .map(|(name, _, limit)| (name.to_string(), Quantity(limit.to_string())))
                .collect();
            ResourceRequirements {
                requests: Some(requests),
                limits: Some(limits),
                ..Default::default()
            }
        }
    }
}

/// A setting a pod reads either as a literal or from a ConfigMap key (a
/// value another component publishes at run time, e.g. a managed Zitadel's
/// project id: the pod waits for the key instead of the reconciler baking
/// a value it cannot know when it builds the objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    Literal(String),
    ConfigMapKey { name: String, key: String },
}

/// The env var `name` set from `source`.
pub fn env_from(name: &str, source: &EnvSource) -> EnvVar {
    match source {
        EnvSource::Literal(value) => env(name, value.clone()),
        EnvSource::ConfigMapKey { name: cm, key } => EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(k8s_openapi::api::core::v1::ConfigMapKeySelector {
                    name: cm.clone(),
                    key: key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}
