//! Wire protocol of the fleet, shared by the agent, the operator runtime and
//! the smoke probes.
//!
//! - [`AgentId`]: a validated agent id (a single NATS subject token).
//! - [`subjects`]: `fleet.agent.<id>.cmd.<command>`, `fleet.agent.<id>.heartbeat`
//!   and the operator's wildcards.
//! - [`Command`] and [`CommandSpec`]: the v1 commands (`ping`, `info`) and
//!   their argument/reply types.
//! - The envelope: [`encode_request`] / [`decode_request`] (agent side),
//!   [`encode_reply`] / [`decode_reply`] (requester side), versioned by
//!   [`PROTOCOL_VERSION`] and bounded by [`MAX_PAYLOAD_BYTES`]; errors are
//!   typed [`ErrorBody`] `{code, message}` replies.
//! - [`Heartbeat`] with [`encode_heartbeat`] / [`decode_heartbeat`].
//! - [`device`]: the enrollment and key-rotation requests a device sends in
//!   its CONNECT `auth_token` (ADR 0080).
//! - With the `client` feature, [`client`]: `ping`, `info` and `ping_all`
//!   for requesters, retrying NoResponders within a deadline.

mod agent_id;
mod command;
pub mod device;
mod envelope;
mod payloads;
pub mod subjects;

#[cfg(feature = "client")]
pub mod client;

pub use agent_id::{AgentId, AgentIdError, MAX_AGENT_ID_LEN};
pub use command::{
    Command, CommandSpec, InfoArgs, InfoCommand, PingArgs, PingCommand, UnknownCommand,
};
pub use envelope::{
    ErrorBody, ErrorCode, MAX_PAYLOAD_BYTES, Outcome, PROTOCOL_VERSION, ProtoError, Reply, Request,
    decode_heartbeat, decode_reply, decode_request, encode_heartbeat, encode_reply, encode_request,
};
pub use payloads::{ConnectionStats, Heartbeat, InfoReply, PingReply};
