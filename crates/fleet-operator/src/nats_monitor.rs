//! NATS server metrics for Prometheus (docs/adr/0071-nats-metrics-from-the-operator.md).
//!
//! The operator runtime polls each NATS server's monitoring endpoint
//! (`/varz`, `/connz`, `/routez`, `/jsz` on port 8222) every
//! `FLEET_NATS_MONITOR_INTERVAL` and serves the values on its own
//! `/metrics` as `fleet_operator_nats_*`:
//!
//! * [`Snapshot::from_endpoints`] turns the four JSON documents into values
//!   (pure, tested against a real nats-server);
//! * [`NatsMetrics`] holds the latest snapshot per target and renders it at
//!   scrape time (a prometheus-client `Collector`), so a server that stops
//!   answering loses its series instead of showing stale numbers, and its
//!   `up` reads 0;
//! * [`run`] is the poll loop.
//!
//! Environment (read by [`MonitorConfig::from_env`]):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FLEET_NATS_MONITOR_URLS` | unset = no NATS metrics | comma-separated monitoring base URLs, one per server (`http://fleet-nats-0.fleet-nats-headless:8222,...`) |
//! | `FLEET_NATS_MONITOR_INTERVAL` | `15s` | time between polls (1s-10m) |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long one monitoring request may take (the endpoint answers from
/// memory; a slow answer means the server or the network is in trouble).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// `/connz` page size: the server's own default and maximum page.
const CONNZ_LIMIT: u32 = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MonitorConfigError {
    #[error("FLEET_NATS_MONITOR_URLS: {url:?} is not an http(s) URL")]
    Url { url: String },
    #[error("FLEET_NATS_MONITOR_INTERVAL: {value:?} must be a duration from 1s to 10m (15s, 1m)")]
    Interval { value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Base URLs without a trailing slash, e.g. `http://host:8222`.
    pub urls: Vec<String>,
    pub interval: Duration,
}

impl MonitorConfig {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

    pub fn from_env() -> Result<Option<Self>, MonitorConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// `None` when `FLEET_NATS_MONITOR_URLS` is unset or empty.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, MonitorConfigError> {
        let Some(raw) = get("FLEET_NATS_MONITOR_URLS").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let mut urls = Vec::new();
        for url in raw.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && reqwest::Url::parse(url).is_ok_and(|u| u.host().is_some());
            if !ok {
                return Err(MonitorConfigError::Url {
                    url: url.to_string(),
                });
            }
            urls.push(url.trim_end_matches('/').to_string());
        }
        let interval = match get("FLEET_NATS_MONITOR_INTERVAL") {
            None => Self::DEFAULT_INTERVAL,
            Some(value) => parse_interval(&value)
                .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(600))
                .ok_or(MonitorConfigError::Interval { value })?,
        };
        Ok(Some(MonitorConfig { urls, interval }))
    }
}

fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (n, mult) = if let Some(n) = s.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1)
    } else {
        (s, 1)
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
}

// ------------------------------------------------------------ the documents

/// The `/varz` fields we export (nats-server 2.10+; absent fields read 0).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Varz {
    server_name: String,
    version: String,
    connections: i64,
    total_connections: u64,
    subscriptions: i64,
    slow_consumers: u64,
    routes: i64,
    leafnodes: i64,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    mem: i64,
    cpu: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Connz {
    num_connections: i64,
    connections: Vec<ConnInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ConnInfo {
    pending_bytes: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Routez {
    num_routes: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Jsz {
    disabled: bool,
    memory: i64,
    storage: i64,
    streams: i64,
    consumers: i64,
    messages: i64,
    bytes: i64,
    api: JszApi,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct JszApi {
    total: u64,
    errors: u64,
}

/// One server's values at one poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub server: String,
    pub version: String,
    pub connections: i64,
    pub connections_total: u64,
    pub subscriptions: i64,
    pub slow_consumers_total: u64,
    pub routes: i64,
    pub leafnodes: i64,
    pub in_msgs_total: u64,
    pub out_msgs_total: u64,
    pub in_bytes_total: u64,
    pub out_bytes_total: u64,
    pub memory_bytes: i64,
    pub cpu_percent: f64,
    /// Bytes queued to clients, summed over the first `/connz` page.
    pub pending_bytes: i64,
    pub jetstream_enabled: bool,
    pub jetstream_memory_bytes: i64,
    pub jetstream_storage_bytes: i64,
    pub jetstream_streams: i64,
    pub jetstream_consumers: i64,
    pub jetstream_messages: i64,
    pub jetstream_bytes: i64,
    pub jetstream_api_requests_total: u64,
    pub jetstream_api_errors_total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("GET {url}: {error}")]
    Http { url: String, error: String },
    #[error("{url}: not the JSON nats-server serves there: {error}")]
    Json { url: String, error: String },
}

impl Snapshot {
    /// From the bodies of `/varz`, `/connz`, `/routez` and `/jsz`.
    pub fn from_endpoints(
        varz: &[u8],
        connz: &[u8],
        routez: &[u8],
        jsz: &[u8],
    ) -> Result<Self, (&'static str, serde_json::Error)> {
        let varz: Varz = serde_json::from_slice(varz).map_err(|e| ("/varz", e))?;
        let connz: Connz = serde_json::from_slice(connz).map_err(|e| ("/connz", e))?;
        let routez: Routez = serde_json::from_slice(routez).map_err(|e| ("/routez", e))?;
        let jsz: Jsz = serde_json::from_slice(jsz).map_err(|e| ("/jsz", e))?;
        Ok(Snapshot {
            server: varz.server_name,
            version: varz.version,
            connections: connz.num_connections.max(varz.connections),
            connections_total: varz.total_connections,
            subscriptions: varz.subscriptions,
            slow_consumers_total: varz.slow_consumers,
            routes: routez.num_routes,
            leafnodes: varz.leafnodes,
            in_msgs_total: varz.in_msgs,
            out_msgs_total: varz.out_msgs,
            in_bytes_total: varz.in_bytes,
            out_bytes_total: varz.out_bytes,
            memory_bytes: varz.mem,
            cpu_percent: varz.cpu,
            pending_bytes: connz.connections.iter().map(|c| c.pending_bytes).sum(),
            jetstream_enabled: !jsz.disabled,
            jetstream_memory_bytes: jsz.memory,
            jetstream_storage_bytes: jsz.storage,
            jetstream_streams: jsz.streams,
            jetstream_consumers: jsz.consumers,
            jetstream_messages: jsz.messages,
            jetstream_bytes: jsz.bytes,
            jetstream_api_requests_total: jsz.api.total,
            jetstream_api_errors_total: jsz.api.errors,
        })
    }
}

// ------------------------------------------------------------ the collector

/// The latest poll of every target; cloned into the poll loop and
/// registered (once) in the operator's registry.
#[derive(Debug, Clone, Default)]
pub struct NatsMetrics {
    /// Target URL -> its last poll: `Some` when it answered.
    state: Arc<Mutex<BTreeMap<String, Option<Snapshot>>>>,
}

impl NatsMetrics {
    pub fn record(&self, target: &str, poll: Option<Snapshot>) {
        self.lock().insert(target.to_string(), poll);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Snapshot>>> {
        // A panic elsewhere cannot leave a half-written map: every write
        // is one insert.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Value {
    Gauge(i64),
    GaugeF(f64),
    Counter(u64),
}

type Field = fn(&Snapshot) -> Value;

/// Name (after `fleet_operator_nats_`), help, value of every per-server
/// series. Counters get `_total` from the encoder.
const SERIES: &[(&str, &str, Field)] = &[
    ("connections", "Client connections open", |s| {
        Value::Gauge(s.connections)
    }),
    (
        "connections_opened",
        "Client connections accepted since the server started",
        |s| Value::Counter(s.connections_total),
    ),
    ("subscriptions", "Subscriptions", |s| {
        Value::Gauge(s.subscriptions)
    }),
    (
        "slow_consumers",
        "Slow consumers detected since the server started",
        |s| Value::Counter(s.slow_consumers_total),
    ),
    ("routes", "Cluster routes to other servers", |s| {
        Value::Gauge(s.routes)
    }),
    ("leafnodes", "Leaf node connections", |s| {
        Value::Gauge(s.leafnodes)
    }),
    ("in_msgs", "Messages received", |s| {
        Value::Counter(s.in_msgs_total)
    }),
    ("out_msgs", "Messages sent", |s| {
        Value::Counter(s.out_msgs_total)
    }),
    ("in_bytes", "Bytes received", |s| {
        Value::Counter(s.in_bytes_total)
    }),
    ("out_bytes", "Bytes sent", |s| {
        Value::Counter(s.out_bytes_total)
    }),
    (
        "memory_bytes",
        "Resident memory of the server process",
        |s| Value::Gauge(s.memory_bytes),
    ),
    (
        "cpu_percent",
        "CPU use of the server process (100 = one core)",
        |s| Value::GaugeF(s.cpu_percent),
    ),
    (
        "pending_bytes",
        "Bytes queued to clients, not yet written",
        |s| Value::Gauge(s.pending_bytes),
    ),
    (
        "jetstream_enabled",
        "1 when JetStream is enabled on the server",
        |s| Value::Gauge(i64::from(s.jetstream_enabled)),
    ),
    (
        "jetstream_memory_bytes",
        "JetStream memory store in use",
        |s| Value::Gauge(s.jetstream_memory_bytes),
    ),
    (
        "jetstream_storage_bytes",
        "JetStream file store in use",
        |s| Value::Gauge(s.jetstream_storage_bytes),
    ),
    ("jetstream_streams", "JetStream streams", |s| {
        Value::Gauge(s.jetstream_streams)
    }),
    ("jetstream_consumers", "JetStream consumers", |s| {
        Value::Gauge(s.jetstream_consumers)
    }),
    (
        "jetstream_messages",
        "Messages stored in JetStream streams",
        |s| Value::Gauge(s.jetstream_messages),
    ),
    (
        "jetstream_bytes",
        "Bytes stored in JetStream streams",
        |s| Value::Gauge(s.jetstream_bytes),
    ),
    ("jetstream_api_requests", "JetStream API requests", |s| {
        Value::Counter(s.jetstream_api_requests_total)
    }),
    (
        "jetstream_api_errors",
        "JetStream API requests that failed",
        |s| Value::Counter(s.jetstream_api_errors_total),
    ),
];

/// Every metric name this module exports, with the operator's prefix and
/// the `_total` of counters (what Prometheus stores; the dashboard test
/// checks its queries against these).
pub fn exported_names() -> Vec<String> {
    let mut names = vec![
        "fleet_operator_nats_up".to_string(),
        "fleet_operator_nats_server_info".to_string(),
    ];
    let sample = Snapshot::from_endpoints(b"{}", b"{}", b"{}", b"{}").ok();
    for (name, _, field) in SERIES {
        let suffix = match sample.as_ref().map(field) {
            Some(Value::Counter(_)) => "_total",
            Some(Value::Gauge(_) | Value::GaugeF(_)) | None => "",
        };
        names.push(format!("fleet_operator_nats_{name}{suffix}"));
    }
    names
}

impl Collector for NatsMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.lock().clone();
        if state.is_empty() {
            return Ok(());
        }
        {
            let mut m = encoder.encode_descriptor(
                "nats_up",
                "1 when the NATS server's monitoring endpoint answered the last poll",
                None,
                MetricType::Gauge,
            )?;
            for (target, poll) in &state {
                let labels = [("target", target.as_str())];
                ConstGauge::new(i64::from(poll.is_some())).encode(m.encode_family(&labels)?)?;
            }
        }
        let answered: Vec<&Snapshot> = state.values().flatten().collect();
        if answered.is_empty() {
            return Ok(());
        }
        {
            let mut m = encoder.encode_descriptor(
                "nats_server_info",
                "Always 1: the server's name and version",
                None,
                MetricType::Gauge,
            )?;
            for s in &answered {
                let labels = [
                    ("server", s.server.as_str()),
                    ("version", s.version.as_str()),
                ];
                ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
            }
        }
        for (name, help, field) in SERIES {
            let full = format!("nats_{name}");
            let kind = match field(answered[0]) {
                Value::Counter(_) => MetricType::Counter,
                Value::Gauge(_) | Value::GaugeF(_) => MetricType::Gauge,
            };
            let mut m = encoder.encode_descriptor(&full, help, None, kind)?;
            for s in &answered {
                let labels = [("server", s.server.as_str())];
                let family = m.encode_family(&labels)?;
                match field(s) {
                    Value::Gauge(v) => ConstGauge::new(v).encode(family)?,
                    Value::GaugeF(v) => ConstGauge::new(v).encode(family)?,
                    Value::Counter(v) => ConstCounter::new(v).encode(family)?,
                }
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------ the poll loop

async fn get(http: &reqwest::Client, url: String) -> Result<bytes::Bytes, PollError> {
    let http_err = |url: &str, e: reqwest::Error| PollError::Http {
        url: url.to_string(),
        error: e.to_string(),
    };
    let response = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| http_err(&url, e))?;
    response.bytes().await.map_err(|e| http_err(&url, e))
}

/// Polls the four endpoints of one server.
pub async fn poll(http: &reqwest::Client, base: &str) -> Result<Snapshot, PollError> {
    let (varz, connz, routez, jsz) = tokio::try_join!(
        get(http, format!("{base}/varz")),
        get(http, format!("{base}/connz?limit={CONNZ_LIMIT}")),
        get(http, format!("{base}/routez")),
        get(http, format!("{base}/jsz")),
    )?;
    Snapshot::from_endpoints(&varz, &connz, &routez, &jsz).map_err(|(path, e)| PollError::Json {
        url: format!("{base}{path}"),
        error: e.to_string(),
    })
}

/// Polls every target each interval until `shutdown`. Failures are logged
/// when a target's state flips (not on every poll) and read `up 0`.
pub async fn run(config: MonitorConfig, metrics: NatsMetrics, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot build the HTTP client; no NATS metrics");
            return;
        }
    };
    info!(targets = ?config.urls, interval = ?config.interval, "polling NATS monitoring endpoints");
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let polls = futures::future::join_all(config.urls.iter().map(|u| poll(&http, u))).await;
        for (url, result) in config.urls.iter().zip(polls) {
            let was_failing = failing.get(url).copied().unwrap_or(false);
            match result {
                Ok(snapshot) => {
                    if was_failing {
                        info!(target = %url, "NATS monitoring endpoint answers again");
                    }
                    failing.insert(url.clone(), false);
                    metrics.record(url, Some(snapshot));
                }
                Err(e) => {
                    if !was_failing {
                        warn!(target = %url, error = %e, "NATS monitoring endpoint does not answer");
                    }
                    failing.insert(url.clone(), true);
                    metrics.record(url, None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn config_from_the_environment() {
        assert_eq!(MonitorConfig::from_lookup(lookup(&[])), Ok(None));
        let c = MonitorConfig::from_lookup(lookup(&[
            ("FLEET_NATS_MONITOR_URLS", "http://a:8222/, http://b:8222"),
            ("FLEET_NATS_MONITOR_INTERVAL", "1m"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.urls, vec!["http://a:8222", "http://b:8222"]);
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(
            MonitorConfig::from_lookup(lookup(&[("FLEET_NATS_MONITOR_URLS", "a:8222")])),
            Err(MonitorConfigError::Url {
                url: "a:8222".into()
            })
        );
        assert!(matches!(
            MonitorConfig::from_lookup(lookup(&[
                ("FLEET_NATS_MONITOR_URLS", "http://a:8222"),
                ("FLEET_NATS_MONITOR_INTERVAL", "0s")
            ])),
            Err(MonitorConfigError::Interval { .. })
        ));
    }

    #[test]
    fn names_carry_the_prefix_and_counter_suffix() {
        let names = exported_names();
        assert!(names.contains(&"fleet_operator_nats_in_msgs_total".to_string()));
        assert!(names.contains(&"fleet_operator_nats_connections".to_string()));
        assert_eq!(names.len(), SERIES.len() + 2);
    }
}
