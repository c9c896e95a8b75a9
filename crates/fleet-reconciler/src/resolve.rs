//! Resolve: which Score serves each component of a FleetStack, with every
//! cross-component wiring decided here (a pure function of the validated
//! spec, unit-tested without a cluster):
//!
//! * the callout validates tokens of the identity component's issuer;
//! * in callout mode agents log in with tokens from that issuer, each with
//!   its own client secret, instead of the shared NATS password;
//! * the operator expects exactly the agents the agents Score deploys.

use std::time::Duration;

use fleet_crds::{FleetStack, NatsAuthMode};
use fleet_scores::agents::{AgentNames, AgentOidc, FleetAgentScore};
use fleet_scores::callout::{CalloutOidc, FleetCalloutScore};
use fleet_scores::nats::FleetNatsScore;
use fleet_scores::operator::FleetOperatorScore;
use fleet_scores::server::FleetServerScore;
pub use fleet_scores::server::Unresolved;
use fleet_scores::zitadel::FleetZitadelScore;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

/// Everything every Score of one stack shares.
#[derive(Debug, Clone)]
pub struct StackRef {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub probe_timeout: Duration,
}

impl StackRef {
    pub fn new(stack: &FleetStack, owner: OwnerReference) -> Self {
        StackRef {
            stack: stack.name_any(),
            namespace: stack.namespace().unwrap_or_default(),
            owner,
            probe_timeout: Duration::from_secs(
                u64::try_from(stack.spec.probe.timeout_seconds).unwrap_or(5),
            ),
        }
    }
}

pub fn nats(stack: &FleetStack, r: &StackRef) -> Option<FleetNatsScore> {
    let spec = stack.spec.nats.as_ref()?;
    Some(FleetNatsScore {
        stack: r.stack.clone(),
        namespace: r.namespace.clone(),
        owner: r.owner.clone(),
        spec: spec.clone(),
        probe_timeout: r.probe_timeout,
    })
}

pub fn identity(stack: &FleetStack, r: &StackRef) -> Option<FleetZitadelScore> {
    let spec = stack.spec.identity.as_ref()?;
    Some(FleetZitadelScore {
        stack: r.stack.clone(),
        namespace: r.namespace.clone(),
        owner: r.owner.clone(),
        spec: spec.clone(),
        probe_scope: spec.scope.clone(),
        probe_timeout: r.probe_timeout,
    })
}

pub fn callout(stack: &FleetStack, r: &StackRef) -> Option<Result<FleetCalloutScore, Unresolved>> {
    let spec = stack.spec.callout.as_ref()?;
    let resolved = (|| {
        let issuer = identity(stack, r)
            .and_then(|i| i.issuer())
            .ok_or_else(|| Unresolved {
                reason: "NoIdentity",
                message: "callout: spec.identity names no issuer".into(),
            })?;
        // Validation requires the audience with an external issuer; a
        // managed Zitadel's project id would come from provisioning, which
        // this version does not do (docs/adr/0034).
        let audience = spec.audience.clone().ok_or_else(|| Unresolved {
            reason: "AudienceUnknown",
            message: "callout: set spec.callout.audience (the managed Zitadel's project id: \
                      this version does not provision the project itself)"
                .into(),
        })?;
        Ok(FleetCalloutScore {
            stack: r.stack.clone(),
            namespace: r.namespace.clone(),
            owner: r.owner.clone(),
            spec: spec.clone(),
            oidc: CalloutOidc {
                issuer,
                audience,
                identity_claim: spec.identity_claim.clone(),
                introspection_secret: spec
                    .introspection_credentials
                    .as_ref()
                    .map(|s| s.name.clone()),
            },
            probe_timeout: r.probe_timeout,
        })
    })();
    Some(resolved)
}

/// The agent ids the stack must have (empty without agents).
pub fn expected_agents(stack: &FleetStack, r: &StackRef) -> Vec<String> {
    stack
        .spec
        .agents
        .as_ref()
        .map(|a| AgentNames::new(&r.stack).agent_ids(a.replicas))
        .unwrap_or_default()
}

pub fn operator(stack: &FleetStack, r: &StackRef) -> Option<FleetOperatorScore> {
    let spec = stack.spec.operator.as_ref()?;
    Some(FleetOperatorScore {
        stack: r.stack.clone(),
        namespace: r.namespace.clone(),
        owner: r.owner.clone(),
        spec: spec.clone(),
        probe_timeout: r.probe_timeout,
        expected_agents: expected_agents(stack, r),
    })
}

/// The server side as one composite Score. Its operator step checks
/// readiness only: agents are deployed after the server, so "every agent
/// connected" cannot hold yet on a first rollout (the reconciler checks it
/// once the agents are Ready, docs/adr/0052).
pub fn server(stack: &FleetStack, r: &StackRef) -> FleetServerScore {
    FleetServerScore {
        nats: nats(stack, r),
        identity: identity(stack, r),
        callout: callout(stack, r),
        operator: operator(stack, r).map(|mut o| {
            o.expected_agents.clear();
            o
        }),
    }
}

pub fn agents(stack: &FleetStack, r: &StackRef) -> Option<Result<FleetAgentScore, Unresolved>> {
    let spec = stack.spec.agents.as_ref()?;
    let callout_mode = stack
        .spec
        .nats
        .as_ref()
        .is_some_and(|n| n.auth.mode == NatsAuthMode::Callout);
    let oidc = if callout_mode {
        let identity = stack.spec.identity.as_ref();
        let issuer = identity
            .and_then(|_| self::identity(stack, r))
            .and_then(|i| i.issuer());
        match (identity, issuer) {
            (Some(identity), Some(issuer)) => Some(AgentOidc {
                issuer,
                scope: identity.scope.clone(),
                secret: identity.agent_credentials_secret(&r.stack),
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
        stack: r.stack.clone(),
        namespace: r.namespace.clone(),
        owner: r.owner.clone(),
        spec: spec.clone(),
        oidc,
        probe_timeout: r.probe_timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_crds::{
        AgentsSpec, CalloutSpec, ExternalIdentitySpec, FleetStackSpec, IdentitySpec, NatsSpec,
        OperatorSpec, SecretRef,
    };

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

    fn stack(spec: FleetStackSpec) -> (FleetStack, StackRef) {
        let mut s = FleetStack::new("demo", spec);
        s.metadata.namespace = Some("fleet".into());
        let r = StackRef::new(&s, owner());
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
                image: "c".into(),
                replicas: 1,
                audience: Some("fleet-nats".into()),
                identity_claim: Some("client_id".into()),
                introspection_credentials: None,
            }),
            operator: Some(OperatorSpec {
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
        assert_eq!(callout.oidc.audience, "fleet-nats");
        assert_eq!(callout.oidc.identity_claim.as_deref(), Some("client_id"));
        let agents = agents(&s, &r).unwrap().unwrap();
        let oidc = agents.oidc.unwrap();
        assert_eq!(
            oidc.issuer, callout.oidc.issuer,
            "agents and callout agree on the issuer"
        );
        assert_eq!(oidc.secret, "demo-agent-oidc");
        assert_eq!(oidc.scope.as_deref(), Some("openid"));
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
    fn managed_identity_without_audience_is_unresolved_with_a_reason() {
        let mut spec = callout_spec();
        if let Some(c) = spec.callout.as_mut() {
            c.audience = None;
        }
        let (s, r) = stack(spec);
        let err = callout(&s, &r).unwrap().unwrap_err();
        assert_eq!(err.reason, "AudienceUnknown");
        assert!(err.message.contains("spec.callout.audience"));
    }

    #[test]
    fn absent_components_resolve_to_nothing() {
        let (s, r) = stack(FleetStackSpec::default());
        assert!(nats(&s, &r).is_none());
        assert!(identity(&s, &r).is_none());
        assert!(operator(&s, &r).is_none());
        assert!(agents(&s, &r).is_none());
        assert!(expected_agents(&s, &r).is_empty());
    }
}
