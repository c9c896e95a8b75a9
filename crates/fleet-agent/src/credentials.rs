//! Where the agent's NATS credentials come from.
//!
//! The connection asks a [`CredentialSource`] for credentials on EVERY
//! connect and reconnect (through async-nats' auth callback), never caches
//! them itself. That is what lets a rotated Kubernetes Secret (re-read from
//! its mounted file) or a short-lived token be picked up without a restart.
//!
//! Today there is [`UserPassword`] (and [`Anonymous`] for servers without
//! auth). The Zitadel token source of the identity issue is one more
//! implementation returning [`Credentials::BearerToken`]; nothing else in
//! the agent changes.

use async_trait::async_trait;
use std::fmt;
use std::path::PathBuf;

/// A secret string (password, token). Its `Debug` and `Display` never show
/// the value; call [`Secret::expose`] at the one place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What the agent presents in its NATS CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No authentication (a server without `authorization`).
    None,
    /// A user of the server's config (or of the callout's user base).
    UserPassword { user: String, password: Secret },
    /// A bearer token (CONNECT `auth_token`), e.g. a Zitadel access token
    /// that the auth callout validates.
    BearerToken(Secret),
    /// A device's own key: CONNECT carries the public key and a signature
    /// over the server's nonce, never the seed (ADR 0080).
    DeviceKey(DeviceKey),
}

/// A device key pair. `Debug` and equality use the public key only.
#[derive(Clone)]
pub struct DeviceKey(pub std::sync::Arc<nkeys::KeyPair>);

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self.0.public_key())
    }
}

impl PartialEq for DeviceKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.public_key() == other.0.public_key()
    }
}

impl Eq for DeviceKey {}

impl Credentials {
    /// The async-nats form for a connection whose server sent `nonce`. The
    /// only place where secrets leave their wrapper.
    pub(crate) fn into_auth(self, nonce: &[u8]) -> Result<async_nats::Auth, async_nats::AuthError> {
        let mut auth = async_nats::Auth::new();
        match self {
            Credentials::None => {}
            Credentials::UserPassword { user, password } => {
                auth.username = Some(user);
                auth.password = Some(password.0);
            }
            Credentials::BearerToken(token) => auth.token = Some(token.0),
            Credentials::DeviceKey(DeviceKey(key)) => {
                auth.nkey = Some(key.public_key());
                auth.signature = Some(key.sign(nonce).map_err(async_nats::AuthError::new)?);
            }
        }
        Ok(auth)
    }
}

/// Why credentials could not be produced. Messages name the source and the
/// file, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("reading the NATS password file {path} failed: {source}")]
    ReadPasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the NATS password file {path} is empty")]
    EmptyPasswordFile { path: PathBuf },
    /// For sources that fetch credentials remotely (token endpoints).
    #[error("{source_name} could not provide credentials: {reason}")]
    Unavailable { source_name: String, reason: String },
}

/// Produces credentials for one connection attempt. Called on every connect
/// and reconnect, so implementations may refresh tokens or re-read files.
#[async_trait]
pub trait CredentialSource: Send + Sync + 'static {
    /// What to log about this source (never a secret): "user fleet-agent".
    fn describe(&self) -> String;
    /// The NATS user these credentials authenticate as, if known up front;
    /// used to make connect errors name the account being refused.
    fn user(&self) -> Option<&str> {
        None
    }
    async fn credentials(&self) -> Result<Credentials, CredentialError>;
}

/// No credentials.
#[derive(Debug, Clone, Default)]
pub struct Anonymous;

#[async_trait]
impl CredentialSource for Anonymous {
    fn describe(&self) -> String {
        "anonymous (no credentials)".to_string()
    }
    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        Ok(Credentials::None)
    }
}

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// Given directly (FLEET_NATS_PASSWORD).
    Inline(Secret),
    /// Read from a file on every connect (FLEET_NATS_PASSWORD_FILE): a
    /// mounted Secret that Kubernetes updates in place is picked up at the
    /// next reconnect. One trailing newline is ignored.
    File(PathBuf),
}

/// User and password.
#[derive(Debug, Clone)]
pub struct UserPassword {
    pub user: String,
    pub password: PasswordSource,
}

impl UserPassword {
    pub fn new(user: impl Into<String>, password: PasswordSource) -> Self {
        UserPassword {
            user: user.into(),
            password,
        }
    }

    async fn password(&self) -> Result<Secret, CredentialError> {
        match &self.password {
            PasswordSource::Inline(secret) => Ok(secret.clone()),
            PasswordSource::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|source| {
                    CredentialError::ReadPasswordFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                let password = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text);
                if password.is_empty() {
                    return Err(CredentialError::EmptyPasswordFile { path: path.clone() });
                }
                Ok(Secret::new(password))
            }
        }
    }
}

#[async_trait]
impl CredentialSource for UserPassword {
    fn describe(&self) -> String {
        match &self.password {
            PasswordSource::Inline(_) => format!("user {} (password from environment)", self.user),
            PasswordSource::File(p) => {
                format!("user {} (password from file {})", self.user, p.display())
            }
        }
    }

    fn user(&self) -> Option<&str> {
        Some(&self.user)
    }

    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        Ok(Credentials::UserPassword {
            user: self.user.clone(),
            password: self.password().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_leak_through_formatting() {
        let creds = Credentials::UserPassword {
            user: "agent".into(),
            password: Secret::new("hunter2"),
        };
        let up = UserPassword::new("agent", PasswordSource::Inline(Secret::new("hunter2")));
        for text in [
            format!("{creds:?}"),
            format!("{up:?}"),
            up.describe(),
            format!("{}", Secret::new("hunter2")),
            format!("{:?}", Credentials::BearerToken(Secret::new("hunter2"))),
        ] {
            assert!(!text.contains("hunter2"), "secret leaked: {text}");
        }
    }

    #[tokio::test]
    async fn password_file_is_read_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "first\n").unwrap();
        let source = UserPassword::new("agent", PasswordSource::File(path.clone()));
        let Credentials::UserPassword { password, .. } = source.credentials().await.unwrap() else {
            panic!("user/password expected")
        };
        assert_eq!(password.expose(), "first");
        std::fs::write(&path, "second").unwrap();
        let Credentials::UserPassword { password, .. } = source.credentials().await.unwrap() else {
            panic!("user/password expected")
        };
        assert_eq!(password.expose(), "second");
    }

    #[tokio::test]
    async fn password_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = UserPassword::new("a", PasswordSource::File(missing.clone()))
            .credentials()
            .await
            .unwrap_err();
        assert!(matches!(err, CredentialError::ReadPasswordFile { .. }));
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = UserPassword::new("a", PasswordSource::File(empty))
            .credentials()
            .await
            .unwrap_err();
        assert!(
            matches!(err, CredentialError::EmptyPasswordFile { .. }),
            "{err}"
        );
    }
}
