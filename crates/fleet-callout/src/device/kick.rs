//! Disconnecting a revoked device now, not when its user JWT expires
//! (nats-server #5477): find its connections with
//! `$SYS.REQ.SERVER.PING.CONNZ` (every server answers) and send
//! `$SYS.REQ.SERVER.<server id>.KICK {"cid": n}` to each server holding one.
//! Needs a connection as a system-account user: the callout's system nkey
//! user (ADR 0080). The kicked client reconnects at once and the callout,
//! whose directory already says "revoked", refuses it.

use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

/// How long to collect CONNZ answers: servers of one cluster answer within
/// a few ms; the revocation goal is 1 s in total.
const CONNZ_WINDOW: Duration = Duration::from_millis(250);
/// Limit for one KICK request.
const KICK_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum KickError {
    #[error("asking the servers for the connections of {user}: {detail}")]
    Connz { user: String, detail: String },
    #[error("kicking connection {cid} of {user} on server {server}: {detail}")]
    Kick {
        user: String,
        server: String,
        cid: u64,
        detail: String,
    },
}

#[derive(Deserialize)]
struct ServerReply {
    server: ServerInfo,
    #[serde(default)]
    data: Option<Connz>,
}

#[derive(Deserialize)]
struct ServerInfo {
    id: String,
}

#[derive(Deserialize)]
struct Connz {
    #[serde(default)]
    connections: Vec<Conn>,
}

#[derive(Deserialize)]
struct Conn {
    cid: u64,
}

/// Finds and kicks connections by user name (the `name` of the user JWT
/// the callout issued: the agent id).
#[derive(Clone, Debug)]
pub struct Kicker {
    client: async_nats::Client,
    account: String,
}

impl Kicker {
    /// `client` is connected as a system-account user; `account` is where
    /// agents live (`FLEET`), so a same-named user elsewhere is left alone.
    pub fn new(client: async_nats::Client, account: impl Into<String>) -> Self {
        Kicker {
            client,
            account: account.into(),
        }
    }

    /// Kicks every connection of `user` in the agents' account; returns how
    /// many were kicked.
    pub async fn kick_user(&self, user: &str) -> Result<usize, KickError> {
        let connz_err = |detail: String| KickError::Connz {
            user: user.into(),
            detail,
        };
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| connz_err(e.to_string()))?;
        let filter = serde_json::json!({ "auth": true, "user": user, "acc": self.account });
        self.client
            .publish_with_reply(
                "$SYS.REQ.SERVER.PING.CONNZ",
                inbox,
                filter.to_string().into(),
            )
            .await
            .map_err(|e| connz_err(e.to_string()))?;
        self.client
            .flush()
            .await
            .map_err(|e| connz_err(e.to_string()))?;

        let mut targets: Vec<(String, u64)> = Vec::new();
        let deadline = tokio::time::Instant::now() + CONNZ_WINDOW;
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, replies.next()).await {
            match serde_json::from_slice::<ServerReply>(&msg.payload) {
                Ok(reply) => {
                    for conn in reply.data.map(|d| d.connections).unwrap_or_default() {
                        targets.push((reply.server.id.clone(), conn.cid));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable CONNZ answer"),
            }
        }
        let _ = replies.unsubscribe().await;

        let mut kicked = 0;
        for (server, cid) in targets {
            let subject = format!("$SYS.REQ.SERVER.{server}.KICK");
            let body = serde_json::json!({ "cid": cid }).to_string();
            let request = self.client.request(subject, body.into());
            match tokio::time::timeout(KICK_TIMEOUT, request).await {
                Ok(Ok(_)) => kicked += 1,
                Ok(Err(e)) => {
                    return Err(KickError::Kick {
                        user: user.into(),
                        server,
                        cid,
                        detail: e.to_string(),
                    });
                }
                Err(_) => {
                    return Err(KickError::Kick {
                        user: user.into(),
                        server,
                        cid,
                        detail: format!("no answer within {KICK_TIMEOUT:?}"),
                    });
                }
            }
        }
        Ok(kicked)
    }
}
