//! Helpers for the self-healing tests (issue 13): "back to Ready" as a user
//! means it (the stack Ready, every workload rolled out, every pod ready,
//! every agent connected), the controller's own metrics, and restarting
//! the controller.

use std::time::Duration;

use fleet_crds::{FleetAgent, FleetStack, FleetStackSpec};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use tokio::time::Instant;

use crate::controller::CONTROLLER_NAMESPACE;
use crate::stack::{describe, is_ready};
use crate::{E2eError, Result, TestNamespace, api_err, client, poll};

/// A FleetStack spec from its JSON form, as a user writes it.
pub fn spec(json: serde_json::Value) -> FleetStackSpec {
    serde_json::from_value(json).expect("a FleetStackSpec")
}

/// `examples/minimal.yaml` with `agents` agents and a probe every
/// `interval` seconds.
pub fn minimal(agents: i32, interval: i32) -> FleetStackSpec {
    spec(serde_json::json!({
        "nats": {"replicas": 1, "auth": {"mode": "UserPass"}},
        "operator": {"replicas": 1},
        "agents": {"target": "Pod", "replicas": agents},
        "probe": {"intervalSeconds": interval},
    }))
}

/// What is not settled yet, or `None` when the stack is back as a user
/// expects: Ready for its generation, every StatefulSet and Deployment of
/// the namespace rolled out, every pod ready and not terminating, and
/// `agents` FleetAgents connected.
pub async fn unsettled(ns: &TestNamespace, stack: &str, agents: usize) -> Option<String> {
    let s = match ns.api::<FleetStack>().get(stack).await {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    if !is_ready(&s) {
        return Some(format!("stack not Ready: {}", describe(&s)));
    }
    let list = ListParams::default();
    match ns.api::<StatefulSet>().list(&list).await {
        Ok(l) => {
            for sts in l.items {
                let name = sts.metadata.name.clone().unwrap_or_default();
                let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = sts.status.clone().unwrap_or_default();
                let rolled = st.observed_generation >= sts.metadata.generation
                    && st.ready_replicas.unwrap_or(0) == want
                    && st.updated_replicas.unwrap_or(0) == want
                    && st.replicas == want
                    && st.current_revision == st.update_revision;
                if !rolled {
                    return Some(format!("StatefulSet {name} not rolled out: {st:?}"));
                }
            }
        }
        Err(e) => return Some(e.to_string()),
    }
    match ns.api::<Deployment>().list(&list).await {
        Ok(l) => {
            for d in l.items {
                let name = d.metadata.name.clone().unwrap_or_default();
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = d.status.clone().unwrap_or_default();
                let rolled = st.observed_generation >= d.metadata.generation
                    && st.updated_replicas.unwrap_or(0) == want
                    && st.available_replicas.unwrap_or(0) == want
                    && st.replicas.unwrap_or(0) == want;
                if !rolled {
                    return Some(format!("Deployment {name} not rolled out: {st:?}"));
                }
            }
        }
        Err(e) => return Some(e.to_string()),
    }
    match ns.api::<Pod>().list(&list).await {
        Ok(l) => {
            for p in l.items {
                let name = p.metadata.name.clone().unwrap_or_default();
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                // Test helpers (an issuer, say) finish; only running pods count.
                let done = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Succeeded");
                if p.metadata.deletion_timestamp.is_some() || !(ready || done) {
                    return Some(format!("pod {name} not ready"));
                }
            }
        }
        Err(e) => return Some(e.to_string()),
    }
    match connected_agents(ns).await {
        Ok(n) if n == agents => None,
        Ok(n) => Some(format!("{n}/{agents} FleetAgents connected")),
        Err(e) => Some(e.to_string()),
    }
}

/// How many FleetAgents of the namespace say connected=true.
pub async fn connected_agents(ns: &TestNamespace) -> Result<usize> {
    let agents = ns
        .api::<FleetAgent>()
        .list(&ListParams::default())
        .await
        .map_err(api_err("listing FleetAgents"))?;
    Ok(agents
        .items
        .iter()
        .filter(|a| a.status.as_ref().is_some_and(|s| s.connected))
        .count())
}

/// Waits until [`unsettled`] says nothing is left, and returns how long
/// that took from `since`.
pub async fn wait_settled(
    ns: &TestNamespace,
    stack: &str,
    agents: usize,
    since: Instant,
    deadline: Duration,
) -> Result<Duration> {
    poll(
        &format!("FleetStack {stack} back to Ready with {agents} agents connected"),
        deadline,
        || async {
            match unsettled(ns, stack, agents).await {
                None => Ok(Some(())),
                Some(why) => Err(why),
            }
        },
    )
    .await?;
    Ok(since.elapsed())
}

/// The controller's running pod.
async fn controller_pod() -> Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(client().await?, CONTROLLER_NAMESPACE);
    poll(
        "a ready fleet-reconciler pod",
        Duration::from_secs(90),
        || async {
            let l = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok(l.items.into_iter().find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            }))
        },
    )
    .await
}

/// Deletes the controller's pods (as a node drain or a crash would); the
/// Deployment starts a new one.
pub async fn restart_controller() -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client().await?, CONTROLLER_NAMESPACE);
    let l = pods
        .list(&ListParams::default())
        .await
        .map_err(api_err("listing the controller's pods"))?;
    for p in l.items {
        let name = p.metadata.name.unwrap_or_default();
        pods.delete(&name, &DeleteParams::default())
            .await
            .map_err(api_err(format!("deleting controller pod {name}")))?;
    }
    Ok(())
}

/// `fleet_reconciler_stack_reconciles_total` of one stack, read from the
/// controller's `/metrics` (0 before its first reconcile).
pub async fn reconciles_of(namespace: &str, stack: &str) -> Result<u64> {
    let pod = controller_pod().await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let port = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| p.container_port)
        .unwrap_or(8080);
    let pods: Api<Pod> = Api::namespaced(client().await?, CONTROLLER_NAMESPACE);
    let fwd = crate::portforward::forward(&pods, &name, port as u16).await?;
    let body = http_get(fwd.local, "/metrics")
        .await
        .map_err(|output| E2eError::Command {
            what: format!("GET /metrics of {name}"),
            output,
        })?;
    Ok(stack_reconciles(&body, namespace, stack))
}

/// The per-stack reconcile counter in a Prometheus text body.
pub fn stack_reconciles(body: &str, namespace: &str, stack: &str) -> u64 {
    let ns = format!("namespace=\"{namespace}\"");
    let nm = format!("name=\"{stack}\"");
    body.lines()
        .filter(|l| l.starts_with("fleet_reconciler_stack_reconciles_total{"))
        .filter(|l| l.contains(&ns) && l.contains(&nm))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// `GET path` over HTTP/1.0, body only.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::result::Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: metrics\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    body.split("\r\n\r\n")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| "no HTTP body".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_stacks_counter() {
        let body = "# TYPE fleet_reconciler_stack_reconciles counter\n\
            fleet_reconciler_stack_reconciles_total{namespace=\"a\",name=\"s\"} 12\n\
            fleet_reconciler_stack_reconciles_total{namespace=\"b\",name=\"s\"} 3\n";
        assert_eq!(stack_reconciles(body, "a", "s"), 12);
        assert_eq!(stack_reconciles(body, "c", "s"), 0);
    }
}
