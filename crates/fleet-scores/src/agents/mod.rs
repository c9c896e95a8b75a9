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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::apply::{self, ApplyReport};
use crate::nats::{self, NatsNames};
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::secret::{key_names, read_key};
use crate::topology::KubernetesTopology;
pub use objects::{AgentAuth, AgentNames, AgentObjects, AgentsInput, COMPONENT, build};
pub use probe::{AgentsProbeTarget, smoke_probe};

/// The agents of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetAgentScore {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: AgentsSpec,
    /// `Some` with callout auth: agents log in with tokens.
    pub oidc: Option<AgentOidc>,
    pub probe_timeout: Duration,
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
        let nats = NatsNames::new(&self.stack);
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
            stack: self.stack.clone(),
            namespace: self.namespace.clone(),
            owner: self.owner.clone(),
            spec: self.spec.clone(),
            // Agents run in pods: the Service's cluster DNS name.
            nats_url: format!(
                "nats://{}.{}.svc.cluster.local:{}",
                nats.client_service,
                self.namespace,
                nats::config::CLIENT_PORT
            ),
            auth,
        }
    }
}

impl<T: KubernetesTopology> Score<T> for FleetAgentScore {
    type Interpret = AgentsInterpret;

    fn component(&self) -> &'static str {
        COMPONENT
    }

    fn create_interpret(&self) -> AgentsInterpret {
        AgentsInterpret {
            score: self.clone(),
        }
    }
}

pub struct AgentsInterpret {
    score: FleetAgentScore,
}

impl<T: KubernetesTopology> Interpret<T> for AgentsInterpret {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = &self.score;
        let client = topology.client();
        let input = s.input();
        let expected = AgentNames::new(&s.stack).agent_ids(s.spec.replicas);
        if let Some(oidc) = &s.oidc {
            let keys = key_names(client, &s.namespace, &oidc.secret).await?;
            if let Some(message) = missing_client_secrets(&oidc.secret, keys.as_ref(), &expected) {
                return Ok(Outcome {
                    component: COMPONENT,
                    written: Vec::new(),
                    unchanged: 0,
                    deleted: Vec::new(),
                    units: Some((0, s.spec.replicas)),
                    probe: ProbeOutcome::Failed {
                        reason: "CredentialsMissing",
                        message,
                        latency: Duration::ZERO,
                    },
                });
            }
        }
        let ordered = build(&input).ordered()?;

        let mut report = ApplyReport::default();
        apply::apply_in_order(client, &s.namespace, &ordered, &mut report).await?;
        let keep: BTreeSet<String> = ordered.iter().map(|o| o.key()).collect();
        let deleted = apply::prune(
            client,
            &s.namespace,
            &s.stack,
            COMPONENT,
            &apply::owned_kinds(topology.serves_pdb_v1()),
            &keep,
        )
        .await?;

        let nats_names = NatsNames::new(&s.stack);
        let probe_user = nats::config::FLEET_USER;
        let probe_secret = &nats_names.credentials_secret;
        let (probe, answered) = match (
            topology
                .service_host(&s.namespace, &nats_names.client_service)
                .await,
            read_key(client, &s.namespace, probe_secret, nats::FLEET_PASSWORD_KEY).await?,
        ) {
            (Ok(host), Some(password)) => {
                let target = AgentsProbeTarget {
                    nats_url: format!("nats://{host}:{}", nats::config::CLIENT_PORT),
                    user: probe_user.into(),
                    password,
                    expected,
                };
                smoke_probe(&target, s.probe_timeout).await
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
        Ok(Outcome {
            component: COMPONENT,
            written: report.written,
            unchanged: report.unchanged,
            deleted,
            units: Some((answered, s.spec.replicas)),
            probe,
        })
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
