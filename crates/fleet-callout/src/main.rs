//! `fleet-callout` binary: configuration from the environment (see
//! `fleet_callout::config`), NATS connection as the callout user, HTTP for
//! metrics and probes, graceful stop on SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use fleet_callout::device::{self, Devices, Directory, Kicker, kube::KubeRegistrar};
use fleet_callout::{Callout, Metrics, OidcValidator, RequestVerifier, Settings};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    tracing::info!(?settings, "starting fleet-callout");

    let metrics = Metrics::new();
    let verifier = RequestVerifier::new(settings.issuer, settings.xkey);
    let mut callout = match &settings.oidc {
        // No identity provider: device logins only (ADR 0080).
        None => Callout::without_oidc(verifier, settings.policy.clone(), metrics),
        Some(config) => match OidcValidator::new(config.clone(), metrics.clone()) {
            Ok(oidc) => Callout::new(verifier, oidc, settings.policy.clone(), metrics),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the OIDC client");
                return ExitCode::FAILURE;
            }
        },
    };
    let shutdown = CancellationToken::new();
    if let Some(device_settings) = &settings.devices {
        match start_devices(
            device_settings,
            &settings.nats_tls,
            &settings.policy,
            shutdown.clone(),
        )
        .await
        {
            Ok(devices) => callout = callout.with_devices(devices),
            Err(code) => return code,
        }
    }
    let callout = Arc::new(callout);

    // Load discovery and keys in the background until it works, so the
    // first agent connects do not pay for it and readiness reflects it.
    if callout.oidc().is_some() {
        let callout = callout.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                let Some(oidc) = callout.oidc() else { return };
                match oidc.warm_up().await {
                    Ok(()) => {
                        tracing::info!("OIDC discovery and JWKS loaded");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "OIDC warm-up failed; retrying"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        });
    }

    let listener = match tokio::net::TcpListener::bind(settings.http_addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, addr = %settings.http_addr, "cannot bind the HTTP address");
            return ExitCode::FAILURE;
        }
    };
    let http = {
        let app = fleet_callout::http::router(callout.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        })
    };

    let options = async_nats::ConnectOptions::with_user_and_password(
        settings.nats_user.clone(),
        settings.nats_password.expose().to_string(),
    );
    let client = match settings
        .nats_tls
        .apply(options)
        .name("fleet-callout")
        .retry_on_initial_connect()
        .connect(settings.nats_url.as_str())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, url = %settings.nats_url, "cannot connect to NATS");
            return ExitCode::FAILURE;
        }
    };

    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            shutdown.cancel();
        });
    }

    let result = callout
        .clone()
        .serve(client, &settings.queue_group, shutdown.clone())
        .await;
    shutdown.cancel();
    let _ = http.await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "callout stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Device logins (ADR 0080): the system connection that kicks revoked
/// devices, the Kubernetes registrar, and the watches that feed the
/// directory (in the background until `shutdown`).
async fn start_devices(
    settings: &fleet_callout::config::DeviceSettings,
    tls: &fleet_proto::client::ClientTls,
    policy: &fleet_callout::Policy,
    shutdown: CancellationToken,
) -> Result<Arc<Devices>, ExitCode> {
    let seed = match settings.system_user.seed() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the system user key has no seed");
            return Err(ExitCode::FAILURE);
        }
    };
    let system = match tls
        .apply(async_nats::ConnectOptions::with_nkey(seed))
        .name("fleet-callout-system")
        .retry_on_initial_connect()
        .connect(settings.system_nats_url.as_str())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, url = %settings.system_nats_url, "cannot connect the system user to NATS");
            return Err(ExitCode::FAILURE);
        }
    };
    let kube = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client for the device directory");
            return Err(ExitCode::FAILURE);
        }
    };
    let directory = Arc::new(Directory::new());
    let registrar = KubeRegistrar::new(
        kube.clone(),
        &settings.namespace,
        &settings.stack,
        policy.budget,
    );
    let devices = Arc::new(Devices::new(
        directory,
        Arc::new(registrar),
        Some(Kicker::new(system, policy.target_account.clone())),
    ));
    tokio::spawn(device::kube::run_watches(
        kube,
        settings.namespace.clone(),
        settings.stack.clone(),
        devices.clone(),
        shutdown,
    ));
    tracing::info!(namespace = %settings.namespace, stack = %settings.stack, "serving device logins");
    Ok(devices)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
