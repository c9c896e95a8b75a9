//! Prometheus metrics (`/metrics`, prefix `fleet_operator_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `create`, `status` or `delete`.
    pub op: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Heartbeats by `accepted` / `invalid` / `mismatched_id`.
    pub heartbeats: Family<ResultLabels, Counter>,
    /// FleetAgent API writes.
    pub writes: Family<WriteLabels, Counter>,
    /// Known agents by `connected` / `disconnected`.
    pub agents: Family<StateLabels, Gauge>,
    /// FleetCommand generations executed, by `complete` / `failed` / `interrupted`.
    pub commands: Family<OutcomeLabels, Counter>,
    /// Per-agent command outcomes (`succeeded` / `failed` / `timed_out`).
    pub command_agents: Family<OutcomeLabels, Counter>,
    /// NATS server metrics (`fleet_operator_nats_*`), see `nats_monitor`.
    pub nats: crate::nats_monitor::NatsMetrics,
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
        let mut registry = Registry::with_prefix("fleet_operator");
        let m = Metrics {
            heartbeats: Default::default(),
            writes: Default::default(),
            agents: Default::default(),
            commands: Default::default(),
            command_agents: Default::default(),
            nats: Default::default(),
            registry: Registry::default(),
        };
        registry.register("heartbeats", "Heartbeats received", m.heartbeats.clone());
        registry.register(
            "fleetagent_writes",
            "FleetAgent API writes",
            m.writes.clone(),
        );
        registry.register("agents", "Agents known to the inventory", m.agents.clone());
        registry.register(
            "commands",
            "FleetCommand generations executed",
            m.commands.clone(),
        );
        registry.register(
            "command_agents",
            "Per-agent outcomes of FleetCommands",
            m.command_agents.clone(),
        );
        registry.register_collector(Box::new(m.nats.clone()));
        Metrics { registry, ..m }
    }

    /// Successful FleetAgent writes of kind `op` so far (tests, benchmark).
    pub fn writes_ok(&self, op: &'static str) -> u64 {
        self.writes
            .get_or_create(&WriteLabels { op, result: "ok" })
            .get()
    }
}

impl fleet_runtime::http::MetricsSource for Metrics {
    fn registry(&self) -> &Registry {
        &self.registry
    }
}
