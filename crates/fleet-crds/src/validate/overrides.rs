//! Checks of a [`PodOverrides`] with the rules the API server applies to
//! the pod fields they become (core/v1 validation.go: `ValidateTolerations`,
//! `validateTopologySpreadConstraints`, `validateAffinity`, label and
//! annotation syntax), plus ours: labels and annotations the reconciler
//! owns are refused, container names must exist. Every error names the
//! field (`spec.nats.pod.tolerations[0].operator`).

use k8s_openapi::api::core::v1::{
    Affinity, NodeSelectorTerm, PodAffinityTerm, Toleration, TopologySpreadConstraint,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{SpecError, check_resources, err, key_path, syntax};
use crate::pod_overrides::{OWNED_LABELS, OWNED_PREFIX, PodOverrides, Workload};
use crate::stack::ComputeResources;

/// Total size limit of a pod's annotations (`TotalAnnotationSizeLimitB`).
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Checks the overrides of `workload`; `main_resources` is the
/// component's own `resources` field, if it has one and it is set.
pub fn check(
    workload: Workload,
    o: &PodOverrides,
    main_resources: Option<&ComputeResources>,
    errors: &mut Vec<SpecError>,
) {
    let path = workload.path();
    for (key, value) in &o.node_selector {
        let p = format!("{path}.nodeSelector[{key:?}]");
        if let Err(why) = syntax::check_qualified_name(key) {
            errors.push(err(&p, format!("invalid label key: {why}")));
        }
        if let Err(why) = syntax::check_label_value(value) {
            errors.push(err(&p, format!("invalid label value: {why}")));
        }
    }
    if let Some(affinity) = &o.affinity {
        check_affinity(&format!("{path}.affinity"), affinity, errors);
    }
    for (i, t) in o.tolerations.iter().enumerate() {
        check_toleration(&format!("{path}.tolerations[{i}]"), t, errors);
    }
    for (i, c) in o.topology_spread_constraints.iter().enumerate() {
        check_spread(&format!("{path}.topologySpreadConstraints[{i}]"), c, errors);
    }
    if let Some(class) = &o.priority_class_name
        && let Err(why) = syntax::check_dns_subdomain(class)
    {
        errors.push(err(
            format!("{path}.priorityClassName"),
            format!("{why} (a PriorityClass name)"),
        ));
    }
    for (i, secret) in o.image_pull_secrets.iter().enumerate() {
        if let Err(why) = syntax::check_dns_subdomain(&secret.name) {
            errors.push(err(
                format!("{path}.imagePullSecrets[{i}].name"),
                format!("{why} (a Secret name)"),
            ));
        }
    }
    for (key, value) in &o.labels {
        let p = format!("{path}.labels[{key:?}]");
        if let Err(why) = syntax::check_qualified_name(key) {
            errors.push(err(&p, format!("invalid label key: {why}")));
        } else if OWNED_LABELS.contains(&key.as_str()) || key.starts_with(OWNED_PREFIX) {
            errors.push(err(
                &p,
                "set by the reconciler (it selects the component's pods): choose another key",
            ));
        }
        if let Err(why) = syntax::check_label_value(value) {
            errors.push(err(&p, format!("invalid label value: {why}")));
        }
    }
    check_annotations(&format!("{path}.annotations"), &o.annotations, errors);
    if !o.service_account_annotations.is_empty() && !workload.has_service_account() {
        errors.push(err(
            format!("{path}.serviceAccountAnnotations"),
            "not available here: this workload runs without a ServiceAccount of its own",
        ));
    }
    check_annotations(
        &format!("{path}.serviceAccountAnnotations"),
        &o.service_account_annotations,
        errors,
    );
    for (container, res) in &o.resources {
        let p = key_path(&format!("{path}.resources"), container);
        if !workload.containers().contains(&container.as_str()) {
            errors.push(err(
                &p,
                format!(
                    "no such container; this workload runs {}",
                    workload.containers().join(", ")
                ),
            ));
            continue;
        }
        if let (Some((main, field)), Some(_)) = (workload.main_resources_field(), main_resources)
            && main == container
        {
            errors.push(err(
                &p,
                format!("{field} already sets the resources of container {main}: set one of them"),
            ));
        }
        check_resources(&p, res, errors);
    }
}

fn check_annotations(
    path: &str,
    annotations: &std::collections::BTreeMap<String, String>,
    errors: &mut Vec<SpecError>,
) {
    let mut total = 0;
    for (key, value) in annotations {
        total += key.len() + value.len();
        let p = format!("{path}[{key:?}]");
        if let Err(why) = syntax::check_qualified_name(&key.to_ascii_lowercase()) {
            errors.push(err(&p, format!("invalid annotation key: {why}")));
        } else if key.starts_with(OWNED_PREFIX) {
            errors.push(err(
                &p,
                "fleet.nationtech.io/ annotations are the reconciler's (config and credential hashes)",
            ));
        }
    }
    if total > MAX_ANNOTATIONS_BYTES {
        errors.push(err(
            path,
            format!("{total} bytes; annotations may total at most {MAX_ANNOTATIONS_BYTES}"),
        ));
    }
}

fn check_toleration(path: &str, t: &Toleration, errors: &mut Vec<SpecError>) {
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty())
        && let Err(why) = syntax::check_qualified_name(key)
    {
        errors.push(err(format!("{path}.key"), why));
    }
    let key_empty = t.key.as_deref().is_none_or(str::is_empty);
    match t.operator.as_deref() {
        None | Some("Equal") => {
            if key_empty {
                errors.push(err(
                    format!("{path}.operator"),
                    "must be Exists when key is empty (a toleration of every taint)",
                ));
            }
            if let Some(value) = &t.value
                && let Err(why) = syntax::check_label_value(value)
            {
                errors.push(err(format!("{path}.value"), why));
            }
        }
        Some("Exists") => {
            if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errors.push(err(
                    format!("{path}.value"),
                    "must be empty when operator is Exists",
                ));
            }
        }
        Some(other) => errors.push(err(
            format!("{path}.operator"),
            format!("{other:?}: must be Equal or Exists"),
        )),
    }
    match t.effect.as_deref() {
        None | Some("") | Some("NoSchedule") | Some("PreferNoSchedule") => {
            if t.toleration_seconds.is_some() {
                errors.push(err(
                    format!("{path}.tolerationSeconds"),
                    "only with effect NoExecute",
                ));
            }
        }
        Some("NoExecute") => {}
        Some(other) => errors.push(err(
            format!("{path}.effect"),
            format!("{other:?}: must be NoSchedule, PreferNoSchedule or NoExecute"),
        )),
    }
}

fn check_spread(path: &str, c: &TopologySpreadConstraint, errors: &mut Vec<SpecError>) {
    if c.max_skew < 1 {
        errors.push(err(
            format!("{path}.maxSkew"),
            format!("must be at least 1 ({} given)", c.max_skew),
        ));
    }
    if let Err(why) = syntax::check_qualified_name(&c.topology_key) {
        errors.push(err(
            format!("{path}.topologyKey"),
            format!("{why} (a node label key such as topology.kubernetes.io/zone)"),
        ));
    }
    match c.when_unsatisfiable.as_str() {
        "DoNotSchedule" | "ScheduleAnyway" => {}
        other => errors.push(err(
            format!("{path}.whenUnsatisfiable"),
            format!("{other:?}: must be DoNotSchedule or ScheduleAnyway"),
        )),
    }
    if let Some(min) = c.min_domains {
        if min < 1 {
            errors.push(err(format!("{path}.minDomains"), "must be at least 1"));
        }
        if c.when_unsatisfiable != "DoNotSchedule" {
            errors.push(err(
                format!("{path}.minDomains"),
                "only with whenUnsatisfiable: DoNotSchedule",
            ));
        }
    }
    for (field, value) in [
        ("nodeAffinityPolicy", c.node_affinity_policy.as_deref()),
        ("nodeTaintsPolicy", c.node_taints_policy.as_deref()),
    ] {
        match value {
            None | Some("Honor") | Some("Ignore") => {}
            Some(other) => errors.push(err(
                format!("{path}.{field}"),
                format!("{other:?}: must be Honor or Ignore"),
            )),
        }
    }
    if let Some(selector) = &c.label_selector {
        check_label_selector(&format!("{path}.labelSelector"), selector, errors);
    }
}

fn check_affinity(path: &str, a: &Affinity, errors: &mut Vec<SpecError>) {
    if let Some(node) = &a.node_affinity {
        let p = format!("{path}.nodeAffinity");
        if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
            let rp = format!("{p}.requiredDuringSchedulingIgnoredDuringExecution");
            if required.node_selector_terms.is_empty() {
                errors.push(err(
                    format!("{rp}.nodeSelectorTerms"),
                    "must have at least one term",
                ));
            }
            for (i, term) in required.node_selector_terms.iter().enumerate() {
                check_node_term(&format!("{rp}.nodeSelectorTerms[{i}]"), term, errors);
            }
        }
        for (i, pref) in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let pp = format!("{p}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            check_weight(&pp, pref.weight, errors);
            check_node_term(&format!("{pp}.preference"), &pref.preference, errors);
        }
    }
    let pod_parts = [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ];
    for (name, part) in pod_parts {
        let Some((required, preferred)) = part else {
            continue;
        };
        let p = format!("{path}.{name}");
        for (i, term) in required.iter().flatten().enumerate() {
            check_pod_term(
                &format!("{p}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"),
                term,
                errors,
            );
        }
        for (
            i,
            WeightedPodAffinityTerm {
                weight,
                pod_affinity_term,
            },
        ) in preferred.iter().flatten().enumerate()
        {
            let pp = format!("{p}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            check_weight(&pp, *weight, errors);
            check_pod_term(&format!("{pp}.podAffinityTerm"), pod_affinity_term, errors);
        }
    }
}

fn check_weight(path: &str, weight: i32, errors: &mut Vec<SpecError>) {
    if !(1..=100).contains(&weight) {
        errors.push(err(
            format!("{path}.weight"),
            format!("must be between 1 and 100 ({weight} given)"),
        ));
    }
}

fn check_node_term(path: &str, term: &NodeSelectorTerm, errors: &mut Vec<SpecError>) {
    for (field, reqs) in [
        ("matchExpressions", &term.match_expressions),
        ("matchFields", &term.match_fields),
    ] {
        for (i, r) in reqs.iter().flatten().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            if let Err(why) = syntax::check_qualified_name(&r.key) {
                errors.push(err(format!("{p}.key"), why));
            }
            let values = r.values.as_deref().unwrap_or_default();
            match r.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => errors.push(err(
                    format!("{p}.values"),
                    "must be non-empty with operator In or NotIn",
                )),
                "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(err(
                    format!("{p}.values"),
                    "must be empty with operator Exists or DoesNotExist",
                )),
                "Gt" | "Lt" if values.len() != 1 || values[0].parse::<i64>().is_err() => errors
                    .push(err(
                        format!("{p}.values"),
                        "must be one integer with operator Gt or Lt",
                    )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
                other => errors.push(err(
                    format!("{p}.operator"),
                    format!("{other:?}: must be In, NotIn, Exists, DoesNotExist, Gt or Lt"),
                )),
            }
        }
    }
}

fn check_pod_term(path: &str, term: &PodAffinityTerm, errors: &mut Vec<SpecError>) {
    if let Err(why) = syntax::check_qualified_name(&term.topology_key) {
        errors.push(err(
            format!("{path}.topologyKey"),
            format!("{why} (a node label key such as kubernetes.io/hostname)"),
        ));
    }
    if let Some(selector) = &term.label_selector {
        check_label_selector(&format!("{path}.labelSelector"), selector, errors);
    }
    if let Some(selector) = &term.namespace_selector {
        check_label_selector(&format!("{path}.namespaceSelector"), selector, errors);
    }
    for (i, ns) in term.namespaces.iter().flatten().enumerate() {
        if let Err(why) = syntax::check_dns_1035_label(ns) {
            errors.push(err(format!("{path}.namespaces[{i}]"), why));
        }
    }
}

fn check_label_selector(path: &str, s: &LabelSelector, errors: &mut Vec<SpecError>) {
    for (key, value) in s.match_labels.iter().flatten() {
        let p = format!("{path}.matchLabels[{key:?}]");
        if let Err(why) = syntax::check_qualified_name(key) {
            errors.push(err(&p, format!("invalid label key: {why}")));
        }
        if let Err(why) = syntax::check_label_value(value) {
            errors.push(err(&p, format!("invalid label value: {why}")));
        }
    }
    for (i, r) in s.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        if let Err(why) = syntax::check_qualified_name(&r.key) {
            errors.push(err(format!("{p}.key"), why));
        }
        let values = r.values.as_deref().unwrap_or_default();
        match r.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(err(
                format!("{p}.values"),
                "must be non-empty with operator In or NotIn",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(err(
                format!("{p}.values"),
                "must be empty with operator Exists or DoesNotExist",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(err(
                format!("{p}.operator"),
                format!("{other:?}: must be In, NotIn, Exists or DoesNotExist"),
            )),
        }
        for (j, v) in values.iter().enumerate() {
            if let Err(why) = syntax::check_label_value(v) {
                errors.push(err(format!("{p}.values[{j}]"), why));
            }
        }
    }
}
