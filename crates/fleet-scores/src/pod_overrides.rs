//! The one merge of a [`PodOverrides`] onto a pod template, called by every
//! component's objects.rs at the end of its pod template builder, plus the
//! ServiceAccount annotations (docs/adr/0072-pod-overrides.md).
//!
//! What the merge may touch is closed: placement (nodeSelector, affinity,
//! tolerations, topology spread, priority class), imagePullSecrets, extra
//! labels and annotations (ours win on a clash; validation refuses one
//! anyway), and the `resources` of containers named in the overrides. It
//! never reads or writes a security context, a volume, a command or the
//! selector, so the restricted Pod Security settings every Score sets stay
//! as they are (tested below with every field set).
//!
//! Defaults that depend on the component (NATS: prefer one server per node
//! and per zone; requests for the nats container) come in as [`Defaults`].

use fleet_crds::PodOverrides;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, PodTemplateSpec, ResourceRequirements,
    ServiceAccount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

use crate::labels;

/// Node label of the node's name (every kubelet sets it).
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// Node label of the zone (set by cloud providers; absent on most bare
/// metal, where a preferred term on it simply matches nothing).
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// Requests of the nats container when the spec sets none: it ran
/// BestEffort before (first to be evicted under node pressure). No limits:
/// a CPU limit throttles the server under bursts, a memory limit kills it
/// with JetStream memory streams in flight; set them through
/// `spec.nats.resources` or `spec.nats.pod.resources.nats`.
pub const NATS_REQUESTS: [(&str, &str); 2] = [("cpu", "50m"), ("memory", "64Mi")];

/// What a component's pods get unless the overrides say otherwise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    /// The pod's affinity before the overrides (each part the overrides
    /// set replaces the same part here).
    pub affinity: Option<Affinity>,
    /// Resources of containers that have none, by container name.
    pub resources: BTreeMap<String, ResourceRequirements>,
}

impl Defaults {
    /// No component-specific default.
    pub fn none() -> Self {
        Defaults::default()
    }

    /// NATS: servers of one stack prefer different nodes (weight 100) and
    /// different zones where nodes carry the zone label (weight 50):
    /// preferred, not required, so a one-node cluster still runs every
    /// replica. The nats container gets [`NATS_REQUESTS`].
    pub fn nats(stack: &str, component: &str) -> Self {
        let term = |key: &str, weight| WeightedPodAffinityTerm {
            weight,
            pod_affinity_term: PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(labels::selector_labels(stack, component)),
                    ..Default::default()
                }),
                topology_key: key.into(),
                ..Default::default()
            },
        };
        let requests = NATS_REQUESTS
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect();
        Defaults {
            affinity: Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        term(HOSTNAME_KEY, 100),
                        term(ZONE_KEY, 50),
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            resources: BTreeMap::from([(
                "nats".to_string(),
                ResourceRequirements {
                    requests: Some(requests),
                    ..Default::default()
                },
            )]),
        }
    }
}

/// A workload object with one pod template.
pub trait PodTemplate {
    fn pod_template(&mut self) -> Option<&mut PodTemplateSpec>;
}

impl PodTemplate for StatefulSet {
    fn pod_template(&mut self) -> Option<&mut PodTemplateSpec> {
        self.spec.as_mut().map(|s| &mut s.template)
    }
}

impl PodTemplate for Deployment {
    fn pod_template(&mut self) -> Option<&mut PodTemplateSpec> {
        self.spec.as_mut().map(|s| &mut s.template)
    }
}

impl PodTemplate for Job {
    fn pod_template(&mut self) -> Option<&mut PodTemplateSpec> {
        self.spec.as_mut().map(|s| &mut s.template)
    }
}

impl PodTemplate for PodTemplateSpec {
    fn pod_template(&mut self) -> Option<&mut PodTemplateSpec> {
        Some(self)
    }
}

/// Merges `defaults`, then `overrides`, onto the workload's pod template.
/// See the module doc for what it touches; everything else is left as
/// built.
pub fn apply(
    workload: &mut impl PodTemplate,
    overrides: Option<&PodOverrides>,
    defaults: &Defaults,
) {
    let Some(template) = workload.pod_template() else {
        return;
    };
    let empty = PodOverrides::default();
    let o = overrides.unwrap_or(&empty);
    // The component's own selector labels, for spread constraints that
    // name no selector.
    let own: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .map(|l| {
            l.iter()
                .filter(|(k, _)| {
                    [labels::NAME, labels::INSTANCE, labels::COMPONENT].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();

    let meta = template.metadata.get_or_insert_with(Default::default);
    if !o.labels.is_empty() {
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &o.labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if !o.annotations.is_empty() {
        let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in &o.annotations {
            annotations.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    if !o.node_selector.is_empty() {
        pod.node_selector
            .get_or_insert_with(BTreeMap::new)
            .extend(o.node_selector.clone());
    }
    pod.affinity = merge_affinity(
        pod.affinity.take().or_else(|| defaults.affinity.clone()),
        o.affinity.as_ref(),
    );
    if !o.tolerations.is_empty() {
        pod.tolerations
            .get_or_insert_with(Vec::new)
            .extend(o.tolerations.iter().cloned());
    }
    if !o.topology_spread_constraints.is_empty() {
        let spread = pod.topology_spread_constraints.get_or_insert_with(Vec::new);
        for c in &o.topology_spread_constraints {
            let mut c = c.clone();
            if c.label_selector.is_none() {
                c.label_selector = Some(LabelSelector {
                    match_labels: Some(own.clone()),
                    ..Default::default()
                });
            }
            spread.push(c);
        }
    }
    if let Some(class) = &o.priority_class_name {
        pod.priority_class_name = Some(class.clone());
    }
    if !o.image_pull_secrets.is_empty() {
        pod.image_pull_secrets
            .get_or_insert_with(Vec::new)
            .extend(o.image_pull_secrets.iter().cloned());
    }
    let containers = pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten());
    for c in containers {
        if let Some(r) = o.resources.get(&c.name) {
            c.resources = Some(ResourceRequirements {
                requests: (!r.requests.is_empty()).then(|| r.requests.clone()),
                limits: (!r.limits.is_empty()).then(|| r.limits.clone()),
                ..Default::default()
            });
        } else if c.resources.is_none()
            && let Some(d) = defaults.resources.get(&c.name)
        {
            c.resources = Some(d.clone());
        }
    }
}

/// Each part the overrides set replaces that part of `base`.
fn merge_affinity(base: Option<Affinity>, over: Option<&Affinity>) -> Option<Affinity> {
    let Some(over) = over else { return base };
    let mut a = base.unwrap_or_default();
    if over.node_affinity.is_some() {
        a.node_affinity = over.node_affinity.clone();
    }
    if over.pod_affinity.is_some() {
        a.pod_affinity = over.pod_affinity.clone();
    }
    if over.pod_anti_affinity.is_some() {
        a.pod_anti_affinity = over.pod_anti_affinity.clone();
    }
    Some(a)
}

/// Adds the overrides' ServiceAccount annotations (cloud workload
/// identity) to the component's ServiceAccount.
pub fn annotate_service_account(sa: &mut ServiceAccount, overrides: Option<&PodOverrides>) {
    let Some(o) = overrides.filter(|o| !o.service_account_annotations.is_empty()) else {
        return;
    };
    let annotations = sa.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in &o.service_account_annotations {
        annotations.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::pod;

    fn template() -> PodTemplateSpec {
        let mut labels = labels::component_labels("demo", "nats");
        labels.extend(labels::selector_labels("demo", "nats"));
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(
                    labels::CONFIG_HASH.to_string(),
                    "ours".to_string(),
                )])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                security_context: Some(pod::restricted_pod_security()),
                containers: vec![Container {
                    name: "nats".into(),
                    security_context: Some(pod::restricted_container_security()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn every_field() -> PodOverrides {
        serde_yaml::from_str(
            r#"
nodeSelector: {pool: edge}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: Exists}]}]
tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}
priorityClassName: fleet-critical
imagePullSecrets: [{name: mirror}]
labels: {team: edge, app.kubernetes.io/instance: forged}
annotations: {example.com/a: b, fleet.nationtech.io/config-hash: forged}
serviceAccountAnnotations: {eks.amazonaws.com/role-arn: "arn:x"}
resources: {nats: {requests: {cpu: 200m}, limits: {memory: 1Gi}}}
"#,
        )
        .expect("overrides")
    }

    #[test]
    fn no_override_can_weaken_the_restricted_security_context() {
        let mut t = template();
        apply(
            &mut t,
            Some(&every_field()),
            &Defaults::nats("demo", "nats"),
        );
        let pod = t.spec.as_ref().expect("spec");
        assert_eq!(pod.security_context, Some(pod::restricted_pod_security()));
        assert_eq!(
            pod.containers[0].security_context,
            Some(pod::restricted_container_security())
        );
        // Nothing that relaxes Pod Security: no host namespaces, no volumes,
        // no token mount.
        assert_eq!(pod.host_network, None);
        assert_eq!(pod.host_pid, None);
        assert_eq!(pod.volumes, None);
        assert_eq!(pod.automount_service_account_token, None);
        // The overrides' serialized form has no field that could: the type
        // is closed (a field added to it later shows up here).
        let keys: Vec<String> = serde_json::to_value(every_field())
            .expect("json")
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "affinity",
                "annotations",
                "imagePullSecrets",
                "labels",
                "nodeSelector",
                "priorityClassName",
                "resources",
                "serviceAccountAnnotations",
                "tolerations",
                "topologySpreadConstraints"
            ]
        );
    }

    #[test]
    fn every_field_lands_and_ours_win_on_a_clash() {
        let mut t = template();
        apply(
            &mut t,
            Some(&every_field()),
            &Defaults::nats("demo", "nats"),
        );
        let meta = t.metadata.as_ref().expect("meta");
        let labels = meta.labels.as_ref().expect("labels");
        assert_eq!(labels["team"], "edge");
        assert_eq!(labels[labels::INSTANCE], "demo");
        let annotations = meta.annotations.as_ref().expect("annotations");
        assert_eq!(annotations["example.com/a"], "b");
        assert_eq!(annotations[labels::CONFIG_HASH], "ours");
        let pod = t.spec.as_ref().expect("spec");
        assert_eq!(pod.node_selector.as_ref().expect("ns")["pool"], "edge");
        assert_eq!(pod.priority_class_name.as_deref(), Some("fleet-critical"));
        assert_eq!(
            pod.image_pull_secrets.as_ref().expect("ips")[0].name,
            "mirror"
        );
        assert_eq!(pod.tolerations.as_ref().expect("tol").len(), 1);
        let spread = &pod.topology_spread_constraints.as_ref().expect("tsc")[0];
        assert_eq!(
            spread
                .label_selector
                .as_ref()
                .and_then(|s| s.match_labels.clone()),
            Some(labels::selector_labels("demo", "nats")),
            "a constraint without a selector spreads the component's own pods"
        );
        let affinity = pod.affinity.as_ref().expect("affinity");
        assert!(affinity.node_affinity.is_some(), "the override's part");
        assert!(
            affinity.pod_anti_affinity.is_some(),
            "the default part the override did not set stays"
        );
        let res = pod.containers[0].resources.as_ref().expect("resources");
        assert_eq!(res.requests.as_ref().expect("req")["cpu"].0, "200m");
        assert_eq!(res.limits.as_ref().expect("lim")["memory"].0, "1Gi");
        let mut sa = ServiceAccount::default();
        annotate_service_account(&mut sa, Some(&every_field()));
        assert_eq!(
            sa.metadata.annotations.expect("sa")["eks.amazonaws.com/role-arn"],
            "arn:x"
        );
    }

    #[test]
    fn nats_defaults_spread_servers_and_request_resources() {
        let mut t = template();
        apply(&mut t, None, &Defaults::nats("demo", "nats"));
        let pod = t.spec.as_ref().expect("spec");
        let terms = pod
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .expect("preferred anti-affinity");
        let keys: Vec<(&str, i32)> = terms
            .iter()
            .map(|t| (t.pod_affinity_term.topology_key.as_str(), t.weight))
            .collect();
        assert_eq!(keys, [(HOSTNAME_KEY, 100), (ZONE_KEY, 50)]);
        assert_eq!(
            terms[0].pod_affinity_term.label_selector,
            Some(LabelSelector {
                match_labels: Some(labels::selector_labels("demo", "nats")),
                ..Default::default()
            })
        );
        assert!(
            pod.affinity
                .as_ref()
                .is_some_and(|a| a.pod_anti_affinity.as_ref().is_some_and(|p| p
                    .required_during_scheduling_ignored_during_execution
                    .is_none())),
            "preferred only: a one-node cluster still runs every server"
        );
        let requests = pod.containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone())
            .expect("requests");
        assert_eq!(requests["cpu"].0, "50m");
        assert_eq!(requests["memory"].0, "64Mi");
    }

    #[test]
    fn spec_resources_are_kept_over_the_defaults() {
        let mut t = template();
        let set = ResourceRequirements {
            limits: Some(BTreeMap::from([("cpu".into(), Quantity("1".into()))])),
            ..Default::default()
        };
        t.spec.as_mut().expect("spec").containers[0].resources = Some(set.clone());
        apply(&mut t, None, &Defaults::nats("demo", "nats"));
        assert_eq!(
            t.spec.as_ref().expect("spec").containers[0].resources,
            Some(set)
        );
    }

    #[test]
    fn no_overrides_and_no_defaults_change_nothing() {
        let mut t = template();
        apply(&mut t, None, &Defaults::none());
        assert_eq!(t, template());
        apply(&mut t, Some(&PodOverrides::default()), &Defaults::none());
        assert_eq!(t, template());
    }
}
