//! A Kubernetes client configured the way kubectl configures itself:
//! `--kubeconfig` (else `KUBECONFIG`, else `~/.kube/config`, else the
//! in-cluster service account), `--context`, and the namespace from `-n`
//! or the context.

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::cli::ClusterFlags;
use crate::error::PluginError;

/// The client plus the namespace commands default to.
pub async fn connect(flags: &ClusterFlags) -> Result<(Client, String), PluginError> {
    let options = KubeConfigOptions {
        context: flags.context.clone(),
        cluster: None,
        user: None,
    };
    let config = match (&flags.kubeconfig, &flags.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(PluginError::Kubeconfig)?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(PluginError::Kubeconfig)?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(PluginError::Kubeconfig)?,
        // What kube::Client::try_default does: kubeconfig, else in-cluster.
        (None, None) => Config::infer().await.map_err(PluginError::InferConfig)?,
    };
    let namespace = flags
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(PluginError::Client)?;
    Ok((client, namespace))
}
