//! Runtime pieces shared by the two controller binaries, `fleet-reconciler`
//! and `fleet-operator`, kept out of either crate so that the operator does
//! not pull in every Score:
//!
//! * [`leader`]: leader election through a `coordination.k8s.io/v1` Lease
//!   (ADR 0013);
//! * [`http`]: `/metrics`, `/healthz` and `/readyz`.

pub mod http;
pub mod leader;
