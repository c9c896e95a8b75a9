//! Requester helpers (feature `client`): what a smoke probe or the operator
//! runtime calls to talk to agents.
//!
//! NATS answers a request with "no responders" at once when nobody is
//! subscribed to the subject. Right after an agent (re)connects, or right
//! after it is deployed, that is expected for a short while (the server has
//! not processed its SUB yet), so the helpers retry NoResponders with a short
//! backoff until the deadline instead of failing on the first try. A plain
//! timeout is not retried: someone received the request and did not answer.
//!
//! A smoke probe in a few lines:
//!
//! ```no_run
//! # async fn probe(nc: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use fleet_proto::AgentId;
//! use fleet_proto::client::{PingSummary, ping_all};
//! use std::time::Duration;
//!
//! let expected = ["agent-0", "agent-1", "agent-2"]
//!     .map(|id| AgentId::new(id).expect("valid id"));
//! let summary = PingSummary::new(ping_all(&nc, &expected, Duration::from_secs(5)).await);
//! // "3/3 agents answered" or "2/3 agents answered; missing: agent-2"
//! println!("{summary}");
//! if !summary.all_answered() {
//!     for err in &summary.missing {
//!         eprintln!("{err}"); // says why: no responders, timeout, error reply...
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;

use crate::{
    AgentId, Command, CommandSpec, ErrorBody, InfoCommand, InfoReply, PingCommand, PingReply,
    ProtoError, decode_reply, encode_request, subjects,
};
use async_nats::{RequestErrorKind, client::Client};
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

/// How a client verifies the NATS server it connects to. Every client we
/// ship (agents, callout, operator runtime, smoke probes) takes this, so
/// "TLS verified against the stack's CA and the dialed host name" is one
/// definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM file of the CA that signs the server certificate (the stack's
    /// CA: `ca.crt` of the stack's certificate Secrets, or
    /// `status.endpoints[].caCert` outside the cluster). `None`: plaintext
    /// unless the server asks for TLS (then verified against the system
    /// roots).
    pub ca_file: Option<PathBuf>,
}

impl ClientTls {
    /// TLS required and verified against the CA in `ca_file`.
    pub fn with_ca_file(ca_file: impl Into<PathBuf>) -> Self {
        ClientTls {
            ca_file: Some(ca_file.into()),
        }
    }

    /// Applies this to connect options: with a CA file, the connection
    /// must be TLS (a server offering plaintext is refused), the server's
    /// certificate must chain to that CA, and its names must cover the host
    /// in the URL.
    pub fn apply(&self, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        match &self.ca_file {
            Some(ca) => options.add_root_certificates(ca.clone()).require_tls(true),
            None => options,
        }
    }
}

/// First pause after a NoResponders answer; doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(250);
/// After a NoResponders answer, a new attempt is only started if at least
/// this much time is left; a shorter one could only end in a timeout that
/// would hide the NoResponders.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

/// Why a request to an agent did not produce the agent's answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "agent {agent} did not answer {command}: no responders on its subject for {waited:?} (agent not connected or not subscribed)"
    )]
    NoResponders {
        agent: AgentId,
        command: Command,
        waited: Duration,
    },
    #[error("agent {agent} did not answer {command} within {timeout:?}")]
    TimedOut {
        agent: AgentId,
        command: Command,
        timeout: Duration,
    },
    #[error("sending {command} to agent {agent} failed: {source}")]
    Request {
        agent: AgentId,
        command: Command,
        #[source]
        source: async_nats::RequestError,
    },
    #[error("could not encode the {command} request for agent {agent}: {source}")]
    Encode {
        agent: AgentId,
        command: Command,
        #[source]
        source: ProtoError,
    },
    #[error("agent {agent} sent an unreadable reply to {command}: {source}")]
    BadReply {
        agent: AgentId,
        command: Command,
        #[source]
        source: ProtoError,
    },
    #[error("agent {agent} answered {command} with an error: {error}")]
    Remote {
        agent: AgentId,
        command: Command,
        error: ErrorBody,
    },
}

impl ClientError {
    /// The agent the failed request was addressed to.
    pub fn agent(&self) -> &AgentId {
        match self {
            ClientError::NoResponders { agent, .. }
            | ClientError::TimedOut { agent, .. }
            | ClientError::Request { agent, .. }
            | ClientError::Encode { agent, .. }
            | ClientError::BadReply { agent, .. }
            | ClientError::Remote { agent, .. } => agent,
        }
    }
}

/// Sends command `C` with `args` to `agent` and decodes its reply, retrying
/// NoResponders until `timeout` has passed.
pub async fn request<C: CommandSpec>(
    client: &Client,
    agent: &AgentId,
    args: &C::Args,
    timeout: Duration,
) -> Result<C::Reply, ClientError> {
    let command = C::COMMAND;
    let payload = Bytes::from(encode_request(args).map_err(|source| ClientError::Encode {
        agent: agent.clone(),
        command,
        source,
    })?);
    let message = request_raw(client, agent, command, payload, timeout).await?;
    match decode_reply::<C::Reply>(&message.payload) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(ClientError::Remote {
            agent: agent.clone(),
            command,
            error,
        }),
        Err(source) => Err(ClientError::BadReply {
            agent: agent.clone(),
            command,
            source,
        }),
    }
}

/// Sends `payload` as-is to `agent`'s `command` subject, with the same
/// NoResponders retry. For tools and tests that need to send raw bytes.
pub async fn request_raw(
    client: &Client,
    agent: &AgentId,
    command: Command,
    payload: Bytes,
    timeout: Duration,
) -> Result<async_nats::Message, ClientError> {
    let subject = subjects::command_subject(agent, command);
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = FIRST_RETRY_PAUSE;
    let mut saw_no_responders = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if saw_no_responders && remaining < MIN_ATTEMPT {
            return Err(ClientError::NoResponders {
                agent: agent.clone(),
                command,
                waited: started.elapsed(),
            });
        }
        let req = async_nats::Request::new()
            .payload(payload.clone())
            .timeout(Some(remaining));
        match client.send_request(subject.clone(), req).await {
            Ok(message) => return Ok(message),
            Err(err) => match err.kind() {
                RequestErrorKind::NoResponders => {
                    saw_no_responders = true;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(pause.min(remaining)).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                // A retry that times out after NoResponders answers most
                // likely met the same absent agent with a slow 503 (a loaded
                // server); report what we actually saw.
                RequestErrorKind::TimedOut if saw_no_responders => {
                    return Err(ClientError::NoResponders {
                        agent: agent.clone(),
                        command,
                        waited: started.elapsed(),
                    });
                }
                RequestErrorKind::TimedOut => {
                    return Err(ClientError::TimedOut {
                        agent: agent.clone(),
                        command,
                        timeout,
                    });
                }
                _ => {
                    return Err(ClientError::Request {
                        agent: agent.clone(),
                        command,
                        source: err,
                    });
                }
            },
        }
    }
}

/// `ping` one agent.
pub async fn ping(
    client: &Client,
    agent: &AgentId,
    timeout: Duration,
) -> Result<PingReply, ClientError> {
    request::<PingCommand>(client, agent, &Default::default(), timeout).await
}

/// `info` of one agent.
pub async fn info(
    client: &Client,
    agent: &AgentId,
    timeout: Duration,
) -> Result<InfoReply, ClientError> {
    request::<InfoCommand>(client, agent, &Default::default(), timeout).await
}

/// Pings every agent concurrently, each within `timeout`, and returns one
/// result per agent in the input order. This is the smoke probe's building
/// block: count the `Ok`s, name the agents of the `Err`s (see
/// [`PingSummary`]).
pub async fn ping_all(
    client: &Client,
    agents: &[AgentId],
    timeout: Duration,
) -> Vec<Result<PingReply, ClientError>> {
    futures::future::join_all(agents.iter().map(|a| ping(client, a, timeout))).await
}

/// The outcome of a fan-out, ready for a status condition:
/// `3/3 agents answered` or `2/3 agents answered; missing: agent-2 (...)`.
#[derive(Debug)]
pub struct PingSummary {
    pub expected: usize,
    pub answered: Vec<PingReply>,
    /// Agents that did not answer, with why.
    pub missing: Vec<ClientError>,
}

impl PingSummary {
    pub fn new(results: Vec<Result<PingReply, ClientError>>) -> Self {
        let expected = results.len();
        let (mut answered, mut missing) = (Vec::new(), Vec::new());
        for r in results {
            match r {
                Ok(reply) => answered.push(reply),
                Err(e) => missing.push(e),
            }
        }
        PingSummary {
            expected,
            answered,
            missing,
        }
    }

    pub fn all_answered(&self) -> bool {
        self.missing.is_empty()
    }

    /// Ids of the agents that did not answer, in request order.
    pub fn missing_ids(&self) -> Vec<&AgentId> {
        self.missing.iter().map(ClientError::agent).collect()
    }
}

impl std::fmt::Display for PingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} agents answered",
            self.answered.len(),
            self.expected
        )?;
        if !self.missing.is_empty() {
            let names: Vec<&str> = self.missing.iter().map(|e| e.agent().as_str()).collect();
            write!(f, "; missing: {}", names.join(", "))?;
        }
        Ok(())
    }
}
