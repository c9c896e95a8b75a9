//! What an agent pod needs to authenticate through the callout (pure), for
//! the agents Score to add to its container in callout mode
//! (docs/adr/0034): each agent is its own OAuth client whose id is its
//! agent id (the pod name), its secret read from a Secret holding one key
//! per agent id, mounted as a directory.
//!
//! Kubernetes expands `$(FLEET_AGENT_ID)` from the earlier env entry
//! (`FLEET_AGENT_ID` from `metadata.name`), so one pod template serves
//! every replica of the StatefulSet.

use k8s_openapi::api::core::v1::{EnvVar, SecretVolumeSource, Volume, VolumeMount};

use crate::pod;

/// Where the per-agent client secrets are mounted.
pub const OIDC_DIR: &str = "/etc/fleet/oidc";
pub const VOLUME: &str = "oidc-client";

/// Env vars for token auth; must come after `FLEET_AGENT_ID` in the
/// container's env (for `$(FLEET_AGENT_ID)` expansion) and replace the
/// `FLEET_NATS_USER` / `FLEET_NATS_PASSWORD_FILE` pair.
pub fn oidc_env(issuer: &str, scope: Option<&pod::EnvSource>) -> Vec<EnvVar> {
    let mut env = vec![
        pod::env("FLEET_OIDC_ISSUER", issuer),
        pod::env("FLEET_OIDC_CLIENT_ID", "$(FLEET_AGENT_ID)"),
        pod::env(
            "FLEET_OIDC_CLIENT_SECRET_FILE",
            format!("{OIDC_DIR}/$(FLEET_AGENT_ID)"),
        ),
    ];
    if let Some(scope) = scope {
        env.push(pod::env_from("FLEET_OIDC_SCOPE", scope));
    }
    env
}

/// The Secret (one key per agent id) as a read-only directory.
pub fn oidc_volume(secret: &str) -> (Volume, VolumeMount) {
    (
        Volume {
            name: VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: VOLUME.into(),
            mount_path: OIDC_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_and_secret_file_follow_the_agent_id() {
        let env = oidc_env(
            "http://issuer:8080",
            Some(&pod::EnvSource::Literal("openid".into())),
        );
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
                .unwrap()
        };
        assert_eq!(get("FLEET_OIDC_ISSUER"), "http://issuer:8080");
        assert_eq!(get("FLEET_OIDC_CLIENT_ID"), "$(FLEET_AGENT_ID)");
        assert_eq!(
            get("FLEET_OIDC_CLIENT_SECRET_FILE"),
            "/etc/fleet/oidc/$(FLEET_AGENT_ID)"
        );
        assert_eq!(get("FLEET_OIDC_SCOPE"), "openid");
        assert!(
            oidc_env("http://i", None)
                .iter()
                .all(|e| e.name != "FLEET_OIDC_SCOPE")
        );
        let (v, m) = oidc_volume("demo-agent-oidc");
        assert_eq!(
            v.secret.unwrap().secret_name.as_deref(),
            Some("demo-agent-oidc")
        );
        assert_eq!(m.read_only, Some(true));
    }
}
