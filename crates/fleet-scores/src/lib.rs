//! Score / Topology / Interpret machinery and the component Scores.
//!
//! * A [`Score`] is a typed description of one component's desired state
//!   (e.g. [`nats::FleetNatsScore`]). It builds its desired objects with a
//!   pure function (unit-tested without a cluster).
//! * An [`Interpret`] executes a Score against a [`Topology`]: applies the
//!   desired objects in a fixed order (skipping unchanged ones), deletes the
//!   component's objects that are no longer desired, then runs the smoke
//!   probe, and returns an [`Outcome`].
//! * A [`Component`] is one of the closed set of FleetStack components;
//!   its name, condition, owned kinds and RBAC are exhaustive matches.
//! * A [`plan::Plan`] holds one step per component (a boxed Score, or why
//!   not) and one runner executes it in dependency order.
//! * [`resources::Resources`] is how every Score applies its objects and
//!   prunes what it no longer desires.
//! * A Topology is a compile-time type: [`K8sTopology`] (a Kubernetes
//!   cluster reached through a kube `Client`). How a probe reaches a Service
//!   (cluster DNS or ClusterIP) is the Topology's business.
//!
//! See docs/adr/0010-score-topology-interpret.md.

pub mod agents;
pub mod apply;
pub mod callout;
pub mod component;
pub mod drift;
pub mod http_probe;
pub mod labels;
pub mod nats;
pub mod operator;
pub mod plan;
pub mod pod;
pub mod pod_overrides;
pub mod rejection;
pub mod resources;
pub mod rollout;
pub mod scheduling;
pub mod score;
pub mod secret;
pub mod secret_loss;
pub mod service_route;
pub mod stack_ref;
pub mod test_issuer;
pub mod tls;
pub mod topology;
pub mod write_once;
pub mod zitadel;

pub use component::Component;
pub use score::{Interpret, InterpretError, Outcome, ProbeOutcome, Published, Score, Units};
pub use stack_ref::StackRef;
pub use topology::{K8sTopology, KubernetesTopology, ProbeRoute, Topology};
