//! `FleetAgentScore`: the fleet agents of a FleetStack (target `Pod`).
//!
//! Pipeline: build desired objects (pure, [`objects::build`]) -> apply
//! ServiceAccount, headless Service, StatefulSet (unchanged ones skipped)
//! -> delete agent objects no longer desired -> smoke probe: every expected
//! agent answers a NATS `ping`.
//!
//! Agents authenticate as the NATS `fleet` user whose password
//! `FleetNatsScore` keeps in its write-once Secret, or, with callout auth,
//! each as its own OAuth client presenting identity-provider tokens
//! ([`AgentOidc`], docs/adr/0034). In that mode the Score first checks that
//! the per-agent Secret has a key for every agent id: a missing one would
//! only show as a crash-looping pod. The smoke probe always logs in as the
//! `fleet` user (an `auth_users` member that bypasses the callout).

pub mod objects;
pub mod probe;

use std::collections::BTreeSet;
use std::time::Duration;

use fleet_crds::AgentsSpec;

use crate::component::Component;
use crate::nats::{self, NatsNames};
use crate::resources::Resources;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score, Units};
use crate::secret::{key_names, read_key};
use crate::stack_ref::StackRef;
use crate::topology::KubernetesTopology;
pub use objects::{AgentAuth, AgentNames, AgentObjects, AgentsInput, COMPONENT, build};
pub use probe::{AgentsProbeTarget, smoke_probe, smoke_probe_with_tls};

/// The agents of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetAgentScore {
    pub stack: StackRef,
    pub spec: AgentsSpec,
    /// `Some` with callout auth: agents log in with tokens.
    pub oidc: Option<AgentOidc>,
}

/// Token login for agents (callout mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOidc {
    pub issuer: String,
    pub scope: Option<crate::pod::EnvSource>,
    /// Secret with one key per agent id: that agent's client secret.
    pub secret: String,
}

impl FleetAgentScore {
    fn input(&self) -> AgentsInput {
        let nats = NatsNames::new(&self.stack.name);
        let auth = match &self.oidc {
            Some(o) => AgentAuth::Oidc {
                issuer: o.issuer.clone(),
                scope: o.scope.clone(),
                secret: o.secret.clone(),
            },
            None => AgentAuth::Password {
                user: nats::config::FLEET_USER.into(),
                secret: nats.credentials_secret.clone(),
                key: nats::FLEET_PASSWORD_KEY.into(),
            },
        };
        AgentsInput {
            stack: self.stack.name.clone(),
            namespace: self.stack.namespace.clone(),
            owner: self.stack.owner.clone(),
            spec: self.spec.clone(),
            // Agents run in pods: the Service's cluster DNS name.
            nats_url: nats::access::in_cluster_url(&self.stack),
            auth,
            nats_tls: self.stack.nats_tls,
        }
    }

    fn units(&self, answered: i32) -> Option<Units> {
        Some(Units {
            ready: answered,
            desired: self.spec.replicas,
        })
    }
}

impl<T: KubernetesTopology> Score<T> for FleetAgentScore {
    fn component(&self) -> Component {
        Component::Agents
    }

    fn create_interpret(&self) -> Box<dyn Interpret<T> + '_> {
        Box::new(AgentsInterpret { score: self })
    }
}

struct AgentsInterpret<'a> {
    score: &'a FleetAgentScore,
}

#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for AgentsInterpret<'_> {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = self.score;
        let client = topology.client();
        let namespace = &s.stack.namespace;
        let expected = AgentNames::new(&s.stack.name).agent_ids(s.spec.replicas);
        if let Some(oidc) = &s.oidc {
            let keys = key_names(client, namespace, &oidc.secret).await?;
            if let Some(message) = missing_client_secrets(&oidc.secret, keys.as_ref(), &expected) {
                let probe = ProbeOutcome::Failed {
                    reason: "CredentialsMissing",
                    message,
                    latency: Duration::ZERO,
                };
                return Ok(Outcome::probe_only(probe, s.units(0)));
            }
        }
        let mut resources = Resources::new(topology, &s.stack, Component::Agents);
        resources.apply(&build(&s.input()).ordered()?).await?;
        let applied = resources.finish().await?;

        let nats_names = NatsNames::new(&s.stack.name);
        let probe_user = nats::config::FLEET_USER;
        let probe_secret = &nats_names.credentials_secret;
        let (probe, answered) = match (
            topology
                .service_host(namespace, &nats_names.client_service)
                .await,
            read_key(client, namespace, probe_secret, nats::FLEET_PASSWORD_KEY).await?,
        ) {
            (Ok(host), Some(password)) => {
                let target = AgentsProbeTarget {
                    nats_url: nats::access::url(&host, s.stack.nats_tls),
                    user: probe_user.into(),
                    password,
                    expected,
                };
                match nats::access::probe_tls(client, &s.stack).await {
                    Ok(tls) => smoke_probe_with_tls(&target, &tls, s.stack.probe_timeout).await,
                    Err(e) => (
                        ProbeOutcome::Failed {
                            reason: "CaMissing",
                            message: format!("agents: {e}"),
                            latency: Duration::ZERO,
                        },
                        0,
                    ),
                }
            }
            (Err(e), _) => (
                ProbeOutcome::Failed {
                    reason: "ServiceUnreachable",
                    message: format!("agents: {e}"),
                    latency: Duration::ZERO,
                },
                0,
            ),
            (_, None) => (
                ProbeOutcome::Failed {
                    reason: "CredentialsMissing",
                    message: format!(
                        "agents: Secret {probe_secret} has no {}",
                        nats::FLEET_PASSWORD_KEY
                    ),
                    latency: Duration::ZERO,
                },
                0,
            ),
        };
        Ok(applied.outcome(probe, s.units(answered)))
    }
}

/// Why the per-agent client-secret Secret cannot serve `expected` (pure):
/// `None` when it has a key for every agent id.
pub fn missing_client_secrets(
    secret: &str,
    keys: Option<&BTreeSet<String>>,
    expected: &[String],
) -> Option<String> {
    let Some(keys) = keys else {
        return Some(format!(
            "agents: Secret {secret} (one OAuth client secret per agent id) does not exist"
        ));
    };
    let missing: Vec<&str> = expected
        .iter()
        .filter(|id| !keys.contains(*id))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return None;
    }
    let shown = missing
        .iter()
        .take(5)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if missing.len() > 5 {
        format!(" and {} more", missing.len() - 5)
    } else {
        String::new()
    };
    Some(format!(
        "agents: Secret {secret} has no client secret for {}/{} agents: {shown}{more}",
        missing.len(),
        expected.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_client_secrets_names_the_agents_without_a_key() {
        let expected: Vec<String> = (0..7).map(|i| format!("demo-agent-{i}")).collect();
        assert!(
            missing_client_secrets("s", None, &expected)
                .unwrap()
                .contains("does not exist")
        );
        let all: BTreeSet<String> = expected.iter().cloned().collect();
        assert_eq!(missing_client_secrets("s", Some(&all), &expected), None);
        let one: BTreeSet<String> = ["demo-agent-0".to_string()].into();
        let msg = missing_client_secrets("s", Some(&one), &expected).unwrap();
        assert_eq!(
            msg,
            "agents: Secret s has no client secret for 6/7 agents: demo-agent-1, demo-agent-2, \
             demo-agent-3, demo-agent-4, demo-agent-5 and 1 more"
        );
        assert_eq!(missing_client_secrets("s", Some(&one), &[]), None);
    }
}
