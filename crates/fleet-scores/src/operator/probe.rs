//! The operator's smoke probe, in two steps:
//!
//! 1. `GET /readyz` through its Service. The runtime answers 200 once it is
//!    connected to NATS and has checked that the FleetAgent and FleetCommand
//!    CRDs are served (a follower waiting for the Lease is ready too), so a
//!    pass means NATS and the API server are reachable from the operator.
//! 2. When agents are expected: every expected agent id has a FleetAgent
//!    whose `status.connected` is true. That is the operator's own view
//!    (heartbeats received on NATS and written to the API), so a pass
//!    proves the whole heartbeat -> inventory path for each agent.
//!
//! Step 2 matches on `spec.agentId`, which the CRD declares the
//! authoritative id (object names are derived from it, with a hash suffix
//! for ids that are not valid names), so no name mapping is repeated here.
//! The decision is the pure [`check_agents`]; [`agents_check`] only lists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fleet_crds::FleetAgent;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::http_probe::Readyz;
use crate::score::{InterpretError, ProbeOutcome, Units};

/// At most this many ids are named in a failure message (the count is
/// always given).
pub const MAX_NAMED: usize = 5;

/// What the FleetAgents say about the expected agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentsCheck {
    /// Distinct expected ids.
    pub expected: usize,
    /// Expected ids with a FleetAgent whose status says connected.
    pub connected: usize,
    /// Expected ids without a FleetAgent or with a disconnected one, in the
    /// order they were expected.
    pub not_connected: Vec<String>,
}

impl AgentsCheck {
    pub fn all_connected(&self) -> bool {
        self.not_connected.is_empty()
    }

    /// Connected out of expected, for [`crate::Outcome::units`].
    pub fn units(&self) -> Units {
        let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        Units {
            ready: n(self.connected),
            desired: n(self.expected),
        }
    }

    /// The probe's outcome, given that `/readyz` passed. Deterministic
    /// (no timings in the message) so that an unchanged fleet never
    /// rewrites status.
    pub fn outcome(&self, latency: Duration) -> ProbeOutcome {
        if self.all_connected() {
            return ProbeOutcome::Passed {
                latency,
                message: format!(
                    "operator ready; {}/{} agents connected",
                    self.connected, self.expected
                ),
            };
        }
        let mut named = self
            .not_connected
            .iter()
            .take(MAX_NAMED)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if self.not_connected.len() > MAX_NAMED {
            named.push_str(&format!(
                " and {} more",
                self.not_connected.len() - MAX_NAMED
            ));
        }
        ProbeOutcome::Failed {
            reason: "AgentsNotConnected",
            message: format!(
                "operator: {}/{} agents connected; not connected: {named}",
                self.connected, self.expected
            ),
            latency,
        }
    }
}

/// Checks every expected agent id against `agents` (pure). A FleetAgent
/// counts when its `spec.agentId` is expected and its status says
/// connected; FleetAgents of agents nobody expects are ignored, and a
/// repeated expected id counts once.
pub fn check_agents(expected: &[String], agents: &[FleetAgent]) -> AgentsCheck {
    // Ids are unique per namespace (one object name per id); should two
    // objects still claim one id, either being connected is enough.
    let mut connected_by_id: BTreeMap<&str, bool> = BTreeMap::new();
    for agent in agents {
        let connected = agent.status.as_ref().is_some_and(|s| s.connected);
        *connected_by_id
            .entry(agent.spec.agent_id.as_str())
            .or_default() |= connected;
    }
    let mut seen = BTreeSet::new();
    let mut check = AgentsCheck {
        expected: 0,
        connected: 0,
        not_connected: Vec::new(),
    };
    for id in expected {
        if !seen.insert(id.as_str()) {
            continue;
        }
        check.expected += 1;
        if connected_by_id.get(id.as_str()) == Some(&true) {
            check.connected += 1;
        } else {
            check.not_connected.push(id.clone());
        }
    }
    check
}

/// Lists the FleetAgents of `namespace` and checks them against
/// `expected`. `Ok(None)` when the list did not answer within `deadline`.
pub async fn agents_check(
    client: &Client,
    namespace: &str,
    expected: &[String],
    deadline: Duration,
) -> Result<Option<AgentsCheck>, InterpretError> {
    let api: Api<FleetAgent> = Api::namespaced(client.clone(), namespace);
    let listed = tokio::time::timeout(deadline, api.list(&ListParams::default())).await;
    match listed {
        Err(_elapsed) => Ok(None),
        Ok(Err(source)) => Err(InterpretError::Api {
            verb: "list",
            kind: "FleetAgent".into(),
            namespace: namespace.into(),
            name: "*".into(),
            source: Box::new(source),
        }),
        Ok(Ok(list)) => Ok(Some(check_agents(expected, &list.items))),
    }
}

/// The operator runtime's `/readyz` (step 1).
pub const READYZ: Readyz = Readyz {
    component: crate::Component::Operator.name(),
    not_ready: "OperatorNotReady",
    unreachable: "OperatorUnreachable",
    passed: "operator ready",
};

/// Probes `http://<host>:<port>/readyz` within `deadline`.
pub async fn readyz(host: &str, port: u16, deadline: Duration) -> ProbeOutcome {
    READYZ.probe(host, port, deadline).await
}

/// `/readyz`, then (when `expected` is not empty) the FleetAgent check.
/// Returns the outcome and, when agents are expected, `(connected,
/// expected)`; an operator that is not ready confirms no agent (`0`).
/// `Err` only when the FleetAgents cannot be listed (an API error).
pub async fn smoke_probe(
    client: &Client,
    namespace: &str,
    host: &str,
    port: u16,
    expected: &[String],
    deadline: Duration,
) -> Result<(ProbeOutcome, Option<Units>), InterpretError> {
    let started = Instant::now();
    let ready = readyz(host, port, deadline).await;
    if expected.is_empty() {
        return Ok((ready, None));
    }
    let none_connected = check_agents(expected, &[]).units();
    if !ready.passed() {
        return Ok((ready, Some(none_connected)));
    }
    let (outcome, units) = inventory(client, namespace, expected, started, deadline).await?;
    Ok((outcome, Some(units)))
}

/// Step 2 alone, for a caller that has just seen `/readyz` pass (the
/// reconciler, once the agents are deployed): the FleetAgent check within
/// what is left of `deadline` since `started`, with `(connected, expected)`.
pub async fn inventory(
    client: &Client,
    namespace: &str,
    expected: &[String],
    started: Instant,
    deadline: Duration,
) -> Result<(ProbeOutcome, Units), InterpretError> {
    let left = deadline.saturating_sub(started.elapsed());
    Ok(
        match agents_check(client, namespace, expected, left).await? {
            Some(check) => (check.outcome(started.elapsed()), check.units()),
            None => (
                ProbeOutcome::Failed {
                    reason: "ProbeTimeout",
                    message: format!(
                        "operator: listing FleetAgents in {namespace} did not answer within {}s",
                        deadline.as_secs()
                    ),
                    latency: started.elapsed(),
                },
                check_agents(expected, &[]).units(),
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_crds::{FleetAgentSpec, FleetAgentStatus};

    fn agent(id: &str, connected: Option<bool>) -> FleetAgent {
        let mut a = FleetAgent::new(
            // A name unlike the id: the check must not rely on names.
            &format!("obj-{}", id.to_lowercase()),
            FleetAgentSpec {
                agent_id: id.into(),
                ..Default::default()
            },
        );
        a.status = connected.map(|connected| FleetAgentStatus {
            connected,
            ..Default::default()
        });
        a
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn message(o: &ProbeOutcome) -> &str {
        match o {
            ProbeOutcome::Passed { message, .. } | ProbeOutcome::Failed { message, .. } => message,
        }
    }

    const ZERO: Duration = Duration::ZERO;

    #[test]
    fn all_connected_passes_with_units() {
        let expected = ids(&["demo-agent-0", "demo-agent-1", "demo-agent-2"]);
        let agents = [
            agent("demo-agent-2", Some(true)),
            agent("demo-agent-0", Some(true)),
            agent("demo-agent-1", Some(true)),
        ];
        let c = check_agents(&expected, &agents);
        assert!(c.all_connected());
        assert_eq!(
            c.units(),
            Units {
                ready: 3,
                desired: 3
            }
        );
        let o = c.outcome(ZERO);
        assert!(o.passed(), "{o:?}");
        assert_eq!(message(&o), "operator ready; 3/3 agents connected");
    }

    #[test]
    fn a_missing_agent_fails_and_is_named() {
        let expected = ids(&["demo-agent-0", "demo-agent-1", "demo-agent-2"]);
        let agents = [
            agent("demo-agent-0", Some(true)),
            agent("demo-agent-1", Some(true)),
        ];
        let c = check_agents(&expected, &agents);
        assert_eq!(c.not_connected, ["demo-agent-2"]);
        assert_eq!(
            c.units(),
            Units {
                ready: 2,
                desired: 3
            }
        );
        match c.outcome(ZERO) {
            ProbeOutcome::Failed {
                reason, message, ..
            } => {
                assert_eq!(reason, "AgentsNotConnected");
                assert_eq!(
                    message,
                    "operator: 2/3 agents connected; not connected: demo-agent-2"
                );
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn a_disconnected_or_statusless_agent_does_not_count() {
        let expected = ids(&["a", "b", "c"]);
        let agents = [
            agent("a", Some(true)),
            agent("b", Some(false)),
            agent("c", None),
        ];
        let c = check_agents(&expected, &agents);
        assert_eq!(c.not_connected, ["b", "c"]);
        assert_eq!(
            c.units(),
            Units {
                ready: 1,
                desired: 3
            }
        );
        assert!(!c.outcome(ZERO).passed());
    }

    #[test]
    fn matches_the_recorded_id_not_the_object_name() {
        // Upper-case and `_` ids get hashed object names; the id in the
        // spec is what counts.
        let expected = ids(&["Agent_1"]);
        let c = check_agents(&expected, &[agent("Agent_1", Some(true))]);
        assert_eq!(
            c.units(),
            Units {
                ready: 1,
                desired: 1
            }
        );
        let c = check_agents(&expected, &[agent("agent-1", Some(true))]);
        assert_eq!(c.not_connected, ["Agent_1"]);
    }

    #[test]
    fn extra_agents_are_ignored_and_repeats_count_once() {
        let expected = ids(&["a", "b", "a"]);
        let agents = [
            agent("a", Some(true)),
            agent("b", Some(true)),
            agent("stranger", Some(false)),
            agent("other-stack-agent", Some(true)),
        ];
        let c = check_agents(&expected, &agents);
        assert_eq!(
            c.units(),
            Units {
                ready: 2,
                desired: 2
            }
        );
        assert!(c.outcome(ZERO).passed());
    }

    #[test]
    fn nothing_expected_passes_trivially() {
        let c = check_agents(&[], &[agent("a", Some(false))]);
        assert_eq!(
            c.units(),
            Units {
                ready: 0,
                desired: 0
            }
        );
        assert!(c.all_connected());
    }

    #[test]
    fn at_most_five_ids_are_named() {
        let expected: Vec<String> = (0..8).map(|i| format!("demo-agent-{i}")).collect();
        let c = check_agents(&expected, &[agent("demo-agent-3", Some(true))]);
        assert_eq!(
            c.units(),
            Units {
                ready: 1,
                desired: 8
            }
        );
        assert_eq!(
            message(&c.outcome(ZERO)),
            "operator: 1/8 agents connected; not connected: demo-agent-0, demo-agent-1, \
             demo-agent-2, demo-agent-4, demo-agent-5 and 2 more"
        );
    }
}
