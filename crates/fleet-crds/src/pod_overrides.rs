//! `PodOverrides`: the one API type for "where and how a component's pods
//! run" (issue 17 item 1), the same under every workload (`spec.nats.pod`,
//! `spec.identity.managed.pod`, `spec.identity.managed.database.pod`,
//! `spec.callout.pod`, `spec.operator.pod`, `spec.agents.pod`).
//!
//! It holds placement (nodeSelector, affinity, tolerations, topology
//! spread, priority class), registry credentials, extra metadata and
//! per-container resources, and nothing else: no field of it can touch a
//! security context, a volume, the command or the selector, so an override
//! cannot weaken the restricted Pod Security settings every Score sets
//! (docs/adr/0072-pod-overrides.md). fleet-scores' `pod_overrides` module
//! merges it onto each pod template; the checks live in
//! [`crate::validate::overrides`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, Toleration, TopologySpreadConstraint,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stack::ComputeResources;

/// Where and how a component's pods run. Every field is optional; what is
/// absent keeps the component's default.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Node labels a node must carry to run the pods (the pod's
    /// `nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// The pod's `affinity` (Kubernetes core/v1 Affinity). Each part given
    /// (`nodeAffinity`, `podAffinity`, `podAntiAffinity`) replaces the
    /// component's default for that part; NATS defaults to preferring one
    /// server per node and zone. See the Kubernetes API reference for the
    /// fields below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Taints the pods tolerate (Kubernetes core/v1 Toleration), e.g. to
    /// run on dedicated nodes. See the Kubernetes API reference for the
    /// fields below.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// How the pods spread across topology domains (Kubernetes core/v1
    /// TopologySpreadConstraint); a constraint without `labelSelector`
    /// selects the component's own pods. See the Kubernetes API reference
    /// for the fields below.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the pods (must exist in the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Secrets (in the stack's namespace) with registry credentials to
    /// pull the images, e.g. from a mirror on an air-gapped site. See the
    /// Kubernetes API reference (LocalObjectReference) for the fields below.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Extra labels on the pods. Labels the reconciler sets
    /// (`app.kubernetes.io/name`, `instance`, `component`, `managed-by`,
    /// `part-of`) and `fleet.nationtech.io/` keys are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the pods (`fleet.nationtech.io/` keys are the
    /// reconciler's and are refused).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Annotations on the component's ServiceAccount, e.g. a cloud
    /// workload identity (`eks.amazonaws.com/role-arn`). Not available for
    /// Zitadel and its database, which run without a ServiceAccount of
    /// their own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,
    /// Compute resources by container name; replaces that container's
    /// defaults. Containers: nats `nats`; callout `callout`; operator
    /// `operator`; agents `agent`; managed Zitadel `zitadel`,
    /// `zitadel-setup`, `bootstrap`; its database `postgres`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ComputeResources>,
}

/// The workloads that take a [`PodOverrides`], with the facts validation
/// needs about each: where its overrides sit in the spec and which
/// containers it runs (fleet-scores' tests check these against the built
/// pods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Nats,
    Zitadel,
    ZitadelDatabase,
    Callout,
    Operator,
    Agents,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Nats,
        Workload::Zitadel,
        Workload::ZitadelDatabase,
        Workload::Callout,
        Workload::Operator,
        Workload::Agents,
    ];

    /// Field path of this workload's overrides.
    pub const fn path(self) -> &'static str {
        match self {
            Workload::Nats => "spec.nats.pod",
            Workload::Zitadel => "spec.identity.managed.pod",
            Workload::ZitadelDatabase => "spec.identity.managed.database.pod",
            Workload::Callout => "spec.callout.pod",
            Workload::Operator => "spec.operator.pod",
            Workload::Agents => "spec.agents.pod",
        }
    }

    /// Names of the containers of this workload's pods (init containers
    /// included): the keys `resources` accepts.
    pub const fn containers(self) -> &'static [&'static str] {
        match self {
            Workload::Nats => &["nats"],
            Workload::Zitadel => &["zitadel", "zitadel-setup", "bootstrap"],
            Workload::ZitadelDatabase => &["postgres"],
            Workload::Callout => &["callout"],
            Workload::Operator => &["operator"],
            Workload::Agents => &["agent"],
        }
    }

    /// Whether the workload has a ServiceAccount of its own to annotate.
    pub const fn has_service_account(self) -> bool {
        match self {
            Workload::Nats | Workload::Callout | Workload::Operator | Workload::Agents => true,
            Workload::Zitadel | Workload::ZitadelDatabase => false,
        }
    }

    /// The container whose resources the component's own `resources`
    /// field sets (`spec.nats.resources`, `spec.agents.resources`), if it
    /// has one: setting both is refused.
    pub const fn main_resources_field(self) -> Option<(&'static str, &'static str)> {
        match self {
            Workload::Nats => Some(("nats", "spec.nats.resources")),
            Workload::Agents => Some(("agent", "spec.agents.resources")),
            Workload::Zitadel
            | Workload::ZitadelDatabase
            | Workload::Callout
            | Workload::Operator => None,
        }
    }
}

/// Label keys the reconciler sets on every pod (its selectors among them).
pub const OWNED_LABELS: [&str; 5] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
];

/// Prefix of the labels and annotations the reconciler keeps for itself
/// (config and credential hashes, ...).
pub const OWNED_PREFIX: &str = "fleet.nationtech.io/";
