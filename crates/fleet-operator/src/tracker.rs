//! The inventory's decisions, free of IO: what each agent's FleetAgent
//! should say, and when it is worth an API write
//! (docs/adr/0050-fleet-agent-inventory-writes.md).
//!
//! Rules:
//! * an agent is connected while fewer than `missed_threshold` heartbeats
//!   are missing (a heartbeat counts as missed once it is half an interval
//!   late, so scheduling jitter never flaps the state);
//! * a flip of `connected` (and the first sighting) is written at once;
//! * any other change (version, labels, interval) is written at most once
//!   per `heartbeat_interval` per agent;
//! * a heartbeat that changes nothing writes nothing: `lastHeartbeatTime`
//!   is refreshed only when the status is written for one of the above;
//! * after `ttl` of silence the FleetAgent is deleted;
//! * one write per agent is in flight at a time; a failed write is retried
//!   after [`RETRY_AFTER`].

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fleet_crds::{CondStatus, FleetAgentStatus, READY, set_condition};
use fleet_proto::{AgentId, Heartbeat};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use crate::config::InventoryConfig;

/// Pause before a failed write or delete is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Bounds on the interval an agent declares: a hostile or broken heartbeat
/// must not make an agent look connected for days, nor flap every 1 ms.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The fields of a FleetAgent status whose change is worth a write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    connected: bool,
    version: String,
    labels: BTreeMap<String, String>,
    interval_ms: i64,
}

#[derive(Debug)]
struct Entry {
    version: String,
    labels: BTreeMap<String, String>,
    /// Declared by the agent (bounded), or the configured interval.
    interval: Duration,
    last_seen: Instant,
    last_seen_wall: Timestamp,
    /// What the API holds, as far as we know (`None`: nothing yet).
    written: Option<Snapshot>,
    conditions: Vec<Condition>,
    /// Whether the object exists (a write must create it first otherwise).
    exists: bool,
    generation: Option<i64>,
    last_write: Option<Instant>,
    /// What the write in flight will make true (`Some` = busy).
    pending: Option<Pending>,
    retry_at: Option<Instant>,
}

#[derive(Debug)]
enum Pending {
    Write(Snapshot, Vec<Condition>),
    Delete,
}

/// What the IO side must do for one agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Apply this status (creating the object first when `create`).
    Write {
        id: AgentId,
        create: bool,
        status: FleetAgentStatus,
    },
    Delete {
        id: AgentId,
    },
}

/// Counts for the `agents` gauge.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    pub connected: i64,
    pub disconnected: i64,
}

#[derive(Debug)]
pub struct Tracker {
    cfg: InventoryConfig,
    agents: HashMap<AgentId, Entry>,
}

impl Tracker {
    pub fn new(cfg: InventoryConfig) -> Self {
        Tracker {
            cfg,
            agents: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Adopts a FleetAgent that exists in the API (operator restart or
    /// leader change). Its silence is counted from `now`: we cannot know
    /// when it last beat, and deleting a live agent's object on a restart
    /// would cost two writes to recreate it.
    pub fn adopt(
        &mut self,
        id: AgentId,
        status: &FleetAgentStatus,
        generation: Option<i64>,
        now: Instant,
    ) {
        let interval = status
            .heartbeat_interval_millis
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| Duration::from_millis(ms).clamp(MIN_INTERVAL, MAX_INTERVAL))
            .unwrap_or(self.cfg.heartbeat_interval);
        let written = Snapshot {
            connected: status.connected,
            version: status.version.clone().unwrap_or_default(),
            labels: status.labels.clone(),
            interval_ms: millis(interval),
        };
        self.agents.insert(
            id,
            Entry {
                version: status.version.clone().unwrap_or_default(),
                labels: status.labels.clone(),
                interval,
                last_seen: now,
                last_seen_wall: status
                    .last_heartbeat_time
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or_else(Timestamp::now),
                written: Some(written),
                conditions: status.conditions.clone(),
                exists: true,
                generation,
                last_write: None,
                pending: None,
                retry_at: None,
            },
        );
    }

    /// Records a heartbeat (already checked to come from `id`'s subject)
    /// and returns the write it calls for, if any.
    pub fn heartbeat(&mut self, hb: &Heartbeat, now: Instant, wall: Timestamp) -> Option<Action> {
        let interval = Duration::from_millis(hb.interval_ms).clamp(MIN_INTERVAL, MAX_INTERVAL);
        let entry = self
            .agents
            .entry(hb.agent_id.clone())
            .or_insert_with(|| Entry {
                version: String::new(),
                labels: BTreeMap::new(),
                interval,
                last_seen: now,
                last_seen_wall: wall,
                written: None,
                conditions: Vec::new(),
                exists: false,
                generation: None,
                last_write: None,
                pending: None,
                retry_at: None,
            });
        entry.version.clone_from(&hb.version);
        entry.labels.clone_from(&hb.labels);
        entry.interval = if hb.interval_ms == 0 {
            self.cfg.heartbeat_interval
        } else {
            interval
        };
        entry.last_seen = now;
        entry.last_seen_wall = wall;
        let id = hb.agent_id.clone();
        self.evaluate(&id, now)
    }

    /// Re-evaluates every agent (disconnects, deletions, delayed writes).
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let ids: Vec<AgentId> = self.agents.keys().cloned().collect();
        ids.iter().filter_map(|id| self.evaluate(id, now)).collect()
    }

    pub fn census(&self, now: Instant) -> Census {
        let mut c = Census::default();
        for e in self.agents.values() {
            if self.missed(e, now) < self.cfg.missed_threshold {
                c.connected += 1;
            } else {
                c.disconnected += 1;
            }
        }
        c
    }

    /// The outcome of a [`Action::Write`]: `Ok(generation)` or an error.
    pub fn write_done(&mut self, id: &AgentId, result: Result<Option<i64>, ()>, now: Instant) {
        let Some(e) = self.agents.get_mut(id) else {
            return;
        };
        match (e.pending.take(), result) {
            (Some(Pending::Write(snapshot, conditions)), Ok(generation)) => {
                e.written = Some(snapshot);
                e.conditions = conditions;
                e.exists = true;
                e.generation = generation.or(e.generation);
                e.last_write = Some(now);
                e.retry_at = None;
            }
            (_, _) => e.retry_at = Some(now + RETRY_AFTER),
        }
    }

    /// The outcome of an [`Action::Delete`].
    pub fn delete_done(&mut self, id: &AgentId, ok: bool, now: Instant) {
        let Some(e) = self.agents.get_mut(id) else {
            return;
        };
        e.pending = None;
        if !ok {
            e.retry_at = Some(now + RETRY_AFTER);
        } else if now.duration_since(e.last_seen) >= self.cfg.ttl {
            self.agents.remove(id);
        } else {
            // It came back while the delete was in flight: start over.
            e.exists = false;
            e.written = None;
            e.conditions.clear();
            e.generation = None;
        }
    }

    fn missed(&self, e: &Entry, now: Instant) -> u32 {
        let silence = now.duration_since(e.last_seen);
        let late = silence.saturating_sub(e.interval / 2);
        u32::try_from(late.as_nanos() / e.interval.as_nanos().max(1)).unwrap_or(u32::MAX)
    }

    fn evaluate(&mut self, id: &AgentId, now: Instant) -> Option<Action> {
        let threshold = self.cfg.missed_threshold;
        let (ttl, window) = (self.cfg.ttl, self.cfg.heartbeat_interval);
        let missed = self.missed(self.agents.get(id)?, now);
        let e = self.agents.get_mut(id)?;
        if e.pending.is_some() || e.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        if now.duration_since(e.last_seen) >= ttl {
            if !e.exists {
                self.agents.remove(id);
                return None;
            }
            e.pending = Some(Pending::Delete);
            return Some(Action::Delete { id: id.clone() });
        }
        let connected = missed < threshold;
        let desired = Snapshot {
            connected,
            version: e.version.clone(),
            labels: e.labels.clone(),
            interval_ms: millis(e.interval),
        };
        let flip = match &e.written {
            Some(w) if *w == desired => return None,
            Some(w) => w.connected != connected,
            None => true,
        };
        if !flip && e.last_write.is_some_and(|t| now.duration_since(t) < window) {
            return None;
        }
        let generation = e.generation.unwrap_or(1);
        let mut conditions = e.conditions.clone();
        let now_time = Time(Timestamp::now());
        if connected {
            set_condition(
                &mut conditions,
                READY,
                CondStatus::True,
                "HeartbeatsReceived",
                &format!("heartbeats arrive every {}", human(e.interval)),
                generation,
                &now_time,
            );
        } else {
            set_condition(
                &mut conditions,
                READY,
                CondStatus::False,
                "HeartbeatsMissed",
                &format!(
                    "{missed} heartbeats missed (expected every {}); disconnected after {threshold}",
                    human(e.interval)
                ),
                generation,
                &now_time,
            );
        }
        // Kubernetes 1.20 server-side apply turns "" into null on custom
        // resources (and then rejects it): never send empty strings.
        let status = FleetAgentStatus {
            observed_generation: Some(generation),
            connected,
            last_heartbeat_time: Some(Time(e.last_seen_wall)),
            version: Some(desired.version.clone()).filter(|v| !v.is_empty()),
            labels: desired
                .labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            heartbeat_interval_millis: Some(desired.interval_ms),
            missed_heartbeats: i32::try_from(missed).unwrap_or(i32::MAX),
            conditions: conditions.clone(),
        };
        let create = !e.exists;
        e.pending = Some(Pending::Write(desired, conditions));
        Some(Action::Write {
            id: id.clone(),
            create,
            status,
        })
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `10s`, `500ms`: deterministic text for condition messages.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);

    fn cfg() -> InventoryConfig {
        InventoryConfig {
            heartbeat_interval: INTERVAL,
            missed_threshold: 3,
            ttl: Duration::from_secs(300),
        }
    }

    fn hb(id: &str, version: &str) -> Heartbeat {
        Heartbeat {
            v: 1,
            agent_id: AgentId::new(id).unwrap(),
            version: version.into(),
            seq: 0,
            uptime_ms: 0,
            timestamp: chrono::Utc::now(),
            interval_ms: 10_000,
            labels: BTreeMap::from([("site".into(), "a".into())]),
        }
    }

    fn ack(t: &mut Tracker, a: Option<Action>, now: Instant) -> FleetAgentStatus {
        match a {
            Some(Action::Write { id, status, .. }) => {
                t.write_done(&id, Ok(Some(1)), now);
                status
            }
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_heartbeat_creates_then_steady_heartbeats_write_nothing() {
        let mut t = Tracker::new(cfg());
        let t0 = Instant::now();
        let a = t.heartbeat(&hb("a1", "1.0"), t0, Timestamp::now());
        assert!(matches!(a, Some(Action::Write { create: true, .. })));
        let s = ack(&mut t, a, t0);
        assert!(s.connected);
        assert_eq!(s.conditions[0].status, "True");
        for i in 1..100u32 {
            let now = t0 + INTERVAL * i;
            assert_eq!(t.heartbeat(&hb("a1", "1.0"), now, Timestamp::now()), None);
            assert!(t.tick(now + INTERVAL / 2).is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_disconnects_once_then_deletes_after_ttl() {
        let mut t = Tracker::new(cfg());
        let t0 = Instant::now();
        let a = t.heartbeat(&hb("a1", "1.0"), t0, Timestamp::now());
        ack(&mut t, a, t0);
        // 3 missed = 3.5 intervals of silence.
        assert!(t.tick(t0 + Duration::from_secs(34)).is_empty());
        let mut acts = t.tick(t0 + Duration::from_secs(35));
        let s = ack(&mut t, acts.pop(), t0 + Duration::from_secs(35));
        assert!(!s.connected);
        assert_eq!(s.missed_heartbeats, 3);
        assert_eq!(s.conditions[0].reason, "HeartbeatsMissed");
        // Still silent: more missed heartbeats are not worth writes.
        assert!(t.tick(t0 + Duration::from_secs(200)).is_empty());
        let acts = t.tick(t0 + Duration::from_secs(300));
        assert_eq!(
            acts,
            vec![Action::Delete {
                id: AgentId::new("a1").unwrap()
            }]
        );
        t.delete_done(
            &AgentId::new("a1").unwrap(),
            true,
            t0 + Duration::from_secs(301),
        );
        assert!(t.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reconnect_is_written_at_once_other_changes_once_per_interval() {
        let mut t = Tracker::new(cfg());
        let t0 = Instant::now();
        let a = t.heartbeat(&hb("a1", "1.0"), t0, Timestamp::now());
        ack(&mut t, a, t0);
        let t1 = t0 + Duration::from_secs(40);
        let mut acts = t.tick(t1);
        ack(&mut t, acts.pop(), t1);
        // Back: a flip, written immediately although the last write was now.
        let a = t.heartbeat(&hb("a1", "1.0"), t1, Timestamp::now());
        let s = ack(&mut t, a, t1);
        assert!(s.connected);
        // Upgrade right after: waits for the window.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(t.heartbeat(&hb("a1", "2.0"), t2, Timestamp::now()), None);
        assert!(t.tick(t1 + Duration::from_secs(9)).is_empty());
        let mut acts = t.tick(t1 + INTERVAL);
        let s = ack(&mut t, acts.pop(), t1 + INTERVAL);
        assert_eq!(s.version.as_deref(), Some("2.0"));
        assert!(t.tick(t1 + INTERVAL * 2).is_empty());
    }

    /// `kubectl get fleetagents` shows "Since" from the Ready condition's
    /// lastTransitionTime (issue 12 item 8). It must mean "connected since":
    /// set by the connecting write, kept by every later write that is not
    /// a flip, and steady heartbeats add no write at all.
    #[tokio::test(start_paused = true)]
    async fn connected_since_is_the_connect_write_and_survives_later_writes() {
        let since = |s: &FleetAgentStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == READY)
                .map(|c| (c.status.clone(), c.last_transition_time.clone()))
                .expect("Ready condition")
        };
        let mut t = Tracker::new(cfg());
        let t0 = Instant::now();
        let a = t.heartbeat(&hb("a1", "1.0"), t0, Timestamp::now());
        let connected = since(&ack(&mut t, a, t0));
        assert_eq!(connected.0, "True");
        for i in 1..30u32 {
            assert_eq!(
                t.heartbeat(&hb("a1", "1.0"), t0 + INTERVAL * i, Timestamp::now()),
                None,
                "a steady heartbeat must not write"
            );
        }
        // An upgrade is written (the last write is long past) without
        // moving "Since".
        let t1 = t0 + INTERVAL * 30;
        let a = t.heartbeat(&hb("a1", "2.0"), t1, Timestamp::now());
        let upgraded = ack(&mut t, a, t1);
        assert_eq!(upgraded.version.as_deref(), Some("2.0"));
        assert_eq!(since(&upgraded), connected);
        // Silence: the disconnect write moves it (now "disconnected since").
        let mut acts = t.tick(t1 + INTERVAL * 5);
        let gone = ack(&mut t, acts.pop(), t1 + INTERVAL * 5);
        assert!(!gone.connected);
        assert_eq!(since(&gone).0, "False");
        // The printer column reads exactly that field of the written status.
        let crd = <fleet_crds::FleetAgent as kube::CustomResourceExt>::crd();
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let col = columns
            .iter()
            .find(|c| c.name == "Since")
            .expect("Since column");
        assert_eq!(
            col.json_path,
            ".status.conditions[?(@.type==\"Ready\")].lastTransitionTime"
        );
        assert_eq!(col.type_, "date");
        let json = serde_json::to_value(&gone).expect("json");
        assert!(json["conditions"][0]["lastTransitionTime"].is_string());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_writes_are_retried_and_one_write_is_in_flight() {
        let mut t = Tracker::new(cfg());
        let t0 = Instant::now();
        let id = AgentId::new("a1").unwrap();
        assert!(
            t.heartbeat(&hb("a1", "1.0"), t0, Timestamp::now())
                .is_some()
        );
        // In flight: nothing more for this agent.
        assert_eq!(t.heartbeat(&hb("a1", "1.0"), t0, Timestamp::now()), None);
        t.write_done(&id, Err(()), t0);
        assert!(t.tick(t0 + Duration::from_secs(1)).is_empty());
        let acts = t.tick(t0 + RETRY_AFTER);
        assert!(matches!(
            acts.as_slice(),
            [Action::Write { create: true, .. }]
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn adopted_agents_get_a_grace_period_from_adoption() {
        let mut t = Tracker::new(cfg());
        let t0 = Instant::now();
        let status = FleetAgentStatus {
            connected: true,
            version: Some("1.0".into()),
            labels: BTreeMap::from([("site".into(), "a".into())]),
            heartbeat_interval_millis: Some(10_000),
            ..Default::default()
        };
        t.adopt(AgentId::new("a1").unwrap(), &status, Some(1), t0);
        assert!(t.tick(t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(
            t.heartbeat(
                &hb("a1", "1.0"),
                t0 + Duration::from_secs(31),
                Timestamp::now()
            ),
            None
        );
        assert_eq!(t.census(t0 + Duration::from_secs(31)).connected, 1);
    }
}
