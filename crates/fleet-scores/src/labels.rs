//! Labels, annotations and the field manager: the ownership scheme
//! (docs/adr/0012-field-manager-and-ownership.md).
//!
//! Every object the reconciler creates carries
//! `app.kubernetes.io/managed-by=fleet-reconciler` (what the controller's
//! `.owns()` watches select on), `app.kubernetes.io/instance=<stack>` and
//! `app.kubernetes.io/component=<component>` (what orphan cleanup selects
//! on), plus an ownerReference to the FleetStack (what garbage collection
//! follows).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The one server-side-apply field manager of the project.
pub const FIELD_MANAGER: &str = "fleet-reconciler";

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const NAME: &str = "app.kubernetes.io/name";
pub const PART_OF: &str = "app.kubernetes.io/part-of";

/// Hash of the desired object as last applied; equal hash means "skip".
pub const DESIRED_HASH: &str = "fleet.nationtech.io/desired-hash";
/// Hash of the rendered configuration on a pod template: a config change
/// changes the template, which rolls the pods.
pub const CONFIG_HASH: &str = "fleet.nationtech.io/config-hash";

/// Selector the controller's `.owns()` watches use.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={FIELD_MANAGER}")
}

/// Selector of one component of one stack (orphan cleanup).
pub fn component_selector(stack: &str, component: &str) -> String {
    format!("{MANAGED_BY}={FIELD_MANAGER},{INSTANCE}={stack},{COMPONENT}={component}")
}

/// Labels on every object of a component.
pub fn component_labels(stack: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(stack, component);
    labels.insert(MANAGED_BY.into(), FIELD_MANAGER.into());
    labels.insert(PART_OF.into(), "fleetstack".into());
    labels
}

/// The immutable subset used in workload selectors.
pub fn selector_labels(stack: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), component.to_string()),
        (INSTANCE.to_string(), stack.to_string()),
        (COMPONENT.to_string(), component.to_string()),
    ])
}

/// Metadata of an object of a component: its name and namespace, the
/// component's labels and the ownerReference to the FleetStack, i.e. the
/// whole ownership scheme above in one place.
pub fn object_meta(
    stack: &str,
    component: &str,
    namespace: &str,
    owner: &OwnerReference,
    name: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(component_labels(stack, component)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}
