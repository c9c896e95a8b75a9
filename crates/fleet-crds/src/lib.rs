//! The FleetStack API (`fleet.nationtech.io/v1alpha1`).
//!
//! * [`stack`] holds the `FleetStack` spec: one optional section per component
//!   (a section that is present means "deploy this component").
//! * [`status`] holds the status contract read by kubectl, Flux and Argo CD
//!   (see docs/adr/0011-status-contract.md).
//! * [`validate`] holds the checks the OpenAPI schema of a Kubernetes 1.20
//!   API server cannot express (no CEL there); failures carry the field path.
//!   [`validate_tls`] holds those of `spec.nats.tls` and `spec.nats.expose`.
//! * [`crdgen`] renders every CRD of the project as YAML (the `crdgen` binary
//!   and the drift test use it).

pub mod crdgen;
pub mod enrollment_token;
pub mod fleet_agent;
pub mod fleet_command;
pub mod pod_overrides;
pub mod stack;
pub mod status;
pub mod validate;
pub mod validate_tls;

pub use enrollment_token::{
    FleetEnrollmentToken, FleetEnrollmentTokenSpec, FleetEnrollmentTokenStatus, SECRET_HASH_PREFIX,
    TokenSpecError,
};
pub use fleet_agent::{
    FleetAgent, FleetAgentSpec, FleetAgentStatus, STACK_LABEL, agent_object_name,
};
pub use fleet_command::{
    AgentOutcome, AgentResult, CommandSummary, FleetCommand, FleetCommandName, FleetCommandSpec,
    FleetCommandStatus,
};
pub use stack::*;
pub use status::*;
pub use validate::{MAX_STACK_NAME, SpecError, validate_name, validate_spec};
pub use validate_tls::{
    AddressError, AdvertiseAddress, AdvertiseHost, check_nats_tls_and_expose,
    parse_advertise_address,
};

/// API group of every FleetStack resource.
pub const GROUP: &str = "fleet.nationtech.io";
/// The only served version.
pub const VERSION: &str = "v1alpha1";
