//! The agent's life: bind HTTP, connect (retrying with capped backoff),
//! subscribe, serve commands and heartbeats, and on shutdown drain:
//! not-ready -> stop heartbeats -> stop taking commands and finish the
//! in-flight ones -> drain and close the NATS connection -> stop HTTP.

use crate::command_server::{CommandServer, CommandServerError, ServeReport};
use crate::config::{AgentConfig, AuthConfig};
use crate::connection::{self, ConnectionSettings, LinkState, backoff_delay};
use crate::credentials::{Anonymous, CredentialSource, UserPassword};
use crate::heartbeat;
use crate::http;
use crate::identity::AgentIdentity;
use crate::oidc::OidcTokenSource;
use crate::readiness::Readiness;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The agent's own failures (the process exits non-zero on these).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("binding the HTTP server to {addr} failed: {source}")]
    HttpBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Commands(#[from] CommandServerError),
    #[error("draining the NATS connection failed: {source}")]
    Drain {
        #[source]
        source: async_nats::client::DrainError,
    },
}

/// What happened during the agent's life, for the final log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// False when shutdown came before the first successful connect.
    pub connected: bool,
    pub commands: ServeReport,
    pub heartbeats_sent: u64,
    /// The NATS connection reported closed before the drain timeout.
    pub connection_closed: bool,
}

/// A configured agent, HTTP port bound, not yet connected.
pub struct Agent {
    config: AgentConfig,
    credentials: Arc<dyn CredentialSource>,
    identity: Arc<AgentIdentity>,
    readiness: Arc<Readiness>,
    http: Option<(TcpListener, SocketAddr)>,
}

/// The credential source described by the configuration.
pub fn credentials_from_config(auth: &AuthConfig) -> Arc<dyn CredentialSource> {
    match auth {
        AuthConfig::None => Arc::new(Anonymous),
        AuthConfig::UserPassword { user, password } => {
            Arc::new(UserPassword::new(user.clone(), password.clone()))
        }
        AuthConfig::Oidc(oidc) => Arc::new(OidcTokenSource::new(oidc.clone())),
        AuthConfig::Device { state_dir } => Arc::new(crate::device::DeviceKeySource {
            state_dir: state_dir.clone(),
        }),
    }
}

impl Agent {
    /// Binds the HTTP port (if configured) so that `/healthz` answers while
    /// NATS is still being reached.
    pub async fn bind(
        config: AgentConfig,
        credentials: Arc<dyn CredentialSource>,
    ) -> Result<Agent, AgentError> {
        let http = match config.http_addr {
            None => None,
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| AgentError::HttpBind { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| AgentError::HttpBind { addr, source })?;
                Some((listener, bound))
            }
        };
        let identity = Arc::new(AgentIdentity::new(
            config.agent_id.clone(),
            config.labels.clone(),
        ));
        Ok(Agent {
            config,
            credentials,
            identity,
            readiness: Arc::new(Readiness::default()),
            http,
        })
    }

    /// The bound HTTP address (useful with port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(_, addr)| *addr)
    }

    pub fn readiness(&self) -> Arc<Readiness> {
        self.readiness.clone()
    }

    /// Runs until `shutdown` is cancelled (SIGTERM in the binary), then
    /// drains. Returns an error only for failures of the agent itself.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<RunReport, AgentError> {
        let http_stop = CancellationToken::new();
        let http_task = self.http.take().map(|(listener, addr)| {
            tracing::info!(%addr, "serving /healthz and /readyz");
            let app = http::router(self.readiness.clone());
            let stop = http_stop.clone();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            })
        });

        let result = self.run_nats(&shutdown).await;

        http_stop.cancel();
        if let Some(task) = http_task {
            let _ = task.await;
        }
        match &result {
            Ok(report) => tracing::info!(
                agent = %self.identity.id,
                connected = report.connected,
                commands_handled = report.commands.handled,
                in_flight_at_shutdown = report.commands.in_flight_at_shutdown,
                drain_timed_out = report.commands.drain_timed_out,
                heartbeats_sent = report.heartbeats_sent,
                connection_closed = report.connection_closed,
                "agent drained; exiting"
            ),
            Err(e) => tracing::error!(agent = %self.identity.id, error = %e, "agent failed"),
        }
        result
    }

    async fn run_nats(&self, shutdown: &CancellationToken) -> Result<RunReport, AgentError> {
        let config = &self.config;
        let settings = ConnectionSettings {
            url: config.nats_url.clone(),
            agent_id: config.agent_id.clone(),
            connect_timeout: config.connect_timeout,
            reconnect_max_delay: config.reconnect_max_delay,
            tls: config.nats_tls.clone(),
        };
        tracing::info!(
            agent = %config.agent_id,
            url = %config.nats_url,
            credentials = %self.credentials.describe(),
            labels = ?config.labels,
            heartbeat_interval = ?config.heartbeat_interval,
            "starting fleet agent"
        );

        // Initial connect: our own loop (rather than async-nats'
        // retry_on_initial_connect) so that each failure is logged with its
        // reason, e.g. refused credentials.
        let mut attempt = 0usize;
        let (client, mut link) = loop {
            attempt += 1;
            let result = tokio::select! {
                _ = shutdown.cancelled() => return Ok(RunReport::default()),
                r = connection::connect(&settings, self.credentials.clone()) => r,
            };
            match result {
                Ok(connected) => break connected,
                Err(e) => {
                    let delay = backoff_delay(attempt + 1, config.reconnect_max_delay);
                    if e.is_auth() {
                        tracing::error!(agent = %config.agent_id, error = %e, retry_in = ?delay, "NATS connect refused");
                    } else {
                        tracing::warn!(agent = %config.agent_id, error = %e, retry_in = ?delay, "NATS connect failed");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(RunReport::default()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        self.readiness.set_client(client.clone());

        let server = CommandServer::start(
            client.clone(),
            self.identity.clone(),
            self.readiness.clone(),
        )
        .await?;
        let heartbeat_stop = shutdown.child_token();
        let heartbeats = tokio::spawn(heartbeat::run(
            client.clone(),
            self.identity.clone(),
            config.heartbeat_interval,
            heartbeat_stop.clone(),
        ));

        let served = server.serve(shutdown.clone(), config.drain_timeout).await;

        // From here on we are leaving, whether asked to or because serving
        // failed.
        self.readiness.set_draining();
        heartbeat_stop.cancel();
        let heartbeats_sent = heartbeats.await.unwrap_or(0);
        let commands = served?;

        // Replies of the last handlers are in the client's buffer: drain
        // flushes them, then closes the connection.
        client
            .drain()
            .await
            .map_err(|source| AgentError::Drain { source })?;
        let connection_closed = tokio::time::timeout(
            config.drain_timeout,
            link.wait_for(|s| *s == LinkState::Closed),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !connection_closed {
            tracing::warn!(agent = %config.agent_id, "NATS connection not closed within the drain timeout");
        }
        Ok(RunReport {
            connected: true,
            commands,
            heartbeats_sent,
            connection_closed,
        })
    }
}
