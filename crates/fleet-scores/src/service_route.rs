//! How a smoke probe reaches a component (docs/adr/0090-ready-as-fast-as-the-pods.md):
//! nothing to probe until a pod is ready behind its Service, then through
//! the Service as clients reach it, and, while that route does not answer
//! yet (cluster DNS and kube-proxy lag the Endpoints by up to seconds), the
//! ready pod itself. One mechanism for every component's probe; each
//! Score says only how to probe one address.

use std::future::Future;
use std::time::Duration;

use crate::score::ProbeOutcome;
use crate::topology::KubernetesTopology;

/// Where one attempt of a probe dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// The Service, at the topology's host for it.
    Service(String),
    /// A ready pod behind the Service (its IP).
    ReadyPod(String),
}

impl Dial {
    pub fn host(&self) -> &str {
        match self {
            Dial::Service(host) | Dial::ReadyPod(host) => host,
        }
    }
}

/// The component's Service and how its probe reports.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// Prefix of every message (`nats`, `operator`).
    pub component: &'static str,
    pub namespace: &'a str,
    pub service: &'a str,
    /// What a pod behind the Service is called in messages (`server`, `pod`).
    pub pod_noun: &'static str,
    /// Reason when no pod is ready: a failure, not progress, so a first
    /// rollout and a stack whose pods all died read the same.
    pub not_ready: &'static str,
    /// Probe reasons that mean the address did not answer at all; only
    /// those send the probe to the ready pod.
    pub unanswered: &'a [&'static str],
}

/// Runs `probe` through `route` (see the module doc). A pass through the
/// pod says so, with the Service route's failure, so a Service that never
/// works stays visible.
pub async fn probe<T, F, Fut>(topology: &T, route: &Route<'_>, probe: F) -> ProbeOutcome
where
    T: KubernetesTopology,
    F: Fn(Dial) -> Fut,
    Fut: Future<Output = ProbeOutcome>,
{
    let component = route.component;
    let failed = |reason, message| ProbeOutcome::Failed {
        reason,
        message,
        latency: Duration::ZERO,
    };
    // The Endpoints change wakes the reconcile: no retry timer involved.
    let endpoint = match topology
        .ready_endpoint(route.namespace, route.service)
        .await
    {
        Ok(Some(ip)) => ip,
        Ok(None) => {
            return failed(
                route.not_ready,
                format!(
                    "{component}: no {} behind Service {} is ready yet",
                    route.pod_noun, route.service
                ),
            );
        }
        Err(e) => return failed("ServiceUnreachable", format!("{component}: {e}")),
    };
    let host = match topology.service_host(route.namespace, route.service).await {
        Ok(host) => host,
        Err(e) => return failed("ServiceUnreachable", format!("{component}: {e}")),
    };
    let through_service = probe(Dial::Service(host)).await;
    let why = match &through_service {
        ProbeOutcome::Failed {
            reason, message, ..
        } if route.unanswered.contains(reason) => message.clone(),
        ProbeOutcome::Failed { .. } | ProbeOutcome::Passed { .. } => return through_service,
    };
    match probe(Dial::ReadyPod(endpoint.clone())).await {
        ProbeOutcome::Passed { latency, message } => ProbeOutcome::Passed {
            latency,
            message: format!(
                "{message}, through {} {endpoint} (the Service route does not answer yet: {why})",
                route.pod_noun
            ),
        },
        failed => failed,
    }
}
