//! Periodic heartbeat on `fleet.agent.<id>.heartbeat`.

use crate::identity::AgentIdentity;
use async_nats::Client;
use async_nats::connection::State;
use bytes::Bytes;
use chrono::Utc;
use fleet_proto::{Heartbeat, PROTOCOL_VERSION, encode_heartbeat, subjects};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Gaps between the first heartbeats, before the steady `interval`: a
/// watcher that subscribed a moment after the agent connected (the
/// operator runtime starting next to its agents, issue 18) learns about the
/// agent within about a second instead of a whole interval later. Gaps not
/// shorter than the interval are skipped.
pub const STARTUP_GAPS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// Publishes a heartbeat every `interval` until `shutdown`; returns how many
/// were sent. The first one goes out at once (a watcher learns about a new
/// agent without waiting a full interval), the next ones after
/// [`STARTUP_GAPS`].
///
/// While disconnected, ticks are skipped rather than queued: a burst of
/// stale heartbeats after a reconnect would tell a watcher nothing true.
/// `seq` still advances on skipped ticks, so the gap is visible.
pub async fn run(
    client: Client,
    identity: Arc<AgentIdentity>,
    interval: Duration,
    shutdown: CancellationToken,
) -> u64 {
    let subject = subjects::heartbeat_subject(&identity.id);
    let mut gaps = STARTUP_GAPS.into_iter().filter(|g| *g < interval);
    let mut next = tokio::time::Instant::now();
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let mut seq = 0u64;
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        // From now, not from the planned time: a late tick (a stalled
        // runtime) delays the next one instead of bunching them.
        next = tokio::time::Instant::now() + gaps.next().unwrap_or(interval);
        let this_seq = seq;
        seq += 1;
        if client.connection_state() != State::Connected {
            continue;
        }
        let heartbeat = Heartbeat {
            v: PROTOCOL_VERSION,
            agent_id: identity.id.clone(),
            version: identity.version.to_string(),
            seq: this_seq,
            uptime_ms: identity.uptime_ms(),
            timestamp: Utc::now(),
            interval_ms,
            labels: identity.labels.clone(),
        };
        let payload = match encode_heartbeat(&heartbeat) {
            Ok(p) => p,
            Err(e) => {
                // Only possible with absurdly many labels; say so and go on.
                tracing::error!(agent = %identity.id, error = %e, "could not encode heartbeat");
                continue;
            }
        };
        match client.publish(subject.clone(), Bytes::from(payload)).await {
            Ok(()) => sent += 1,
            Err(e) => tracing::warn!(agent = %identity.id, error = %e, "heartbeat not sent"),
        }
    }
    tracing::info!(agent = %identity.id, sent, "heartbeats stopped");
    sent
}
