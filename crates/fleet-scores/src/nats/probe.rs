//! The NATS smoke probe: `/healthz` on the monitor port, then a connection
//! with the generated system credentials and a publish/subscribe round trip.
//! "Pod is Ready" is not enough: this proves clients can authenticate and
//! messages flow.

use std::time::{Duration, Instant};

use fleet_proto::client::ClientTls;
use futures::StreamExt;

use crate::http_probe::{self, GetError, root_cause};
use crate::score::ProbeOutcome;
use crate::secret::Sensitive;

/// Where and as whom to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub host: String,
    pub client_port: u16,
    pub monitor_port: u16,
    pub user: String,
    pub password: Sensitive,
}

/// How the probe reaches a TLS-era NATS: the monitoring port on its own
/// Service, the client port with TLS verified against the stack's CA.
#[derive(Debug, Clone, Default)]
pub struct ProbeRoutes {
    /// Host of the monitoring Service (`NatsNames::monitor_service`);
    /// `None`: the target's host (monitoring on the client Service).
    pub monitor_host: Option<String>,
    pub tls: ClientTls,
    /// With TLS: verify the certificate against this name instead of the
    /// dialed host (a pod address; [`super::probe_tls`]).
    pub verify_name: Option<String>,
    /// What every server must serve (the certificate in the Secret, the
    /// applied config); servers behind are reloaded ([`super::reload`])
    /// and the probe reports `RollingOut` until all serve it.
    pub expect: Option<super::reload::Expected>,
}

/// Runs the probe within `deadline` (the whole probe, not each step),
/// plaintext, monitoring on the client Service.
pub async fn smoke_probe(target: &ProbeTarget, deadline: Duration) -> ProbeOutcome {
    smoke_probe_with(target, &ProbeRoutes::default(), deadline).await
}

/// [`smoke_probe`] with TLS and a separate monitoring host.
pub async fn smoke_probe_with(
    target: &ProbeTarget,
    routes: &ProbeRoutes,
    deadline: Duration,
) -> ProbeOutcome {
    let started = Instant::now();
    let result = tokio::time::timeout(deadline, run(target, routes, deadline)).await;
    let latency = started.elapsed();
    match result {
        Ok(Ok(())) => ProbeOutcome::Passed {
            latency,
            message: "publish/subscribe round trip and /healthz passed".into(),
        },
        Ok(Err((reason, message))) => ProbeOutcome::Failed {
            reason,
            message,
            latency,
        },
        Err(_) => ProbeOutcome::Failed {
            reason: "ProbeTimeout",
            message: format!(
                "nats: smoke probe of {}:{} did not finish within {}s",
                target.host,
                target.client_port,
                deadline.as_secs()
            ),
            latency,
        },
    }
}

async fn run(
    target: &ProbeTarget,
    routes: &ProbeRoutes,
    deadline: Duration,
) -> Result<(), (&'static str, String)> {
    let monitor_host = routes.monitor_host.as_deref().unwrap_or(&target.host);
    let healthz = format!("http://{monitor_host}:{}/healthz", target.monitor_port);
    let resp = http_probe::get(&healthz, deadline)
        .await
        .map_err(|e| match e {
            GetError::Setup(e) => (
                "ProbeSetupFailed",
                format!("nats: building HTTP client: {e}"),
            ),
            GetError::Send(e) => (
                "HealthzUnreachable",
                format!("nats: GET {healthz}: {}", root_cause(&e)),
            ),
        })?;
    if !resp.status().is_success() {
        return Err((
            "HealthzFailed",
            format!("nats: GET {healthz} answered {}", resp.status()),
        ));
    }

    let scheme = if routes.tls.ca_file.is_some() {
        "tls"
    } else {
        "nats"
    };
    let url = format!("{scheme}://{}:{}", target.host, target.client_port);
    let options = async_nats::ConnectOptions::with_user_and_password(
        target.user.clone(),
        target.password.expose().to_string(),
    );
    let options = match (&routes.verify_name, &routes.tls.ca_file) {
        (Some(name), Some(ca)) => super::probe_tls::verifying_name(ca, name)
            .map(|config| options.tls_client_config(config).require_tls(true))
            .map_err(|e| ("ProbeSetupFailed", format!("nats: {e}")))?,
        _ => routes.tls.apply(options),
    };
    let client = options
        .name("fleet-reconciler-probe")
        .connection_timeout(deadline)
        // The probe must fail, not hang reconnecting.
        .max_reconnects(Some(0))
        .connect(&url)
        .await
        .map_err(|e| {
            (
                "ConnectFailed",
                format!("nats: connect to {url} as {}: {e}", target.user),
            )
        })?;

    let subject = format!("_FLEET.probe.{}", random_suffix());
    let mut sub = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| ("RoundTripFailed", format!("nats: subscribe on {url}: {e}")))?;
    // Make sure the server registered the subscription before publishing.
    client
        .flush()
        .await
        .map_err(|e| ("RoundTripFailed", format!("nats: flush on {url}: {e}")))?;
    client
        .publish(subject.clone(), "ping".into())
        .await
        .map_err(|e| ("RoundTripFailed", format!("nats: publish on {url}: {e}")))?;
    client
        .flush()
        .await
        .map_err(|e| ("RoundTripFailed", format!("nats: flush on {url}: {e}")))?;
    match sub.next().await {
        Some(msg) if msg.payload.as_ref() == b"ping" => {}
        Some(_) => {
            return Err((
                "RoundTripFailed",
                format!("nats: round trip on {url} returned a different payload"),
            ));
        }
        None => {
            return Err((
                "RoundTripFailed",
                format!("nats: subscription on {url} closed before the message arrived"),
            ));
        }
    }
    let Some(expected) = &routes.expect else {
        return Ok(());
    };
    // Bounded by the probe's own deadline; a server that does not answer
    // within a second is counted as not up to date yet.
    let wait = deadline.min(Duration::from_secs(1));
    match super::reload::converge(&client, expected, wait).await {
        Ok(super::reload::Rollout::Served) => Ok(()),
        Ok(super::reload::Rollout::Converging {
            current,
            servers,
            reloaded,
            restarting,
        }) => Err((
            crate::rollout::ROLLING_OUT,
            format!(
                "nats: {current}/{servers} servers serve the applied certificate and config; \
                 config reload sent to {reloaded}, {restarting} restarting or not answering"
            ),
        )),
        Err(e) => Err(("ConfigReloadFailed", format!("nats: {e}"))),
    }
}

/// Connects to `url` as `user` (TLS per `tls`: CA and the URL's host
/// verified) and completes a PING/PONG round trip, within `deadline`. The
/// error says what failed, never the password.
pub async fn round_trip(
    url: &str,
    user: &str,
    password: &Sensitive,
    tls: &ClientTls,
    deadline: Duration,
) -> Result<(), String> {
    let options = async_nats::ConnectOptions::with_user_and_password(
        user.to_string(),
        password.expose().to_string(),
    );
    let connect = tls
        .apply(options)
        .name("fleet-reconciler-probe")
        .connection_timeout(deadline)
        .max_reconnects(Some(0))
        .connect(url);
    let client = tokio::time::timeout(deadline, connect)
        .await
        .map_err(|_| format!("no connection within {}s", deadline.as_secs()))?
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(deadline, client.flush())
        .await
        .map_err(|_| format!("no PONG within {}s", deadline.as_secs()))?
        .map_err(|e| e.to_string())
}

fn random_suffix() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}
