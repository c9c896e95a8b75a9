//! Pods our workloads cannot create, back to the FleetStack field (issue 13
//! item 3, docs/adr/0017).
//!
//! Some refusals never reach the reconciler as an API error: the
//! StatefulSet or ReplicaSet is accepted, and the API server refuses the
//! Pod (or claim) its controller makes from it, e.g. a requests.memory
//! above the limit a LimitRange defaults in. The only trace is a Warning
//! Event `FailedCreate` on the workload; the stack would otherwise wait
//! for pods that never come until its ready deadline.
//!
//! [`find`] reads those Events (one LIST, only for a stack that is not
//! Ready) and maps them with [`fleet_scores::rejection::from_event`]. An
//! Event outlives its cause by up to an hour, so one only counts while it
//! still describes the workload as it is now:
//!
//! * the workload is still short of pods (`status.replicas <
//!   spec.replicas`): a fixed template creates its pods and the Event is
//!   history;
//! * the Event was last seen after our last write of the workload (its
//!   managed-fields time for our field manager): an Event about the
//!   previous template says nothing about the current one.

use fleet_crds::SpecError;
use fleet_scores::labels::FIELD_MANAGER;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client};

/// The Event reason of a controller that could not create a Pod or claim.
pub const FAILED_CREATE: &str = "FailedCreate";

/// Reading the Events or a workload they name failed.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {what} in namespace {namespace}: {source}")]
pub struct EventsError {
    verb: &'static str,
    what: String,
    namespace: String,
    source: Box<kube::Error>,
}

/// The spec fields that keep a workload of `stack` from creating its pods,
/// one per field (deduplicated, in the order the Events came).
pub async fn find(
    client: &Client,
    namespace: &str,
    stack: &str,
) -> Result<Vec<SpecError>, EventsError> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!("type=Warning,reason={FAILED_CREATE}"));
    let list = events.list(&params).await.map_err(|source| EventsError {
        verb: "listing",
        what: format!("{FAILED_CREATE} Events"),
        namespace: namespace.into(),
        source: Box::new(source),
    })?;
    let mut out: Vec<SpecError> = Vec::new();
    for event in list.items {
        let object = &event.involved_object;
        let (Some(kind), Some(name)) = (object.kind.as_deref(), object.name.as_deref()) else {
            continue;
        };
        let Some(error) = fleet_scores::rejection::from_event(
            stack,
            kind,
            name,
            event.reason.as_deref().unwrap_or_default(),
            event.message.as_deref().unwrap_or_default(),
        ) else {
            continue;
        };
        if out.iter().any(|e| e.path == error.path) {
            continue;
        }
        let Some(seen) = last_seen(&event) else {
            continue;
        };
        if still_refused(client, namespace, kind, name, seen).await? {
            out.push(error);
        }
    }
    Ok(out)
}

/// When the Event last happened (legacy `lastTimestamp`, or the events/v1
/// series and `eventTime`).
fn last_seen(event: &Event) -> Option<Timestamp> {
    [
        event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        event.last_timestamp.as_ref().map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// Whether workload `kind`/`name` still lacks pods and had not been
/// rewritten by us after `seen` (see the module docs).
async fn still_refused(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    seen: Timestamp,
) -> Result<bool, EventsError> {
    let get_err = |source| EventsError {
        verb: "reading",
        what: format!("{kind} {name}"),
        namespace: namespace.into(),
        source: Box::new(source),
    };
    let (meta, desired, created) = match kind {
        "StatefulSet" => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            let Some(sts) = api.get_opt(name).await.map_err(get_err)? else {
                return Ok(false);
            };
            let desired = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let created = sts.status.as_ref().map_or(0, |s| s.replicas);
            (sts.metadata, desired, created)
        }
        "ReplicaSet" => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
            let Some(rs) = api.get_opt(name).await.map_err(get_err)? else {
                return Ok(false);
            };
            let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let created = rs.status.as_ref().map_or(0, |s| s.replicas);
            (rs.metadata, desired, created)
        }
        // Jobs (managed Zitadel) report failure through their own status.
        _ => return Ok(false),
    };
    Ok(created < desired && written_by_us(&meta).is_none_or(|at| seen >= at))
}

/// When our field manager last changed the object (server-side apply
/// records it in managedFields); a ReplicaSet, written by the Deployment
/// controller, has none.
fn written_by_us(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + s).expect("ts"))
    }

    #[test]
    fn the_last_sighting_of_a_repeated_event_counts() {
        let event = Event {
            last_timestamp: Some(at(10)),
            event_time: None,
            ..Default::default()
        };
        assert_eq!(last_seen(&event), Some(at(10).0));
        assert_eq!(last_seen(&Event::default()), None);
    }

    #[test]
    fn only_our_field_managers_write_time_counts() {
        let entry = |manager: &str, t: i64| ManagedFieldsEntry {
            manager: Some(manager.into()),
            time: Some(at(t)),
            ..Default::default()
        };
        let meta = ObjectMeta {
            managed_fields: Some(vec![
                entry(FIELD_MANAGER, 5),
                entry("kube-controller-manager", 50),
            ]),
            ..Default::default()
        };
        assert_eq!(written_by_us(&meta), Some(at(5).0));
        assert_eq!(written_by_us(&ObjectMeta::default()), None);
    }
}
