//! `fleet-agent`: configuration from the environment (see
//! `fleet_agent::config`), logs to stderr, drains and exits 0 on SIGTERM or
//! SIGINT.

use fleet_agent::{Agent, AgentConfig, credentials_from_config, logging};
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let config = match AgentConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-agent: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);

    // Two workers are plenty for one connection and a few tasks, and keep
    // the idle footprint small on many-core nodes.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: AgentConfig) -> ExitCode {
    let shutdown = CancellationToken::new();
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "could not install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutdown requested; draining");
            shutdown.cancel();
        });
    }

    let credentials = credentials_from_config(&config.auth);
    let agent = match Agent::bind(config, credentials).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "agent could not start");
            return ExitCode::FAILURE;
        }
    };
    match agent.run(shutdown).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE, // already logged by Agent::run
    }
}
