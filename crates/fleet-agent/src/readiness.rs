//! What `/readyz` reports: ready = connected to NATS AND subscribed to the
//! agent's command subject AND not draining.

use async_nats::connection::State;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared between the agent's tasks and the HTTP server.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Set once the first connect succeeded. Its live state (async-nats
    /// updates it on disconnect/reconnect) is read on every check.
    client: OnceLock<async_nats::Client>,
    subscribed: AtomicBool,
    draining: AtomicBool,
}

/// Why the agent is not ready; the text is `/readyz`'s 503 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("not connected to NATS yet")]
    NeverConnected,
    #[error("NATS connection is {0}")]
    Disconnected(String),
    #[error("command subscription is not active")]
    NotSubscribed,
    #[error("draining: shutting down")]
    Draining,
}

impl Readiness {
    pub(crate) fn set_client(&self, client: async_nats::Client) {
        // Only the first connect sets it; reconnects reuse the same client.
        let _ = self.client.set(client);
    }

    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::SeqCst);
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn check(&self) -> Result<(), NotReady> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(NotReady::Draining);
        }
        let client = self.client.get().ok_or(NotReady::NeverConnected)?;
        match client.connection_state() {
            State::Connected => {}
            other => return Err(NotReady::Disconnected(other.to_string())),
        }
        if !self.subscribed.load(Ordering::SeqCst) {
            return Err(NotReady::NotSubscribed);
        }
        Ok(())
    }

    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
    }
}
