//! What can go wrong, each naming the object and the step; the binary prints
//! the message to stderr and exits with [`PluginError::exit_code`].

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Bad command line; the message says what and the usage follows.
    #[error("{0}")]
    Usage(String),
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("no usable cluster configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    InferConfig(#[source] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("{kind} {name:?} not found in namespace {namespace}")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("{verb} {kind} {what}: {source}")]
    Api {
        verb: &'static str,
        kind: &'static str,
        /// `namespace/name`, or the namespace (or "all namespaces") for a list.
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{kind} {what} has a status this plugin cannot read: {error}")]
    Decode {
        kind: &'static str,
        what: String,
        error: String,
    },
    #[error("encoding the output: {0}")]
    Encode(String),
    #[error("writing to stdout: {0}")]
    Write(#[source] std::io::Error),
    #[error(
        "FleetCommand {what} did not finish within {waited:?}; it keeps running, see `kubectl get fleetcommand -n <namespace>`"
    )]
    Timeout { what: String, waited: Duration },
    #[error("watching FleetCommand {what}: {error}")]
    Watch { what: String, error: String },
    #[error("FleetCommand {what} was deleted before it finished")]
    Vanished { what: String },
}

impl PluginError {
    /// 2 for a bad command line, 1 for everything else (3 is used by
    /// `ping` when it ran but some agent failed; see `main.rs`).
    pub fn exit_code(&self) -> i32 {
        match self {
            PluginError::Usage(_) => 2,
            PluginError::Kubeconfig(_)
            | PluginError::InferConfig(_)
            | PluginError::Client(_)
            | PluginError::NotFound { .. }
            | PluginError::Api { .. }
            | PluginError::Decode { .. }
            | PluginError::Encode(_)
            | PluginError::Write(_)
            | PluginError::Timeout { .. }
            | PluginError::Watch { .. }
            | PluginError::Vanished { .. } => 1,
        }
    }

    /// An API error, turned into [`PluginError::NotFound`] for a 404 so the
    /// message reads like kubectl's.
    pub fn api(
        verb: &'static str,
        kind: &'static str,
        namespace: &str,
        name: Option<&str>,
        source: kube::Error,
    ) -> Self {
        match (&source, name) {
            (kube::Error::Api(status), Some(name)) if status.is_not_found() => {
                PluginError::NotFound {
                    kind,
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                }
            }
            _ => PluginError::Api {
                verb,
                kind,
                what: match name {
                    Some(n) => format!("{namespace}/{n}"),
                    None => format!("in {namespace}"),
                },
                source: Box::new(source),
            },
        }
    }
}
