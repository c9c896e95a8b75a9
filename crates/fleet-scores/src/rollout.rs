//! Whether a live StatefulSet or Deployment has rolled out its current spec.
//!
//! A Score's smoke probe only says that *some* pod answers. Right after a
//! spec change the pod that answers can be the old one, still terminating
//! (issue 12: Ready=True 420 ms after a change that replaced the only NATS
//! pod). So before its probe a Score asks these pure functions about each
//! workload it applied; "not rolled out" is reported as a probe failure with
//! reason [`ROLLING_OUT`], which the status keeps as progress
//! (`Reconciling=True`), never as a failure or a Warning event.
//!
//! The rules follow what the workload controllers publish, in this order:
//! 1. the controller observed the current spec
//!    (`status.observedGeneration >= metadata.generation`); until then every
//!    other status field describes the previous spec;
//! 2. every desired replica runs the new revision (`updatedReplicas`);
//! 3. every desired replica is ready (and, for Deployments, available);
//! 4. no replica of an old revision is left: StatefulSet `currentRevision ==
//!    updateRevision` and `status.replicas == desired` (a terminating old
//!    pod still counts in `replicas`); Deployment `replicas == updated`
//!    and `unavailableReplicas == 0`.
//!
//! These match kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status core.go)
//! plus the observedGeneration check kstatus only makes generically, so a
//! FleetStack is never Current while kstatus would call a child InProgress.
//! Messages are deterministic (counts and names only) so status does not
//! churn.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The probe-failure reason a Score reports while a workload rolls out.
/// `fleet_reconciler::status` keys on it: `Reconciling=True`, no Warning.
pub const ROLLING_OUT: &str = "RollingOut";

/// What a workload's status says about its current spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every desired replica runs the current spec and is ready; no old
    /// replica is left.
    Complete,
    /// Still converging; `message` names the workload and what is missing.
    InProgress { message: String },
}

impl Rollout {
    pub fn is_complete(&self) -> bool {
        matches!(self, Rollout::Complete)
    }

    /// The message of an in-progress rollout (`None` when complete).
    pub fn message(&self) -> Option<&str> {
        match self {
            Rollout::Complete => None,
            Rollout::InProgress { message } => Some(message),
        }
    }
}

fn in_progress(kind: &str, meta: &ObjectMeta, what: String) -> Rollout {
    let name = meta.name.as_deref().unwrap_or("<unnamed>");
    Rollout::InProgress {
        message: format!("{kind} {name}: {what}"),
    }
}

/// `Some(in progress)` while the controller has not observed the current
/// generation: the rest of the status is about an older spec.
fn generation_lag(kind: &str, meta: &ObjectMeta, observed: Option<i64>) -> Option<Rollout> {
    let generation = meta.generation?;
    match observed {
        Some(observed) if observed >= generation => None,
        Some(observed) => Some(in_progress(
            kind,
            meta,
            format!("controller has observed generation {observed} of {generation}"),
        )),
        None => Some(in_progress(
            kind,
            meta,
            format!("controller has not observed generation {generation} yet"),
        )),
    }
}

/// Whether a StatefulSet rolled out its current spec.
///
/// `OnDelete` StatefulSets are judged like `RollingUpdate` ones: their pods
/// only change when deleted, so "rolled out" is still "every pod runs the
/// update revision". A `partition` holds back the pods below it by design:
/// only the ordinals at or above it must be updated (kstatus does the same).
pub fn statefulset(sts: &StatefulSet) -> Rollout {
    const KIND: &str = "StatefulSet";
    let meta = &sts.metadata;
    let status = sts.status.clone().unwrap_or_default();
    if let Some(lag) = generation_lag(KIND, meta, status.observed_generation) {
        return lag;
    }
    let spec = sts.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let replicas = status.replicas;
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .clamp(0, desired);
    let must_update = desired - partition;
    if updated < must_update {
        return in_progress(
            KIND,
            meta,
            format!("{updated}/{must_update} replicas updated"),
        );
    }
    if ready < desired {
        return in_progress(KIND, meta, format!("{ready}/{desired} replicas ready"));
    }
    if replicas > desired {
        return in_progress(
            KIND,
            meta,
            format!("{} old replicas terminating", replicas - desired),
        );
    }
    if replicas < desired {
        return in_progress(KIND, meta, format!("{replicas}/{desired} replicas created"));
    }
    // With a partition the revisions differ on purpose until it is lowered.
    if partition == 0 && status.current_revision != status.update_revision {
        return in_progress(
            KIND,
            meta,
            format!(
                "revision {} not yet current (current {})",
                status.update_revision.as_deref().unwrap_or("<none>"),
                status.current_revision.as_deref().unwrap_or("<none>")
            ),
        );
    }
    Rollout::Complete
}

/// Whether a Deployment rolled out its current spec.
pub fn deployment(deploy: &Deployment) -> Rollout {
    const KIND: &str = "Deployment";
    let meta = &deploy.metadata;
    let status = deploy.status.clone().unwrap_or_default();
    if let Some(lag) = generation_lag(KIND, meta, status.observed_generation) {
        return lag;
    }
    let desired = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let replicas = status.replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let unavailable = status.unavailable_replicas.unwrap_or(0);
    if let Some(c) = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    {
        // Still "in progress" for the FleetStack: its own ready deadline
        // turns a rollout that never finishes into Stalled; the message
        // says why it will not finish by itself.
        return in_progress(
            KIND,
            meta,
            format!(
                "progress deadline exceeded: {}",
                c.message.as_deref().unwrap_or("no message")
            ),
        );
    }
    if updated < desired {
        return in_progress(KIND, meta, format!("{updated}/{desired} replicas updated"));
    }
    if replicas > updated {
        return in_progress(
            KIND,
            meta,
            format!("{} old replicas pending termination", replicas - updated),
        );
    }
    if ready < desired {
        return in_progress(KIND, meta, format!("{ready}/{desired} replicas ready"));
    }
    if available < desired || unavailable > 0 {
        return in_progress(
            KIND,
            meta,
            format!("{available}/{desired} replicas available"),
        );
    }
    Rollout::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentCondition, DeploymentSpec, DeploymentStatus, RollingUpdateStatefulSetStrategy,
        StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
    };

    fn meta(name: &str, generation: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            generation: Some(generation),
            ..Default::default()
        }
    }

    /// A StatefulSet of 3 replicas at generation 2 whose controller caught
    /// up completely; tests break one field at a time.
    fn sts_done() -> StatefulSet {
        StatefulSet {
            metadata: meta("demo-nats", 2),
            spec: Some(StatefulSetSpec {
                replicas: Some(3),
                ..Default::default()
            }),
            status: Some(StatefulSetStatus {
                observed_generation: Some(2),
                replicas: 3,
                ready_replicas: Some(3),
                current_replicas: Some(3),
                updated_replicas: Some(3),
                current_revision: Some("demo-nats-b".into()),
                update_revision: Some("demo-nats-b".into()),
                ..Default::default()
            }),
        }
    }

    fn msg(r: Rollout) -> String {
        r.message().map(str::to_string).unwrap_or_default()
    }

    #[test]
    fn a_caught_up_statefulset_is_complete() {
        assert_eq!(statefulset(&sts_done()), Rollout::Complete);
        assert!(statefulset(&sts_done()).is_complete());
    }

    /// The race of issue 12: the spec changed (generation 3), the
    /// controller has not looked yet, and everything else still reads
    /// "3/3 ready" for the old spec.
    #[test]
    fn observed_generation_lagging_is_in_progress_whatever_the_counts_say() {
        let mut s = sts_done();
        s.metadata.generation = Some(3);
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: controller has observed generation 2 of 3"
        );
        s.status.as_mut().expect("status").observed_generation = None;
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: controller has not observed generation 3 yet"
        );
        // No status at all (just created).
        s.status = None;
        assert!(!statefulset(&s).is_complete());
    }

    /// The other half of the race: the controller observed the new spec,
    /// the only old pod is terminating and no new pod exists yet.
    #[test]
    fn old_pod_terminating_before_the_new_one_exists_is_in_progress() {
        let mut s = sts_done();
        s.metadata.generation = Some(3);
        s.spec.as_mut().expect("spec").replicas = Some(1);
        let st = s.status.as_mut().expect("status");
        *st = StatefulSetStatus {
            observed_generation: Some(3),
            replicas: 1,
            ready_replicas: Some(0),
            current_replicas: Some(1),
            updated_replicas: Some(0),
            current_revision: Some("demo-nats-b".into()),
            update_revision: Some("demo-nats-c".into()),
            ..Default::default()
        };
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: 0/1 replicas updated"
        );
    }

    #[test]
    fn each_missing_piece_is_named() {
        let mut s = sts_done();
        s.status.as_mut().expect("status").updated_replicas = Some(1);
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: 1/3 replicas updated"
        );

        let mut s = sts_done();
        s.status.as_mut().expect("status").ready_replicas = Some(2);
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: 2/3 replicas ready"
        );

        let mut s = sts_done();
        s.status.as_mut().expect("status").replicas = 4;
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: 1 old replicas terminating"
        );

        let mut s = sts_done();
        s.status.as_mut().expect("status").current_revision = Some("demo-nats-a".into());
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: revision demo-nats-b not yet current (current demo-nats-a)"
        );
    }

    #[test]
    fn a_partition_holds_back_the_lower_ordinals_by_design() {
        let mut s = sts_done();
        s.spec.as_mut().expect("spec").update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(2),
                ..Default::default()
            }),
        });
        let st = s.status.as_mut().expect("status");
        st.updated_replicas = Some(1);
        st.current_revision = Some("demo-nats-a".into());
        assert_eq!(statefulset(&s), Rollout::Complete);
        s.status.as_mut().expect("status").updated_replicas = Some(0);
        assert_eq!(
            msg(statefulset(&s)),
            "StatefulSet demo-nats: 0/1 replicas updated"
        );
    }

    #[test]
    fn zero_replicas_roll_out_once_observed() {
        let mut s = sts_done();
        s.spec.as_mut().expect("spec").replicas = Some(0);
        *s.status.as_mut().expect("status") = StatefulSetStatus {
            observed_generation: Some(2),
            replicas: 0,
            current_revision: Some("r".into()),
            update_revision: Some("r".into()),
            ..Default::default()
        };
        assert_eq!(statefulset(&s), Rollout::Complete);
    }

    fn deploy_done() -> Deployment {
        Deployment {
            metadata: meta("demo-callout", 5),
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(5),
                replicas: Some(2),
                updated_replicas: Some(2),
                ready_replicas: Some(2),
                available_replicas: Some(2),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn deployments_follow_the_same_rules() {
        assert_eq!(deployment(&deploy_done()), Rollout::Complete);

        let mut d = deploy_done();
        d.metadata.generation = Some(6);
        assert_eq!(
            msg(deployment(&d)),
            "Deployment demo-callout: controller has observed generation 5 of 6"
        );

        // Surge: the new ReplicaSet is complete, an old pod still counts.
        let mut d = deploy_done();
        d.status.as_mut().expect("status").replicas = Some(3);
        assert_eq!(
            msg(deployment(&d)),
            "Deployment demo-callout: 1 old replicas pending termination"
        );

        let mut d = deploy_done();
        d.status.as_mut().expect("status").updated_replicas = Some(1);
        assert_eq!(
            msg(deployment(&d)),
            "Deployment demo-callout: 1/2 replicas updated"
        );

        let mut d = deploy_done();
        d.status.as_mut().expect("status").ready_replicas = Some(1);
        assert_eq!(
            msg(deployment(&d)),
            "Deployment demo-callout: 1/2 replicas ready"
        );

        let mut d = deploy_done();
        let st = d.status.as_mut().expect("status");
        st.available_replicas = Some(1);
        st.unavailable_replicas = Some(1);
        assert_eq!(
            msg(deployment(&d)),
            "Deployment demo-callout: 1/2 replicas available"
        );

        let mut d = deploy_done();
        d.status = None;
        assert!(!deployment(&d).is_complete());
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_says_so() {
        let mut d = deploy_done();
        let st = d.status.as_mut().expect("status");
        st.updated_replicas = Some(1);
        st.conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"demo-callout-7d\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        assert_eq!(
            msg(deployment(&d)),
            "Deployment demo-callout: progress deadline exceeded: ReplicaSet \"demo-callout-7d\" has timed out progressing."
        );
    }
}
