//! Configuration of the `fleet-callout` binary, from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `FLEET_CALLOUT_NATS_URL` | NATS server(s), comma separated | `nats://127.0.0.1:4222` |
//! | `FLEET_CALLOUT_NATS_CA_FILE` | PEM file of the CA that signs the NATS server certificate; set = TLS required and the server verified against it | unset |
//! | `FLEET_CALLOUT_NATS_USER` | the callout's user (listed in `auth_callout.auth_users`) | required |
//! | `FLEET_CALLOUT_NATS_PASSWORD` / `_FILE` | its password (value or file) | required |
//! | `FLEET_CALLOUT_ISSUER_SEED_FILE` | file holding the issuer account seed (`SA...`); its public key is `auth_callout.issuer` | required |
//! | `FLEET_CALLOUT_XKEY_SEED_FILE` | file holding the curve seed (`SX...`) matching `auth_callout.xkey`; unset = no encryption | unset |
//! | `FLEET_CALLOUT_TARGET_ACCOUNT` | account agents are placed in | `FLEET` |
//! | `FLEET_CALLOUT_OIDC_ISSUER` | OIDC issuer URL (as in the tokens' `iss`) | required unless devices are served (then unset = no identity provider, device logins only) |
//! | `FLEET_CALLOUT_OIDC_AUDIENCE` | audience tokens must carry | required with the issuer |
//! | `FLEET_CALLOUT_OIDC_CLIENT_ID` | client id for introspection of opaque tokens | unset = opaque tokens refused |
//! | `FLEET_CALLOUT_OIDC_CLIENT_SECRET` / `_FILE` | its secret | unset |
//! | `FLEET_CALLOUT_IDENTITY_CLAIM` | claim holding the agent id | `sub` |
//! | `FLEET_CALLOUT_MAX_USER_LIFETIME_SECS` | longest connection lifetime granted | `3600` |
//! | `FLEET_CALLOUT_HTTP_ADDR` | `/metrics`, `/healthz`, `/readyz` listen address | `0.0.0.0:8080` |
//! | `FLEET_CALLOUT_QUEUE_GROUP` | queue group shared by replicas | `fleet-callout` |
//! | `FLEET_CALLOUT_BUDGET_MS` | total time per decision | `1000` |
//! | `FLEET_CALLOUT_IDP_TIMEOUT_MS` | timeout of each call to the issuer | `500` |
//! | `FLEET_CALLOUT_JWKS_MIN_REFRESH_SECS` | minimum spacing of JWKS refetches on unknown kids | `10` |
//! | `FLEET_CALLOUT_JWKS_MAX_AGE_SECS` | cached keys older than this are refetched | `3600` |
//! | `FLEET_CALLOUT_CLOCK_LEEWAY_SECS` | tolerated clock skew on `exp`/`nbf` | `10` |
//! | `FLEET_CALLOUT_MAX_TOKEN_BYTES` | longest token accepted | `4096` |
//! | `FLEET_CALLOUT_DEVICES_NAMESPACE` | namespace of the stack's FleetAgents and FleetEnrollmentTokens; set (with `_STACK`) = serve device logins (ADR 0080) | unset = no devices |
//! | `FLEET_CALLOUT_DEVICES_STACK` | the FleetStack whose devices these are (`fleet.nationtech.io/stack` label) | unset |
//! | `FLEET_CALLOUT_SYSTEM_SEED_FILE` | file holding the user seed (`SU...`) of the callout's system nkey user (SYS account, in `auth_users`): required with devices | unset |
//! | `FLEET_CALLOUT_SYSTEM_NATS_URL` | NATS URL for the system connection | `FLEET_CALLOUT_NATS_URL` |
//! | `RUST_LOG` | log filter | `info` |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nkeys::{KeyPair, KeyPairType, XKey};

use crate::oidc::{ClientCredentials, OidcConfig};
use crate::secret::Secret;
use crate::service::Policy;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{var}={value:?} is not valid: {detail}")]
    Invalid {
        var: &'static str,
        value: String,
        detail: String,
    },
    #[error("reading {var} file {path}: {source}")]
    File {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Never includes the seed.
    #[error("{var} file {path} does not hold a valid {expected} seed")]
    BadSeed {
        var: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
}

/// Everything the binary needs. `Debug` is safe to log.
pub struct Settings {
    pub nats_url: String,
    /// How the NATS server is verified (`FLEET_CALLOUT_NATS_CA_FILE`).
    pub nats_tls: fleet_proto::client::ClientTls,
    pub nats_user: String,
    pub nats_password: Secret,
    pub issuer: KeyPair,
    pub xkey: Option<XKey>,
    /// `None`: no identity provider; only device logins are served.
    pub oidc: Option<OidcConfig>,
    pub policy: Policy,
    pub http_addr: SocketAddr,
    pub queue_group: String,
    pub devices: Option<DeviceSettings>,
}

/// Device logins (ADR 0080). `Debug` shows the system user's public key only.
pub struct DeviceSettings {
    pub namespace: String,
    pub stack: String,
    pub system_user: KeyPair,
    pub system_nats_url: String,
}

impl std::fmt::Debug for DeviceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSettings")
            .field("namespace", &self.namespace)
            .field("stack", &self.stack)
            .field("system_user", &self.system_user.public_key())
            .field("system_nats_url", &self.system_nats_url)
            .finish()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("nats_url", &self.nats_url)
            .field("nats_tls", &self.nats_tls)
            .field("nats_user", &self.nats_user)
            .field("nats_password", &self.nats_password)
            .field("issuer", &self.issuer.public_key())
            .field("xkey", &self.xkey.as_ref().map(XKey::public_key))
            .field("oidc", &self.oidc)
            .field("policy", &self.policy)
            .field("http_addr", &self.http_addr)
            .field("queue_group", &self.queue_group)
            .field("devices", &self.devices)
            .finish()
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let required = |k: &'static str| var(k).ok_or(ConfigError::Missing(k));
        let secret = |k: &'static str, kf: &'static str| -> Result<Option<Secret>, ConfigError> {
            if let Some(v) = var(k) {
                return Ok(Some(Secret::new(v)));
            }
            match var(kf) {
                Some(path) => Ok(Some(Secret::new(read_file(kf, &path)?.trim().to_string()))),
                None => Ok(None),
            }
        };

        let issuer_file = required("FLEET_CALLOUT_ISSUER_SEED_FILE")?;
        let issuer_seed = read_file("FLEET_CALLOUT_ISSUER_SEED_FILE", &issuer_file)?;
        let issuer = KeyPair::from_seed(issuer_seed.trim())
            .ok()
            .filter(|k| k.key_pair_type() == KeyPairType::Account)
            .ok_or_else(|| ConfigError::BadSeed {
                var: "FLEET_CALLOUT_ISSUER_SEED_FILE",
                path: issuer_file.clone().into(),
                expected: "account (SA...)",
            })?;
        let xkey = match var("FLEET_CALLOUT_XKEY_SEED_FILE") {
            None => None,
            Some(path) => {
                let seed = read_file("FLEET_CALLOUT_XKEY_SEED_FILE", &path)?;
                Some(
                    XKey::from_seed(seed.trim()).map_err(|_| ConfigError::BadSeed {
                        var: "FLEET_CALLOUT_XKEY_SEED_FILE",
                        path: path.into(),
                        expected: "curve (SX...)",
                    })?,
                )
            }
        };

        let num =
            |k: &'static str, default: u64| -> Result<u64, ConfigError> {
                match var(k) {
                    None => Ok(default),
                    Some(v) => v.trim().parse().map_err(|e: std::num::ParseIntError| {
                        ConfigError::Invalid {
                            var: k,
                            value: v.clone(),
                            detail: e.to_string(),
                        }
                    }),
                }
            };
        // Without an issuer the callout serves device logins only (a stack
        // without an identity provider, ADR 0080); checked below.
        let oidc = match var("FLEET_CALLOUT_OIDC_ISSUER") {
            None => None,
            Some(issuer) => {
                let mut oidc = OidcConfig::new(issuer, required("FLEET_CALLOUT_OIDC_AUDIENCE")?);
                if let Some(id) = var("FLEET_CALLOUT_OIDC_CLIENT_ID") {
                    let secret = secret(
                        "FLEET_CALLOUT_OIDC_CLIENT_SECRET",
                        "FLEET_CALLOUT_OIDC_CLIENT_SECRET_FILE",
                    )?
                    .ok_or(ConfigError::Missing("FLEET_CALLOUT_OIDC_CLIENT_SECRET"))?;
                    oidc.client = Some(ClientCredentials { id, secret });
                }
                oidc.http_timeout =
                    Duration::from_millis(num("FLEET_CALLOUT_IDP_TIMEOUT_MS", 500)?);
                oidc.jwks_min_refresh =
                    Duration::from_secs(num("FLEET_CALLOUT_JWKS_MIN_REFRESH_SECS", 10)?);
                oidc.jwks_max_age =
                    Duration::from_secs(num("FLEET_CALLOUT_JWKS_MAX_AGE_SECS", 3600)?);
                oidc.leeway = Duration::from_secs(num("FLEET_CALLOUT_CLOCK_LEEWAY_SECS", 10)?);
                oidc.max_token_bytes = num("FLEET_CALLOUT_MAX_TOKEN_BYTES", 4096)? as usize;
                Some(oidc)
            }
        };

        let policy = Policy {
            target_account: var("FLEET_CALLOUT_TARGET_ACCOUNT").unwrap_or_else(|| "FLEET".into()),
            identity_claim: var("FLEET_CALLOUT_IDENTITY_CLAIM").unwrap_or_else(|| "sub".into()),
            max_user_lifetime: Duration::from_secs(num(
                "FLEET_CALLOUT_MAX_USER_LIFETIME_SECS",
                3600,
            )?),
            budget: Duration::from_millis(num("FLEET_CALLOUT_BUDGET_MS", 1000)?),
        };

        let http_addr_text =
            var("FLEET_CALLOUT_HTTP_ADDR").unwrap_or_else(|| "0.0.0.0:8080".into());
        let http_addr = http_addr_text
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                var: "FLEET_CALLOUT_HTTP_ADDR",
                value: http_addr_text.clone(),
                detail: e.to_string(),
            })?;

        let nats_url =
            var("FLEET_CALLOUT_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".into());
        let devices = match (
            var("FLEET_CALLOUT_DEVICES_NAMESPACE"),
            var("FLEET_CALLOUT_DEVICES_STACK"),
        ) {
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Missing("FLEET_CALLOUT_DEVICES_STACK")),
            (None, Some(_)) => return Err(ConfigError::Missing("FLEET_CALLOUT_DEVICES_NAMESPACE")),
            (Some(namespace), Some(stack)) => {
                let file = required("FLEET_CALLOUT_SYSTEM_SEED_FILE")?;
                let seed = read_file("FLEET_CALLOUT_SYSTEM_SEED_FILE", &file)?;
                let system_user = KeyPair::from_seed(seed.trim())
                    .ok()
                    .filter(|k| k.key_pair_type() == KeyPairType::User)
                    .ok_or_else(|| ConfigError::BadSeed {
                        var: "FLEET_CALLOUT_SYSTEM_SEED_FILE",
                        path: file.clone().into(),
                        expected: "user (SU...)",
                    })?;
                Some(DeviceSettings {
                    namespace,
                    stack,
                    system_user,
                    system_nats_url: var("FLEET_CALLOUT_SYSTEM_NATS_URL")
                        .unwrap_or_else(|| nats_url.clone()),
                })
            }
        };

        if oidc.is_none() && devices.is_none() {
            return Err(ConfigError::Missing(
                "FLEET_CALLOUT_OIDC_ISSUER (or FLEET_CALLOUT_DEVICES_NAMESPACE for a callout serving devices only)",
            ));
        }

        Ok(Settings {
            nats_url,
            nats_tls: match var("FLEET_CALLOUT_NATS_CA_FILE") {
                Some(path) => fleet_proto::client::ClientTls::with_ca_file(path),
                None => fleet_proto::client::ClientTls::default(),
            },
            nats_user: required("FLEET_CALLOUT_NATS_USER")?,
            nats_password: secret(
                "FLEET_CALLOUT_NATS_PASSWORD",
                "FLEET_CALLOUT_NATS_PASSWORD_FILE",
            )?
            .ok_or(ConfigError::Missing("FLEET_CALLOUT_NATS_PASSWORD"))?,
            issuer,
            xkey,
            oidc,
            policy,
            http_addr,
            queue_group: var("FLEET_CALLOUT_QUEUE_GROUP").unwrap_or_else(|| "fleet-callout".into()),
            devices,
        })
    }
}

fn read_file(var: &'static str, path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        var,
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_env_and_keeps_secrets_out_of_debug() {
        let dir = tempfile::tempdir().expect("tmp");
        let account = KeyPair::new_account();
        let seed = account.seed().expect("seed");
        let seed_path = dir.path().join("issuer.seed");
        std::fs::write(&seed_path, format!("{seed}\n")).expect("write");
        let env: HashMap<&str, String> = HashMap::from([
            (
                "FLEET_CALLOUT_ISSUER_SEED_FILE",
                seed_path.display().to_string(),
            ),
            ("FLEET_CALLOUT_OIDC_ISSUER", "https://idp/".into()),
            ("FLEET_CALLOUT_OIDC_AUDIENCE", "fleet".into()),
            ("FLEET_CALLOUT_NATS_USER", "auth".into()),
            ("FLEET_CALLOUT_NATS_PASSWORD", "pw-secret".into()),
            ("FLEET_CALLOUT_OIDC_CLIENT_ID", "callout".into()),
            ("FLEET_CALLOUT_OIDC_CLIENT_SECRET", "client-secret".into()),
            ("FLEET_CALLOUT_BUDGET_MS", "800".into()),
        ]);
        let s = Settings::from_lookup(|k| env.get(k).cloned()).expect("settings");
        assert_eq!(s.issuer.public_key(), account.public_key());
        assert_eq!(
            s.oidc.as_ref().map(|o| o.issuer.as_str()),
            Some("https://idp")
        );
        assert_eq!(s.policy.budget, Duration::from_millis(800));
        assert_eq!(s.policy.identity_claim, "sub");
        let dbg = format!("{s:?}");
        for secret in ["pw-secret", "client-secret", seed.as_str()] {
            assert!(!dbg.contains(secret), "Debug leaks a secret: {dbg}");
        }

        // A user seed where an account seed is expected is refused, and the
        // error does not echo the seed.
        let user_seed = KeyPair::new_user().seed().expect("seed");
        std::fs::write(&seed_path, &user_seed).expect("write");
        let err = Settings::from_lookup(|k| env.get(k).cloned()).expect_err("refused");
        assert!(matches!(err, ConfigError::BadSeed { .. }));
        assert!(!err.to_string().contains(&user_seed));

        let err = Settings::from_lookup(|_| None).expect_err("refused");
        assert!(matches!(err, ConfigError::Missing(_)));
    }

    #[test]
    fn devices_need_namespace_stack_and_a_system_user_seed() {
        let dir = tempfile::tempdir().expect("tmp");
        let issuer = dir.path().join("issuer.seed");
        std::fs::write(&issuer, KeyPair::new_account().seed().expect("seed")).expect("write");
        let system = KeyPair::new_user();
        let system_seed = system.seed().expect("seed");
        let system_path = dir.path().join("system.seed");
        std::fs::write(&system_path, &system_seed).expect("write");
        let mut env: HashMap<&str, String> = HashMap::from([
            (
                "FLEET_CALLOUT_ISSUER_SEED_FILE",
                issuer.display().to_string(),
            ),
            ("FLEET_CALLOUT_OIDC_ISSUER", "https://idp/".into()),
            ("FLEET_CALLOUT_OIDC_AUDIENCE", "fleet".into()),
            ("FLEET_CALLOUT_NATS_USER", "auth".into()),
            ("FLEET_CALLOUT_NATS_PASSWORD", "pw".into()),
            ("FLEET_CALLOUT_DEVICES_NAMESPACE", "fleet".into()),
        ]);
        let err = Settings::from_lookup(|k| env.get(k).cloned()).expect_err("no stack");
        assert!(matches!(
            err,
            ConfigError::Missing("FLEET_CALLOUT_DEVICES_STACK")
        ));
        env.insert("FLEET_CALLOUT_DEVICES_STACK", "demo".into());
        let err = Settings::from_lookup(|k| env.get(k).cloned()).expect_err("no seed");
        assert!(matches!(
            err,
            ConfigError::Missing("FLEET_CALLOUT_SYSTEM_SEED_FILE")
        ));
        env.insert(
            "FLEET_CALLOUT_SYSTEM_SEED_FILE",
            system_path.display().to_string(),
        );
        let s = Settings::from_lookup(|k| env.get(k).cloned()).expect("settings");
        let d = s.devices.as_ref().expect("devices on");
        assert_eq!(d.system_user.public_key(), system.public_key());
        assert_eq!(d.system_nats_url, s.nats_url);
        assert!(!format!("{s:?}").contains(&system_seed));

        // Devices only, no identity provider: valid.
        env.remove("FLEET_CALLOUT_OIDC_ISSUER");
        let s = Settings::from_lookup(|k| env.get(k).cloned()).expect("devices only");
        assert!(s.oidc.is_none());
        env.remove("FLEET_CALLOUT_DEVICES_NAMESPACE");
        env.remove("FLEET_CALLOUT_DEVICES_STACK");
        assert!(matches!(
            Settings::from_lookup(|k| env.get(k).cloned()),
            Err(ConfigError::Missing(_))
        ));
    }
}
