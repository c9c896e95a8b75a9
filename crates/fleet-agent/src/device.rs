//! Device mode (docs/adr/0080-device-identity-enrollment-revocation.md):
//! the agent's own NKey, its state directory, enrollment and key rotation.
//!
//! State directory (mode 0700), e.g. `/var/lib/fleet-agent`:
//! - `device.nkey`: the seed of the device's key pair, mode 0600, created
//!   on first use; it never leaves this file (only signatures do);
//! - `agent-id`: the agent id this device enrolled as.
//!
//! Logging in = presenting the public key and signing the server's nonce;
//! the auth callout checks the signature and the device's FleetAgent.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_proto::AgentId;
use fleet_proto::client::ClientTls;
use fleet_proto::device::{BootstrapToken, encode_enrollment, encode_rotation};
use nkeys::KeyPair;

use crate::credentials::{CredentialError, CredentialSource, Credentials, DeviceKey};

pub const KEY_FILE: &str = "device.nkey";
pub const AGENT_ID_FILE: &str = "agent-id";

/// Why a device operation failed. Never holds the seed or the token.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("device key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("device key file {path} does not hold a user seed (SU...)")]
    BadKey { path: PathBuf },
    #[error(
        "device key file {path} is readable by others (mode {mode:o}); it must be 0600 (chmod 600 {path})"
    )]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error("generating a device key failed: {0}")]
    Generate(String),
    #[error("no enrolled agent id in {path}; run `fleet-agent enroll` first: {source}")]
    NotEnrolled {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent id in {path} is invalid: {source}")]
    BadAgentId {
        path: PathBuf,
        #[source]
        source: fleet_proto::AgentIdError,
    },
    #[error("the bootstrap token is malformed: {0}")]
    Token(#[from] fleet_proto::device::DeviceTokenError),
    #[error(
        "NATS at {url} refused the {what}; the reason is in the fleet-callout log (expired or used-up token, key or agent id already registered, ...)"
    )]
    Refused { url: String, what: &'static str },
    #[error("connecting to NATS at {url} for the {what} failed: {source}")]
    Connect {
        url: String,
        what: &'static str,
        #[source]
        source: async_nats::ConnectError,
    },
}

fn state_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeviceError + '_ {
    move |source| DeviceError::StateDir {
        path: path.into(),
        source,
    }
}

/// Creates the state directory (0700) if needed.
pub fn ensure_state_dir(dir: &Path) -> Result<(), DeviceError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(state_err(dir))
}

/// Reads the device key, refusing a file others can read.
pub fn load_key(dir: &Path) -> Result<KeyPair, DeviceError> {
    let path = dir.join(KEY_FILE);
    let key_err = |source| DeviceError::KeyFile {
        path: path.clone(),
        source,
    };
    let mode = std::fs::metadata(&path)
        .map_err(key_err)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(DeviceError::KeyFileMode { path, mode });
    }
    let seed = std::fs::read_to_string(&path).map_err(key_err)?;
    KeyPair::from_seed(seed.trim())
        .ok()
        .filter(|k| k.key_pair_type() == nkeys::KeyPairType::User)
        .ok_or(DeviceError::BadKey { path })
}

/// Writes `key`'s seed to `dir/device.nkey` atomically (0600 temporary
/// file, then rename), so a crash never leaves a half-written key.
fn store_key(dir: &Path, key: &KeyPair) -> Result<(), DeviceError> {
    let path = dir.join(KEY_FILE);
    let tmp = dir.join(format!("{KEY_FILE}.new"));
    let key_err = |source| DeviceError::KeyFile {
        path: path.clone(),
        source,
    };
    let seed = key
        .seed()
        .map_err(|e| DeviceError::Generate(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(key_err)?;
    file.write_all(seed.as_bytes()).map_err(key_err)?;
    file.sync_all().map_err(key_err)?;
    std::fs::rename(&tmp, &path).map_err(key_err)
}

/// The device key, generated on first use.
pub fn load_or_create_key(dir: &Path) -> Result<KeyPair, DeviceError> {
    ensure_state_dir(dir)?;
    if dir.join(KEY_FILE).exists() {
        return load_key(dir);
    }
    let key = KeyPair::new_user();
    store_key(dir, &key)?;
    tracing::info!(public_key = %key.public_key(), dir = %dir.display(), "generated the device key");
    Ok(key)
}

/// The agent id recorded at enrollment.
pub fn enrolled_agent_id(dir: &Path) -> Result<AgentId, DeviceError> {
    let path = dir.join(AGENT_ID_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| DeviceError::NotEnrolled {
        path: path.clone(),
        source,
    })?;
    AgentId::new(text.trim()).map_err(|source| DeviceError::BadAgentId { path, source })
}

/// Credentials of an enrolled device: its key, re-read on every connect
/// (so a rotated key is used from the next reconnect on).
#[derive(Debug, Clone)]
pub struct DeviceKeySource {
    pub state_dir: PathBuf,
}

#[async_trait]
impl CredentialSource for DeviceKeySource {
    fn describe(&self) -> String {
        format!("device key {}", self.state_dir.join(KEY_FILE).display())
    }

    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        let dir = self.state_dir.clone();
        let key = tokio::task::spawn_blocking(move || load_key(&dir))
            .await
            .map_err(|e| CredentialError::Unavailable {
                source_name: self.describe(),
                reason: e.to_string(),
            })?
            .map_err(|e| CredentialError::Unavailable {
                source_name: self.describe(),
                reason: e.to_string(),
            })?;
        Ok(Credentials::DeviceKey(DeviceKey(Arc::new(key))))
    }
}

/// How `enroll` and `rotate` reach NATS.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub tls: ClientTls,
    pub timeout: Duration,
}

/// Connects once, signing with `key` and presenting `auth_token`; closes
/// the connection again (its success is the whole answer).
async fn one_shot(
    endpoint: &Endpoint,
    key: Arc<KeyPair>,
    auth_token: impl Fn(&[u8]) -> Result<String, String> + Send + Sync + 'static,
    what: &'static str,
) -> Result<(), DeviceError> {
    let auth_token = Arc::new(auth_token);
    let options = async_nats::ConnectOptions::with_auth_callback(move |nonce| {
        let key = key.clone();
        let auth_token = auth_token.clone();
        async move {
            let mut auth = async_nats::Auth::new();
            auth.nkey = Some(key.public_key());
            auth.signature = Some(key.sign(&nonce).map_err(async_nats::AuthError::new)?);
            auth.token = Some(auth_token(&nonce).map_err(async_nats::AuthError::new)?);
            Ok(auth)
        }
    })
    .name(format!("fleet-agent/{what}"))
    .connection_timeout(endpoint.timeout)
    .max_reconnects(Some(0));
    match endpoint
        .tls
        .apply(options)
        .connect(endpoint.url.as_str())
        .await
    {
        Ok(client) => {
            drop(client);
            Ok(())
        }
        Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
            Err(DeviceError::Refused {
                url: endpoint.url.clone(),
                what,
            })
        }
        Err(source) => Err(DeviceError::Connect {
            url: endpoint.url.clone(),
            what,
            source,
        }),
    }
}

/// `fleet-agent enroll`: creates the key if needed, presents the token and
/// the public key, and records the agent id once the callout accepted.
/// Returns the device's public key.
pub async fn enroll(
    endpoint: &Endpoint,
    state_dir: &Path,
    token: &str,
    agent_id: &AgentId,
) -> Result<String, DeviceError> {
    let token = BootstrapToken::parse(token.trim())?;
    let key = Arc::new(load_or_create_key(state_dir)?);
    let auth_token = encode_enrollment(&token, agent_id);
    one_shot(
        endpoint,
        key.clone(),
        move |_| Ok(auth_token.clone()),
        "enrollment",
    )
    .await?;
    let path = state_dir.join(AGENT_ID_FILE);
    std::fs::write(&path, format!("{agent_id}\n")).map_err(state_err(&path))?;
    Ok(key.public_key())
}

/// `fleet-agent rotate-key`: a new key, accepted by the callout on a
/// connection signed by the old one, then swapped in. Returns the new
/// public key.
pub async fn rotate_key(endpoint: &Endpoint, state_dir: &Path) -> Result<String, DeviceError> {
    let old = Arc::new(load_key(state_dir)?);
    let new = Arc::new(KeyPair::new_user());
    let signer = new.clone();
    one_shot(
        endpoint,
        old,
        move |nonce| {
            let sig = signer.sign(nonce).map_err(|e| e.to_string())?;
            Ok(encode_rotation(&signer.public_key(), &sig))
        },
        "key rotation",
    )
    .await?;
    store_key(state_dir, &new)?;
    Ok(new.public_key())
}

/// Reads a `KEY=VALUE` config file (the agent's environment variables;
/// `#` comments and blank lines ignored, values may be quoted).
pub fn read_config_file(path: &Path) -> Result<Vec<(String, String)>, std::io::Error> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}:{}: expected KEY=VALUE", path.display(), n + 1),
            ));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_private_and_reloaded() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("state");
        let key = load_or_create_key(&dir).expect("created");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        let again = load_or_create_key(&dir).expect("loaded");
        assert_eq!(again.public_key(), key.public_key());

        // A key others can read is refused, naming the file, not the seed.
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let err = load_key(&dir).expect_err("refused");
        assert!(matches!(err, DeviceError::KeyFileMode { .. }), "{err}");
        assert!(!err.to_string().contains(&key.seed().expect("seed")));
    }

    #[test]
    fn config_files_are_key_value_lines() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("agent.conf");
        std::fs::write(
            &path,
            "# device\nFLEET_NATS_URL=tls://nats.example:4222\n\nFLEET_AGENT_LABELS=\"site=lab\"\n",
        )
        .expect("write");
        assert_eq!(
            read_config_file(&path).expect("read"),
            vec![
                ("FLEET_NATS_URL".into(), "tls://nats.example:4222".into()),
                ("FLEET_AGENT_LABELS".into(), "site=lab".into()),
            ]
        );
        std::fs::write(&path, "nonsense\n").expect("write");
        assert!(read_config_file(&path).is_err());
    }
}
