//! The agent's NATS connection: credentials on every (re)connect, capped
//! exponential backoff, connection events turned into logs.

use crate::credentials::CredentialSource;
use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use fleet_proto::AgentId;
use fleet_proto::client::ClientTls;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// First non-zero reconnect delay; doubles per failed attempt up to the cap.
const BASE_DELAY: Duration = Duration::from_millis(100);

/// How long a reconnect or initial connect waits before attempt `attempt`
/// (1-based; async-nats counts attempts since the last success): 0 for the
/// first, then 100 ms, 200 ms, 400 ms... capped at `cap`. A random extra of
/// up to 20% spreads a fleet's reconnects after a server restart, still
/// within the cap.
pub fn backoff_delay(attempt: usize, cap: Duration) -> Duration {
    let exact = exact_backoff(attempt, cap);
    let jitter = exact.mul_f64(rand::random::<f64>() * 0.2);
    (exact + jitter).min(cap)
}

fn exact_backoff(attempt: usize, cap: Duration) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let exponent = (attempt - 2).min(20) as u32;
    BASE_DELAY.saturating_mul(1 << exponent).min(cap)
}

/// Connection settings derived from the agent configuration.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub url: String,
    pub agent_id: AgentId,
    pub connect_timeout: Duration,
    pub reconnect_max_delay: Duration,
    /// How the server is verified; with a CA file TLS is required.
    pub tls: ClientTls,
}

/// Why one connect attempt failed. The message names the server and the
/// user, never the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "NATS at {url} refused the credentials of {who} (authorization violation); check the user and password"
    )]
    Refused {
        url: String,
        who: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("could not obtain NATS credentials ({who}) to connect to {url}: {source}")]
    Credentials {
        url: String,
        who: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("connecting to NATS at {url} timed out after {timeout:?}")]
    TimedOut {
        url: String,
        timeout: Duration,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("connecting to NATS at {url} failed: {source}")]
    Other {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
}

impl ConnectError {
    /// True when retrying with the same credentials is unlikely to help
    /// (still retried by the agent: a Secret may be fixed meanwhile).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ConnectError::Refused { .. } | ConnectError::Credentials { .. }
        )
    }
}

/// Connection lifecycle seen through async-nats events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Open,
    /// The connection was closed (after a drain, or given up). Final.
    Closed,
}

/// Makes one connect attempt (no retry on the initial connect: the caller
/// loops with [`backoff_delay`], logging each failure). Once connected, the
/// client reconnects forever by itself, asking `source` for fresh
/// credentials on every attempt.
pub async fn connect(
    settings: &ConnectionSettings,
    source: Arc<dyn CredentialSource>,
) -> Result<(async_nats::Client, watch::Receiver<LinkState>), ConnectError> {
    let (state_tx, state_rx) = watch::channel(LinkState::Open);
    let who = source.describe();
    let cap = settings.reconnect_max_delay;
    let agent = settings.agent_id.clone();

    let options = ConnectOptions::with_auth_callback(move |nonce| {
        let source = source.clone();
        async move {
            // Run the source in its own task: the callback's future must be
            // Sync, which an arbitrary async-trait future is not; a
            // JoinHandle is.
            match tokio::spawn(async move { source.credentials().await }).await {
                Ok(Ok(credentials)) => credentials.into_auth(&nonce),
                Ok(Err(e)) => Err(async_nats::AuthError::new(e)),
                Err(e) => Err(async_nats::AuthError::new(format!(
                    "credential source task failed: {e}"
                ))),
            }
        }
    })
    .name(format!("fleet-agent/{}", settings.agent_id))
    .connection_timeout(settings.connect_timeout)
    .max_reconnects(None)
    .reconnect_delay_callback(move |attempt| backoff_delay(attempt, cap))
    // A dead peer behind a silent network is noticed within ~2 pings.
    .ping_interval(Duration::from_secs(20))
    .event_callback(move |event| {
        let state_tx = state_tx.clone();
        let agent = agent.clone();
        async move { log_event(&agent, &event, &state_tx) }
    });

    settings
        .tls
        .apply(options)
        .connect(settings.url.as_str())
        .await
        .map(|client| (client, state_rx))
        .map_err(|source| {
            let url = settings.url.clone();
            match source.kind() {
                ConnectErrorKind::AuthorizationViolation => {
                    ConnectError::Refused { url, who, source }
                }
                ConnectErrorKind::Authentication => ConnectError::Credentials { url, who, source },
                ConnectErrorKind::TimedOut => ConnectError::TimedOut {
                    url,
                    timeout: settings.connect_timeout,
                    source,
                },
                _ => ConnectError::Other { url, source },
            }
        })
}

fn log_event(agent: &AgentId, event: &Event, state: &watch::Sender<LinkState>) {
    match event {
        Event::Connected => tracing::info!(agent = %agent, "connected to NATS"),
        Event::Disconnected => {
            tracing::warn!(agent = %agent, "disconnected from NATS; reconnecting")
        }
        Event::Draining => tracing::info!(agent = %agent, "draining the NATS connection"),
        Event::Closed => {
            tracing::info!(agent = %agent, "NATS connection closed");
            state.send_replace(LinkState::Closed);
        }
        Event::LameDuckMode => tracing::warn!(agent = %agent, "NATS server entered lame duck mode"),
        Event::SlowConsumer(sid) => {
            tracing::warn!(agent = %agent, sid, "slow consumer: messages dropped")
        }
        Event::ServerError(e) => tracing::warn!(agent = %agent, error = %e, "NATS server error"),
        Event::ClientError(e) => tracing::warn!(agent = %agent, error = %e, "NATS client error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(5);
        assert_eq!(exact_backoff(0, cap), Duration::ZERO);
        assert_eq!(exact_backoff(1, cap), Duration::ZERO);
        assert_eq!(exact_backoff(2, cap), Duration::from_millis(100));
        assert_eq!(exact_backoff(3, cap), Duration::from_millis(200));
        assert_eq!(exact_backoff(5, cap), Duration::from_millis(800));
        assert_eq!(exact_backoff(10, cap), cap);
        assert_eq!(exact_backoff(usize::MAX, cap), cap);
        for attempt in 0..100 {
            let d = backoff_delay(attempt, cap);
            assert!(d <= cap, "attempt {attempt}: {d:?}");
            assert!(d >= exact_backoff(attempt, cap), "attempt {attempt}: {d:?}");
        }
    }
}
