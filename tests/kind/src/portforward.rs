//! Reaching a pod's port from the test process the same way on kind and on
//! the local cluster: a local TCP listener whose connections are tunnelled
//! through the API server's port-forward (ClusterIPs are routable from the
//! node on the local cluster, but not from a laptop running kind).

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::TcpListener;

use crate::{E2eError, Result};

/// A running forward; stops when dropped.
pub struct PortForward {
    pub local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards `127.0.0.1:<random>` to `pod:port`.
pub async fn forward(pods: &Api<Pod>, pod: &str, port: u16) -> Result<PortForward> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| E2eError::Command {
            what: "binding a local port for port-forward".into(),
            output: e.to_string(),
        })?;
    let local = listener
        .local_addr()
        .expect("bound listener has an address");
    let pods = pods.clone();
    let pod = pod.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let Ok(mut pf) = pods.portforward(&pod, &[port]).await else {
                    return;
                };
                let Some(mut upstream) = pf.take_stream(port) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                drop(upstream);
                let _ = pf.join().await;
            });
        }
    });
    Ok(PortForward { local, task })
}
