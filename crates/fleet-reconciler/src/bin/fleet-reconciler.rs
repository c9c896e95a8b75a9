//! `fleet-reconciler`: no required arguments. Uses the in-cluster
//! configuration in a pod, the ambient kubeconfig elsewhere.
//!
//! Environment (all optional):
//! * `FLEET_HTTP_ADDR` (default `0.0.0.0:8080`, `off` to disable): metrics and probes;
//! * `FLEET_WATCH_NAMESPACE`: watch one namespace instead of all;
//! * `RUST_LOG` (default `info`), `FLEET_LOG_FORMAT=json`.

use std::process::ExitCode;

use fleet_reconciler::{Config, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("FLEET_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let mut config = Config::default();
    match std::env::var("FLEET_HTTP_ADDR") {
        Ok(v) if v == "off" => config.http_addr = None,
        Ok(v) => match v.parse() {
            Ok(addr) => config.http_addr = Some(addr),
            Err(e) => {
                eprintln!("fleet-reconciler: FLEET_HTTP_ADDR={v:?} is not an address: {e}");
                return ExitCode::from(2);
            }
        },
        Err(_) => {}
    }
    config.namespace = std::env::var("FLEET_WATCH_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty());

    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "fleet-reconciler: no Kubernetes configuration (in-cluster or kubeconfig): {e}"
            );
            return ExitCode::from(1);
        }
    };
    match run(client, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet-reconciler: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received");
}
