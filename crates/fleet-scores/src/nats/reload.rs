//! Servers pick up a renewed certificate and a reloadable config change
//! without a restart (docs/adr/0060-stack-ca-and-certificate-rotation.md,
//! docs/adr/0073-nats-config-escape-hatch.md).
//!
//! The kubelet replaces the files of a mounted Secret or ConfigMap in
//! place, some seconds to a minute after the object changed; nats-server
//! reads them again on a config reload, which keeps every client
//! connection. The reconciler, connected as the system account's user,
//! asks every server what it serves (`$SYS.REQ.SERVER.PING.VARZ`: field
//! `tls_cert_not_after`, and the `metadata` our config stamps with its
//! hashes, [`ConfigMarker`]) and sends `$SYS.REQ.SERVER.<id>.RELOAD`
//! (nats-server 2.10+) to each one that is behind. Until all serve what
//! the reconciler applied the component is rolling out; a reload sent
//! before the kubelet swapped the files is harmless and is simply sent
//! again on the next reconcile.
//!
//! A server whose restart hash differs from the applied one runs a config
//! that a reload cannot turn into the new one (a listener, the cluster, the
//! store): it gets no reload, the StatefulSet's roll replaces it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

/// Where every server answers a VARZ request (one reply per server).
pub const PING_VARZ: &str = "$SYS.REQ.SERVER.PING.VARZ";

/// The reload request subject of server `id`.
pub fn reload_subject(id: &str) -> String {
    format!("$SYS.REQ.SERVER.{id}.RELOAD")
}

use super::config::{ConfigMarker, METADATA_CONFIG, METADATA_RESTART};

/// One server's answer to [`PING_VARZ`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `server_name` (the pod name).
    pub name: String,
    /// Server id, for the reload subject.
    pub id: String,
    /// `notAfter` of the certificate it serves on the client port (Unix
    /// seconds); `None` when it serves none or did not say.
    pub not_after: Option<i64>,
    /// The hashes of the config it loaded; `None` for a config rendered
    /// before the reconciler stamped them (such a server is restarted by
    /// the roll that stamps them).
    pub config: Option<ConfigMarker>,
}

/// What every server should serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// How many servers must answer (`spec.nats.replicas`).
    pub servers: usize,
    /// `notAfter` of the certificate in the Secret (with TLS).
    pub not_after: Option<i64>,
    /// The applied config's hashes.
    pub config: Option<ConfigMarker>,
}

/// Where one server stands against [`Expected`] (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Current,
    /// Its files (certificate or reloadable config) are newer than what it
    /// loaded: a reload brings it up to date.
    NeedsReload,
    /// It runs a config only a restart replaces (the roll does it).
    NeedsRestart,
}

impl Expected {
    pub fn state_of(&self, served: &Served) -> ServerState {
        let stale_cert = self.not_after.is_some() && served.not_after != self.not_after;
        let config = match (&self.config, &served.config) {
            (None, _) => ServerState::Current,
            (Some(want), Some(has)) if want == has => ServerState::Current,
            (Some(want), Some(has)) if want.restart == has.restart => ServerState::NeedsReload,
            (Some(_), _) => ServerState::NeedsRestart,
        };
        match (config, stale_cert) {
            (ServerState::NeedsRestart, _) => ServerState::NeedsRestart,
            (ServerState::NeedsReload, _) | (ServerState::Current, true) => {
                ServerState::NeedsReload
            }
            (ServerState::Current, false) => ServerState::Current,
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    server: ReplyServer,
    #[serde(default)]
    data: Option<VarzData>,
    #[serde(default)]
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyServer {
    #[serde(default)]
    name: String,
    id: String,
}

#[derive(Deserialize)]
struct VarzData {
    #[serde(default)]
    tls_cert_not_after: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ReplyError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    description: String,
}

/// Why the check could not tell.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("asking the servers what they serve: {0}")]
    Ask(String),
    #[error("server {server} refused the config reload: {description} (code {code})")]
    Refused {
        server: String,
        code: i64,
        description: String,
    },
    #[error("server {server} did not confirm the config reload: {reason}")]
    NoAnswer { server: String, reason: String },
}

/// Parses one VARZ reply (pure). Unparseable replies are `None`: another
/// client's message on our inbox cannot make the check panic or lie.
pub fn parse_varz(payload: &[u8]) -> Option<Served> {
    let reply: Reply = serde_json::from_slice(payload).ok()?;
    let config = reply.data.as_ref().and_then(|d| {
        Some(ConfigMarker {
            restart: d.metadata.get(METADATA_RESTART)?.clone(),
            config: d.metadata.get(METADATA_CONFIG)?.clone(),
        })
    });
    let not_after = reply
        .data
        .and_then(|d| d.tls_cert_not_after)
        .and_then(|t| {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp());
    Some(Served {
        name: reply.server.name,
        id: reply.server.id,
        not_after,
        config,
    })
}

/// Asks every server what it serves; collects replies until
/// `servers` answered or `wait` passed (a server that is down simply does
/// not answer: the caller compares the count).
pub async fn served(
    client: &async_nats::Client,
    servers: usize,
    wait: Duration,
) -> Result<Vec<Served>, ReloadError> {
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| ReloadError::Ask(e.to_string()))?;
    client
        .publish_with_reply(PING_VARZ, inbox, "".into())
        .await
        .map_err(|e| ReloadError::Ask(e.to_string()))?;
    client
        .flush()
        .await
        .map_err(|e| ReloadError::Ask(e.to_string()))?;
    // One entry per server id: a duplicate reply cannot be counted twice.
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    while seen.len() < servers {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(msg)) => {
                if let Some(cert) = parse_varz(&msg.payload) {
                    seen.insert(cert.id.clone(), cert);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    Ok(seen.into_values().collect())
}

/// Sends a config reload to server `cert.id` and waits for its answer.
pub async fn reload(
    client: &async_nats::Client,
    cert: &Served,
    wait: Duration,
) -> Result<(), ReloadError> {
    let no_answer = |reason: String| ReloadError::NoAnswer {
        server: cert.name.clone(),
        reason,
    };
    let answer = tokio::time::timeout(wait, client.request(reload_subject(&cert.id), "".into()))
        .await
        .map_err(|_| no_answer(format!("no answer within {wait:?}")))?
        .map_err(|e| no_answer(e.to_string()))?;
    match serde_json::from_slice::<Reply>(&answer.payload) {
        Ok(Reply { error: Some(e), .. }) => Err(ReloadError::Refused {
            server: cert.name.clone(),
            code: e.code,
            description: e.description,
        }),
        Ok(_) => Ok(()),
        Err(e) => Err(no_answer(format!("unreadable answer: {e}"))),
    }
}

/// Where the servers stand against [`Expected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every one of the expected servers serves it.
    Served,
    /// `current` of `servers` serve it; `reloaded` were sent a reload,
    /// `restarting` wait for the StatefulSet to replace them (or have not
    /// answered yet).
    Converging {
        current: usize,
        servers: usize,
        reloaded: usize,
        restarting: usize,
    },
}

/// Checks the servers and reloads those whose files are ahead of them.
pub async fn converge(
    client: &async_nats::Client,
    expected: &Expected,
    wait: Duration,
) -> Result<Rollout, ReloadError> {
    let served = served(client, expected.servers, wait).await?;
    let mut current = 0;
    let mut reloaded = 0;
    for server in &served {
        match expected.state_of(server) {
            ServerState::Current => current += 1,
            ServerState::NeedsReload => {
                reload(client, server, wait).await?;
                reloaded += 1;
            }
            ServerState::NeedsRestart => {}
        }
    }
    if current >= expected.servers {
        return Ok(Rollout::Served);
    }
    Ok(Rollout::Converging {
        current,
        servers: expected.servers,
        reloaded,
        restarting: expected.servers.saturating_sub(current + reloaded),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varz_replies_give_the_served_certificate() {
        let reply = br#"{"server":{"name":"demo-nats-0","host":"0.0.0.0","id":"NABC","ver":"2.15.1"},"data":{"server_id":"NABC","tls_cert_not_after":"2027-03-01T12:00:00Z"}}"#;
        assert_eq!(
            parse_varz(reply),
            Some(Served {
                name: "demo-nats-0".into(),
                id: "NABC".into(),
                not_after: Some(1_803_902_400),
                config: None,
            })
        );
        let marked = br#"{"server":{"name":"n","id":"NX"},"data":{"metadata":{"fleet_restart":"r1","fleet_config":"c1","other":"x"}}}"#;
        assert_eq!(
            parse_varz(marked).unwrap().config,
            Some(ConfigMarker {
                restart: "r1".into(),
                config: "c1".into()
            })
        );
        let plain = br#"{"server":{"name":"n","id":"NX"},"data":{}}"#;
        assert_eq!(parse_varz(plain).unwrap().not_after, None);
        assert_eq!(parse_varz(b"not json"), None);
        assert_eq!(parse_varz(br#"{"data":{}}"#), None);
    }

    fn server(not_after: Option<i64>, restart: &str, config: &str) -> Served {
        Served {
            name: "n".into(),
            id: "NX".into(),
            not_after,
            config: Some(ConfigMarker {
                restart: restart.into(),
                config: config.into(),
            }),
        }
    }

    #[test]
    fn a_server_is_reloaded_only_when_a_reload_can_bring_it_up_to_date() {
        let want = Expected {
            servers: 1,
            not_after: Some(10),
            config: Some(ConfigMarker {
                restart: "r".into(),
                config: "c2".into(),
            }),
        };
        use ServerState::*;
        assert_eq!(want.state_of(&server(Some(10), "r", "c2")), Current);
        // A reloadable change, a renewed certificate, or both.
        assert_eq!(want.state_of(&server(Some(10), "r", "c1")), NeedsReload);
        assert_eq!(want.state_of(&server(Some(9), "r", "c2")), NeedsReload);
        assert_eq!(want.state_of(&server(Some(9), "r", "c1")), NeedsReload);
        // Another restart hash: the roll replaces it, a reload would be
        // refused or half-applied.
        assert_eq!(want.state_of(&server(Some(10), "r0", "c0")), NeedsRestart);
        assert_eq!(want.state_of(&server(Some(9), "r0", "c0")), NeedsRestart);
        let unmarked = Served {
            config: None,
            ..server(Some(10), "", "")
        };
        assert_eq!(want.state_of(&unmarked), NeedsRestart);
        // Without TLS only the config counts.
        let plain = Expected {
            not_after: None,
            ..want.clone()
        };
        assert_eq!(plain.state_of(&server(None, "r", "c2")), Current);
    }
}
