//! What every Score of one stack shares: which stack, where, its owner
//! reference and the probe deadline. Resolved once per reconcile and
//! borrowed by every Score, never unpacked into per-Score copies.

use std::time::Duration;

use fleet_crds::{FleetStack, TlsMode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

#[derive(Debug, Clone)]
pub struct StackRef {
    /// The FleetStack's name: the prefix of every child's name and the
    /// `app.kubernetes.io/instance` label.
    pub name: String,
    pub namespace: String,
    /// ownerReference to the FleetStack (controller=true): garbage
    /// collection removes every child with the stack.
    pub owner: OwnerReference,
    /// Deadline of one smoke probe (`spec.probe.timeoutSeconds`).
    pub probe_timeout: Duration,
    /// Whether the stack's NATS speaks TLS (`spec.nats.tls.mode`): every
    /// workload and probe that connects to NATS dials `tls://` and verifies
    /// the server against the stack's CA ([`crate::nats::access`]).
    pub nats_tls: bool,
}

impl StackRef {
    pub fn new(stack: &FleetStack, owner: OwnerReference) -> Self {
        StackRef {
            name: stack.name_any(),
            namespace: stack.namespace().unwrap_or_default(),
            owner,
            probe_timeout: Duration::from_secs(
                u64::try_from(stack.spec.probe.timeout_seconds).unwrap_or(5),
            ),
            nats_tls: stack.spec.nats.as_ref().is_some_and(|n| match n.tls.mode {
                TlsMode::Enabled => true,
                TlsMode::Disabled => false,
            }),
        }
    }
}
