//! The one accumulator for a component's objects: every Score adds what it
//! desires, applies it in its stated order, and [`Resources::finish`]
//! deletes what carries the component's labels but was not added.
//!
//! The same code removes a component that left the spec
//! ([`remove_component`]), so "what belongs to a component" is decided in
//! one place: its labels (docs/adr/0012) and [`Component::owned_kinds`].
//!
//! Pruning lists every owned kind, so it runs only when it can find
//! something: when an object that already existed was rewritten (the
//! desired set only shrinks when the spec changes, and then an existing
//! object changes too) or when the component was removed. An idle stack
//! and a first creation cost no LIST.

use std::collections::{BTreeMap, BTreeSet};

use kube::Client;

use crate::apply::{self, ApplyReport, DesiredObject};
use crate::component::Component;
use crate::labels;
use crate::score::{InterpretError, Outcome, ProbeOutcome, Units};
use crate::secret::Sensitive;
use crate::stack_ref::StackRef;
use crate::topology::KubernetesTopology;
use crate::write_once::{self, SecretWrite};

/// The desired objects of one component of one stack, applied as they are
/// added.
pub struct Resources<'a> {
    client: &'a Client,
    stack: &'a StackRef,
    component: Component,
    pdb_v1: bool,
    /// `Kind/name` of everything desired, applied or not yet.
    keep: BTreeSet<String>,
    report: ApplyReport,
}

/// What a component's [`Resources`] did in the end.
#[derive(Debug, Default)]
pub struct Applied {
    pub written: Vec<String>,
    pub unchanged: usize,
    pub deleted: Vec<String>,
    /// The first workload applied that had not rolled out (see
    /// [`Resources::rolling_out`]).
    pub rolling_out: Option<ProbeOutcome>,
}

impl Applied {
    /// The component's outcome given its smoke probe: a probe that passed
    /// while a workload still rolls out is not Ready yet ([`after_rollout`]),
    /// so no Score can forget the rollout gate.
    pub fn outcome(self, probe: ProbeOutcome, units: Option<Units>) -> Outcome {
        Outcome {
            written: self.written,
            unchanged: self.unchanged,
            deleted: self.deleted,
            probe: after_rollout(probe, self.rolling_out),
            units,
            published: None,
        }
    }
}

impl<'a> Resources<'a> {
    pub fn new<T: KubernetesTopology>(
        topology: &'a T,
        stack: &'a StackRef,
        component: Component,
    ) -> Self {
        Resources {
            client: topology.client(),
            stack,
            component,
            pdb_v1: topology.serves_pdb_v1(),
            keep: BTreeSet::new(),
            report: ApplyReport::default(),
        }
    }

    /// Applies `objects` now, in the order given (unchanged ones skipped,
    /// see [`apply::apply_in_order`]), and keeps them.
    pub async fn apply(&mut self, objects: &[DesiredObject]) -> Result<(), InterpretError> {
        self.desire(objects);
        apply::apply_in_order(
            self.client,
            &self.stack.namespace,
            objects,
            &mut self.report,
        )
        .await
    }

    /// Keeps `objects` without applying them: a later stage that waits on
    /// an earlier one must not lose what it already has.
    pub fn desire(&mut self, objects: &[DesiredObject]) {
        self.keep.extend(objects.iter().map(DesiredObject::key));
    }

    /// Keeps an object this component writes by other means (a Secret of
    /// provisioned credentials, say): `kind` as in `Kind/name`.
    pub fn keep(&mut self, kind: &str, name: &str) {
        self.keep.insert(format!("{kind}/{name}"));
    }

    /// Records a write made by other means, for the report.
    pub fn wrote(&mut self, kind: &str, name: &str) {
        self.report.written.push(format!("{kind}/{name}"));
    }

    /// The values of `keys` in the write-once Secret `name` of this
    /// component, generating the missing ones with `generate` (see
    /// [`write_once::ensure_secret_with`]); the Secret is kept.
    pub async fn write_once(
        &mut self,
        name: &str,
        keys: &[&str],
        generate: &(dyn Fn(&str) -> Sensitive + Send + Sync),
    ) -> Result<BTreeMap<String, Sensitive>, InterpretError> {
        let (values, written) = write_once::ensure_secret_with(
            self.client,
            &self.stack.namespace,
            name,
            &labels::component_labels(&self.stack.name, self.component.name()),
            &self.stack.owner,
            keys,
            generate,
        )
        .await?;
        if written != SecretWrite::Unchanged {
            self.wrote("Secret", name);
        }
        self.keep("Secret", name);
        Ok(values)
    }

    /// [`Resources::write_once`] with generated passwords.
    pub async fn write_once_passwords(
        &mut self,
        name: &str,
        keys: &[&str],
    ) -> Result<BTreeMap<String, Sensitive>, InterpretError> {
        self.write_once(name, keys, &|_| crate::secret::generate_password())
            .await
    }

    /// The first workload applied so far that has not rolled out its
    /// current spec, as a failed probe with reason `RollingOut`: Ready for
    /// a generation means its workloads rolled out *and* then the smoke
    /// probe passed (docs/adr/0011).
    pub fn rolling_out(&self) -> Option<ProbeOutcome> {
        self.report.rollouts.iter().find_map(|r| {
            r.message().map(|message| ProbeOutcome::Failed {
                reason: crate::rollout::ROLLING_OUT,
                message: format!("{}: {message}", self.component.name()),
                latency: std::time::Duration::ZERO,
            })
        })
    }

    /// Why the component's pods do not run, if the scheduler says so
    /// ([`crate::scheduling`]). Asked only while a workload rolls out; a
    /// failed LIST leaves the rollout message as it is (the reconciler may
    /// list pods: its wake-up watches do).
    async fn unschedulable(&self) -> Option<String> {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), &self.stack.namespace);
        let selector = labels::component_selector(&self.stack.name, self.component.name());
        match pods
            .list(&kube::api::ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => crate::scheduling::unschedulable(&list.items),
            Err(e) => {
                tracing::debug!(error = %e, "listing pods for scheduling state");
                None
            }
        }
    }

    /// Deletes the component's objects that were not added (only when an
    /// existing object was rewritten: see the module docs).
    pub async fn finish(self) -> Result<Applied, InterpretError> {
        let mut rolling_out = self.rolling_out();
        if rolling_out.is_some()
            && let Some(message) = self.unschedulable().await
        {
            rolling_out = Some(ProbeOutcome::Failed {
                reason: crate::scheduling::UNSCHEDULABLE,
                message: format!("{}: {message}", self.component.name()),
                latency: std::time::Duration::ZERO,
            });
        }
        let deleted = if self.report.updated_existing {
            apply::prune(
                self.client,
                &self.stack.namespace,
                &self.stack.name,
                self.component.name(),
                &self.component.owned_kinds(self.pdb_v1),
                &self.keep,
            )
            .await?
        } else {
            Vec::new()
        };
        Ok(Applied {
            written: self.report.written,
            unchanged: self.report.unchanged,
            deleted,
            rolling_out,
        })
    }
}

/// The outcome of a component given its smoke probe and whether its
/// workloads rolled out (pure): a failed probe says the most (it names
/// what does not answer, e.g. the lost agent); a probe that passed while a
/// workload still rolls out (old pods answering) is not Ready yet.
pub fn after_rollout(probe: ProbeOutcome, rolling_out: Option<ProbeOutcome>) -> ProbeOutcome {
    match (probe.passed(), rolling_out) {
        // The scheduler's verdict says more than "cannot connect".
        (false, Some(stuck)) if is_unschedulable(&stuck) => stuck,
        (true, Some(rolling_out)) => rolling_out,
        (true, None) | (false, _) => probe,
    }
}

fn is_unschedulable(outcome: &ProbeOutcome) -> bool {
    match outcome {
        ProbeOutcome::Failed { reason, .. } => *reason == crate::scheduling::UNSCHEDULABLE,
        ProbeOutcome::Passed { .. } => false,
    }
}

/// Deletes every object of `component` of the stack (it left the spec).
pub async fn remove_component<T: KubernetesTopology>(
    topology: &T,
    namespace: &str,
    stack: &str,
    component: Component,
) -> Result<Vec<String>, InterpretError> {
    apply::prune(
        topology.client(),
        namespace,
        stack,
        component.name(),
        &component.owned_kinds(topology.serves_pdb_v1()),
        &BTreeSet::new(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failed(reason: &'static str, message: &str) -> ProbeOutcome {
        ProbeOutcome::Failed {
            reason,
            message: message.into(),
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn the_schedulers_verdict_wins_over_a_failed_connect() {
        let probe = failed("ConnectFailed", "nats: connection refused");
        let stuck = failed(
            crate::scheduling::UNSCHEDULABLE,
            "nats: pods cannot be scheduled",
        );
        assert_eq!(after_rollout(probe.clone(), Some(stuck.clone())), stuck);
        // A plain rollout does not hide what the probe found.
        let rolling = failed(crate::rollout::ROLLING_OUT, "nats: 0 of 1 ready");
        assert_eq!(after_rollout(probe.clone(), Some(rolling)), probe);
        let passed = ProbeOutcome::Passed {
            latency: Duration::ZERO,
            message: String::new(),
        };
        assert_eq!(after_rollout(passed, Some(stuck.clone())), stuck);
    }
}
