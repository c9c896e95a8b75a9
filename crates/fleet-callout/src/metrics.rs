//! Prometheus metrics of the callout, served on `/metrics`.
//!
//! - `fleet_callout_decisions_total{outcome="allowed|denied", reason}`:
//!   one per answered request; `reason` is `ok` or a [`crate::oidc::TokenError`]
//!   / identity reason such as `expired`, `wrong_audience`, `bad_identity`.
//! - `fleet_callout_dropped_requests_total{reason}`: requests that failed
//!   verification and got no answer.
//! - `fleet_callout_decision_duration_seconds`: request received -> answer sent.
//! - `fleet_callout_idp_calls_total{call="discovery|jwks|introspection", result="ok|error"}`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdpLabels {
    call: &'static str,
    result: &'static str,
}

/// Handles to every metric; clones share the same values.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    decisions: Family<DecisionLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    idp_calls: Family<IdpLabels, Counter>,
    latency: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let decisions = Family::<DecisionLabels, Counter>::default();
        let dropped = Family::<ReasonLabels, Counter>::default();
        let idp_calls = Family::<IdpLabels, Counter>::default();
        // 250 us .. ~4 s: the interesting range is a few ms (cached JWKS)
        // to the server's 2 s authorization timeout.
        let latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        let mut registry = Registry::with_prefix("fleet_callout");
        registry.register(
            "decisions",
            "Authorization decisions answered, by outcome and reason",
            decisions.clone(),
        );
        registry.register(
            "dropped_requests",
            "Authorization requests dropped unanswered because they failed verification",
            dropped.clone(),
        );
        registry.register(
            "idp_calls",
            "HTTP calls to the OIDC issuer, by call and result",
            idp_calls.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time from receiving an authorization request to sending the answer",
            latency.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            decisions,
            dropped,
            idp_calls,
            latency,
        }
    }

    pub fn decision(&self, allowed: bool, reason: &'static str, seconds: f64) {
        let outcome = if allowed { "allowed" } else { "denied" };
        self.decisions
            .get_or_create(&DecisionLabels { outcome, reason })
            .inc();
        self.latency.observe(seconds);
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn idp_call(&self, call: &'static str, result: &'static str) {
        self.idp_calls
            .get_or_create(&IdpLabels { call, result })
            .inc();
    }

    /// Count of decisions with this outcome (`"allowed"`/`"denied"`) and reason.
    pub fn decisions(&self, outcome: &'static str, reason: &'static str) -> u64 {
        self.decisions
            .get(&DecisionLabels { outcome, reason })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Count of dropped requests with this reason.
    pub fn dropped_count(&self, reason: &'static str) -> u64 {
        self.dropped
            .get(&ReasonLabels { reason })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Count of calls to the issuer (`"jwks"`, `"discovery"`, `"introspection"`).
    pub fn idp_calls(&self, call: &'static str, result: &'static str) -> u64 {
        self.idp_calls
            .get(&IdpLabels { call, result })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_encodes() {
        let m = Metrics::new();
        m.decision(true, "ok", 0.001);
        m.decision(false, "expired", 0.002);
        m.decision(false, "expired", 0.002);
        assert_eq!(m.decisions("allowed", "ok"), 1);
        assert_eq!(m.decisions("denied", "expired"), 2);
        assert_eq!(m.decisions("denied", "ok"), 0);
        let text = m.encode();
        assert!(
            text.contains(r#"fleet_callout_decisions_total{outcome="denied",reason="expired"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("fleet_callout_decision_duration_seconds_count 3"),
            "{text}"
        );
    }
}
