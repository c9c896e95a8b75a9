//! A renewed certificate reaches the running servers without a restart
//! (docs/adr/0060-stack-ca-and-certificate-rotation.md).
//!
//! The kubelet replaces the files of the mounted certificate Secret in
//! place, some seconds to a minute after the Secret changed; nats-server
//! reads them again on a config reload, which keeps every client
//! connection. The reconciler, connected as the system account's user,
//! asks every server which certificate it serves (`$SYS.REQ.SERVER.PING.VARZ`,
//! field `tls_cert_not_after`) and sends `$SYS.REQ.SERVER.<id>.RELOAD`
//! (nats-server 2.10+) to each one that still serves another. Until all
//! serve the certificate in the Secret the component is rolling out; a
//! reload sent before the kubelet swapped the files is harmless and is
//! simply sent again on the next reconcile.

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

/// One server's answer to [`PING_VARZ`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCert {
    /// `server_name` (the pod name).
    pub name: String,
    /// Server id, for the reload subject.
    pub id: String,
    /// `notAfter` of the certificate it serves on the client port (Unix
    /// seconds); `None` when it serves none or did not say.
    pub not_after: Option<i64>,
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
    #[error("asking the servers for their certificates: {0}")]
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
pub fn parse_varz(payload: &[u8]) -> Option<ServedCert> {
    let reply: Reply = serde_json::from_slice(payload).ok()?;
    let not_after = reply
        .data
        .and_then(|d| d.tls_cert_not_after)
        .and_then(|t| {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp());
    Some(ServedCert {
        name: reply.server.name,
        id: reply.server.id,
        not_after,
    })
}

/// Asks every server for its certificate; collects replies until
/// `servers` answered or `wait` passed (a server that is down simply does
/// not answer: the caller compares the count).
pub async fn served_certificates(
    client: &async_nats::Client,
    servers: usize,
    wait: Duration,
) -> Result<Vec<ServedCert>, ReloadError> {
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
    cert: &ServedCert,
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

/// Where the servers stand with the certificate `wanted_not_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRollout {
    /// Every one of the expected servers serves it.
    Served,
    /// `serving` of `servers` serve it; the others were sent a reload.
    Reloading { serving: usize, servers: usize },
}

/// Checks the servers and reloads those that serve another certificate.
pub async fn converge(
    client: &async_nats::Client,
    servers: usize,
    wanted_not_after: i64,
    wait: Duration,
) -> Result<CertRollout, ReloadError> {
    let served = served_certificates(client, servers, wait).await?;
    let stale: Vec<&ServedCert> = served
        .iter()
        .filter(|c| c.not_after != Some(wanted_not_after))
        .collect();
    if stale.is_empty() && served.len() >= servers {
        return Ok(CertRollout::Served);
    }
    for cert in &stale {
        reload(client, cert, wait).await?;
    }
    Ok(CertRollout::Reloading {
        serving: served.len() - stale.len(),
        servers,
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
            Some(ServedCert {
                name: "demo-nats-0".into(),
                id: "NABC".into(),
                not_after: Some(1_803_902_400),
            })
        );
        let plain = br#"{"server":{"name":"n","id":"NX"},"data":{}}"#;
        assert_eq!(parse_varz(plain).unwrap().not_after, None);
        assert_eq!(parse_varz(b"not json"), None);
        assert_eq!(parse_varz(br#"{"data":{}}"#), None);
    }
}
