//! The HTTP half of the smoke probes: one GET within a deadline, and the
//! `GET /readyz` probe of a component that reports its own readiness (the
//! callout, the operator runtime).
//!
//! One place builds the probe's HTTP client and turns its errors into
//! [`ProbeOutcome`]s, so every component's probe fails with the same
//! reasons (`ProbeSetupFailed`, `ProbeTimeout`, ...) and the same shape of
//! message for the same cause; only the component's name, its own
//! not-ready / unreachable reasons and its pass message differ.

use std::time::{Duration, Instant};

use crate::score::ProbeOutcome;
use crate::topology::KubernetesTopology;

/// Why [`get`] got no response.
#[derive(Debug)]
pub enum GetError {
    /// The HTTP client could not be built.
    Setup(reqwest::Error),
    /// The request was not answered (connection refused, DNS, timeout: see
    /// `is_timeout()`).
    Send(reqwest::Error),
}

/// `GET url`, answered within `deadline` or not at all. Any status is a
/// response; the caller decides what it means.
pub async fn get(url: &str, deadline: Duration) -> Result<reqwest::Response, GetError> {
    let http = reqwest::Client::builder()
        .timeout(deadline)
        .build()
        .map_err(GetError::Setup)?;
    http.get(url).send().await.map_err(GetError::Send)
}

/// A component whose `/readyz` answers 2xx once it can do its job.
#[derive(Debug, Clone, Copy)]
pub struct Readyz {
    /// Prefix of every message (`callout`, `operator`).
    pub component: &'static str,
    /// Reason when it answers with another status (`CalloutNotReady`).
    pub not_ready: &'static str,
    /// Reason when it does not answer at all (`CalloutUnreachable`).
    pub unreachable: &'static str,
    /// Message of a pass: what a 2xx proves.
    pub passed: &'static str,
}

impl Readyz {
    /// Probes `http://<host>:<port>/readyz` within `deadline`.
    pub async fn probe(&self, host: &str, port: u16, deadline: Duration) -> ProbeOutcome {
        let started = Instant::now();
        let component = self.component;
        let url = format!("http://{host}:{port}/readyz");
        let failed = |reason, message| ProbeOutcome::Failed {
            reason,
            message,
            latency: started.elapsed(),
        };
        match get(&url, deadline).await {
            Ok(resp) if resp.status().is_success() => ProbeOutcome::Passed {
                latency: started.elapsed(),
                message: self.passed.into(),
            },
            Ok(resp) => failed(
                self.not_ready,
                format!("{component}: GET {url} answered {}", resp.status()),
            ),
            Err(GetError::Setup(e)) => failed(
                "ProbeSetupFailed",
                format!("{component}: building HTTP client: {e}"),
            ),
            Err(GetError::Send(e)) if e.is_timeout() => failed(
                "ProbeTimeout",
                format!(
                    "{component}: GET {url} did not answer within {}s",
                    deadline.as_secs()
                ),
            ),
            Err(GetError::Send(e)) => failed(
                self.unreachable,
                format!("{component}: GET {url}: {}", root_cause(&e)),
            ),
        }
    }
}

impl Readyz {
    /// Probes the component behind `service` ([`crate::service_route`]):
    /// through the Service, or its ready pod while the route lags; no pod
    /// ready is this component's unreachable reason.
    pub async fn probe_service<T: KubernetesTopology>(
        &self,
        topology: &T,
        namespace: &str,
        service: &str,
        port: u16,
        deadline: Duration,
    ) -> ProbeOutcome {
        let route = crate::service_route::Route {
            component: self.component,
            namespace,
            service,
            pod_noun: "pod",
            not_ready: self.unreachable,
            unanswered: &[self.unreachable],
        };
        crate::service_route::probe(topology, &route, |dial| async move {
            self.probe(dial.host(), port, deadline).await
        })
        .await
    }
}

/// reqwest's Display is "error sending request"; the cause says why.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
