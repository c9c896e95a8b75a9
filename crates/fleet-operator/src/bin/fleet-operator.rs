//! `fleet-operator`: see the crate docs and `config.rs` for the
//! environment. Exit codes: 0 after SIGTERM/SIGINT, 2 on a configuration
//! error, 1 on any other failure (including a lost leader Lease, so that
//! Kubernetes restarts the pod as a follower).

use std::sync::Arc;
use std::time::Duration;

use fleet_agent::connection::{ConnectionSettings, backoff_delay, connect};
use fleet_agent::{credentials_from_config, logging};
use fleet_operator::{Metrics, OperatorConfig, RunConfig};
use fleet_proto::AgentId;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

fn main() {
    let config = match OperatorConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-operator: configuration error: {e}");
            std::process::exit(2);
        }
    };
    let nats_monitor = match fleet_operator::nats_monitor::MonitorConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-operator: configuration error: {e}");
            std::process::exit(2);
        }
    };
    logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Two workers are plenty for NATS plus a few API calls at a time,
        // and keep the footprint small.
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(main_async(config, nats_monitor));
    std::process::exit(code);
}

async fn main_async(
    config: OperatorConfig,
    nats_monitor: Option<fleet_operator::nats_monitor::MonitorConfig>,
) -> i32 {
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("signal received; shutting down");
        s.cancel();
    });

    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot build a Kubernetes client (in-cluster or KUBECONFIG)");
            return 1;
        }
    };
    // Only used to name the connection in logs and NATS monitoring.
    let name = match AgentId::new("fleet-operator") {
        Ok(id) => id,
        Err(e) => {
            error!(error = %e, "invalid connection name");
            return 1;
        }
    };
    let settings = ConnectionSettings {
        url: config.nats_url.clone(),
        agent_id: name,
        connect_timeout: Duration::from_secs(5),
        reconnect_max_delay: Duration::from_secs(5),
        tls: config.nats_tls.clone(),
    };
    let credentials = credentials_from_config(&config.auth);
    let mut attempt = 0usize;
    let nats = loop {
        attempt += 1;
        match connect(&settings, credentials.clone()).await {
            Ok((client, _state)) => break client,
            Err(e) => {
                warn!(error = %e, attempt, "NATS connect failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return 0,
                    _ = tokio::time::sleep(backoff_delay(attempt + 1, settings.reconnect_max_delay)) => {}
                }
            }
        }
    };
    let metrics = Arc::new(Metrics::new());
    // NATS server metrics on every replica (not only the leader): they read
    // the servers, they write nothing (ADR 0071).
    if let Some(monitor) = nats_monitor {
        tokio::spawn(fleet_operator::nats_monitor::run(
            monitor,
            metrics.nats.clone(),
            shutdown.clone(),
        ));
    }
    let result = fleet_operator::run(
        client,
        nats.clone(),
        RunConfig::from(&config),
        metrics,
        shutdown,
    )
    .await;
    // Flush what we published (command requests) and close cleanly.
    let _ = tokio::time::timeout(Duration::from_secs(5), nats.drain()).await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            error!(error = %e, "fleet-operator failed");
            1
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
