//! Agent configuration from environment variables.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `FLEET_AGENT_ID` | `POD_NAME`, else `HOSTNAME`, else the kernel hostname (up to its first `.`) | Agent id: ASCII letters, digits, `-`, `_`; at most 64 bytes |
//! | `FLEET_NATS_URL` | required | NATS server URL(s), comma-separated (`nats://nats:4222`) |
//! | `FLEET_NATS_USER` | unset (no auth) | NATS user |
//! | `FLEET_NATS_PASSWORD` | - | Password of `FLEET_NATS_USER` |
//! | `FLEET_NATS_CA_FILE` | unset | PEM file of the CA that signs the NATS server certificate; set = TLS required and the server verified against it and the URL's host |
//! | `FLEET_NATS_PASSWORD_FILE` | - | File holding the password, re-read on every (re)connect; exclusive with `FLEET_NATS_PASSWORD` |
//! | `FLEET_OIDC_ISSUER` | unset | OIDC issuer URL; set = authenticate with a client_credentials access token (NATS auth callout); exclusive with `FLEET_NATS_USER` |
//! | `FLEET_OIDC_CLIENT_ID` | - | OAuth client id (required with `FLEET_OIDC_ISSUER`) |
//! | `FLEET_OIDC_CLIENT_SECRET` | - | Its secret |
//! | `FLEET_OIDC_CLIENT_SECRET_FILE` | - | File holding the secret, re-read on every token fetch; exclusive with `FLEET_OIDC_CLIENT_SECRET` |
//! | `FLEET_OIDC_SCOPE` | unset | Space-separated scopes (Zitadel: `openid urn:zitadel:iam:org:project:id:<id>:aud`) |
//! | `FLEET_OIDC_AUDIENCE` | unset | `audience` parameter of the token request, for issuers that take one |
//! | `FLEET_DEVICE_STATE_DIR` | unset | Device mode (ADR 0080): the directory holding the device key (`device.nkey`, 0600) and the enrolled agent id (`agent-id`, the default of `FLEET_AGENT_ID`); exclusive with `FLEET_NATS_USER` and `FLEET_OIDC_ISSUER` |
//! | `FLEET_AGENT_CONFIG` | unset | A file of `KEY=VALUE` lines (these same variables) read first; the environment overrides it (`fleet-agent --config FILE` sets it) |
//! | `FLEET_AGENT_LABELS` | empty | Labels `k=v,k=v` reported by `info` and heartbeats |
//! | `FLEET_HEARTBEAT_INTERVAL` | `10s` | Heartbeat period (`500ms`, `10s`, `1m`; a bare number is seconds) |
//! | `FLEET_HTTP_ADDR` | `0.0.0.0:8080` | Address of `/healthz` and `/readyz`; `off` disables the HTTP server |
//! | `FLEET_NATS_CONNECT_TIMEOUT` | `5s` | Limit for one connect (TCP + CONNECT/PONG, auth callout included) |
//! | `FLEET_RECONNECT_MAX_DELAY` | `5s` | Cap of the exponential reconnect backoff |
//! | `FLEET_DRAIN_TIMEOUT` | `10s` | On SIGTERM, limit for finishing in-flight commands and closing the connection |
//! | `FLEET_LOG_FORMAT` | `text` | `text` or `json` |
//! | `RUST_LOG` | `info` | Log filter (tracing `EnvFilter` syntax) |
//!
//! Every error names the variable at fault. Password values never appear in
//! errors or in `Debug` output.

use crate::credentials::{PasswordSource, Secret};
use crate::oidc::OidcClientConfig;
use fleet_proto::client::ClientTls;
use fleet_proto::{AgentId, AgentIdError};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The agent's complete configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub agent_id: AgentId,
    pub nats_url: String,
    /// How the NATS server is verified (`FLEET_NATS_CA_FILE`).
    pub nats_tls: ClientTls,
    pub auth: AuthConfig,
    pub labels: BTreeMap<String, String>,
    pub heartbeat_interval: Duration,
    /// `None`: no HTTP server (many in-process agents, e.g. benchmarks).
    pub http_addr: Option<SocketAddr>,
    pub connect_timeout: Duration,
    pub reconnect_max_delay: Duration,
    pub drain_timeout: Duration,
    pub log_format: LogFormat,
}

/// How the agent authenticates to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    None,
    UserPassword {
        user: String,
        password: PasswordSource,
    },
    /// An access token from the OIDC issuer (client_credentials), checked
    /// by the NATS auth callout.
    Oidc(OidcClientConfig),
    /// A device's own NKey (`<state_dir>/device.nkey`), signing the
    /// server's nonce; checked by the auth callout (ADR 0080).
    Device {
        state_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration error, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is required: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("{first} and {second} are both set; set only one")]
    Conflict {
        first: &'static str,
        second: &'static str,
    },
    #[error("agent id from {var} is invalid (set FLEET_AGENT_ID to override): {source}")]
    AgentId {
        var: &'static str,
        #[source]
        source: AgentIdError,
    },
    #[error("no agent id: set FLEET_AGENT_ID (or POD_NAME); the hostname could not be read either")]
    NoAgentId,
}

impl AgentConfig {
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_HTTP_ADDR: &'static str = "0.0.0.0:8080";
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

    /// Reads the process environment (and the kernel hostname as the last
    /// fallback for the agent id).
    pub fn from_env() -> Result<Self, ConfigError> {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string());
        Self::from_lookup(|var| std::env::var(var).ok(), hostname)
    }

    /// Same as [`AgentConfig::from_env`] with an explicit lookup, for tests
    /// and embedders.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        kernel_hostname: Option<String>,
    ) -> Result<Self, ConfigError> {
        // Empty values count as unset: Kubernetes manifests often render
        // `value: ""` for optional settings.
        let get = |var: &str| lookup(var).filter(|v| !v.is_empty());

        let agent_id = agent_id(&get, kernel_hostname)?;
        let nats_url = get("FLEET_NATS_URL").ok_or(ConfigError::Missing {
            var: "FLEET_NATS_URL",
            hint: "the NATS server URL, e.g. nats://nats:4222",
        })?;

        let auth = match (oidc_config(&get)?, nats_user_auth(&get)?) {
            (None, auth) => auth,
            (Some(oidc), AuthConfig::None) => AuthConfig::Oidc(oidc),
            (Some(_), _) => {
                return Err(ConfigError::Conflict {
                    first: "FLEET_OIDC_ISSUER",
                    second: "FLEET_NATS_USER",
                });
            }
        };
        // A device logs in with its own key (ADR 0080); no other credential.
        let auth = match (get("FLEET_DEVICE_STATE_DIR"), auth) {
            (None, auth) => auth,
            (Some(dir), AuthConfig::None) => AuthConfig::Device {
                state_dir: PathBuf::from(dir),
            },
            (Some(_), AuthConfig::Oidc(_)) => {
                return Err(ConfigError::Conflict {
                    first: "FLEET_DEVICE_STATE_DIR",
                    second: "FLEET_OIDC_ISSUER",
                });
            }
            (Some(_), AuthConfig::UserPassword { .. } | AuthConfig::Device { .. }) => {
                return Err(ConfigError::Conflict {
                    first: "FLEET_DEVICE_STATE_DIR",
                    second: "FLEET_NATS_USER",
                });
            }
        };

        let labels = match get("FLEET_AGENT_LABELS") {
            Some(v) => parse_labels(&v).map_err(|reason| ConfigError::Invalid {
                var: "FLEET_AGENT_LABELS",
                value: v.clone(),
                reason,
            })?,
            None => BTreeMap::new(),
        };

        let duration = |var: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => match parse_duration(&v) {
                    Ok(d) if d.is_zero() => Err(ConfigError::Invalid {
                        var,
                        value: v,
                        reason: "must be greater than zero".into(),
                    }),
                    Ok(d) => Ok(d),
                    Err(reason) => Err(ConfigError::Invalid {
                        var,
                        value: v,
                        reason,
                    }),
                },
            }
        };

        let http_addr = match get("FLEET_HTTP_ADDR").as_deref() {
            Some("off") => None,
            other => {
                let text = other.unwrap_or(Self::DEFAULT_HTTP_ADDR);
                Some(text.parse().map_err(|e| ConfigError::Invalid {
                    var: "FLEET_HTTP_ADDR",
                    value: text.to_string(),
                    reason: format!("{e} (expected ip:port, e.g. 0.0.0.0:8080, or \"off\")"),
                })?)
            }
        };

        let log_format = match get("FLEET_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "FLEET_LOG_FORMAT",
                    value: other.to_string(),
                    reason: "expected \"text\" or \"json\"".into(),
                });
            }
        };

        Ok(AgentConfig {
            agent_id,
            nats_url,
            nats_tls: nats_tls(&get),
            auth,
            labels,
            heartbeat_interval: duration(
                "FLEET_HEARTBEAT_INTERVAL",
                Self::DEFAULT_HEARTBEAT_INTERVAL,
            )?,
            http_addr,
            connect_timeout: duration("FLEET_NATS_CONNECT_TIMEOUT", Self::DEFAULT_CONNECT_TIMEOUT)?,
            reconnect_max_delay: duration(
                "FLEET_RECONNECT_MAX_DELAY",
                Self::DEFAULT_RECONNECT_MAX_DELAY,
            )?,
            drain_timeout: duration("FLEET_DRAIN_TIMEOUT", Self::DEFAULT_DRAIN_TIMEOUT)?,
            log_format,
        })
    }

    /// A configuration with defaults for everything but the id and URL;
    /// what tests and benchmarks start from.
    pub fn new(agent_id: AgentId, nats_url: impl Into<String>) -> Self {
        AgentConfig {
            agent_id,
            nats_url: nats_url.into(),
            nats_tls: ClientTls::default(),
            auth: AuthConfig::None,
            labels: BTreeMap::new(),
            heartbeat_interval: Self::DEFAULT_HEARTBEAT_INTERVAL,
            http_addr: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            reconnect_max_delay: Self::DEFAULT_RECONNECT_MAX_DELAY,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            log_format: LogFormat::Text,
        }
    }
}

/// `FLEET_NATS_CA_FILE`: the CA a NATS client verifies the server with.
/// Shared with the operator runtime, which reads the same variable.
pub fn nats_tls(get: &impl Fn(&str) -> Option<String>) -> ClientTls {
    match get("FLEET_NATS_CA_FILE") {
        Some(path) => ClientTls::with_ca_file(path),
        None => ClientTls::default(),
    }
}

/// `FLEET_NATS_USER` with `FLEET_NATS_PASSWORD` or `FLEET_NATS_PASSWORD_FILE`
/// (exclusive): both a user and a password, or neither (`AuthConfig::None`).
/// `get` returns `None` for unset and empty variables. Also what the
/// fleet-operator reads its NATS credentials with.
pub fn nats_user_auth(get: &impl Fn(&str) -> Option<String>) -> Result<AuthConfig, ConfigError> {
    let password = match (get("FLEET_NATS_PASSWORD"), get("FLEET_NATS_PASSWORD_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict {
                first: "FLEET_NATS_PASSWORD",
                second: "FLEET_NATS_PASSWORD_FILE",
            });
        }
        (Some(p), None) => Some(PasswordSource::Inline(Secret::new(p))),
        (None, Some(f)) => Some(PasswordSource::File(PathBuf::from(f))),
        (None, None) => None,
    };
    match (get("FLEET_NATS_USER"), password) {
        (Some(user), Some(password)) => Ok(AuthConfig::UserPassword { user, password }),
        (Some(_), None) => Err(ConfigError::Missing {
            var: "FLEET_NATS_PASSWORD",
            hint: "FLEET_NATS_USER is set; give its password in FLEET_NATS_PASSWORD or FLEET_NATS_PASSWORD_FILE",
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            var: "FLEET_NATS_USER",
            hint: "a NATS password is set but no user",
        }),
        (None, None) => Ok(AuthConfig::None),
    }
}

/// The FLEET_OIDC_* settings; `None` when `FLEET_OIDC_ISSUER` is unset
/// (the other variables are then ignored).
fn oidc_config(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<OidcClientConfig>, ConfigError> {
    let Some(issuer) = get("FLEET_OIDC_ISSUER") else {
        return Ok(None);
    };
    if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            var: "FLEET_OIDC_ISSUER",
            value: issuer,
            reason: "not an http(s) URL".into(),
        });
    }
    let client_id = get("FLEET_OIDC_CLIENT_ID").ok_or(ConfigError::Missing {
        var: "FLEET_OIDC_CLIENT_ID",
        hint: "FLEET_OIDC_ISSUER is set; give the OAuth client id of this agent",
    })?;
    let client_secret = match (
        get("FLEET_OIDC_CLIENT_SECRET"),
        get("FLEET_OIDC_CLIENT_SECRET_FILE"),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict {
                first: "FLEET_OIDC_CLIENT_SECRET",
                second: "FLEET_OIDC_CLIENT_SECRET_FILE",
            });
        }
        (Some(s), None) => PasswordSource::Inline(Secret::new(s)),
        (None, Some(f)) => PasswordSource::File(PathBuf::from(f)),
        (None, None) => {
            return Err(ConfigError::Missing {
                var: "FLEET_OIDC_CLIENT_SECRET",
                hint: "FLEET_OIDC_ISSUER is set; give the client secret in FLEET_OIDC_CLIENT_SECRET or FLEET_OIDC_CLIENT_SECRET_FILE",
            });
        }
    };
    Ok(Some(OidcClientConfig {
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id,
        client_secret,
        scope: get("FLEET_OIDC_SCOPE"),
        audience: get("FLEET_OIDC_AUDIENCE"),
    }))
}

fn agent_id(
    get: &impl Fn(&str) -> Option<String>,
    kernel_hostname: Option<String>,
) -> Result<AgentId, ConfigError> {
    for var in ["FLEET_AGENT_ID", "POD_NAME", "HOSTNAME"] {
        if let Some(v) = get(var) {
            let v = if var == "HOSTNAME" {
                short_hostname(&v)
            } else {
                v
            };
            return AgentId::new(v).map_err(|source| ConfigError::AgentId { var, source });
        }
    }
    match kernel_hostname.filter(|h| !h.is_empty()) {
        Some(h) => AgentId::new(short_hostname(&h)).map_err(|source| ConfigError::AgentId {
            var: "/proc/sys/kernel/hostname",
            source,
        }),
        None => Err(ConfigError::NoAgentId),
    }
}

/// `node1.example.org` -> `node1`: dots would split the subject token.
fn short_hostname(h: &str) -> String {
    h.split('.').next().unwrap_or(h).to_string()
}

/// `k=v,k2=v2`; spaces around items are ignored; keys must be unique.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("label {item:?} is not of the form key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(format!("label {item:?} has an empty key"));
        }
        if labels.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label key {k:?} appears twice"));
        }
    }
    Ok(labels)
}

/// `250ms`, `10s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (use e.g. 500ms, 10s, 1m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        other => Err(format!("unknown unit {other:?} (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentConfig::from_lookup(|k| map.get(k).cloned(), Some("kernel-host.local".into()))
    }

    const URL: (&str, &str) = ("FLEET_NATS_URL", "nats://n:4222");

    #[test]
    fn defaults() {
        let c = config(&[URL]).unwrap();
        assert_eq!(c.agent_id.as_str(), "kernel-host");
        assert_eq!(c.auth, AuthConfig::None);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.http_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.labels.is_empty());
    }

    #[test]
    fn a_ca_file_makes_tls_required_and_verified() {
        assert_eq!(config(&[URL]).unwrap().nats_tls, ClientTls::default());
        let c = config(&[URL, ("FLEET_NATS_CA_FILE", "/etc/fleet/nats-ca/ca.crt")]).unwrap();
        assert_eq!(
            c.nats_tls,
            ClientTls::with_ca_file("/etc/fleet/nats-ca/ca.crt")
        );
        // Empty counts as unset, as everywhere else.
        let c = config(&[URL, ("FLEET_NATS_CA_FILE", "")]).unwrap();
        assert_eq!(c.nats_tls.ca_file, None);
    }

    #[test]
    fn id_precedence() {
        let all = [
            URL,
            ("FLEET_AGENT_ID", "explicit"),
            ("POD_NAME", "pod"),
            ("HOSTNAME", "host.x"),
        ];
        assert_eq!(config(&all).unwrap().agent_id.as_str(), "explicit");
        assert_eq!(
            config(
                &all[..3]
                    .iter()
                    .copied()
                    .filter(|(k, _)| *k != "FLEET_AGENT_ID")
                    .collect::<Vec<_>>()
            )
            .unwrap()
            .agent_id
            .as_str(),
            "pod"
        );
        assert_eq!(
            config(&[URL, ("HOSTNAME", "host.x")])
                .unwrap()
                .agent_id
                .as_str(),
            "host"
        );
        let err = AgentConfig::from_lookup(|k| (k == "FLEET_NATS_URL").then(|| "x".into()), None)
            .unwrap_err();
        assert_eq!(err, ConfigError::NoAgentId);
    }

    #[test]
    fn invalid_id_names_the_variable() {
        let err = config(&[URL, ("FLEET_AGENT_ID", "a.b")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::AgentId {
                var: "FLEET_AGENT_ID",
                ..
            }
        ));
        assert!(err.to_string().contains("FLEET_AGENT_ID"), "{err}");
        let err = config(&[URL, ("POD_NAME", "a b")]).unwrap_err();
        assert!(err.to_string().contains("POD_NAME"), "{err}");
    }

    #[test]
    fn url_is_required() {
        let err = config(&[]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: "FLEET_NATS_URL",
                ..
            }
        ));
    }

    #[test]
    fn user_and_password() {
        let c = config(&[
            URL,
            ("FLEET_NATS_USER", "u"),
            ("FLEET_NATS_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert_eq!(
            c.auth,
            AuthConfig::UserPassword {
                user: "u".into(),
                password: PasswordSource::Inline(Secret::new("hunter2"))
            }
        );
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");

        let c = config(&[
            URL,
            ("FLEET_NATS_USER", "u"),
            ("FLEET_NATS_PASSWORD_FILE", "/s/p"),
        ])
        .unwrap();
        assert_eq!(
            c.auth,
            AuthConfig::UserPassword {
                user: "u".into(),
                password: PasswordSource::File("/s/p".into())
            }
        );
    }

    #[test]
    fn password_errors_name_variables_not_values() {
        let err = config(&[
            URL,
            ("FLEET_NATS_USER", "u"),
            ("FLEET_NATS_PASSWORD", "hunter2"),
            ("FLEET_NATS_PASSWORD_FILE", "/p"),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict { .. }));
        assert!(!err.to_string().contains("hunter2"));
        let err = config(&[URL, ("FLEET_NATS_USER", "u")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: "FLEET_NATS_PASSWORD",
                ..
            }
        ));
        let err = config(&[URL, ("FLEET_NATS_PASSWORD", "hunter2")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: "FLEET_NATS_USER",
                ..
            }
        ));
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn oidc_client_credentials() {
        let issuer = ("FLEET_OIDC_ISSUER", "https://idp.example/");
        let c = config(&[
            URL,
            issuer,
            ("FLEET_OIDC_CLIENT_ID", "agent-0"),
            ("FLEET_OIDC_CLIENT_SECRET_FILE", "/s/secret"),
            ("FLEET_OIDC_SCOPE", "openid x"),
        ])
        .unwrap();
        assert_eq!(
            c.auth,
            AuthConfig::Oidc(OidcClientConfig {
                issuer: "https://idp.example".into(),
                client_id: "agent-0".into(),
                client_secret: PasswordSource::File("/s/secret".into()),
                scope: Some("openid x".into()),
                audience: None,
            })
        );
        let c = config(&[
            URL,
            issuer,
            ("FLEET_OIDC_CLIENT_ID", "agent-0"),
            ("FLEET_OIDC_CLIENT_SECRET", "hunter2"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");

        let err = config(&[URL, issuer]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: "FLEET_OIDC_CLIENT_ID",
                ..
            }
        ));
        let err = config(&[URL, issuer, ("FLEET_OIDC_CLIENT_ID", "a")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: "FLEET_OIDC_CLIENT_SECRET",
                ..
            }
        ));
        let err = config(&[
            URL,
            issuer,
            ("FLEET_OIDC_CLIENT_ID", "a"),
            ("FLEET_OIDC_CLIENT_SECRET", "hunter2"),
            ("FLEET_OIDC_CLIENT_SECRET_FILE", "/f"),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict { .. }));
        assert!(!err.to_string().contains("hunter2"));
        let err = config(&[
            URL,
            issuer,
            ("FLEET_OIDC_CLIENT_ID", "a"),
            ("FLEET_OIDC_CLIENT_SECRET", "s"),
            ("FLEET_NATS_USER", "u"),
            ("FLEET_NATS_PASSWORD", "p"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Conflict {
                first: "FLEET_OIDC_ISSUER",
                ..
            }
        ));
        let err = config(&[URL, ("FLEET_OIDC_ISSUER", "idp.example")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "FLEET_OIDC_ISSUER",
                ..
            }
        ));
    }

    #[test]
    fn labels() {
        let c = config(&[URL, ("FLEET_AGENT_LABELS", "zone=a, role = edge ,x=")]).unwrap();
        assert_eq!(
            c.labels,
            BTreeMap::from([
                ("role".to_string(), "edge".to_string()),
                ("x".to_string(), String::new()),
                ("zone".to_string(), "a".to_string()),
            ])
        );
        for bad in ["zone", "=a", "a=1,a=2"] {
            let err = config(&[URL, ("FLEET_AGENT_LABELS", bad)]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        var: "FLEET_AGENT_LABELS",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        let c = config(&[URL, ("FLEET_HEARTBEAT_INTERVAL", "500ms")]).unwrap();
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        let err = config(&[URL, ("FLEET_HEARTBEAT_INTERVAL", "0s")]).unwrap_err();
        assert!(
            err.to_string().contains("FLEET_HEARTBEAT_INTERVAL"),
            "{err}"
        );
        let err = config(&[URL, ("FLEET_DRAIN_TIMEOUT", "soon")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "FLEET_DRAIN_TIMEOUT",
                ..
            }
        ));
    }

    #[test]
    fn http_addr_and_log_format() {
        let c = config(&[
            URL,
            ("FLEET_HTTP_ADDR", "off"),
            ("FLEET_LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(c.http_addr, None);
        assert_eq!(c.log_format, LogFormat::Json);
        let err = config(&[URL, ("FLEET_HTTP_ADDR", "localhost")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "FLEET_HTTP_ADDR",
                ..
            }
        ));
        let err = config(&[URL, ("FLEET_LOG_FORMAT", "xml")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "FLEET_LOG_FORMAT",
                ..
            }
        ));
    }
}
