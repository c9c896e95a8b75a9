//! The callout's smoke probe: `GET /readyz` through its Service. The
//! callout answers 200 only once it is subscribed to `$SYS.REQ.USER.AUTH`
//! on NATS (as the AUTH user, so NATS accepted its password and callout
//! config) and has loaded the issuer's discovery document, so a pass means
//! both NATS and the identity provider are reachable from the callout.
//! Through a Service, one ready replica is enough: the queue group lets any
//! replica answer.

use std::time::{Duration, Instant};

use crate::score::ProbeOutcome;

/// Probes `http://<host>:<port>/readyz` within `deadline`.
pub async fn smoke_probe(host: &str, port: u16, deadline: Duration) -> ProbeOutcome {
    let started = Instant::now();
    let url = format!("http://{host}:{port}/readyz");
    let failed = |reason, message| ProbeOutcome::Failed {
        reason,
        message,
        latency: started.elapsed(),
    };
    let http = match reqwest::Client::builder().timeout(deadline).build() {
        Ok(c) => c,
        Err(e) => {
            return failed(
                "ProbeSetupFailed",
                format!("callout: building HTTP client: {e}"),
            );
        }
    };
    match http.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => ProbeOutcome::Passed {
            latency: started.elapsed(),
            message: "callout /readyz: subscribed to NATS and issuer discovery loaded".into(),
        },
        Ok(resp) => failed(
            "CalloutNotReady",
            format!("callout: GET {url} answered {}", resp.status()),
        ),
        Err(e) if e.is_timeout() => failed(
            "ProbeTimeout",
            format!(
                "callout: GET {url} did not answer within {}s",
                deadline.as_secs()
            ),
        ),
        Err(e) => failed(
            "CalloutUnreachable",
            format!("callout: GET {url}: {}", root_cause(&e)),
        ),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
