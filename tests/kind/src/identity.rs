//! The stand-in OIDC issuer for e2e: its clients (the identity probe's and
//! one per agent, ADR 0034), the Secrets a user would create for them, and
//! the issuer itself deployed by `TestIssuerScore` (the same Score
//! machinery as the stack, no hand-written manifests).

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_scores::test_issuer::{CLIENTS_KEY, TestIssuerScore};
use fleet_scores::{Interpret, K8sTopology, ProbeOutcome, ProbeRoute};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};

use crate::{E2eError, Result, TestNamespace, api_err, image, poll};

/// Audience of the issuer's tokens, which `callout.audience` must name.
pub const AUDIENCE: &str = "fleet-nats";
/// The Secret `identity.external.clientCredentials` names.
pub const PROBE_SECRET: &str = "identity-probe";

/// Client ids and secrets of one test: random secrets, never logged.
pub struct Clients {
    pub probe: (String, String),
    pub agents: BTreeMap<String, String>,
}

impl Clients {
    /// The probe client plus one client per agent id
    /// (`<stack>-agent-<i>`, `agents` of them).
    pub fn new(stack: &str, agents: usize) -> Self {
        let secret = || format!("{:032x}", rand::random::<u128>());
        Clients {
            probe: ("identity-probe".into(), secret()),
            agents: (0..agents)
                .map(|i| (format!("{stack}-agent-{i}"), secret()))
                .collect(),
        }
    }
}

async fn create_secret(
    ns: &TestNamespace,
    name: &str,
    data: BTreeMap<String, String>,
) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .map_err(api_err(format!("creating Secret {name}")))?;
    Ok(())
}

/// Creates what a user of `identity.external` provides: the probe client's
/// Secret (`clientId`, `clientSecret`) and the per-agent Secret (one key
/// per agent id), then deploys the issuer with exactly those clients and
/// waits for its discovery. Returns the issuer URL.
pub async fn deploy_issuer(ns: &TestNamespace, stack: &str, clients: &Clients) -> Result<String> {
    create_secret(
        ns,
        PROBE_SECRET,
        BTreeMap::from([
            ("clientId".to_string(), clients.probe.0.clone()),
            ("clientSecret".to_string(), clients.probe.1.clone()),
        ]),
    )
    .await?;
    create_secret(ns, &format!("{stack}-agent-oidc"), clients.agents.clone()).await?;
    let entries: Vec<serde_json::Value> = std::iter::once((&clients.probe.0, &clients.probe.1))
        .chain(clients.agents.iter())
        .map(|(id, secret)| serde_json::json!({"id": id, "secret": secret}))
        .collect();
    create_secret(
        ns,
        "issuer-clients",
        BTreeMap::from([(
            CLIENTS_KEY.to_string(),
            serde_json::Value::Array(entries).to_string(),
        )]),
    )
    .await?;

    let score = TestIssuerScore {
        name: "issuer".into(),
        namespace: ns.name.clone(),
        image: image("fleet-test-issuer"),
        clients_secret: "issuer-clients".into(),
        audience: AUDIENCE.into(),
        token_lifetime: Duration::from_secs(300),
        probe_timeout: Duration::from_secs(3),
    };
    let topology = K8sTopology::discover(ns.client.clone(), ProbeRoute::detect())
        .await
        .map_err(|e| E2eError::Command {
            what: "discovering the cluster".into(),
            output: e.to_string(),
        })?;
    poll(
        "the stand-in issuer to serve discovery",
        Duration::from_secs(120),
        || async {
            match Interpret::<K8sTopology>::execute(&score, &topology).await {
                Ok(outcome) => match outcome.probe {
                    ProbeOutcome::Passed { .. } => Ok(Some(())),
                    ProbeOutcome::Failed { message, .. } => Err(message),
                },
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(score.issuer_url())
}
