//! Resolve: which Score serves each component of a FleetStack, with every
//! cross-component wiring decided here (a pure function of the validated
//! spec, unit-tested without a cluster):
//!
//! * the callout validates tokens of the identity component's issuer;
//! * in callout mode agents log in with tokens from that issuer, each with
//!   its own client secret, instead of the shared NATS password;
//! * the operator expects exactly the agents the agents Score deploys.

use fleet_crds::{FleetStack, NatsAuthMode};
use fleet_scores::agents::{AgentNames, AgentOidc, FleetAgentScore};
use fleet_scores::callout::{CalloutOidc, FleetCalloutScore};
use fleet_scores::nats::FleetNatsScore;
use fleet_scores::operator::FleetOperatorScore;
pub use fleet_scores::plan::Unresolved;
use fleet_scores::plan::{Plan, Step};
use fleet_scores::pod::EnvSource;
use fleet_scores::tls::CertPolicy;
use fleet_scores::zitadel::{self, FleetZitadelScore};
use fleet_scores::{Component, K8sTopology, Score, StackRef};

/// The facts several components share, decided once per reconcile.
#[derive(Debug, Clone)]
pub struct Shared {
    pub stack: StackRef,
    /// `nats.auth.mode: Callout`: agents log in with identity tokens.
    pub callout_mode: bool,
    /// `identity.managed`: the reconciler runs Zitadel and provisions it.
    pub managed: bool,
    /// The issuer the callout validates and agents obtain tokens from.
    pub issuer: Option<String>,
    /// The agent ids the stack must have (empty without agents).
    pub expected_agents: Vec<String>,
    /// Lifetimes of the certificates the NATS Score issues.
    pub cert_policy: CertPolicy,
}

impl Shared {
    pub fn new(stack: &FleetStack, r: StackRef) -> Self {
        let spec = &stack.spec;
        let issuer = spec.identity.as_ref().and_then(zitadel::issuer_of);
        Shared {
            expected_agents: spec
                .agents
                .as_ref()
                .map(|a| AgentNames::new(&r.name).agent_ids(a.replicas))
                .unwrap_or_default(),
            callout_mode: spec
                .nats
                .as_ref()
                .is_some_and(|n| n.auth.mode == NatsAuthMode::Callout),
            managed: spec.identity.as_ref().is_some_and(|i| i.managed.is_some()),
            issuer,
            stack: r,
            cert_policy: CertPolicy::default(),
        }
    }

    /// These facts with the controller's certificate lifetimes.
    pub fn with_cert_policy(mut self, cert_policy: CertPolicy) -> Self {
        self.cert_policy = cert_policy;
        self
    }
}

/// The stack's plan: one step per component, each resolved below.
pub fn plan(stack: &FleetStack, shared: &Shared) -> Plan<K8sTopology> {
    Plan::new(|component| match component {
        Component::Nats => step(nats(stack, shared).map(Ok)),
        Component::Identity => step(identity(stack, shared).map(Ok)),
        Component::Callout => step(callout(stack, shared)),
        Component::Operator => step(operator(stack, shared).map(Ok)),
        Component::Agents => step(agents(stack, shared)),
    })
}

fn step<S: Score<K8sTopology> + 'static>(
    resolved: Option<Result<S, Unresolved>>,
) -> Step<K8sTopology> {
    match resolved {
        None => Step::Absent,
        Some(Err(unresolved)) => Step::Unresolved(unresolved),
        Some(Ok(score)) => Step::Run(Box::new(score)),
    }
}

pub fn nats(stack: &FleetStack, shared: &Shared) -> Option<FleetNatsScore> {
    Some(FleetNatsScore {
        stack: shared.stack.clone(),
        spec: stack.spec.nats.clone()?,
        cert_policy: shared.cert_policy,
    })
}

pub fn identity(stack: &FleetStack, shared: &Shared) -> Option<FleetZitadelScore> {
    let spec = stack.spec.identity.as_ref()?;
    Some(FleetZitadelScore {
        stack: shared.stack.clone(),
        spec: spec.clone(),
        probe_scope: spec.scope.clone(),
        // A managed Zitadel gets a machine user per agent only when agents
        // log in with tokens.
        expected_agents: if shared.callout_mode {
            shared.expected_agents.clone()
        } else {
            Vec::new()
        },
        agent_secret: spec.agent_credentials_secret(&shared.stack.name),
    })
}

/// A setting published by a managed Zitadel in its project ConfigMap.
fn from_project(stack: &str, key: &str) -> EnvSource {
    EnvSource::ConfigMapKey {
        name: zitadel::project_config_map(stack),
        key: key.into(),
    }
}

pub fn callout(
    stack: &FleetStack,
    shared: &Shared,
) -> Option<Result<FleetCalloutScore, Unresolved>> {
    let spec = stack.spec.callout.as_ref()?;
    let Some(issuer) = shared.issuer.clone() else {
        return Some(Err(Unresolved {
            reason: "NoIdentity",
            message: "callout: spec.identity names no issuer".into(),
        }));
    };
    // Validation requires the audience with an external issuer; a managed
    // Zitadel publishes its project id (docs/adr/0037).
    let audience = match (&spec.audience, shared.managed) {
        (Some(a), _) => EnvSource::Literal(a.clone()),
        (None, true) => from_project(&shared.stack.name, zitadel::PROJECT_ID_KEY),
        (None, false) => {
            return Some(Err(Unresolved {
                reason: "AudienceUnknown",
                message: "callout: set spec.callout.audience".into(),
            }));
        }
    };
    // Zitadel's `sub` is a numeric user id; its access tokens carry the
    // machine user's name (= the agent id) in `client_id`.
    let identity_claim = spec
        .identity_claim
        .clone()
        .or_else(|| shared.managed.then(|| "client_id".to_string()));
    Some(Ok(FleetCalloutScore {
        stack: shared.stack.clone(),
        spec: spec.clone(),
        oidc: CalloutOidc {
            issuer,
            audience,
            identity_claim,
            introspection_secret: spec
                .introspection_credentials
                .as_ref()
                .map(|s| s.name.clone()),
        },
    }))
}

/// The operator expects exactly the agents the agents Score deploys; it
/// checks them in its follow-up, once the agents run (docs/adr/0052).
pub fn operator(stack: &FleetStack, shared: &Shared) -> Option<FleetOperatorScore> {
    Some(FleetOperatorScore {
        stack: shared.stack.clone(),
        spec: stack.spec.operator.clone()?,
        expected_agents: shared.expected_agents.clone(),
        nats_servers: stack.spec.nats.as_ref().map_or(0, |n| n.replicas),
    })
}

pub fn agents(stack: &FleetStack, shared: &Shared) -> Option<Result<FleetAgentScore, Unresolved>> {
    let spec = stack.spec.agents.as_ref()?;
    let oidc = if shared.callout_mode {
        match (stack.spec.identity.as_ref(), &shared.issuer) {
            (Some(identity), Some(issuer)) => Some(AgentOidc {
                issuer: issuer.clone(),
                scope: match (&identity.scope, shared.managed) {
                    (Some(scope), _) => Some(EnvSource::Literal(scope.clone())),
                    (None, true) => Some(from_project(&shared.stack.name, zitadel::SCOPE_KEY)),
                    (None, false) => None,
                },
                secret: identity.agent_credentials_secret(&shared.stack.name),
            }),
            _ => {
                return Some(Err(Unresolved {
                    reason: "NoIdentity",
                    message: "agents: callout mode needs spec.identity to issue agent tokens"
                        .into(),
                }));
            }
        }
    } else {
        None
    };
    Some(Ok(FleetAgentScore {
        stack: shared.stack.clone(),
        spec: spec.clone(),
        oidc,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_crds::{
        AgentsSpec, CalloutSpec, ExternalIdentitySpec, FleetStackSpec, IdentitySpec, NatsSpec,
        OperatorSpec, SecretRef,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "fleet.nationtech.io/v1alpha1".into(),
            kind: "FleetStack".into(),
            name: "demo".into(),
            uid: "uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn stack(spec: FleetStackSpec) -> (FleetStack, Shared) {
        let mut s = FleetStack::new("demo", spec);
        s.metadata.namespace = Some("fleet".into());
        let r = Shared::new(&s, StackRef::new(&s, owner()));
        (s, r)
    }

    fn callout_spec() -> FleetStackSpec {
        let mut nats = NatsSpec::default();
        nats.auth.mode = NatsAuthMode::Callout;
        FleetStackSpec {
            nats: Some(nats),
            identity: Some(IdentitySpec {
                external: Some(ExternalIdentitySpec {
                    issuer: "http://issuer.fleet.svc.cluster.local:8080/".into(),
                    client_credentials: SecretRef {
                        name: "probe".into(),
                    },
                }),
                scope: Some("openid".into()),
                ..Default::default()
            }),
            callout: Some(CalloutSpec {
                pod: None,
                image: "c".into(),
                replicas: 1,
                audience: Some("fleet-nats".into()),
                identity_claim: Some("client_id".into()),
                introspection_credentials: None,
            }),
            operator: Some(OperatorSpec {
                pod: None,
                image: "o".into(),
                replicas: 1,
            }),
            agents: Some(AgentsSpec {
                replicas: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn callout_mode_wires_issuer_into_callout_and_agents() {
        let (s, r) = stack(callout_spec());
        let callout = callout(&s, &r).unwrap().unwrap();
        assert_eq!(
            callout.oidc.issuer,
            "http://issuer.fleet.svc.cluster.local:8080"
        );
        assert_eq!(
            callout.oidc.audience,
            EnvSource::Literal("fleet-nats".into())
        );
        assert_eq!(callout.oidc.identity_claim.as_deref(), Some("client_id"));
        let agents = agents(&s, &r).unwrap().unwrap();
        let oidc = agents.oidc.unwrap();
        assert_eq!(
            oidc.issuer, callout.oidc.issuer,
            "agents and callout agree on the issuer"
        );
        assert_eq!(oidc.secret, "demo-agent-oidc");
        assert_eq!(oidc.scope, Some(EnvSource::Literal("openid".into())));
        assert_eq!(
            identity(&s, &r).unwrap().expected_agents,
            ["demo-agent-0", "demo-agent-1"]
        );
        assert_eq!(
            operator(&s, &r).unwrap().expected_agents,
            ["demo-agent-0", "demo-agent-1"]
        );
        assert_eq!(
            identity(&s, &r).unwrap().probe_scope.as_deref(),
            Some("openid")
        );
    }

    #[test]
    fn user_pass_mode_keeps_agents_on_the_nats_password() {
        let mut spec = callout_spec();
        spec.nats = Some(NatsSpec::default());
        spec.callout = None;
        let (s, r) = stack(spec);
        assert!(agents(&s, &r).unwrap().unwrap().oidc.is_none());
        assert!(callout(&s, &r).is_none());
    }

    #[test]
    fn managed_identity_publishes_audience_and_scope_to_callout_and_agents() {
        let mut spec = callout_spec();
        if let Some(c) = spec.callout.as_mut() {
            c.audience = None;
            c.identity_claim = None;
        }
        if let Some(i) = spec.identity.as_mut() {
            i.external = None;
            i.scope = None;
            i.managed = Some(
                serde_json::from_value(serde_json::json!({"externalDomain": "id.example.com"}))
                    .expect("managed spec with defaults"),
            );
        }
        let (s, r) = stack(spec);
        let callout = callout(&s, &r).unwrap().unwrap();
        assert_eq!(
            callout.oidc.audience,
            EnvSource::ConfigMapKey {
                name: "demo-zitadel-project".into(),
                key: "projectId".into()
            }
        );
        assert_eq!(callout.oidc.identity_claim.as_deref(), Some("client_id"));
        assert_eq!(callout.oidc.issuer, "http://id.example.com:8080");
        let agents = agents(&s, &r).unwrap().unwrap().oidc.unwrap();
        assert_eq!(
            agents.scope,
            Some(EnvSource::ConfigMapKey {
                name: "demo-zitadel-project".into(),
                key: "scope".into()
            })
        );
        assert_eq!(agents.issuer, callout.oidc.issuer);
    }

    #[test]
    fn user_pass_mode_provisions_no_agent_identities() {
        let mut spec = callout_spec();
        spec.nats = Some(NatsSpec::default());
        spec.callout = None;
        let (s, r) = stack(spec);
        assert!(identity(&s, &r).unwrap().expected_agents.is_empty());
    }

    #[test]
    fn absent_components_resolve_to_nothing() {
        let (s, r) = stack(FleetStackSpec::default());
        assert!(nats(&s, &r).is_none());
        assert!(identity(&s, &r).is_none());
        assert!(operator(&s, &r).is_none());
        assert!(agents(&s, &r).is_none());
        assert!(r.expected_agents.is_empty());
        assert!(plan(&s, &r).is_empty());
    }
}
