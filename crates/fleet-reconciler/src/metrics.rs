//! Prometheus metrics, served as text on `/metrics`.

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct StackLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub errors: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    pub probe_latency: Family<ComponentLabels, Histogram>,
    pub ready: Family<StackLabels, Gauge>,
    /// Reconciles per stack: a stuck stack must not hammer the API server
    /// (issue 13 item 4), and the global counter cannot say which one does.
    pub stack_reconciles: Family<StackLabels, Counter>,
    pub child_writes: Family<KindLabels, Counter>,
    /// Stacks with a `stack_ready` or `stack_reconciles` series: a deleted stack is never
    /// reconciled again, so [`Metrics::retain_ready`] needs the list.
    ready_stacks: std::sync::Mutex<std::collections::BTreeSet<StackLabels>>,
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

fn buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fleet_reconciler");
        let reconciles = Counter::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let duration = buckets();
        let probe_latency = Family::<ComponentLabels, Histogram>::new_with_constructor(
            buckets as fn() -> Histogram,
        );
        let ready = Family::<StackLabels, Gauge>::default();
        let child_writes = Family::<KindLabels, Counter>::default();
        let stack_reconciles = Family::<StackLabels, Counter>::default();
        registry.register(
            "stack_reconciles",
            "Reconciliations started, by FleetStack",
            stack_reconciles.clone(),
        );
        registry.register("reconciles", "Reconciliations started", reconciles.clone());
        registry.register(
            "errors",
            "Reconciliations that did not reach Ready, by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconciliation",
            duration.clone(),
        );
        registry.register(
            "probe_duration_seconds",
            "Smoke probe latency by component",
            probe_latency.clone(),
        );
        registry.register(
            "stack_ready",
            "1 when the FleetStack is Ready",
            ready.clone(),
        );
        registry.register(
            "child_writes",
            "API writes to child objects, by kind",
            child_writes.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            probe_latency,
            ready,
            stack_reconciles,
            child_writes,
            ready_stacks: Default::default(),
        }
    }

    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn probe(&self, component: &str, latency: Duration) {
        self.probe_latency
            .get_or_create(&ComponentLabels {
                component: component.into(),
            })
            .observe(latency.as_secs_f64());
    }

    pub fn set_ready(&self, namespace: &str, name: &str, ready: bool) {
        let labels = StackLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.ready.get_or_create(&labels).set(i64::from(ready));
        if let Ok(mut known) = self.ready_stacks.lock() {
            known.insert(labels);
        }
    }

    /// Removes the `stack_ready` series of stacks for which `exists` is
    /// false, so dashboards do not show deleted stacks forever.
    pub fn retain_ready(&self, exists: impl Fn(&str, &str) -> bool) {
        let Ok(mut known) = self.ready_stacks.lock() else {
            return;
        };
        known.retain(|l| {
            let keep = exists(&l.namespace, &l.name);
            if !keep {
                self.ready.remove(l);
                self.stack_reconciles.remove(l);
            }
            keep
        });
    }

    pub fn child_write(&self, key: &str) {
        let kind = key.split('/').next().unwrap_or(key);
        self.child_writes
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// Starts a reconcile of one stack: counts it (in total and for the
    /// stack) and records its duration on drop.
    pub fn start(&self, namespace: &str, name: &str) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        let labels = StackLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.stack_reconciles.get_or_create(&labels).inc();
        if let Ok(mut known) = self.ready_stacks.lock() {
            known.insert(labels);
        }
        ReconcileTimer {
            hist: &self.duration,
            started: Instant::now(),
        }
    }
}

impl fleet_runtime::http::MetricsSource for Metrics {
    fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Records the reconcile duration when dropped (also on early return).
pub struct ReconcileTimer<'a> {
    hist: &'a Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.hist.observe(self.started.elapsed().as_secs_f64());
    }
}
