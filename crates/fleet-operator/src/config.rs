//! Configuration from the environment (the Score renders these variables).
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `FLEET_NATS_URL` | required | NATS server URL, e.g. `nats://nats:4222` |
//! | `FLEET_NATS_USER` | unset = no auth | NATS user of the operator |
//! | `FLEET_NATS_PASSWORD` | - | its password (exclusive with `_FILE`) |
//! | `FLEET_NATS_CA_FILE` | unset | PEM file of the CA that signs the NATS server certificate; set = TLS required and verified |
//! | `FLEET_NATS_PASSWORD_FILE` | - | file holding the password, re-read on every (re)connect |
//! | `FLEET_NAMESPACE` | `POD_NAMESPACE` | namespace FleetAgents are written to and FleetCommands are read from |
//! | `FLEET_OWNER_STACK` | unset | FleetStack (same namespace) that owns every FleetAgent (ownerReference) |
//! | `FLEET_HEARTBEAT_INTERVAL` | `10s` | expected heartbeat interval (when a heartbeat does not declare one) and the status-write window per agent |
//! | `FLEET_MISSED_HEARTBEATS` | `3` | heartbeats missed in a row before an agent is marked disconnected (1-100) |
//! | `FLEET_AGENT_TTL` | `15m` | an agent silent this long loses its FleetAgent |
//! | `FLEET_HTTP_ADDR` | `0.0.0.0:8080` | `/metrics`, `/healthz`, `/readyz`; `off` disables |
//! | `FLEET_LEADER_ELECTION` | `false` | `true`: work only while holding a Lease (replicas > 1) |
//! | `FLEET_LEASE_NAME` | `fleet-operator` | the Lease |
//! | `FLEET_LEASE_NAMESPACE` | the namespace | where the Lease lives |
//! | `POD_NAME` | hostname | Lease holder identity |
//! | `FLEET_LOG_FORMAT` | `text` | `text` or `json` |
//! | `RUST_LOG` | `info` | log filter |
//!
//! Durations: `500ms`, `10s`, `2m`, or a bare number of seconds.

use std::net::SocketAddr;
use std::time::Duration;

use fleet_agent::config::{nats_tls, nats_user_auth, parse_duration};
use fleet_agent::{AuthConfig, LogFormat};
use fleet_proto::client::ClientTls;

use crate::leader::LeaseConfig;

#[derive(Debug, Clone)]
pub struct OperatorConfig {
    pub nats_url: String,
    /// How the NATS server is verified (`FLEET_NATS_CA_FILE`).
    pub nats_tls: ClientTls,
    /// Debug of `AuthConfig` never prints the password (`Secret` redacts).
    pub auth: AuthConfig,
    pub namespace: String,
    pub owner_stack: Option<String>,
    pub inventory: InventoryConfig,
    pub http_addr: Option<SocketAddr>,
    pub leader_election: Option<LeaseConfig>,
    pub log_format: LogFormat,
}

/// The inventory's timing (docs/adr/0050-fleet-agent-inventory-writes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryConfig {
    /// Expected heartbeat interval, and the minimum time between two
    /// status writes of one agent that do not flip `connected`.
    pub heartbeat_interval: Duration,
    /// Missed heartbeats in a row before `connected` turns false.
    pub missed_threshold: u32,
    /// Silence after which the FleetAgent is deleted.
    pub ttl: Duration,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            heartbeat_interval: OperatorConfig::DEFAULT_HEARTBEAT_INTERVAL,
            missed_threshold: OperatorConfig::DEFAULT_MISSED_HEARTBEATS,
            ttl: OperatorConfig::DEFAULT_TTL,
        }
    }
}

/// A configuration error, naming the variable (never a secret value). The
/// agent's type: the NATS credentials are read by the same function
/// ([`nats_user_auth`]); its agent-id variants do not occur here.
pub use fleet_agent::ConfigError;

impl OperatorConfig {
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_MISSED_HEARTBEATS: u32 = 3;
    pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
    pub const DEFAULT_HTTP_ADDR: &'static str = "0.0.0.0:8080";

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// [`OperatorConfig::from_env`] with an explicit lookup (tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Empty counts as unset: manifests often render `value: ""`.
        let get = |var: &str| lookup(var).filter(|v| !v.is_empty());
        let invalid = |var: &'static str, value: &str, reason: String| ConfigError::Invalid {
            var,
            value: value.to_string(),
            reason,
        };

        let nats_url = get("FLEET_NATS_URL").ok_or(ConfigError::Missing {
            var: "FLEET_NATS_URL",
            hint: "the NATS server URL, e.g. nats://nats:4222",
        })?;
        let auth = nats_user_auth(&get)?;

        let namespace = get("FLEET_NAMESPACE")
            .or_else(|| get("POD_NAMESPACE"))
            .ok_or(ConfigError::Missing {
                var: "FLEET_NAMESPACE",
                hint: "the namespace of the FleetStack (POD_NAMESPACE from the downward API also works)",
            })?;
        let owner_stack = get("FLEET_OWNER_STACK");

        let duration = |var: &'static str, default: Duration| match get(var) {
            None => Ok(default),
            Some(v) => match parse_duration(&v) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(invalid(var, &v, "must be greater than zero".into())),
                Err(reason) => Err(invalid(var, &v, reason)),
            },
        };
        let heartbeat_interval =
            duration("FLEET_HEARTBEAT_INTERVAL", Self::DEFAULT_HEARTBEAT_INTERVAL)?;
        let ttl = duration("FLEET_AGENT_TTL", Self::DEFAULT_TTL)?;
        let missed_threshold = match get("FLEET_MISSED_HEARTBEATS") {
            None => Self::DEFAULT_MISSED_HEARTBEATS,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "FLEET_MISSED_HEARTBEATS",
                        &v,
                        "must be a whole number from 1 to 100".into(),
                    ));
                }
            },
        };
        let inventory = InventoryConfig {
            heartbeat_interval,
            missed_threshold,
            ttl,
        };
        if ttl <= heartbeat_interval * missed_threshold {
            return Err(invalid(
                "FLEET_AGENT_TTL",
                &get("FLEET_AGENT_TTL").unwrap_or_default(),
                format!(
                    "must be longer than FLEET_HEARTBEAT_INTERVAL x FLEET_MISSED_HEARTBEATS ({:?}), or agents would be deleted before they are reported disconnected",
                    heartbeat_interval * missed_threshold
                ),
            ));
        }

        let http_addr = match get("FLEET_HTTP_ADDR").as_deref() {
            Some("off") => None,
            other => {
                let v = other.unwrap_or(Self::DEFAULT_HTTP_ADDR);
                Some(v.parse().map_err(|e: std::net::AddrParseError| {
                    invalid("FLEET_HTTP_ADDR", v, e.to_string())
                })?)
            }
        };

        let leader_election = match get("FLEET_LEADER_ELECTION").as_deref() {
            None | Some("false") => None,
            Some("true") => {
                let identity =
                    get("POD_NAME")
                        .or_else(|| get("HOSTNAME"))
                        .ok_or(ConfigError::Missing {
                            var: "POD_NAME",
                            hint: "the Lease holder identity when FLEET_LEADER_ELECTION=true",
                        })?;
                Some(LeaseConfig::new(
                    get("FLEET_LEASE_NAME").unwrap_or_else(|| "fleet-operator".into()),
                    get("FLEET_LEASE_NAMESPACE").unwrap_or_else(|| namespace.clone()),
                    identity,
                ))
            }
            Some(other) => {
                return Err(invalid(
                    "FLEET_LEADER_ELECTION",
                    other,
                    "must be true or false".into(),
                ));
            }
        };

        let log_format = match get("FLEET_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "FLEET_LOG_FORMAT",
                    other,
                    "must be text or json".into(),
                ));
            }
        };

        Ok(OperatorConfig {
            nats_url,
            nats_tls: nats_tls(&get),
            auth,
            namespace,
            owner_stack,
            inventory,
            http_addr,
            leader_election,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<OperatorConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OperatorConfig::from_lookup(move |var| {
            vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
        })
    }

    const BASE: [(&str, &str); 2] = [
        ("FLEET_NATS_URL", "nats://nats:4222"),
        ("FLEET_NAMESPACE", "fleet"),
    ];

    #[test]
    fn defaults() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.nats_tls, ClientTls::default());
        let with_ca = config(&[BASE[0], BASE[1], ("FLEET_NATS_CA_FILE", "/ca/ca.crt")]).unwrap();
        assert_eq!(with_ca.nats_tls, ClientTls::with_ca_file("/ca/ca.crt"));
        assert_eq!(c.inventory, InventoryConfig::default());
        assert_eq!(c.owner_stack, None);
        assert!(matches!(c.auth, AuthConfig::None));
        assert_eq!(c.http_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert!(c.leader_election.is_none());
    }

    #[test]
    fn names_the_variable_and_hides_the_password() {
        let err = config(&[("FLEET_NAMESPACE", "x")]).unwrap_err();
        assert!(err.to_string().contains("FLEET_NATS_URL"), "{err}");
        let c = config(&[
            BASE[0],
            BASE[1],
            ("FLEET_NATS_USER", "operator"),
            ("FLEET_NATS_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let err = config(&[BASE[0], BASE[1], ("FLEET_MISSED_HEARTBEATS", "0")]).unwrap_err();
        assert!(err.to_string().contains("FLEET_MISSED_HEARTBEATS"), "{err}");
    }

    #[test]
    fn ttl_must_exceed_the_disconnect_delay() {
        let err = config(&[
            BASE[0],
            BASE[1],
            ("FLEET_HEARTBEAT_INTERVAL", "10s"),
            ("FLEET_AGENT_TTL", "30s"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("FLEET_AGENT_TTL"), "{err}");
        let c = config(&[
            BASE[0],
            BASE[1],
            ("FLEET_HEARTBEAT_INTERVAL", "500ms"),
            ("FLEET_MISSED_HEARTBEATS", "2"),
            ("FLEET_AGENT_TTL", "3s"),
            ("FLEET_LEADER_ELECTION", "true"),
            ("POD_NAME", "op-0"),
        ])
        .unwrap();
        assert_eq!(c.inventory.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.leader_election.unwrap().namespace, "fleet");
    }
}
