//! The NATS smoke probe: `/healthz` on the monitor port, then a connection
//! with the generated system credentials and a publish/subscribe round trip.
//! "Pod is Ready" is not enough: this proves clients can authenticate and
//! messages flow.

use std::time::{Duration, Instant};

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

/// Runs the probe within `deadline` (the whole probe, not each step).
pub async fn smoke_probe(target: &ProbeTarget, deadline: Duration) -> ProbeOutcome {
    let started = Instant::now();
    let result = tokio::time::timeout(deadline, run(target, deadline)).await;
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

async fn run(target: &ProbeTarget, deadline: Duration) -> Result<(), (&'static str, String)> {
    let healthz = format!("http://{}:{}/healthz", target.host, target.monitor_port);
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

    let url = format!("nats://{}:{}", target.host, target.client_port);
    let client = async_nats::ConnectOptions::with_user_and_password(
        target.user.clone(),
        target.password.expose().to_string(),
    )
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
        Some(msg) if msg.payload.as_ref() == b"ping" => Ok(()),
        Some(_) => Err((
            "RoundTripFailed",
            format!("nats: round trip on {url} returned a different payload"),
        )),
        None => Err((
            "RoundTripFailed",
            format!("nats: subscription on {url} closed before the message arrived"),
        )),
    }
}

fn random_suffix() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}
