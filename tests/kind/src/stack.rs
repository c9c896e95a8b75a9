//! Helpers to create FleetStacks and read their status in e2e tests.

use std::time::Duration;

use fleet_crds::{
    AgentsSpec, CalloutSpec, FleetStack, FleetStackSpec, IdentitySpec, NatsAuthMode, NatsSpec,
    OperatorSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::{Result, api_err, poll};

/// Server-side applies a FleetStack with the given spec (as a user's
/// `kubectl apply` would) and returns it as stored.
pub async fn apply_stack(
    api: &Api<FleetStack>,
    name: &str,
    spec: FleetStackSpec,
) -> Result<FleetStack> {
    let stack = FleetStack::new(name, spec);
    api.patch(
        name,
        &PatchParams::apply("e2e-user").force(),
        &Patch::Apply(&stack),
    )
    .await
    .map_err(api_err(format!("applying FleetStack {name}")))
}

pub fn condition<'a>(stack: &'a FleetStack, type_: &str) -> Option<&'a Condition> {
    stack
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// A one-line picture of a stack's status for failure messages.
pub fn describe(stack: &FleetStack) -> String {
    let Some(status) = &stack.status else {
        return "no status".into();
    };
    let conds: Vec<String> = status
        .conditions
        .iter()
        .map(|c| format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message))
        .collect();
    format!(
        "generation {:?} observedGeneration {:?}; {}",
        stack.metadata.generation,
        status.observed_generation,
        conds.join("; ")
    )
}

/// Waits until `pred` holds for the stack, reporting its status if it never does.
pub async fn wait_stack(
    api: &Api<FleetStack>,
    name: &str,
    what: &str,
    deadline: Duration,
    pred: impl Fn(&FleetStack) -> bool,
) -> Result<FleetStack> {
    poll(&format!("FleetStack {name} {what}"), deadline, || async {
        let stack = api.get(name).await.map_err(|e| e.to_string())?;
        if pred(&stack) {
            Ok(Some(stack))
        } else {
            Err(describe(&stack))
        }
    })
    .await
}

/// True when Ready=True for the current generation.
pub fn is_ready(stack: &FleetStack) -> bool {
    let generation = stack.metadata.generation;
    condition(stack, "Ready")
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
}

/// True when Ready=False (the stack noticed a failure).
pub fn is_not_ready(stack: &FleetStack) -> bool {
    condition(stack, "Ready").is_some_and(|c| c.status == "False")
}

/// The whole stack with NATS in callout mode: `identity`, a callout
/// (`audience` as given), the operator runtime and `agents` agents, all on
/// the project's images.
pub fn callout_stack(
    identity: IdentitySpec,
    audience: Option<&str>,
    agents: i32,
) -> FleetStackSpec {
    let mut nats = NatsSpec::default();
    nats.auth.mode = NatsAuthMode::Callout;
    FleetStackSpec {
        nats: Some(nats),
        identity: Some(identity),
        callout: Some(CalloutSpec {
            pod: None,
            image: crate::image("fleet-callout"),
            replicas: 1,
            audience: audience.map(str::to_string),
            identity_claim: None,
            introspection_credentials: None,
        }),
        operator: Some(OperatorSpec {
            pod: None,
            image: crate::image("fleet-operator"),
            replicas: 1,
        }),
        agents: Some(AgentsSpec {
            replicas: agents,
            ..AgentsSpec::default()
        }),
        ..FleetStackSpec::default()
    }
}

/// `spec.nats.expose` advertising the node's address: how the tests reach
/// NATS from outside the cluster, as a device does (TLS verified with the
/// CA from `status.endpoints`).
pub async fn expose_on_node(client: &kube::Client) -> Result<fleet_crds::ExposeSpec> {
    Ok(fleet_crds::ExposeSpec {
        advertise: vec![crate::netns::node_address(client).await?],
        ..fleet_crds::ExposeSpec::default()
    })
}

/// Connects to the stack's exposed NATS endpoint (`status.endpoints[0]`)
/// as `user`, verifying the server with the CA published there.
pub async fn connect_exposed(
    stack: &FleetStack,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client> {
    let endpoint = stack
        .status
        .as_ref()
        .and_then(|s| s.endpoints.first())
        .ok_or_else(|| crate::E2eError::Command {
            what: "reading status.endpoints".into(),
            output: describe(stack),
        })?;
    let options = match &endpoint.ca_cert {
        Some(pem) => {
            let path = fleet_scores::nats::access::ca_file_for(pem).map_err(|(p, e)| {
                crate::E2eError::Command {
                    what: format!("writing the CA to {}", p.display()),
                    output: e.to_string(),
                }
            })?;
            fleet_proto::client::ClientTls::with_ca_file(path).apply(options)
        }
        None => options,
    };
    options
        .connection_timeout(Duration::from_secs(5))
        .connect(&endpoint.url)
        .await
        .map_err(|e| crate::E2eError::Command {
            what: format!("connecting to {}", endpoint.url),
            output: e.to_string(),
        })
}
