//! The `CommandServer`: answers requests on `fleet.agent.<id>.cmd.>`.
//!
//! Every message is handled in its own task (tracked, so a drain can wait
//! for them) and always gets a reply: the command's payload, or a typed
//! error (unknown command, malformed/oversized payload, version mismatch).
//! Nothing in here trusts the payload or the subject.

use crate::identity::AgentIdentity;
use crate::readiness::Readiness;
use async_nats::{Client, Subscriber};
use bytes::Bytes;
use chrono::Utc;
use fleet_proto::{
    Command, ConnectionStats, ErrorBody, ErrorCode, InfoArgs, InfoReply, Outcome, PingArgs,
    PingReply, ProtoError, decode_request, encode_reply, subjects,
};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A command's failure, sent back to the requester as a typed error reply.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command {name:?} (this agent serves: ping, info)")]
    UnknownCommand { name: String },
    #[error("invalid {command} request: {source}")]
    BadRequest {
        command: Command,
        #[source]
        source: ProtoError,
    },
    #[error("{command} failed: {reason}")]
    Failed { command: Command, reason: String },
}

impl CommandError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CommandError::UnknownCommand { .. } => ErrorCode::UnknownCommand,
            CommandError::BadRequest { source, .. } => source.code(),
            CommandError::Failed { .. } => ErrorCode::CommandFailed,
        }
    }

    /// The error half of the reply envelope.
    pub fn to_error_body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }
}

/// The command server's own failures (not a command's).
#[derive(Debug, thiserror::Error)]
pub enum CommandServerError {
    #[error("subscribing to {subject} failed: {source}")]
    Subscribe {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
    #[error("confirming the subscription to {subject} with the server failed: {source}")]
    Flush {
        subject: String,
        #[source]
        source: async_nats::client::FlushError,
    },
    #[error("draining the subscription to {subject} failed: {source}")]
    Drain {
        subject: String,
        #[source]
        source: async_nats::UnsubscribeError,
    },
    #[error("the subscription to {subject} ended while the agent was running (connection closed)")]
    SubscriptionEnded { subject: String },
    #[error("encoding the reply to {subject} failed: {source}")]
    EncodeReply {
        subject: String,
        #[source]
        source: ProtoError,
    },
    #[error("sending the reply to {subject} failed: {source}")]
    Reply {
        subject: String,
        #[source]
        source: async_nats::PublishError,
    },
}

/// What the server did, reported after it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests answered over the server's life (errors included).
    pub handled: u64,
    /// Handlers still running when shutdown began, all finished by the drain.
    pub in_flight_at_shutdown: usize,
    /// True when the drain hit its timeout with handlers still running.
    pub drain_timed_out: bool,
}

/// Serves the agent's commands.
pub struct CommandServer {
    ctx: Arc<HandlerContext>,
    subject: String,
    subscriber: Subscriber,
    readiness: Arc<Readiness>,
}

/// What handlers need; shared by all handler tasks.
struct HandlerContext {
    client: Client,
    identity: Arc<AgentIdentity>,
    handled: AtomicU64,
}

impl CommandServer {
    /// Subscribes to `fleet.agent.<id>.cmd.>` and waits until the server
    /// has processed the SUB (a flush round trip), so that "subscribed" in
    /// readiness means requests will reach us.
    pub async fn start(
        client: Client,
        identity: Arc<AgentIdentity>,
        readiness: Arc<Readiness>,
    ) -> Result<Self, CommandServerError> {
        let subject = subjects::command_wildcard(&identity.id);
        let subscriber = client.subscribe(subject.clone()).await.map_err(|source| {
            CommandServerError::Subscribe {
                subject: subject.clone(),
                source,
            }
        })?;
        client
            .flush()
            .await
            .map_err(|source| CommandServerError::Flush {
                subject: subject.clone(),
                source,
            })?;
        readiness.set_subscribed(true);
        tracing::info!(agent = %identity.id, %subject, "serving commands");
        Ok(CommandServer {
            ctx: Arc::new(HandlerContext {
                client,
                identity,
                handled: AtomicU64::new(0),
            }),
            subject,
            subscriber,
            readiness,
        })
    }

    /// Handles requests until `shutdown` is cancelled, then drains: the
    /// server stops routing to us (UNSUB), messages already delivered are
    /// still answered, and in-flight handlers get up to `drain_timeout`.
    pub async fn serve(
        mut self,
        shutdown: CancellationToken,
        drain_timeout: Duration,
    ) -> Result<ServeReport, CommandServerError> {
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = self.subscriber.next() => match message {
                    Some(message) => self.spawn_handler(&tracker, message),
                    None => {
                        self.readiness.set_subscribed(false);
                        tracker.close();
                        tracker.wait().await;
                        return Err(CommandServerError::SubscriptionEnded { subject: self.subject });
                    }
                },
            }
        }

        // Drain: the UNSUB stops new deliveries; the stream then yields the
        // messages already buffered and ends.
        self.readiness.set_subscribed(false);
        let in_flight_at_shutdown = tracker.len();
        let drained = async {
            self.subscriber
                .drain()
                .await
                .map_err(|source| CommandServerError::Drain {
                    subject: self.subject.clone(),
                    source,
                })?;
            while let Some(message) = self.subscriber.next().await {
                self.spawn_handler(&tracker, message);
            }
            tracker.close();
            tracker.wait().await;
            Ok::<_, CommandServerError>(())
        };
        let drain_timed_out = match tokio::time::timeout(drain_timeout, drained).await {
            Ok(result) => {
                result?;
                false
            }
            Err(_) => {
                tracing::warn!(
                    agent = %self.ctx.identity.id,
                    still_running = tracker.len(),
                    ?drain_timeout,
                    "drain timed out with commands still running"
                );
                true
            }
        };
        Ok(ServeReport {
            handled: self.ctx.handled.load(Ordering::SeqCst),
            in_flight_at_shutdown,
            drain_timed_out,
        })
    }

    fn spawn_handler(&self, tracker: &TaskTracker, message: async_nats::Message) {
        let ctx = self.ctx.clone();
        tracker.spawn(async move {
            if let Err(e) = ctx.answer(message).await {
                tracing::warn!(agent = %ctx.identity.id, error = %e, "could not answer a command");
            }
        });
    }
}

impl HandlerContext {
    async fn answer(&self, message: async_nats::Message) -> Result<(), CommandServerError> {
        let Some(reply_to) = message.reply else {
            // A publish, not a request: there is nobody to tell.
            tracing::debug!(subject = %message.subject, "ignoring a command without reply subject");
            return Ok(());
        };
        let bytes = match self.dispatch(&message.subject, &message.payload) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::debug!(subject = %message.subject, %error, "command refused");
                encode_reply::<()>(&Outcome::Error(error.to_error_body())).map_err(|source| {
                    CommandServerError::EncodeReply {
                        subject: message.subject.to_string(),
                        source,
                    }
                })?
            }
        };
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.client
            .publish(reply_to.clone(), Bytes::from(bytes))
            .await
            .map_err(|source| CommandServerError::Reply {
                subject: reply_to.to_string(),
                source,
            })
    }

    /// Finds the command and runs it; returns the encoded `ok` reply.
    fn dispatch(&self, subject: &str, payload: &[u8]) -> Result<Vec<u8>, CommandError> {
        let name = subjects::command_name(&self.identity.id, subject).unwrap_or(subject);
        let command: Command = name.parse().map_err(|_| CommandError::UnknownCommand {
            name: name.to_string(),
        })?;
        match command {
            Command::Ping => {
                let _: PingArgs = decode(command, payload)?;
                ok(command, &self.ping())
            }
            Command::Info => {
                let _: InfoArgs = decode(command, payload)?;
                ok(command, &self.info())
            }
        }
    }

    fn ping(&self) -> PingReply {
        PingReply {
            agent_id: self.identity.id.clone(),
            version: self.identity.version.to_string(),
            uptime_ms: self.identity.uptime_ms(),
            timestamp: Utc::now(),
        }
    }

    fn info(&self) -> InfoReply {
        let server = self.client.server_info();
        let stats = self.client.statistics();
        InfoReply {
            agent_id: self.identity.id.clone(),
            version: self.identity.version.to_string(),
            started_at: self.identity.started_at,
            labels: self.identity.labels.clone(),
            capabilities: Command::ALL
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            connection: ConnectionStats {
                server_id: server.server_id,
                server_name: server.server_name,
                server_version: server.version,
                connects: stats.connects.load(Ordering::Relaxed),
                in_msgs: stats.in_messages.load(Ordering::Relaxed),
                out_msgs: stats.out_messages.load(Ordering::Relaxed),
                in_bytes: stats.in_bytes.load(Ordering::Relaxed),
                out_bytes: stats.out_bytes.load(Ordering::Relaxed),
            },
        }
    }
}

fn decode<A: serde::de::DeserializeOwned>(
    command: Command,
    payload: &[u8],
) -> Result<A, CommandError> {
    decode_request(payload).map_err(|source| CommandError::BadRequest { command, source })
}

fn ok<T: Serialize>(command: Command, reply: &T) -> Result<Vec<u8>, CommandError> {
    encode_reply(&Outcome::Ok(reply)).map_err(|e| CommandError::Failed {
        command,
        reason: format!("could not encode the reply: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_map_to_codes() {
        let unknown = CommandError::UnknownCommand {
            name: "reboot".into(),
        };
        assert_eq!(unknown.code(), ErrorCode::UnknownCommand);
        assert!(unknown.to_error_body().message.contains("\"reboot\""));

        let bad = decode::<PingArgs>(Command::Ping, b"nope").unwrap_err();
        assert_eq!(bad.code(), ErrorCode::MalformedRequest);
        let big = decode::<PingArgs>(
            Command::Ping,
            &vec![b' '; fleet_proto::MAX_PAYLOAD_BYTES + 1],
        )
        .unwrap_err();
        assert_eq!(big.code(), ErrorCode::PayloadTooLarge);
        let version = decode::<PingArgs>(Command::Ping, br#"{"v":99,"args":{}}"#).unwrap_err();
        assert_eq!(version.code(), ErrorCode::UnsupportedVersion);
        assert!(version.to_string().contains("ping"), "{version}");

        let failed = CommandError::Failed {
            command: Command::Info,
            reason: "x".into(),
        };
        assert_eq!(failed.code(), ErrorCode::CommandFailed);
    }
}
