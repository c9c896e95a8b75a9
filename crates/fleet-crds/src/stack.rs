//! `FleetStack` spec types.
//!
//! Conventions:
//! * every component is an `Option<...Spec>`: absent means "not deployed"
//!   (and the reconciler deletes what it created for it earlier);
//! * defaults live in `serde(default = ...)` so the CRD schema carries them
//!   and the API server fills them in; the same functions fill them when a
//!   Rust caller deserializes a partial spec;
//! * enums are unit-only (`Pod | Vm`): Kubernetes structural schemas accept a
//!   string enum, not a `oneOf` of shapes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::pod_overrides::PodOverrides;
use crate::status::FleetStackStatus;

/// Image the NATS StatefulSet runs unless `spec.nats.image` says otherwise.
/// Any image with `nats-server` (>= 2.10) on its PATH works: the container
/// command is `nats-server --config /etc/nats/nats.conf`.
pub const DEFAULT_NATS_IMAGE: &str = "fleetstack/nats-server:2.15.1";
pub const DEFAULT_ZITADEL_IMAGE: &str = "ghcr.io/zitadel/zitadel:v4.19.4";
/// Image of the setup Job's main container (crates/fleet-zitadel-bootstrap).
pub const DEFAULT_ZITADEL_BOOTSTRAP_IMAGE: &str = "fleetstack/fleet-zitadel-bootstrap:0.1.0";
pub const DEFAULT_CALLOUT_IMAGE: &str = "fleetstack/fleet-callout:0.1.0";
pub const DEFAULT_OPERATOR_IMAGE: &str = "fleetstack/fleet-operator:0.1.0";
pub const DEFAULT_AGENT_IMAGE: &str = "fleetstack/fleet-agent:0.1.0";

/// One fleet control plane: NATS, identity, auth callout, the fleet operator
/// runtime and the agents, converged by the fleet-reconciler.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[kube(
    group = "fleet.nationtech.io",
    version = "v1alpha1",
    kind = "FleetStack",
    namespaced,
    status = "FleetStackStatus",
    shortname = "fs",
    derive = "PartialEq",
    derive = "Default",
    doc = "A fleet control plane (NATS, identity, auth callout, operator, agents) converged by the fleet-reconciler.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Agents","type":"string","jsonPath":".status.agents.summary"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FleetStackSpec {
    /// The NATS server (StatefulSet). Every other component needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSpec>,
    /// The OIDC identity provider: a managed Zitadel or an external issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySpec>,
    /// The NATS auth-callout service (turns IdP tokens into NATS users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callout: Option<CalloutSpec>,
    /// The fleet operator runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorSpec>,
    /// Fleet agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentsSpec>,
    /// When true the reconciler writes nothing to the stack's children and
    /// reports a `Paused` condition.
    #[serde(default)]
    pub paused: bool,
    /// How often and how long the smoke probes run.
    #[serde(default)]
    pub probe: ProbeSpec,
}

// ---------------------------------------------------------------- NATS

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsSpec {
    /// Number of NATS servers. More than one forms a cluster (routes on 6222).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Container image; must have `nats-server` (>= 2.11: the reload check
    /// reads `server_metadata`) on its PATH.
    #[serde(default = "default_nats_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Compute resources of the nats container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComputeResources>,
    /// JetStream persistence.
    #[serde(default)]
    pub jetstream: JetStreamSpec,
    /// How clients authenticate to NATS.
    #[serde(default)]
    pub auth: NatsAuthSpec,
    /// TLS on the client port and on cluster routes (on by default).
    #[serde(default)]
    pub tls: NatsTlsSpec,
    /// A NodePort or LoadBalancer Service for clients outside the cluster
    /// (devices on other networks). Absent: NATS is reachable only inside
    /// the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeSpec>,
    /// Tags of every server (`server_tags`), e.g. for JetStream placement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_tags: Vec<String>,
    /// Extra nats.conf keys merged onto the reconciler's configuration
    /// (docs/adr/0073-nats-config-escape-hatch.md): each value is written
    /// verbatim as a nats.conf value (`2MB`, `true`, `"10s"` quoted, `{ ... }` for a block);
    /// a dotted key (`jetstream.max_buffered_msgs`) sets a key inside one of
    /// our blocks (`jetstream`, `cluster`). Keys the reconciler owns
    /// (listen, accounts, authorization, ...) are refused; the merged
    /// configuration is checked with `nats-server -t` before any pod sees it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Placement, registry, metadata and resource overrides of the NATS pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

impl Default for NatsSpec {
    fn default() -> Self {
        NatsSpec {
            replicas: 1,
            image: default_nats_image(),
            resources: None,
            jetstream: JetStreamSpec::default(),
            auth: NatsAuthSpec::default(),
            tls: NatsTlsSpec::default(),
            expose: None,
            server_tags: Vec::new(),
            config: BTreeMap::new(),
            pod: None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamSpec {
    /// Enables JetStream (on the storage `storage` names).
    #[serde(default)]
    pub enabled: bool,
    /// Where streams live: `File` (a PersistentVolumeClaim per server of
    /// `storageSize`) or `Memory` (no volume: memory streams only, capped by
    /// `maxMemoryStore`; their messages are lost when a server restarts;
    /// for sites without storage and for caches).
    #[serde(default)]
    pub storage: JetStreamStorage,
    /// Size of each server's JetStream volume (`storage: File`).
    #[serde(default = "default_js_size")]
    pub storage_size: Quantity,
    /// StorageClass of the JetStream volumes (cluster default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Limit of memory-backed stream storage per server
    /// (`max_memory_store`); nats-server's default (75% of the node's
    /// memory) when absent. Keep it below the nats container's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_store: Option<Quantity>,
    /// Limit of file-backed stream storage per server (`max_file_store`);
    /// `storageSize` when absent, and never more than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_store: Option<Quantity>,
    /// Most streams the FLEET account may create (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_streams: Option<i32>,
}

impl Default for JetStreamSpec {
    fn default() -> Self {
        JetStreamSpec {
            enabled: false,
            storage: JetStreamStorage::default(),
            storage_size: default_js_size(),
            storage_class_name: None,
            max_memory_store: None,
            max_file_store: None,
            max_streams: None,
        }
    }
}

/// JetStream's storage (`spec.nats.jetstream.storage`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
pub enum JetStreamStorage {
    /// File streams on a PersistentVolumeClaim per server (and memory
    /// streams).
    #[default]
    File,
    /// Memory streams only; no volume is claimed.
    Memory,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NatsAuthSpec {
    /// `UserPass` (generated passwords) or `Callout` (IdP tokens).
    #[serde(default)]
    pub mode: NatsAuthMode,
}

/// How NATS clients authenticate.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
pub enum NatsAuthMode {
    /// Static users with generated passwords (kept in a write-once Secret).
    #[default]
    UserPass,
    /// Users are authorized by the auth-callout service against the IdP.
    Callout,
}

/// TLS of the NATS listeners (docs/adr/0060-stack-ca-and-certificate-rotation.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NatsTlsSpec {
    /// `Enabled` (default): the client port and routes speak TLS only and
    /// every client we ship verifies the server. `Disabled`: plaintext,
    /// reported as a warning condition in status.
    #[serde(default)]
    pub mode: TlsMode,
    /// A CA Secret of type `kubernetes.io/tls` (`tls.crt`, `tls.key`, the
    /// key in PKCS#8: cert-manager `privateKey.encoding: PKCS8`) that signs
    /// the server certificates, e.g. a company CA or one cert-manager
    /// keeps. Absent: the reconciler generates a CA once, in the Secret
    /// `<stack>-ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretRef>,
}

/// Whether a listener speaks TLS.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
pub enum TlsMode {
    /// TLS only; plaintext connections are refused.
    #[default]
    Enabled,
    /// Plaintext (passwords and tokens cross the network in clear). An
    /// explicit opt-out, reported as a warning.
    Disabled,
}

/// Lowest and highest port of Kubernetes' default NodePort range.
pub const NODE_PORT_MIN: i32 = 30000;
pub const NODE_PORT_MAX: i32 = 32767;

/// The NATS endpoint for clients outside the cluster
/// (docs/adr/0061-exposing-nats-outside-the-cluster.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposeSpec {
    /// `NodePort` (default) or `LoadBalancer`.
    #[serde(default, rename = "type")]
    pub type_: ExposeType,
    /// A fixed node port for the client port (type `NodePort`); absent:
    /// Kubernetes picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
    /// Addresses clients outside the cluster dial, as `host`, `host:port`,
    /// `1.2.3.4:30422` or `[fd00::1]:30422`. They are announced to clients
    /// (`client_advertise`), put in the server certificate and published in
    /// `status.endpoints`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub advertise: Vec<String>,
    /// Also expose a WebSocket port (TLS), for devices behind proxies that
    /// only pass HTTP(S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketExposeSpec>,
    /// Whether the smoke probe also connects through every advertised
    /// address, TLS verified against the stack's CA and that address, as a
    /// device does (default true). Set false when those addresses cannot be
    /// reached from inside the cluster (a NAT without hairpinning).
    #[serde(default = "default_true")]
    pub probe: bool,
}

fn default_true() -> bool {
    true
}

impl Default for ExposeSpec {
    /// As an empty `expose: {}` reads: a NodePort Kubernetes picks, probed.
    fn default() -> Self {
        ExposeSpec {
            type_: ExposeType::default(),
            node_port: None,
            advertise: Vec::new(),
            websocket: None,
            probe: true,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
pub enum ExposeType {
    /// A port on every node.
    #[default]
    NodePort,
    /// A load balancer address from the cluster's provider.
    LoadBalancer,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketExposeSpec {
    /// A fixed node port for the WebSocket port (type `NodePort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
}

/// Requests and limits (`cpu`, `memory`, ...) like a container's `resources`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResources {
    /// What the scheduler reserves for the container, by resource name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    /// The most the container may use, by resource name (memory over the
    /// limit is OOM-killed, CPU is throttled).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
}

// ---------------------------------------------------------------- identity

/// Exactly one of `managed` or `external` (checked by the reconciler: the
/// 1.20 schema has no way to say "exactly one").
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// A Zitadel deployed and owned by this stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedZitadelSpec>,
    /// An existing OIDC issuer (Zitadel or another provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalIdentitySpec>,
    /// Secret with one key per agent id (`<stack>-agent-<i>`) holding that
    /// agent's OAuth client secret; its client id is the agent id. Used
    /// with `nats.auth.mode: Callout`. Default: `<stack>-agent-oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_credentials: Option<SecretRef>,
    /// OAuth scope agents (and the identity probe) request with their
    /// tokens (Zitadel: `openid urn:zitadel:iam:org:project:id:<id>:aud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub scope: Option<String>,
}

impl IdentitySpec {
    /// Name of the per-agent client-secret Secret.
    pub fn agent_credentials_secret(&self, stack: &str) -> String {
        self.agent_credentials
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| format!("{stack}-agent-oidc"))
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedZitadelSpec {
    /// Zitadel container image.
    #[serde(default = "default_zitadel_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// The domain users and agents reach Zitadel on (its `ExternalDomain`).
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ))]
    #[schemars(length(min = 1, max = 253))]
    pub external_domain: String,
    /// Zitadel's PostgreSQL.
    #[serde(default)]
    pub database: ZitadelDatabaseSpec,
    /// fleet-zitadel-bootstrap container image: the setup Job's main
    /// container, which stores the provisioner's Personal Access Token that
    /// `zitadel setup` writes into the Secret `<stack>-zitadel-provisioner`.
    #[serde(default = "default_zitadel_bootstrap_image")]
    #[schemars(length(min = 1))]
    pub bootstrap_image: String,
    /// Placement, registry, metadata and resource overrides of the Zitadel
    /// pods (the server and its init and setup Jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ZitadelDatabaseSpec {
    /// `Bundled` (a PostgreSQL owned by the stack) or `External`.
    #[serde(default)]
    pub mode: DatabaseMode,
    /// Secret with the connection settings; required when `mode: External`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Placement, registry, metadata and resource overrides of the bundled
    /// PostgreSQL pod (`mode: Bundled` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
pub enum DatabaseMode {
    /// A PostgreSQL owned by the stack.
    #[default]
    Bundled,
    /// An existing PostgreSQL (14-18) described by `secretRef`.
    External,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIdentitySpec {
    /// OIDC issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub issuer: String,
    /// Secret holding `clientId` and `clientSecret` for client_credentials.
    pub client_credentials: SecretRef,
}

/// A Secret in the FleetStack's namespace.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

// ---------------------------------------------------------------- callout, operator

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalloutSpec {
    /// fleet-callout container image.
    #[serde(default = "default_callout_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Callout replicas; they share the auth requests (a NATS queue group).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// `aud` every agent access token must carry (Zitadel: the project id).
    /// Required with `identity.external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub audience: Option<String>,
    /// Token claim holding the agent id: `sub` when absent; `azp` or
    /// `client_id` with Zitadel, whose `sub` is a numeric user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub identity_claim: Option<String>,
    /// Secret with `clientId` and `clientSecret` the callout uses to
    /// introspect opaque tokens. Absent: only JWT access tokens are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_credentials: Option<SecretRef>,
    /// Placement, registry, metadata and resource overrides of the callout pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorSpec {
    /// fleet-operator container image.
    #[serde(default = "default_operator_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Operator replicas; more than one elect a leader through a Lease.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Placement, registry, metadata and resource overrides of the operator pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

// ---------------------------------------------------------------- agents

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentsSpec {
    /// Where agents run. `Vm` is reserved and refused until implemented.
    #[serde(default)]
    pub target: AgentTarget,
    /// Number of agents; agent ids are `<stack>-agent-0` .. `-<replicas-1>`.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// fleet-agent container image.
    #[serde(default = "default_agent_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Extra labels for agent pods (and their fleet identity).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Compute resources of each agent container (small defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComputeResources>,
    /// Placement, registry, metadata and resource overrides of the agent pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

impl Default for AgentsSpec {
    fn default() -> Self {
        AgentsSpec {
            target: AgentTarget::Pod,
            replicas: 1,
            image: default_agent_image(),
            labels: BTreeMap::new(),
            resources: None,
            pod: None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema, Default)]
pub enum AgentTarget {
    /// Agents as pods of a StatefulSet in the stack's namespace.
    #[default]
    Pod,
    /// Reserved: agents on virtual machines (not implemented).
    Vm,
}

// ---------------------------------------------------------------- probes

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// Seconds between smoke probes of a Ready stack.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 5, max = 86400))]
    pub interval_seconds: i32,
    /// Deadline of one smoke probe (connect + round trip + healthz).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: i32,
    /// How long a new generation may stay not-Ready before the stack is
    /// reported `Stalled` (reason `Timeout`). Reconciling continues.
    #[serde(default = "default_ready_deadline")]
    #[schemars(range(min = 10, max = 86400))]
    pub ready_deadline_seconds: i32,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            interval_seconds: default_interval(),
            timeout_seconds: default_timeout(),
            ready_deadline_seconds: default_ready_deadline(),
        }
    }
}

fn one() -> i32 {
    1
}
fn default_nats_image() -> String {
    DEFAULT_NATS_IMAGE.into()
}
fn default_zitadel_image() -> String {
    DEFAULT_ZITADEL_IMAGE.into()
}
fn default_zitadel_bootstrap_image() -> String {
    DEFAULT_ZITADEL_BOOTSTRAP_IMAGE.into()
}
fn default_callout_image() -> String {
    DEFAULT_CALLOUT_IMAGE.into()
}
fn default_operator_image() -> String {
    DEFAULT_OPERATOR_IMAGE.into()
}
fn default_agent_image() -> String {
    DEFAULT_AGENT_IMAGE.into()
}
fn default_js_size() -> Quantity {
    Quantity("1Gi".into())
}
fn default_interval() -> i32 {
    30
}
fn default_timeout() -> i32 {
    5
}
fn default_ready_deadline() -> i32 {
    600
}
