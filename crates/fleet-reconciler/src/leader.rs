//! Leader election through a `coordination.k8s.io/v1` Lease, for running
//! several replicas (only the leader reconciles). The chart sets
//! `FLEET_LEADER_ELECTION=true`, `FLEET_LEASE_NAME`, `FLEET_LEASE_NAMESPACE`
//! and `POD_NAME` (the holder identity) when replicas > 1.
//!
//! Scheme (client-go's, simplified): take the Lease when it is absent,
//! expired or already ours, using the resourceVersion for optimistic
//! concurrency (a lost race is a 409); renew every `renew_every`; if a
//! renewal cannot be made before the lease would expire, leadership is lost
//! and the process stops reconciling (the binary exits and Kubernetes
//! restarts it as a follower).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, Clone)]
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
pub enum LeaseError {
    #[error("{verb} Lease {namespace}/{name}: {source}")]
    Api {
        verb: &'static str,
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Whether `lease` may be taken by `identity` now.
fn takeable(lease: &Lease, identity: &str, default_duration: Duration) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default_duration);
    match &spec.renew_time {
        Some(renewed) => {
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(renewed.0);
            age.as_secs() >= 0 && age.unsigned_abs() > duration
        }
        None => true,
    }
}

/// One attempt to take or renew the Lease. `Ok(true)`: we hold it.
pub async fn try_acquire(client: &Client, cfg: &LeaseConfig) -> Result<bool, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let err = |verb, e| LeaseError::Api {
        verb,
        namespace: cfg.namespace.clone(),
        name: cfg.name.clone(),
        source: Box::new(e),
    };
    let duration_secs = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    match api.get_opt(&cfg.name).await.map_err(|e| err("get", e))? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(err("create", e)),
            }
        }
        Some(mut lease) => {
            if !takeable(&lease, &cfg.identity, cfg.lease_duration) {
                return Ok(false);
            }
            let spec = lease.spec.get_or_insert_with(Default::default);
            let ours = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
            if !ours {
                spec.holder_identity = Some(cfg.identity.clone());
                spec.acquire_time = Some(now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(duration_secs);
            // replace() sends the resourceVersion we read: a concurrent
            // writer makes this a 409 and we simply are not the leader.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(err("update", e)),
            }
        }
    }
}

/// Waits until this process holds the Lease (or `shutdown` fires: `false`).
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

/// Renews the Lease until `shutdown`; cancels `lost` when a renewal could
/// not be made within the lease duration.
pub async fn hold(
    client: Client,
    cfg: LeaseConfig,
    shutdown: CancellationToken,
    lost: CancellationToken,
) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(cfg.renew_every) => {}
        }
        match try_acquire(&client, &cfg).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                warn!(lease = %cfg.name, "another holder took the Lease");
                lost.cancel();
                return;
            }
            Err(e) => warn!(error = %e, "renewing the Lease failed"),
        }
        // Stop before the lease can expire under us: another replica may
        // take it at lease_duration.
        if last_renewal.elapsed() + cfg.renew_every >= cfg.lease_duration {
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
        let renewed = k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(renewed_secs_ago);
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
    fn a_fresh_foreign_lease_is_not_takeable_an_expired_one_is() {
        let d = Duration::from_secs(15);
        assert!(!takeable(&lease("other", 1), "me", d));
        assert!(takeable(&lease("other", 60), "me", d));
        assert!(takeable(&lease("me", 1), "me", d));
        assert!(takeable(&lease("", 1), "me", d));
    }
}
