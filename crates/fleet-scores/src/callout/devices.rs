//! What the callout needs to serve device logins (ADR 0080), as pure
//! builders the callout Score adds when a stack has devices: a Role with
//! exactly the API calls of `fleet_callout::device::kube`, its RoleBinding
//! to the callout's ServiceAccount, the environment, and the Secret key of
//! the callout's system nkey user seed.
//!
//! Wiring (owed by the stack, see the ADR's Consequences): the NATS
//! write-once credentials Secret holds [`SYSTEM_SEED_KEY`] (a user seed,
//! `SU...`); the NATS config declares its public key as a user of the SYS
//! account listed in `auth_callout.auth_users`; the callout Deployment
//! mounts the key with the other callout keys, automounts its
//! ServiceAccount token, and gets [`env`].

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::objects::{COMPONENT, CalloutInput, CalloutNames, KEYS_DIR};
use crate::labels;
use crate::pod;

/// Key of the callout's system user seed in the NATS credentials Secret.
pub const SYSTEM_SEED_KEY: &str = "callout-system-seed";

const FLEET_GROUP: &str = "fleet.nationtech.io";

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![FLEET_GROUP.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

/// Exactly the calls of `fleet_callout::device::kube`, in the stack's
/// namespace.
pub fn rules() -> Vec<PolicyRule> {
    vec![
        // The directory's watch (list + watch); enrollment creates the
        // device's FleetAgent; key rotation reads it and patches
        // spec.publicKey.
        rule(
            &["fleetagents"],
            &["create", "get", "list", "patch", "watch"],
        ),
        // The directory's watch of the tokens.
        rule(&["fleetenrollmenttokens"], &["list", "watch"]),
        // One use counted per enrollment (merge patch with resourceVersion).
        rule(&["fleetenrollmenttokens/status"], &["patch"]),
    ]
}

/// Name of the Role and RoleBinding.
pub fn role_name(stack: &str) -> String {
    format!("{}-devices", CalloutNames::new(stack).deployment)
}

pub fn role(input: &CalloutInput) -> Role {
    Role {
        metadata: labels::object_meta(
            &input.stack,
            COMPONENT,
            &input.namespace,
            &input.owner,
            &role_name(&input.stack),
        ),
        rules: Some(rules()),
    }
}

pub fn role_binding(input: &CalloutInput) -> RoleBinding {
    let names = CalloutNames::new(&input.stack);
    RoleBinding {
        metadata: labels::object_meta(
            &input.stack,
            COMPONENT,
            &input.namespace,
            &input.owner,
            &role_name(&input.stack),
        ),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: role_name(&input.stack),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.service_account,
            namespace: Some(input.namespace.clone()),
            ..Default::default()
        }]),
    }
}

/// The callout's device settings (crates/fleet-callout/src/config.rs).
pub fn env(input: &CalloutInput) -> Vec<EnvVar> {
    vec![
        pod::env("FLEET_CALLOUT_DEVICES_NAMESPACE", input.namespace.clone()),
        pod::env("FLEET_CALLOUT_DEVICES_STACK", input.stack.clone()),
        pod::env(
            "FLEET_CALLOUT_SYSTEM_SEED_FILE",
            format!("{KEYS_DIR}/{SYSTEM_SEED_KEY}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callout::objects::CalloutOidc;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn input() -> CalloutInput {
        CalloutInput {
            stack: "demo".into(),
            namespace: "fleet".into(),
            owner: OwnerReference::default(),
            spec: serde_json::from_value(serde_json::json!({})).expect("default callout spec"),
            oidc: CalloutOidc {
                issuer: "https://idp".into(),
                audience: pod::EnvSource::Literal("fleet".into()),
                identity_claim: None,
                introspection_secret: None,
            },
            nats_tls: true,
        }
    }

    #[test]
    fn the_role_grants_exactly_the_device_calls_and_binds_the_callout() {
        let i = input();
        let role = role(&i);
        assert_eq!(role.metadata.namespace.as_deref(), Some("fleet"));
        let rules: Vec<(String, Vec<String>)> = role
            .rules
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.resources.unwrap_or_default().join(","), r.verbs))
            .collect();
        assert_eq!(
            rules,
            vec![
                (
                    "fleetagents".to_string(),
                    vec!["create", "get", "list", "patch", "watch"]
                        .into_iter()
                        .map(String::from)
                        .collect::<Vec<_>>()
                ),
                (
                    "fleetenrollmenttokens".to_string(),
                    vec!["list".to_string(), "watch".to_string()]
                ),
                (
                    "fleetenrollmenttokens/status".to_string(),
                    vec!["patch".to_string()]
                ),
            ]
        );
        let binding = role_binding(&i);
        assert_eq!(
            binding.role_ref.name,
            role.metadata.name.unwrap_or_default()
        );
        let subject = &binding.subjects.unwrap_or_default()[0];
        assert_eq!(subject.name, CalloutNames::new("demo").service_account);
        let env: Vec<(String, Option<String>)> =
            env(&i).into_iter().map(|e| (e.name, e.value)).collect();
        assert!(env.contains(&(
            "FLEET_CALLOUT_SYSTEM_SEED_FILE".into(),
            Some(format!("{KEYS_DIR}/{SYSTEM_SEED_KEY}"))
        )));
        assert!(env.contains(&("FLEET_CALLOUT_DEVICES_STACK".into(), Some("demo".into()))));
    }
}
