//! Leader election through a `coordination.k8s.io/v1` Lease, for running a
//! controller with several replicas: only the holder works (the reconciler
//! reconciles; the operator subscribes to heartbeats and runs commands, so
//! FleetAgents have one writer). The binaries read `FLEET_LEADER_ELECTION=true`,
//! `FLEET_LEASE_NAME`, `FLEET_LEASE_NAMESPACE` and `POD_NAME` (the holder
//! identity); the chart sets them when replicas > 1.
//!
//! Scheme (client-go's, simplified; ADR 0013): take the Lease when it is
//! absent, expired or already ours, using the resourceVersion for optimistic
//! concurrency (a lost race is a 409); renew every `renew_every`; if a
//! renewal cannot be made before the Lease would expire, leadership is lost
//! and the process stops working (the binary exits and Kubernetes restarts
//! it as a follower). [`release`] hands the Lease over on a clean shutdown.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Holder identity (the pod name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
    pub retry_every: Duration,
}

impl LeaseConfig {
    pub fn new(name: String, namespace: String, identity: String) -> Self {
        LeaseConfig {
            name,
            namespace,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{verb} Lease {namespace}/{name}: {source}")]
pub struct LeaseError {
    verb: &'static str,
    namespace: String,
    name: String,
    source: Box<kube::Error>,
}

/// Whether `identity` may take `lease` now: free, ours, or not renewed
/// within its duration.
fn takeable(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = spec.lease_duration_seconds.unwrap_or(15).max(1);
    match &spec.renew_time {
        Some(renewed) => now.duration_since(renewed.0).as_secs() > i64::from(duration),
        None => true,
    }
}

/// One attempt to take or renew the Lease; `Ok(true)` when we hold it.
pub async fn try_acquire(client: &Client, cfg: &LeaseConfig) -> Result<bool, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let err = |verb, e| LeaseError {
        verb,
        namespace: cfg.namespace.clone(),
        name: cfg.name.clone(),
        source: Box::new(e),
    };
    let now = Timestamp::now();
    let seconds = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    let result = match api.get_opt(&cfg.name).await.map_err(|e| err("get", e))? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .map_err(|e| ("create", e))
        }
        Some(mut lease) => {
            if !takeable(&lease, &cfg.identity, now) {
                return Ok(false);
            }
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
                spec.holder_identity = Some(cfg.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(seconds);
            // replace() carries the resourceVersion we read: a concurrent
            // writer turns this into a 409 and we are not the leader.
            api.replace(&cfg.name, &PostParams::default(), &lease)
                .await
                .map_err(|e| ("update", e))
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err((_, kube::Error::Api(e))) if e.code == 409 => Ok(false),
        Err((verb, e)) => Err(err(verb, e)),
    }
}

/// Waits until we hold the Lease; `false` when `shutdown` fires first.
pub async fn acquire(client: &Client, cfg: &LeaseConfig, shutdown: &CancellationToken) -> bool {
    loop {
        match try_acquire(client, cfg).await {
            Ok(true) => {
                info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                return true;
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "leader election attempt failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(cfg.retry_every) => {}
        }
    }
}

/// Waits for the Lease, then renews it in the background; losing it
/// cancels `lost` and `shutdown` (so the caller's work stops and it can
/// exit as a follower). `false` when `shutdown` fired before acquiring.
pub async fn lead(
    client: &Client,
    cfg: &LeaseConfig,
    shutdown: &CancellationToken,
    lost: &CancellationToken,
) -> bool {
    if !acquire(client, cfg, shutdown).await {
        return false;
    }
    tokio::spawn(hold(
        client.clone(),
        cfg.clone(),
        shutdown.clone(),
        lost.clone(),
    ));
    let (t, l) = (shutdown.clone(), lost.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = l.cancelled() => t.cancel(),
            _ = t.cancelled() => {}
        }
    });
    true
}

/// Gives the Lease up on a clean shutdown (holder cleared, renew time kept)
/// so that a follower takes over at its next retry instead of waiting for
/// the Lease to expire. Best effort: a failure only costs that wait.
pub async fn release(client: &Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => info!(lease = %cfg.name, "released the Lease"),
        Err(e) => warn!(lease = %cfg.name, error = %e, "could not release the Lease"),
    }
}

/// Renews until `shutdown`; cancels `lost` when another holder took the
/// Lease or a renewal could not be made in time.
pub async fn hold(
    client: Client,
    cfg: LeaseConfig,
    shutdown: CancellationToken,
    lost: CancellationToken,
) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(cfg.renew_every) => {}
        }
        match try_acquire(&client, &cfg).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => {
                warn!(lease = %cfg.name, "another holder took the Lease");
                lost.cancel();
                return;
            }
            Err(e) => warn!(error = %e, "renewing the Lease failed"),
        }
        if renewed.elapsed() + cfg.renew_every >= cfg.lease_duration {
            warn!(lease = %cfg.name, "could not renew the Lease in time");
            lost.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64) -> Lease {
        let renewed =
            Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(renewed_secs_ago);
        Lease {
            metadata: Default::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn only_free_own_or_expired_leases_are_taken() {
        let now = Timestamp::now();
        assert!(!takeable(&lease("other", 1), "me", now));
        assert!(takeable(&lease("other", 60), "me", now));
        assert!(takeable(&lease("me", 1), "me", now));
        assert!(takeable(&lease("", 1), "me", now));
    }
}
