//! `kubectl fleet status <stack>`: the stack's conditions, each component's
//! last probe, endpoints, certificate expiry and agents, from one read of
//! the FleetStack.
//!
//! [`StackView`] is what `-o json|yaml` prints and what the table shows.

use fleet_crds::{FleetStack, PAUSED, READY, RECONCILING, STALLED, find_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;

use crate::age;
use crate::generic::{self, Certificate, Endpoint};
use crate::table::{Cell, Colour, Style, Table, fields};

/// Components in dependency order (the order the reconciler converges
/// them); any other key of `status.components` follows, sorted.
const ORDER: &[&str] = &["nats", "identity", "callout", "operator", "agents"];

/// Certificates closer than this to expiry are shown in yellow.
const EXPIRY_WARNING_SECONDS: i64 = 14 * 86_400;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackView {
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub ready: Option<ConditionView>,
    pub reconciling: Option<ConditionView>,
    pub stalled: Option<ConditionView>,
    pub paused: Option<ConditionView>,
    pub components: Vec<ComponentView>,
    pub agents: Option<AgentsView>,
    pub endpoints: Vec<Endpoint>,
    pub certificates: Vec<Certificate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
}

impl ConditionView {
    fn from(c: &Condition) -> Self {
        ConditionView {
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: c.last_transition_time.0.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentView {
    pub name: String,
    /// The last smoke probe (`status.components.<name>`); absent before the
    /// first probe.
    pub probe: Option<ProbeView>,
    /// The component's `<Component>Ready` condition.
    pub condition: Option<ConditionView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeView {
    pub ready: bool,
    pub reason: String,
    pub message: String,
    pub observed_generation: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentsView {
    pub desired: i32,
    /// Answered the last probe's ping.
    pub ready: i32,
    /// Connected FleetAgents (absent without an operator runtime).
    pub connected: Option<i32>,
}

/// `Nats` + `Ready`, the reconciler's naming of component conditions.
fn condition_type(component: &str) -> String {
    let mut chars = component.chars();
    match chars.next() {
        Some(first) => format!("{}{}Ready", first.to_uppercase(), chars.as_str()),
        None => "Ready".to_string(),
    }
}

impl StackView {
    /// `raw_status` is the object's `status` as JSON (endpoints and
    /// certificates are read from it, see [`generic`]).
    pub fn new(stack: &FleetStack, raw_status: &Value) -> Self {
        let status = stack.status.clone().unwrap_or_default();
        let cond = |t: &str| find_condition(&status.conditions, t).map(ConditionView::from);
        let mut names: Vec<String> = ORDER
            .iter()
            .filter(|c| {
                status.components.contains_key(**c)
                    || find_condition(&status.conditions, &condition_type(c)).is_some()
            })
            .map(|c| c.to_string())
            .collect();
        let mut others: Vec<String> = status
            .components
            .keys()
            .filter(|k| !ORDER.contains(&k.as_str()))
            .cloned()
            .collect();
        others.sort();
        names.extend(others);
        let components = names
            .into_iter()
            .map(|name| ComponentView {
                probe: status.components.get(&name).map(|c| ProbeView {
                    ready: c.ready,
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    observed_generation: c.observed_generation,
                }),
                condition: cond(&condition_type(&name)),
                name,
            })
            .collect();
        StackView {
            namespace: stack.namespace().unwrap_or_default(),
            name: stack.name_any(),
            generation: stack.metadata.generation,
            observed_generation: status.observed_generation,
            ready: cond(READY),
            reconciling: cond(RECONCILING),
            stalled: cond(STALLED),
            paused: cond(PAUSED),
            components,
            agents: status.agents.as_ref().map(|a| AgentsView {
                desired: a.desired,
                ready: a.ready,
                connected: a.connected,
            }),
            endpoints: generic::endpoints(raw_status),
            certificates: generic::certificates(raw_status),
        }
    }

    pub fn render(&self, style: Style, now: Timestamp) -> String {
        let mut summary: Vec<(&str, Cell)> = vec![
            (
                "Stack",
                Cell::plain(format!("{}/{}", self.namespace, self.name)),
            ),
            (
                "Ready",
                condition_cell(self.ready.as_ref(), Polarity::Good, now),
            ),
            (
                "Reconciling",
                condition_cell(self.reconciling.as_ref(), Polarity::Busy, now),
            ),
            (
                "Stalled",
                condition_cell(self.stalled.as_ref(), Polarity::Bad, now),
            ),
        ];
        if let Some(p) = &self.paused {
            summary.push(("Paused", condition_cell(Some(p), Polarity::Busy, now)));
        }
        summary.push((
            "Generation",
            Cell::plain(match (self.generation, self.observed_generation) {
                (Some(g), Some(o)) if g == o => format!("{g}"),
                (Some(g), Some(o)) => format!("{g} (status describes {o})"),
                (Some(g), None) => format!("{g} (no status yet)"),
                (None, _) => String::new(),
            }),
        ));
        if let Some(a) = &self.agents {
            let connected = match a.connected {
                Some(c) => format!(", {c} connected"),
                None => String::new(),
            };
            let text = format!("{}/{} ready{connected}", a.ready, a.desired);
            let all = a.ready == a.desired && a.connected.is_none_or(|c| c == a.desired);
            summary.push((
                "Agents",
                Cell::coloured(text, if all { Colour::Green } else { Colour::Yellow }),
            ));
        }
        let mut out = fields(&summary, style);

        if !self.components.is_empty() {
            let mut t = Table::new(&["component", "ready", "reason", "since", "message"]);
            for c in &self.components {
                let (ready, reason, message) = match (&c.probe, &c.condition) {
                    (_, Some(cond)) => (
                        status_cell(&cond.status, Polarity::Good),
                        cond.reason.clone(),
                        cond.message.clone(),
                    ),
                    (Some(p), None) => (
                        status_cell(if p.ready { "True" } else { "False" }, Polarity::Good),
                        p.reason.clone(),
                        p.message.clone(),
                    ),
                    (None, None) => (Cell::plain("Unknown"), String::new(), String::new()),
                };
                // The probe's own message is the more precise one (it is
                // what the condition summarises).
                let message = c
                    .probe
                    .as_ref()
                    .map(|p| p.message.clone())
                    .filter(|m| !m.is_empty())
                    .unwrap_or(message);
                let since = c
                    .condition
                    .as_ref()
                    .and_then(|cond| cond.last_transition_time.parse::<Timestamp>().ok())
                    .map(|t| age::human(now.as_second() - t.as_second()));
                t.row(vec![
                    c.name.clone().into(),
                    ready,
                    reason.into(),
                    Cell::or_none(since),
                    message.into(),
                ]);
            }
            out.push('\n');
            out.push_str(&t.render(style));
        }

        if !self.endpoints.is_empty() {
            let mut t = Table::new(&["endpoint", "url", "ca"]);
            for e in &self.endpoints {
                t.row(vec![
                    e.name.clone().into(),
                    e.url.clone().into(),
                    if e.has_ca { "yes" } else { "no" }.into(),
                ]);
            }
            out.push('\n');
            out.push_str(&t.render(style));
        }

        if !self.certificates.is_empty() {
            let mut t = Table::new(&["certificate", "not-after", "expires"]);
            for c in &self.certificates {
                let expires = match age::until(&c.not_after, now) {
                    Some((text, left)) if left < 0 => Cell::coloured(text, Colour::Red),
                    Some((text, left)) if left < EXPIRY_WARNING_SECONDS => {
                        Cell::coloured(text, Colour::Yellow)
                    }
                    Some((text, _)) => Cell::coloured(text, Colour::Green),
                    None => Cell::plain("unreadable time"),
                };
                t.row(vec![
                    c.name.clone().into(),
                    c.not_after.clone().into(),
                    expires,
                ]);
            }
            out.push('\n');
            out.push_str(&t.render(style));
        }
        out
    }
}

/// What a condition being True means: Good (Ready), Bad (Stalled) or Busy
/// (Reconciling, Paused).
#[derive(Debug, Clone, Copy)]
enum Polarity {
    /// `Ready`: True is green.
    Good,
    /// `Stalled`: True is red.
    Bad,
    /// `Reconciling`, `Paused`: True is yellow, False is plain.
    Busy,
}

/// The colour of a condition status, `None` for "nothing to see".
fn colour_of(status: &str, polarity: Polarity) -> Option<Colour> {
    match (status, polarity) {
        ("True", Polarity::Good) | ("False", Polarity::Bad) => Some(Colour::Green),
        ("False", Polarity::Good) | ("True", Polarity::Bad) => Some(Colour::Red),
        ("True", Polarity::Busy) => Some(Colour::Yellow),
        ("False", Polarity::Busy) => None,
        // Unknown (or anything a newer controller writes).
        (_, Polarity::Good | Polarity::Bad | Polarity::Busy) => Some(Colour::Yellow),
    }
}

fn with_colour(text: String, colour: Option<Colour>) -> Cell {
    match colour {
        Some(c) => Cell::coloured(text, c),
        None => Cell::plain(text),
    }
}

fn status_cell(status: &str, polarity: Polarity) -> Cell {
    with_colour(status.to_string(), colour_of(status, polarity))
}

/// `True Reason for 3m: message`, or `False` when the condition is absent
/// (Reconciling and Stalled are removed when they stop applying).
fn condition_cell(c: Option<&ConditionView>, polarity: Polarity, now: Timestamp) -> Cell {
    let Some(c) = c else {
        return match polarity {
            Polarity::Good => Cell::coloured("Unknown (no status yet)", Colour::Yellow),
            Polarity::Bad | Polarity::Busy => Cell::plain("False"),
        };
    };
    let since = c
        .last_transition_time
        .parse::<Timestamp>()
        .map(|t| format!(" for {}", age::human(now.as_second() - t.as_second())))
        .unwrap_or_default();
    let mut text = format!("{} {}{since}", c.status, c.reason);
    if !c.message.is_empty() {
        text.push_str(": ");
        text.push_str(&c.message);
    }
    with_colour(text, colour_of(&c.status, polarity))
}
