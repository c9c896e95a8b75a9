//! The agents' smoke probe: a NATS `ping` to every expected agent.
//! "Pods are Ready" is not enough: this proves each agent is connected,
//! subscribed to its own subjects and answering.

use std::time::{Duration, Instant};

use fleet_proto::AgentId;
use fleet_proto::client::{ClientTls, ping_all};

use crate::score::ProbeOutcome;
use crate::secret::Sensitive;

/// Where, as whom, and which agents to ping.
#[derive(Debug, Clone)]
pub struct AgentsProbeTarget {
    pub nats_url: String,
    pub user: String,
    pub password: Sensitive,
    pub expected: Vec<String>,
}

/// How long one agent may take to answer. A connected agent answers within
/// milliseconds; waiting longer (the ping helper retries "no responders"
/// until this deadline) would only let a replacement pod come up in time to
/// hide that an agent was gone.
const PER_AGENT_TIMEOUT: Duration = Duration::from_secs(1);

/// Pings every expected agent concurrently and returns the outcome with the
/// number of agents that answered. The message reads `3/3 agents answered`,
/// or names the agents that did not answer; it holds no timings so that an
/// unchanged fleet never rewrites status.
pub async fn smoke_probe(target: &AgentsProbeTarget, deadline: Duration) -> (ProbeOutcome, i32) {
    smoke_probe_with_tls(target, &ClientTls::default(), deadline).await
}

/// [`smoke_probe`] over TLS verified as `tls` says (the stack's CA).
pub async fn smoke_probe_with_tls(
    target: &AgentsProbeTarget,
    tls: &ClientTls,
    deadline: Duration,
) -> (ProbeOutcome, i32) {
    let started = Instant::now();
    let failed = |reason, message| ProbeOutcome::Failed {
        reason,
        message,
        latency: started.elapsed(),
    };
    let mut ids = Vec::with_capacity(target.expected.len());
    for id in &target.expected {
        match AgentId::new(id.clone()) {
            Ok(id) => ids.push(id),
            Err(e) => return (failed("InvalidAgentId", format!("agents: {e}")), 0),
        }
    }
    if ids.is_empty() {
        return (
            ProbeOutcome::Passed {
                latency: started.elapsed(),
                message: "0/0 agents answered (no agents requested)".into(),
            },
            0,
        );
    }
    let options = async_nats::ConnectOptions::with_user_and_password(
        target.user.clone(),
        target.password.expose().to_string(),
    );
    let client = match tls
        .apply(options)
        .name("fleet-reconciler-agents-probe")
        .connection_timeout(deadline)
        .max_reconnects(Some(0))
        .connect(&target.nats_url)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            return (
                failed(
                    "ConnectFailed",
                    format!(
                        "agents: connect to {} as {}: {e}",
                        target.nats_url, target.user
                    ),
                ),
                0,
            );
        }
    };
    let results = ping_all(&client, &ids, deadline.min(PER_AGENT_TIMEOUT)).await;
    let expected = results.len();
    let missing: Vec<&str> = ids
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_err())
        .map(|(id, _)| id.as_str())
        .collect();
    let answered = expected - missing.len();
    let count = i32::try_from(answered).unwrap_or(i32::MAX);
    let outcome = if missing.is_empty() {
        ProbeOutcome::Passed {
            latency: started.elapsed(),
            message: format!("{answered}/{expected} agents answered"),
        }
    } else {
        failed(
            "AgentsMissing",
            format!(
                "{answered}/{expected} agents answered; missing: {}",
                missing.join(", ")
            ),
        )
    };
    (outcome, count)
}
