//! Shared helpers for the end-to-end tests in `tests/`.
//!
//! The tests take their cluster from `KUBECONFIG` and work the same on kind
//! and on the local node cluster (`tests/kind/cluster up`). Images are the
//! project's own, loaded by `tests/kind/images all`; their names come from
//! [`image`], the same names in both modes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::{Api, Client};

/// Why an end-to-end step failed; every variant names the object and what was
/// waited for, so a red CI run says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error(
        "KUBECONFIG is not set: end-to-end tests need a cluster. Run them through scripts/test, or start one with `tests/kind/cluster up` and export KUBECONFIG=<path it prints>"
    )]
    NoKubeconfig,
    #[error("could not build a Kubernetes client from KUBECONFIG: {0}")]
    Client(#[source] kube::Error),
    #[error("Kubernetes API call failed while {doing}: {source}")]
    Api {
        doing: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what} failed: {output}")]
    Command { what: String, output: String },
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        waited: Duration,
        last: String,
    },
}

pub type Result<T, E = E2eError> = std::result::Result<T, E>;

/// The image the project builds for `binary`, e.g. `fleetstack/fleet-netcheck:0.1.0`.
pub fn image(binary: &str) -> String {
    format!("fleetstack/{binary}:{}", env!("CARGO_PKG_VERSION"))
}

pub fn api_err(doing: impl Into<String>) -> impl FnOnce(kube::Error) -> E2eError {
    let doing = doing.into();
    move |source| E2eError::Api { doing, source }
}

/// A client for the cluster in KUBECONFIG; fails loudly when there is none.
pub async fn client() -> Result<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        return Err(E2eError::NoKubeconfig);
    }
    Client::try_default().await.map_err(E2eError::Client)
}

/// A namespace of its own for one test, deleted by [`TestNamespace::cleanup`].
/// Names carry a random suffix so reruns and parallel tests never collide.
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    pub async fn create(prefix: &str) -> Result<Self> {
        let client = client().await?;
        let name = format!("e2e-{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"fleet.nationtech.io/e2e": "true"}}
        }))
        .expect("static namespace manifest");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(api_err(format!("creating namespace {name}")))?;
        // Pods cannot be created before the namespace's default ServiceAccount
        // exists and (Kubernetes < 1.24) has its token Secret: until then the
        // API answers "No API token found for service account".
        let sa =
            Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &name);
        let needs_secret = mints_token_secrets(&client).await;
        poll(
            &format!("serviceaccount {name}/default and its token"),
            Duration::from_secs(30),
            || async {
                match sa.get_opt("default").await {
                    Ok(Some(sa))
                        if !needs_secret || sa.secrets.as_ref().is_some_and(|s| !s.is_empty()) =>
                    {
                        Ok(Some(()))
                    }
                    Ok(_) => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        Ok(Self { client, name })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (and with it everything the test made).
    pub async fn cleanup(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await;
    }
}

/// Clusters before 1.24 mint a token Secret per ServiceAccount and refuse
/// pods until it exists; newer ones project tokens and list none.
async fn mints_token_secrets(client: &Client) -> bool {
    match client.apiserver_version().await {
        Ok(v) => {
            let minor: u32 = v.minor.trim_end_matches('+').parse().unwrap_or(0);
            v.major == "1" && minor < 24
        }
        Err(_) => true,
    }
}

/// Polls `check` every 250 ms until it yields `Some`, or fails after `deadline`
/// naming what it waited for and the last thing it saw.
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<T>, String>>,
{
    let start = tokio::time::Instant::now();
    let mut last = String::from("nothing yet");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if start.elapsed() >= deadline {
            return Err(E2eError::Timeout {
                what: what.to_string(),
                waited: deadline,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the pod reaches `phase` (e.g. "Succeeded", "Running"); reports
/// the container states it saw if it does not.
pub async fn wait_pod_phase(
    pods: &Api<Pod>,
    name: &str,
    phase: &str,
    deadline: Duration,
) -> Result<Pod> {
    poll(
        &format!("pod {name} to reach phase {phase}"),
        deadline,
        || async {
            let pod = pods.get(name).await.map_err(|e| e.to_string())?;
            let status = pod.status.clone().unwrap_or_default();
            let current = status.phase.clone().unwrap_or_default();
            if current == phase {
                return Ok(Some(pod));
            }
            let states = serde_json::to_string(&status.container_statuses).unwrap_or_default();
            if current == "Failed" || current == "Succeeded" {
                return Err(format!("terminal phase {current}: {states}"));
            }
            Err(format!("phase {current}, containers {states}"))
        },
    )
    .await
}

/// The logs of a pod's only container.
pub async fn pod_logs(pods: &Api<Pod>, name: &str) -> Result<String> {
    pods.logs(name, &LogParams::default())
        .await
        .map_err(api_err(format!("reading logs of pod {name}")))
}

pub mod capture;
pub mod controller;
pub mod heal;
pub mod identity;
pub mod netns;
pub mod portforward;
pub mod stack;
