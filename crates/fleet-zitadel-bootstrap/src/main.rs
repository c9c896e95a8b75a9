//! `fleet-zitadel-bootstrap`: the main container of a managed Zitadel's
//! setup Job (crates/fleet-scores/src/zitadel/objects.rs).
//!
//! `zitadel setup` runs first, as an init container, and on the very first
//! successful setup writes the provisioner machine user's Personal Access
//! Token to a file on an emptyDir shared with this container
//! (`ZITADEL_FIRSTINSTANCE_PATPATH`; the file ends with a newline). The
//! Zitadel image is distroless (no shell to copy the file) and Kubernetes
//! 1.20 has no native sidecars, so this small binary does the copy:
//!
//! - file present and non-empty: the trimmed token goes to key `pat` of
//!   Secret `FLEET_PAT_SECRET` by server-side apply (field manager
//!   `fleet-reconciler`, the reconciler's own, so its ownership conventions
//!   hold), with the labels of `FLEET_PAT_SECRET_LABELS` and, when
//!   `FLEET_OWNER_*` are set, an ownerReference to the FleetStack;
//! - file missing: setup had already run before and wrote no new token; the
//!   existing Secret is kept untouched (exit 0);
//! - file present but empty: an error (setup claimed success without a
//!   token; storing nothing would lose it silently).
//!
//! Environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `FLEET_PAT_FILE` | path of the PAT file (required) |
//! | `FLEET_PAT_SECRET` | name of the Secret to write (required) |
//! | `POD_NAMESPACE` | namespace of the Secret (downward API, required) |
//! | `FLEET_PAT_SECRET_LABELS` | `k=v,k=v` labels of the Secret (optional) |
//! | `FLEET_OWNER_API_VERSION`, `FLEET_OWNER_KIND`, `FLEET_OWNER_NAME`, `FLEET_OWNER_UID` | the Secret's controller ownerReference: all four or none |
//!
//! The token is never logged. Exit codes: 0 written or nothing to do,
//! 1 file or API error, 2 invalid configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// The reconciler's server-side-apply field manager
/// (fleet_scores::labels::FIELD_MANAGER).
pub const FIELD_MANAGER: &str = "fleet-reconciler";
/// The key of the Secret that holds the token.
pub const PAT_KEY: &str = "pat";

#[derive(Debug, thiserror::Error)]
enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {0} is empty")]
    Empty(&'static str),
    #[error("FLEET_PAT_SECRET_LABELS: {0:?} is not key=value")]
    Label(String),
    #[error("FLEET_OWNER_*: set all of API_VERSION, KIND, NAME, UID or none; missing {0}")]
    PartialOwner(&'static str),
}

#[derive(Debug, thiserror::Error)]
enum BootstrapError {
    #[error("cannot read the PAT file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the PAT file {0} is empty: zitadel setup wrote no token")]
    EmptyFile(PathBuf),
    #[error("the PAT file {0} is not UTF-8")]
    Encoding(PathBuf),
    #[error("no Kubernetes client configuration: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot apply Secret {namespace}/{name}: {source}")]
    Apply {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

#[derive(Debug)]
struct Settings {
    pat_file: PathBuf,
    secret: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
}

fn var(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Err(ConfigError::Empty(name)),
        Ok(v) => Ok(v.trim().to_string()),
        Err(_) => Err(ConfigError::Missing(name)),
    }
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `k=v,k=v` (spaces around items ignored; an empty string is no labels).
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().into(), v.trim().into())),
            _ => Err(ConfigError::Label(item.into())),
        })
        .collect()
}

impl Settings {
    fn from_env() -> Result<Settings, ConfigError> {
        let owner = {
            let parts = [
                (
                    "FLEET_OWNER_API_VERSION",
                    optional("FLEET_OWNER_API_VERSION"),
                ),
                ("FLEET_OWNER_KIND", optional("FLEET_OWNER_KIND")),
                ("FLEET_OWNER_NAME", optional("FLEET_OWNER_NAME")),
                ("FLEET_OWNER_UID", optional("FLEET_OWNER_UID")),
            ];
            if parts.iter().all(|(_, v)| v.is_none()) {
                None
            } else if let Some((missing, _)) = parts.iter().find(|(_, v)| v.is_none()) {
                return Err(ConfigError::PartialOwner(missing));
            } else {
                let [api_version, kind, name, uid] = parts.map(|(_, v)| v.unwrap_or_default());
                Some(OwnerReference {
                    api_version,
                    kind,
                    name,
                    uid,
                    controller: Some(true),
                    // Not set: blockOwnerDeletion needs `update` on the
                    // owner's finalizers where OwnerReferencesPermission-
                    // Enforcement is on, a right this pod has no use for.
                    block_owner_deletion: None,
                })
            }
        };
        Ok(Settings {
            pat_file: var("FLEET_PAT_FILE")?.into(),
            secret: var("FLEET_PAT_SECRET")?,
            namespace: var("POD_NAMESPACE")?,
            labels: parse_labels(&optional("FLEET_PAT_SECRET_LABELS").unwrap_or_default())?,
            owner,
        })
    }
}

/// The trimmed token, or `None` when the file does not exist.
fn read_pat(path: &Path) -> Result<Option<String>, BootstrapError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BootstrapError::Read {
                path: path.into(),
                source,
            });
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| BootstrapError::Encoding(path.into()))?;
    let pat = text.trim();
    if pat.is_empty() {
        return Err(BootstrapError::EmptyFile(path.into()));
    }
    Ok(Some(pat.to_string()))
}

fn desired_secret(settings: &Settings, pat: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: (!settings.labels.is_empty()).then(|| settings.labels.clone()),
            owner_references: settings.owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            PAT_KEY.to_string(),
            ByteString(pat.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// What [`run`] did.
#[derive(Debug, PartialEq, Eq)]
enum Done {
    Written,
    NoNewToken,
}

async fn run(settings: &Settings) -> Result<Done, BootstrapError> {
    let Some(pat) = read_pat(&settings.pat_file)? else {
        return Ok(Done::NoNewToken);
    };
    let client = Client::try_default()
        .await
        .map_err(BootstrapError::Client)?;
    let api: Api<Secret> = Api::namespaced(client, &settings.namespace);
    let secret = desired_secret(settings, &pat);
    // Server-side apply needs apiVersion and kind in the body.
    let body = {
        let mut v = serde_json::to_value(&secret).expect("a Secret serializes");
        v["apiVersion"] = "v1".into();
        v["kind"] = "Secret".into();
        v
    };
    // One request whether or not the Secret exists (RBAC: `patch`, plus
    // `create` when the apply creates it); forced so the new token wins
    // over any other manager of the key.
    api.patch(
        &settings.secret,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| BootstrapError::Apply {
        namespace: settings.namespace.clone(),
        name: settings.secret.clone(),
        source,
    })?;
    Ok(Done::Written)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    match run(&settings).await {
        Ok(Done::Written) => {
            tracing::info!(
                namespace = %settings.namespace,
                secret = %settings.secret,
                key = PAT_KEY,
                "stored the provisioner PAT written by zitadel setup"
            );
            ExitCode::SUCCESS
        }
        Ok(Done::NoNewToken) => {
            tracing::info!(
                file = %settings.pat_file.display(),
                namespace = %settings.namespace,
                secret = %settings.secret,
                "no PAT file: zitadel setup had already run and wrote no new token; \
                 the existing Secret is kept"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "storing the provisioner PAT failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_reject_items_without_a_key() {
        assert_eq!(
            parse_labels("a=1, b=two,,").unwrap(),
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "two".into())])
        );
        assert!(parse_labels("").unwrap().is_empty());
        assert!(matches!(parse_labels("a=1,b"), Err(ConfigError::Label(i)) if i == "b"));
        assert!(matches!(parse_labels("=x"), Err(ConfigError::Label(_))));
    }

    #[test]
    fn the_token_is_trimmed_and_an_empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pat");
        assert_eq!(read_pat(&path).unwrap(), None);
        std::fs::write(&path, "abc-123\n").unwrap();
        assert_eq!(read_pat(&path).unwrap().as_deref(), Some("abc-123"));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_pat(&path), Err(BootstrapError::EmptyFile(_))));
    }
}
