//! `fleet-test-issuer`: a small real OIDC issuer for tests and the
//! in-cluster test image. Configuration: see `IssuerConfig::from_env`.
//! Prints `fleet-test-issuer ready at <url>` on stdout once it accepts
//! connections; stops on SIGTERM or Ctrl-C.

use fleet_test_issuer::{IssuerConfig, TestIssuer};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match IssuerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!(?config, "starting");
    let issuer = match TestIssuer::start(config).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "fleet-test-issuer ready at {} (listening on {})",
        issuer.url(),
        issuer.local_addr()
    );
    wait_for_signal().await;
    issuer.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
