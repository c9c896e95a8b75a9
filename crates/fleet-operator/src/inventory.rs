//! The inventory loop: heartbeats in, FleetAgent writes out. Decisions are
//! made by [`Tracker`]; this module only moves messages and API calls.
//!
//! Writes run concurrently (at most [`MAX_CONCURRENT_WRITES`]) so that a
//! thousand agents appearing at once are written within a heartbeat
//! interval, while the tracker keeps at most one write per agent in flight.

use std::sync::Arc;
use std::time::Duration;

use fleet_crds::{FleetAgent, FleetAgentStatus};
use fleet_proto::{AgentId, decode_heartbeat, subjects};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::InventoryConfig;
use crate::metrics::{Metrics, ResultLabels, StateLabels, WriteLabels};
use crate::naming::{
    FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL, STACK_LABEL, agent_selector, object_name,
};
use crate::tracker::{Action, Tracker};

pub const MAX_CONCURRENT_WRITES: usize = 32;
/// How long shutdown waits for writes in flight.
const DRAIN_WRITES: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("subscribing to {subject} on NATS: {source}")]
    Subscribe {
        subject: &'static str,
        source: async_nats::SubscribeError,
    },
    #[error("listing the existing FleetAgents in namespace {namespace}: {source}")]
    List {
        namespace: String,
        source: Box<kube::Error>,
    },
    #[error("the NATS heartbeat subscription ended (connection closed)")]
    SubscriptionClosed,
}

/// Why one FleetAgent write failed (logged, retried by the tracker).
#[derive(Debug, thiserror::Error)]
#[error("{verb} FleetAgent {namespace}/{name} (agent {agent}): {source}")]
pub struct WriteError {
    verb: &'static str,
    namespace: String,
    name: String,
    agent: AgentId,
    source: Box<kube::Error>,
}

/// What the writers need; cheap to clone into tasks.
#[derive(Clone)]
pub struct Writer {
    pub api: Api<FleetAgent>,
    pub namespace: String,
    /// The FleetStack of `FLEET_OWNER_STACK`: the ownerReference of every
    /// FleetAgent written, and (its name) the value of their
    /// [`STACK_LABEL`]. `None`: neither is written (today's behaviour).
    pub owner: Option<OwnerReference>,
}

impl Writer {
    fn stack(&self) -> Option<&str> {
        self.owner.as_ref().map(|o| o.name.as_str())
    }
}

enum Done {
    Write(AgentId, Result<Option<i64>, ()>),
    Delete(AgentId, bool),
}

/// Runs until `shutdown`; returns an error only when it cannot go on.
pub async fn run(
    nats: async_nats::Client,
    writer: Writer,
    cfg: InventoryConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), InventoryError> {
    let mut subscription = nats
        .subscribe(subjects::ALL_HEARTBEATS)
        .await
        .map_err(|source| InventoryError::Subscribe {
            subject: subjects::ALL_HEARTBEATS,
            source,
        })?;
    let mut tracker = Tracker::new(cfg);
    adopt_existing(&writer, &mut tracker).await?;
    info!(adopted = tracker.len(), namespace = %writer.namespace, "inventory started");

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_WRITES));
    let mut tasks = JoinSet::new();
    // Often enough to notice a disconnect within a fraction of an interval;
    // a tick over thousands of agents costs microseconds.
    let period =
        (cfg.heartbeat_interval / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let dispatch = |action: Action, tasks: &mut JoinSet<()>| {
        let (writer, permits, done, metrics) = (
            writer.clone(),
            permits.clone(),
            done_tx.clone(),
            metrics.clone(),
        );
        tasks.spawn(async move {
            // The semaphore is never closed, so acquire cannot fail.
            let _permit = permits.acquire_owned().await;
            let done_msg = execute(&writer, action, &metrics).await;
            let _ = done.send(done_msg);
        });
    };

    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            msg = subscription.next() => {
                let Some(msg) = msg else { break Err(InventoryError::SubscriptionClosed) };
                let Some(id) = subjects::heartbeat_agent(&msg.subject) else {
                    metrics.heartbeats.get_or_create(&ResultLabels { result: "invalid" }).inc();
                    continue;
                };
                let hb = match decode_heartbeat(&msg.payload) {
                    Ok(hb) => hb,
                    Err(e) => {
                        metrics.heartbeats.get_or_create(&ResultLabels { result: "invalid" }).inc();
                        debug!(agent = %id, error = %e, "unreadable heartbeat");
                        continue;
                    }
                };
                // The subject is what NATS permissions protect; a payload
                // claiming another id is not believed.
                if hb.agent_id != id {
                    metrics.heartbeats.get_or_create(&ResultLabels { result: "mismatched_id" }).inc();
                    debug!(subject_agent = %id, payload_agent = %hb.agent_id, "heartbeat id does not match its subject");
                    continue;
                }
                metrics.heartbeats.get_or_create(&ResultLabels { result: "accepted" }).inc();
                if let Some(action) = tracker.heartbeat(&hb, Instant::now(), Timestamp::now()) {
                    dispatch(action, &mut tasks);
                }
            }
            _ = ticker.tick() => {
                let now = Instant::now();
                for action in tracker.tick(now) {
                    dispatch(action, &mut tasks);
                }
                let census = tracker.census(now);
                metrics.agents.get_or_create(&StateLabels { state: "connected" }).set(census.connected);
                metrics.agents.get_or_create(&StateLabels { state: "disconnected" }).set(census.disconnected);
                // Reap finished tasks so the set does not grow.
                while tasks.try_join_next().is_some() {}
            }
            Some(done) = done_rx.recv() => match done {
                Done::Write(id, r) => tracker.write_done(&id, r, Instant::now()),
                Done::Delete(id, ok) => tracker.delete_done(&id, ok, Instant::now()),
            },
        }
    };
    // Let writes in flight land (a flip half-written is worse than late).
    let _ = tokio::time::timeout(DRAIN_WRITES, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    info!("inventory stopped");
    result
}

/// Adopts the FleetAgents this operator wrote before (restart, failover):
/// only those of its own stack ([`agent_selector`]); another FleetStack's
/// FleetAgents in the same namespace are never adopted, so never marked
/// disconnected nor deleted by us.
///
/// Upgrade from an operator that wrote no [`STACK_LABEL`]: a FleetAgent
/// with our `managed-by` label, no stack label and an ownerReference to
/// our own FleetStack (by uid) is ours; it is labelled now (one apply of
/// its metadata, so that commands select it too) and adopted. One we fail
/// to label is not adopted: the agent's next heartbeat re-applies the
/// whole object (label included), and the next start tries again.
/// Unlabelled objects owned by anything else are left alone.
async fn adopt_existing(writer: &Writer, tracker: &mut Tracker) -> Result<(), InventoryError> {
    let list_err = |e| InventoryError::List {
        namespace: writer.namespace.clone(),
        source: Box::new(e),
    };
    let mut list = writer
        .api
        .list(&ListParams::default().labels(&agent_selector(writer.stack())))
        .await
        .map_err(list_err)?
        .items;
    if let Some(owner) = &writer.owner {
        let legacy = writer
            .api
            .list(
                &ListParams::default()
                    .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY},!{STACK_LABEL}")),
            )
            .await
            .map_err(list_err)?;
        for agent in legacy {
            let ours = agent
                .owner_references()
                .iter()
                .any(|r| r.uid == owner.uid && r.kind == owner.kind);
            if !ours {
                continue;
            }
            let name = agent.name_any();
            let id = match AgentId::new(agent.spec.agent_id.clone()) {
                Ok(id) => id,
                Err(e) => {
                    warn!(%name, error = %e, "FleetAgent with an invalid agentId ignored");
                    continue;
                }
            };
            match writer
                .api
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(object(writer, &name, &id)),
                )
                .await
            {
                Ok(_) => {
                    info!(%name, stack = %owner.name, "FleetAgent written without the stack label: labelled and adopted");
                    list.push(agent);
                }
                Err(e) => {
                    warn!(%name, error = %e, "labelling a FleetAgent of an older operator failed; not adopted (its next heartbeat rewrites it)")
                }
            }
        }
    }
    let now = Instant::now();
    for agent in list {
        match AgentId::new(agent.spec.agent_id.clone()) {
            Ok(id) => tracker.adopt(
                id,
                &agent.status.clone().unwrap_or_default(),
                agent.metadata.generation,
                now,
            ),
            Err(e) => {
                warn!(name = %agent.name_any(), error = %e, "FleetAgent with an invalid agentId ignored")
            }
        }
    }
    Ok(())
}

async fn execute(writer: &Writer, action: Action, metrics: &Metrics) -> Done {
    let count = |op, ok: bool| {
        metrics
            .writes
            .get_or_create(&WriteLabels {
                op,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    };
    match action {
        Action::Write { id, create, status } => {
            let result = write(writer, &id, create, status, &count).await;
            if let Err(e) = &result {
                warn!(error = %e, "FleetAgent write failed; retrying later");
            }
            Done::Write(id, result.map_err(|_| ()))
        }
        Action::Delete { id } => {
            let name = object_name(&id);
            // A device's FleetAgent is its enrollment record (public key,
            // approval; ADR 0080): a device offline past the TTL is still
            // enrolled, so only a person or GitOps deletes it.
            if let Ok(Some(agent)) = writer.api.get_opt(&name).await
                && agent.spec.public_key.is_some()
            {
                info!(agent = %id, "device silent past its TTL: FleetAgent kept (it is the device's enrollment)");
                return Done::Delete(id, true);
            }
            let result = match writer.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e),
            };
            count("delete", result.is_ok());
            match result {
                Ok(()) => {
                    info!(agent = %id, "agent silent past its TTL: FleetAgent deleted");
                    Done::Delete(id, true)
                }
                Err(e) => {
                    warn!(agent = %id, name, error = %e, "deleting FleetAgent failed");
                    Done::Delete(id, false)
                }
            }
        }
    }
}

/// Applies the status, creating the object first when it does not exist
/// (also when someone deleted it behind our back: the status patch 404s).
async fn write(
    writer: &Writer,
    id: &AgentId,
    create: bool,
    mut status: FleetAgentStatus,
    count: &impl Fn(&'static str, bool),
) -> Result<Option<i64>, WriteError> {
    let name = object_name(id);
    let err = |verb, e| WriteError {
        verb,
        namespace: writer.namespace.clone(),
        name: name.clone(),
        agent: id.clone(),
        source: Box::new(e),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut generation = None;
    let mut need_object = create;
    for _ in 0..2 {
        if need_object {
            let created = writer
                .api
                .patch(&name, &params, &Patch::Apply(object(writer, &name, id)))
                .await;
            count("create", created.is_ok());
            let created = created.map_err(|e| err("creating", e))?;
            generation = created.metadata.generation;
            if let Some(g) = generation {
                status.observed_generation = Some(g);
                for c in &mut status.conditions {
                    c.observed_generation = Some(g);
                }
            }
        }
        let body = json!({
            "apiVersion": "fleet.nationtech.io/v1alpha1",
            "kind": "FleetAgent",
            "metadata": {"name": name},
            "status": status,
        });
        match writer
            .api
            .patch_status(&name, &params, &Patch::Apply(body))
            .await
        {
            Ok(o) => {
                count("status", true);
                return Ok(o.metadata.generation.or(generation));
            }
            Err(kube::Error::Api(e)) if e.code == 404 && !need_object => {
                count("status", false);
                need_object = true;
            }
            Err(e) => {
                count("status", false);
                return Err(err("writing the status of", e));
            }
        }
    }
    // Only reached when the object vanished between create and status.
    Err(err(
        "writing the status of",
        kube::Error::Api(Box::new(
            kube::core::Status::failure("object deleted while being written", "NotFound")
                .with_code(404),
        )),
    ))
}

fn object(writer: &Writer, name: &str, id: &AgentId) -> serde_json::Value {
    let mut metadata = json!({
        "name": name,
        "namespace": writer.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
    });
    // Without FLEET_OWNER_STACK: no owner and no stack label (as before).
    if let Some(owner) = &writer.owner {
        metadata["ownerReferences"] = json!([owner]);
        metadata["labels"][STACK_LABEL] = json!(owner.name);
    }
    json!({
        "apiVersion": "fleet.nationtech.io/v1alpha1",
        "kind": "FleetAgent",
        "metadata": metadata,
        "spec": {"agentId": id.as_str()},
    })
}
