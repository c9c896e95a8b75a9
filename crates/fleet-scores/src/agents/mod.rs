//! `FleetAgentScore`: the fleet agents of a FleetStack (target `Pod`).
//!
//! Pipeline: build desired objects (pure, [`objects::build`]) -> apply
//! ServiceAccount, headless Service, StatefulSet (unchanged ones skipped)
//! -> delete agent objects no longer desired -> smoke probe: every expected
//! agent answers a NATS `ping`.
//!
//! Agents authenticate as the NATS `fleet` user whose password
//! `FleetNatsScore` keeps in its write-once Secret; with callout auth they
//! will present identity-provider tokens instead (issue 5), which changes
//! only the credentials wiring here.

pub mod objects;
pub mod probe;

use std::collections::BTreeSet;
use std::time::Duration;

use fleet_crds::AgentsSpec;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;

use crate::apply::{self, ApplyReport};
use crate::nats::{self, NatsNames};
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Score};
use crate::secret::Sensitive;
use crate::topology::KubernetesTopology;
pub use objects::{AgentNames, AgentObjects, AgentsInput, COMPONENT, build};
pub use probe::{AgentsProbeTarget, smoke_probe};

/// The agents of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetAgentScore {
    pub stack: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: AgentsSpec,
    pub probe_timeout: Duration,
}

impl FleetAgentScore {
    fn input(&self) -> AgentsInput {
        let nats = NatsNames::new(&self.stack);
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
            nats_user: nats::config::FLEET_USER.into(),
            credentials_secret: nats.credentials_secret,
            password_key: nats::FLEET_PASSWORD_KEY.into(),
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

        let expected = AgentNames::new(&s.stack).agent_ids(s.spec.replicas);
        let nats_names = NatsNames::new(&s.stack);
        let (probe, answered) = match (
            topology
                .service_host(&s.namespace, &nats_names.client_service)
                .await,
            read_key(
                client,
                &s.namespace,
                &input.credentials_secret,
                &input.password_key,
            )
            .await?,
        ) {
            (Ok(host), Some(password)) => {
                let target = AgentsProbeTarget {
                    nats_url: format!("nats://{host}:{}", nats::config::CLIENT_PORT),
                    user: input.nats_user.clone(),
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
                        "agents: Secret {} has no {}",
                        input.credentials_secret, input.password_key
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

/// Reads one key of a Secret (`None` if the Secret or key is missing).
async fn read_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<Sensitive>, InterpretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|source| InterpretError::Api {
            verb: "get",
            kind: "Secret".into(),
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        })?;
    let Some(bytes) = secret.and_then(|s| s.data).and_then(|mut d| d.remove(key)) else {
        return Ok(None);
    };
    String::from_utf8(bytes.0)
        .map(|v| Some(Sensitive::new(v)))
        .map_err(|_| InterpretError::SecretEncoding {
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        })
}
