//! The closed set of FleetStack components.
//!
//! Everything that differs per component and is not the Score itself is an
//! exhaustive match here: the label value and status key, the condition
//! type, the kinds its objects may have (what pruning lists and the
//! controller watches) and the RBAC the controller needs for them. A new
//! component is a new variant; the compiler then points at every match that
//! must learn it (docs/adr/0010, "Adding a component").

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::{ConfigMap, Secret, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{PolicyRule, Role, RoleBinding},
};
use kube::core::ApiResource;

/// One component of a FleetStack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Nats,
    Identity,
    Callout,
    Operator,
    Agents,
}

/// The verbs the controller uses on its children: server-side apply (get,
/// patch; create for write-once Secrets), the `.owns()` watches (list,
/// watch) and pruning (list, delete).
pub const CHILD_VERBS: [&str; 6] = ["get", "list", "watch", "create", "patch", "delete"];

impl Component {
    /// Every component, in an order where each comes after what it
    /// [`depends_on`](Self::depends_on); the runner applies them in this
    /// order within one reconcile.
    pub const ALL: [Component; 5] = [
        Component::Nats,
        Component::Identity,
        Component::Callout,
        Component::Operator,
        Component::Agents,
    ];

    /// What must pass its smoke probe before this component is applied:
    /// only what its own pods or its probe need, so independent components
    /// start together (issue 18). The operator and the agents both need
    /// only NATS (and, in callout mode, the agents the callout and its
    /// issuer): the agents' first heartbeats come a second apart, so an
    /// operator starting next to them still sees them at once, and the
    /// operator's follow-up check (every agent a connected FleetAgent) runs
    /// only when every component passed.
    pub const fn depends_on(self) -> &'static [Component] {
        match self {
            Component::Nats => &[],
            // Zitadel and its PostgreSQL do not use NATS.
            Component::Identity => &[],
            // It connects to NATS and validates tokens against the issuer.
            Component::Callout => &[Component::Nats, Component::Identity],
            Component::Operator => &[Component::Nats],
            Component::Agents => &[Component::Nats, Component::Identity, Component::Callout],
        }
    }

    /// Label value (`app.kubernetes.io/component`), `status.components` key
    /// and the prefix of its messages.
    pub const fn name(self) -> &'static str {
        match self {
            Component::Nats => "nats",
            Component::Identity => "identity",
            Component::Callout => "callout",
            Component::Operator => "operator",
            Component::Agents => "agents",
        }
    }

    /// Type of the status condition that reports it.
    pub const fn condition(self) -> &'static str {
        match self {
            Component::Nats => "NatsReady",
            Component::Identity => "IdentityReady",
            Component::Callout => "CalloutReady",
            Component::Operator => "OperatorReady",
            Component::Agents => "AgentsReady",
        }
    }

    /// The component whose `name()` is `name`.
    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Every kind this component's objects can have: what orphan pruning
    /// lists and what the controller watches. PodDisruptionBudgets only
    /// where `policy/v1` is served (Kubernetes >= 1.21).
    pub fn owned_kinds(self, pdb_v1: bool) -> Vec<ApiResource> {
        let mut kinds = vec![
            ApiResource::erase::<StatefulSet>(&()),
            ApiResource::erase::<Service>(&()),
            ApiResource::erase::<ConfigMap>(&()),
            ApiResource::erase::<Secret>(&()),
            ApiResource::erase::<ServiceAccount>(&()),
        ];
        if pdb_v1 {
            kinds.push(ApiResource::erase::<PodDisruptionBudget>(&()));
        }
        let extra: &[ApiResource] = match self {
            Component::Nats | Component::Agents => &[],
            Component::Callout => &[ApiResource::erase::<Deployment>(&())],
            // The runtime's own permissions.
            Component::Operator => &[
                ApiResource::erase::<Deployment>(&()),
                ApiResource::erase::<Role>(&()),
                ApiResource::erase::<RoleBinding>(&()),
            ],
            // Zitadel, its init/setup Jobs and the setup Job's permissions
            // on the provisioner Secret.
            Component::Identity => &[
                ApiResource::erase::<Deployment>(&()),
                ApiResource::erase::<Job>(&()),
                ApiResource::erase::<Role>(&()),
                ApiResource::erase::<RoleBinding>(&()),
            ],
        };
        kinds.extend(extra.iter().cloned());
        kinds
    }

    /// What the controller must be granted for this component: the child
    /// verbs on every owned kind, plus what the component's own Roles
    /// grant (Kubernetes refuses to let the controller create a Role
    /// holding more than it holds itself).
    pub fn controller_rules(self) -> Vec<PolicyRule> {
        let mut rules: Vec<PolicyRule> = self
            .owned_kinds(true)
            .into_iter()
            .map(|kind| PolicyRule {
                api_groups: Some(vec![kind.group]),
                resources: Some(vec![kind.plural]),
                verbs: CHILD_VERBS.iter().map(|v| v.to_string()).collect(),
                ..Default::default()
            })
            .collect();
        let delegated = match self {
            Component::Operator => operator_role_rules(),
            Component::Identity => {
                crate::zitadel::objects::setup_rules(&crate::zitadel::ZitadelNames::new("any"))
            }
            Component::Nats | Component::Callout | Component::Agents => Vec::new(),
        };
        // The controller's grant is per kind, not per object: Roles name
        // their stack's objects, the ClusterRole covers every stack.
        rules.extend(delegated.into_iter().map(|r| PolicyRule {
            resource_names: None,
            ..r
        }));
        rules
    }
}

/// What the controller watches to run a probe when it can pass rather
/// than on a timer: the pods of its workloads and their Services'
/// endpoints (readiness), and FleetAgents (the operator's follow-up check).
pub fn wake_rules() -> Vec<PolicyRule> {
    let rule = |group: &str, resources: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: vec!["list".into(), "watch".into()],
        ..Default::default()
    };
    vec![
        rule("", &["pods", "endpoints"]),
        rule("fleet.nationtech.io", &["fleetagents"]),
    ]
}

/// Read-only calls that explain why a stack cannot work: the
/// `FailedCreate` Events of its workloads and the ReplicaSet one names
/// (`fleet_reconciler::pod_refusals`, docs/adr/0017), and a managed
/// Zitadel's database claim, proof a lost write-once Secret was used
/// (`crate::secret_loss`, docs/adr/0016).
pub fn diagnosis_rules() -> Vec<PolicyRule> {
    let rule = |group: &str, resource: &str, verb: &str| PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(vec![resource.to_string()]),
        verbs: vec![verb.to_string()],
        ..Default::default()
    };
    vec![
        rule("", "events", "list"),
        rule("apps", "replicasets", "get"),
        rule("", "persistentvolumeclaims", "get"),
    ]
}

/// The operator runtime's Role in its largest variant (leader election
/// with several replicas).
fn operator_role_rules() -> Vec<PolicyRule> {
    crate::operator::rules(&crate::operator::OperatorInput {
        stack: "any".into(),
        namespace: "any".into(),
        owner: Default::default(),
        spec: fleet_crds::OperatorSpec {
            pod: None,
            image: String::new(),
            replicas: 2,
        },
        nats_tls: true,
        nats_servers: 1,
    })
}

/// Every kind any component may own, once each (the controller's watches).
pub fn all_owned_kinds(pdb_v1: bool) -> Vec<ApiResource> {
    let mut kinds: Vec<ApiResource> = Component::ALL
        .into_iter()
        .flat_map(|c| c.owned_kinds(pdb_v1))
        .collect();
    kinds.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
    kinds.dedup_by(|a, b| a.group == b.group && a.plural == b.plural);
    kinds
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The compiler checks that every match knows every component; this
    /// checks that what the matches give is usable: a new component without
    /// a condition, owned kinds or RBAC rules fails here.
    #[test]
    fn every_component_has_a_name_condition_kinds_and_rules() {
        let mut names = BTreeSet::new();
        let mut conditions = BTreeSet::new();
        for c in Component::ALL {
            assert!(names.insert(c.name()), "{c:?}: name not unique");
            assert!(
                conditions.insert(c.condition()),
                "{c:?}: condition not unique"
            );
            assert!(
                c.condition().ends_with("Ready") && c.condition() != "Ready",
                "{c:?}: condition {} must be <Component>Ready",
                c.condition()
            );
            assert_eq!(Component::from_name(c.name()), Some(c));
            let kinds = c.owned_kinds(false);
            assert!(!kinds.is_empty(), "{c:?}: no owned kinds");
            let rules = c.controller_rules();
            for kind in &kinds {
                assert!(
                    rules.iter().any(|r| {
                        r.resources.iter().flatten().any(|p| p == &kind.plural)
                            && r.api_groups.iter().flatten().any(|g| g == &kind.group)
                            && CHILD_VERBS.iter().all(|v| r.verbs.iter().any(|x| x == v))
                    }),
                    "{c:?}: no RBAC rule covers {}/{}",
                    kind.group,
                    kind.plural
                );
            }
        }
        assert_eq!(Component::from_name("server"), None);
    }

    #[test]
    fn order_is_the_dependency_order() {
        let pos = |c| Component::ALL.iter().position(|x| *x == c).unwrap();
        for c in Component::ALL {
            for d in c.depends_on() {
                assert!(
                    pos(*d) < pos(c),
                    "{c:?} depends on {d:?}, which must come first"
                );
            }
        }
        let mut sorted = Component::ALL;
        sorted.sort();
        assert_eq!(sorted, Component::ALL, "derive(Ord) follows ALL");
    }

    #[test]
    fn all_owned_kinds_lists_each_kind_once() {
        let kinds = all_owned_kinds(true);
        let set: BTreeSet<_> = kinds.iter().map(|k| (&k.group, &k.plural)).collect();
        assert_eq!(set.len(), kinds.len());
        assert!(set.contains(&(&"batch".to_string(), &"jobs".to_string())));
        assert!(
            !all_owned_kinds(false)
                .iter()
                .any(|k| k.plural == "poddisruptionbudgets")
        );
    }
}
