//! FleetAgent object names. Agent ids are `[A-Za-z0-9_-]{1,64}`; object
//! names must be lower-case DNS subdomains. An id that already is a valid
//! name is used as is (what users expect to `kubectl get`); any other id is
//! lower-cased, `_` becomes `-`, and a hash of the exact id is appended so
//! that `Agent_1` and `agent-1` never share an object.

use fleet_proto::AgentId;

/// Label on every FleetAgent the operator writes (seeding and cleanup
/// select on it).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "fleet-operator";
/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "fleet-operator";
pub use fleet_crds::STACK_LABEL;

/// Label selector for the FleetAgents whose status this operator keeps
/// (inventory adoption) and whose agents it may command. With
/// `FLEET_OWNER_STACK` set: `managed-by` AND `fleet.nationtech.io/stack=<stack>`,
/// so two FleetStacks in one namespace never adopt, disconnect, delete or
/// command each other's agents. Without it: today's behaviour (`managed-by`
/// only, no stack label written), narrowed by `!stack` so that such an
/// operator still never touches an object another stack's operator owns.
pub fn agent_selector(owner_stack: Option<&str>) -> String {
    match owner_stack {
        Some(stack) => format!("{MANAGED_BY_LABEL}={MANAGED_BY},{STACK_LABEL}={stack}"),
        None => format!("{MANAGED_BY_LABEL}={MANAGED_BY},!{STACK_LABEL}"),
    }
}

/// The FleetAgent object name of `id` (shared with the callout, which
/// creates device FleetAgents at enrollment: `fleet_crds::agent_object_name`).
pub fn object_name(id: &AgentId) -> String {
    fleet_crds::agent_object_name(id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        object_name(&AgentId::new(s).unwrap())
    }

    #[test]
    fn the_agent_selector_names_the_owner_stack() {
        assert_eq!(
            agent_selector(Some("north")),
            "app.kubernetes.io/managed-by=fleet-operator,fleet.nationtech.io/stack=north"
        );
        assert_eq!(
            agent_selector(None),
            "app.kubernetes.io/managed-by=fleet-operator,!fleet.nationtech.io/stack"
        );
    }

    #[test]
    fn valid_names_are_kept_others_get_a_stable_hash() {
        assert_eq!(name("agent-0"), "agent-0");
        assert_eq!(
            name("fleet-agent-7d9f8c6b5-x2k4q"),
            "fleet-agent-7d9f8c6b5-x2k4q"
        );
        let upper = name("Agent_1");
        assert!(upper.starts_with("agent-1-"), "{upper}");
        assert_ne!(upper, name("agent-1"));
        assert_ne!(name("a_b"), name("a-b"));
        assert_eq!(name("Agent_1"), upper, "stable");
        assert!(name("_").starts_with("agent-"));
        let long = name(&"A".repeat(64));
        assert!(long.len() <= 253 && long.len() == 64 + 9, "{long}");
    }
}
