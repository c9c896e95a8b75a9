//! Where Scores run. A Topology is a compile-time type; a Score states which
//! capabilities it needs as trait bounds (`T: KubernetesTopology`).

use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::{Api, Client};

/// Marker for every deployment target; what a target can do are separate
/// traits ([`KubernetesTopology`]) that Scores name as bounds.
pub trait Topology: Send + Sync {}

/// How a smoke probe reaches a Service of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRoute {
    /// `<svc>.<ns>.svc.cluster.local`: the controller runs in a pod.
    ServiceDns,
    /// The Service's ClusterIP: the controller runs on a node of the cluster
    /// (a laptop/test run against the local cluster, where ClusterIPs are
    /// routable from the node).
    ClusterIp,
}

impl ProbeRoute {
    /// `ServiceDns` inside a pod (`KUBERNETES_SERVICE_HOST` is set),
    /// `ClusterIp` otherwise.
    pub fn detect() -> Self {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            ProbeRoute::ServiceDns
        } else {
            ProbeRoute::ClusterIp
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("discovering API group {group} failed: {source}")]
    Discovery {
        group: &'static str,
        source: kube::Error,
    },
    #[error("reading Service {namespace}/{name} failed: {source}")]
    ReadService {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Service {namespace}/{name} does not exist (yet)")]
    NoService { namespace: String, name: String },
    #[error("Service {namespace}/{name} has no ClusterIP (yet)")]
    NoClusterIp { namespace: String, name: String },
    #[error("reading the Endpoints of Service {namespace}/{name} failed: {source}")]
    ReadEndpoints {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// What a Score needs from a Kubernetes target.
pub trait KubernetesTopology: Topology {
    fn client(&self) -> &Client;
    /// Whether `policy/v1` (PodDisruptionBudget) is served (Kubernetes >= 1.21).
    fn serves_pdb_v1(&self) -> bool;
    /// Host name or IP at which this process reaches the Service.
    fn service_host(
        &self,
        namespace: &str,
        service: &str,
    ) -> impl Future<Output = Result<String, TopologyError>> + Send;
    /// The address of one ready pod behind the Service (its Endpoints),
    /// `None` while no pod is ready. Reachable before cluster DNS serves
    /// the Service's name and kube-proxy routes its cluster IP.
    fn ready_endpoint(
        &self,
        namespace: &str,
        service: &str,
    ) -> impl Future<Output = Result<Option<String>, TopologyError>> + Send;
}

/// A Kubernetes cluster reached through a kube `Client`.
#[derive(Clone)]
pub struct K8sTopology {
    client: Client,
    route: ProbeRoute,
    pdb_v1: bool,
}

impl K8sTopology {
    /// Discovers what the API server serves (once; the controller keeps the
    /// topology for its lifetime).
    pub async fn discover(client: Client, route: ProbeRoute) -> Result<Self, TopologyError> {
        let pdb_v1 = match client.list_api_group_resources("policy/v1").await {
            Ok(list) => list
                .resources
                .iter()
                .any(|r| r.name == "poddisruptionbudgets"),
            Err(kube::Error::Api(e)) if e.code == 404 => false,
            Err(source) => {
                return Err(TopologyError::Discovery {
                    group: "policy/v1",
                    source,
                });
            }
        };
        Ok(K8sTopology {
            client,
            route,
            pdb_v1,
        })
    }

    pub fn route(&self) -> ProbeRoute {
        self.route
    }
}

impl Topology for K8sTopology {}

impl KubernetesTopology for K8sTopology {
    fn client(&self) -> &Client {
        &self.client
    }

    fn serves_pdb_v1(&self) -> bool {
        self.pdb_v1
    }

    async fn ready_endpoint(
        &self,
        namespace: &str,
        service: &str,
    ) -> Result<Option<String>, TopologyError> {
        // A list by name: the controller's RBAC lists and watches
        // Endpoints (its wake-ups) and needs no `get` for this.
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), namespace);
        let list = api
            .list(&kube::api::ListParams::default().fields(&format!("metadata.name={service}")))
            .await
            .map_err(|source| TopologyError::ReadEndpoints {
                namespace: namespace.into(),
                name: service.into(),
                source,
            })?;
        // The lowest address, so repeated probes pick the same server.
        Ok(list
            .items
            .iter()
            .flat_map(|e| e.subsets.iter().flatten())
            .flat_map(|s| s.addresses.iter().flatten())
            .map(|a| a.ip.clone())
            .min())
    }

    async fn service_host(&self, namespace: &str, service: &str) -> Result<String, TopologyError> {
        match self.route {
            ProbeRoute::ServiceDns => Ok(format!("{service}.{namespace}.svc.cluster.local")),
            ProbeRoute::ClusterIp => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                let svc = api
                    .get_opt(service)
                    .await
                    .map_err(|source| TopologyError::ReadService {
                        namespace: namespace.into(),
                        name: service.into(),
                        source,
                    })?
                    .ok_or_else(|| TopologyError::NoService {
                        namespace: namespace.into(),
                        name: service.into(),
                    })?;
                svc.spec
                    .and_then(|s| s.cluster_ip)
                    .filter(|ip| !ip.is_empty() && ip != "None")
                    .ok_or_else(|| TopologyError::NoClusterIp {
                        namespace: namespace.into(),
                        name: service.into(),
                    })
            }
        }
    }
}
