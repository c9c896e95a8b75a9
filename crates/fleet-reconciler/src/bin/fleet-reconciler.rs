//! `fleet-reconciler`: no required arguments. Uses the in-cluster
//! configuration in a pod, the ambient kubeconfig elsewhere.
//!
//! Environment (all optional):
//! * `FLEET_HTTP_ADDR` (default `0.0.0.0:8080`, `off` to disable): metrics and probes;
//! * `FLEET_WATCH_NAMESPACE`: watch one namespace instead of all;
//! * `FLEET_RECONCILER_CLASS`: reconcile only FleetStacks labelled
//!   `fleet.nationtech.io/reconciler=<class>` (default: only unlabelled ones);
//! * `FLEET_LEADER_ELECTION=true` (+ `FLEET_LEASE_NAME`, `FLEET_LEASE_NAMESPACE`,
//!   `POD_NAME`): several replicas, one leader reconciles;
//! * `RUST_LOG` (default `info`), `FLEET_LOG_FORMAT=json`.

use std::process::ExitCode;

use fleet_reconciler::{Config, leader::LeaseConfig, run};
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
    config.namespace = env_nonempty("FLEET_WATCH_NAMESPACE");
    config.class = env_nonempty("FLEET_RECONCILER_CLASS");
    if std::env::var("FLEET_LEADER_ELECTION").as_deref() == Ok("true") {
        match lease_config() {
            Ok(lease) => config.leader_election = Some(lease),
            Err(msg) => {
                eprintln!("fleet-reconciler: {msg}");
                return ExitCode::from(2);
            }
        }
    }

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

/// `FLEET_LEASE_NAME` (default `fleet-reconciler`), `FLEET_LEASE_NAMESPACE`
/// (default: the pod's own namespace), identity `POD_NAME` (else hostname).
fn lease_config() -> Result<LeaseConfig, String> {
    let name = env_nonempty("FLEET_LEASE_NAME").unwrap_or_else(|| "fleet-reconciler".into());
    let namespace = env_nonempty("FLEET_LEASE_NAMESPACE")
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .ok_or("FLEET_LEADER_ELECTION=true needs FLEET_LEASE_NAMESPACE (or to run in a pod)")?;
    let identity = env_nonempty("POD_NAME")
        .or_else(|| env_nonempty("HOSTNAME"))
        .ok_or("FLEET_LEADER_ELECTION=true needs POD_NAME or HOSTNAME as the holder identity")?;
    Ok(LeaseConfig::new(name, namespace, identity))
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|s| !s.is_empty())
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
