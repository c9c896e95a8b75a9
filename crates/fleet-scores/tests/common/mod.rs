//! Fixtures shared by the Scores' pure build tests: the FleetStack owner
//! and readers of a Deployment's pod spec and a container's env.

// Each test crate uses only some of these.
#![allow(dead_code)]

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The ownerReference to FleetStack `demo` every test input carries.
pub fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "fleet.nationtech.io/v1alpha1".into(),
        kind: "FleetStack".into(),
        name: "demo".into(),
        uid: "1234".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

/// The first container of a StatefulSet's pod template.
pub fn sts_container(s: &StatefulSet) -> &Container {
    &s.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

pub fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.as_ref().unwrap().iter().find(|e| e.name == name)
}

pub fn value(c: &Container, name: &str) -> String {
    env(c, name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("{name} has a literal value"))
}

/// A rendered nats.conf as `fleet_testkit::NatsServer::start` runs it: the
/// harness provides listen, http and server_name (and no pid file), the
/// pod's store path becomes the harness' working directory, the password
/// variables literals (`sys`, `fleet`).
pub fn testkit_body(rendered: &str) -> String {
    rendered
        .lines()
        .filter(|l| {
            !["listen:", "http:", "server_name:", "pid_file:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| {
            l.replace("/data/jetstream", "\"./jetstream\"")
                .replace("$SYS_PASSWORD", "\"sys\"")
                .replace("$FLEET_PASSWORD", "\"fleet\"")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
