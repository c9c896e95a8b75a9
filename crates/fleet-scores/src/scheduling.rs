//! Pods the scheduler cannot place (pure). A workload whose pods are
//! `PodScheduled=False` with reason `Unschedulable` never rolls out, and
//! its smoke probe only says "cannot connect"; the scheduler's own message
//! (`0/3 nodes are available: 3 node(s) didn't match Pod's node
//! affinity/selector`) is what the user needs, so [`crate::resources`]
//! reports it instead, naming the component (issue 17: a nodeSelector or
//! toleration that matches no node).

use k8s_openapi::api::core::v1::Pod;

/// The probe-failure reason of a component with unschedulable pods.
pub const UNSCHEDULABLE: &str = "Unschedulable";

/// `pods cannot be scheduled: <pod>: <scheduler message>` for the first
/// unschedulable pod (by name, so the message does not churn), with how
/// many there are.
pub fn unschedulable(pods: &[Pod]) -> Option<String> {
    let mut stuck: Vec<(&str, &str)> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let condition = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "PodScheduled")?;
            (condition.status == "False" && condition.reason.as_deref() == Some(UNSCHEDULABLE))
                .then(|| {
                    (
                        p.metadata.name.as_deref().unwrap_or("<unnamed>"),
                        condition.message.as_deref().unwrap_or("no message"),
                    )
                })
        })
        .collect();
    stuck.sort();
    let (name, message) = stuck.first()?;
    let more = match stuck.len() {
        1 => String::new(),
        n => format!(" ({n} pods)"),
    };
    Some(format!("pods cannot be scheduled{more}: {name}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, status: &str, reason: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: status.into(),
                    reason: reason.map(String::from),
                    message: Some("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn names_the_first_unschedulable_pod_and_the_schedulers_reason() {
        let pods = [
            pod("demo-nats-1", "False", Some(UNSCHEDULABLE)),
            pod("demo-nats-0", "False", Some(UNSCHEDULABLE)),
            pod("demo-nats-2", "True", None),
        ];
        assert_eq!(
            unschedulable(&pods).as_deref(),
            Some(
                "pods cannot be scheduled (2 pods): demo-nats-0: 0/1 nodes are available: \
                 1 node(s) didn't match Pod's node affinity/selector."
            )
        );
    }

    #[test]
    fn scheduled_or_merely_pending_pods_are_not_reported() {
        assert_eq!(unschedulable(&[pod("a", "True", None)]), None);
        // Scheduling gated or not attempted yet: not the scheduler's verdict.
        assert_eq!(
            unschedulable(&[pod("a", "False", Some("SchedulingGated"))]),
            None
        );
        assert_eq!(unschedulable(&[]), None);
    }
}
