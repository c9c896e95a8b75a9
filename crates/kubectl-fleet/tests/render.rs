//! The views and tables of every command, from real API values: a
//! FleetStack whose status the reconciler's own helpers wrote, FleetAgents
//! as the operator writes them, a finished FleetCommand.

use std::collections::BTreeMap;

use fleet_crds::fleet_command::{COMPLETE, FAILED};
use fleet_crds::{
    AgentOutcome, AgentResult, AgentsStatus, CommandSummary, ComponentStatus, CondStatus,
    FleetAgent, FleetAgentSpec, FleetAgentStatus, FleetCommand, FleetCommandStatus, FleetStack,
    FleetStackSpec, FleetStackStatus, NatsSpec, READY, RECONCILING, STACK_LABEL, set_condition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::core::SelectorExt;
use kubectl_fleet::agents::{self, AgentState, AgentView};
use kubectl_fleet::output::{self, Encoding};
use kubectl_fleet::ping::{self, PingView};
use kubectl_fleet::selector;
use kubectl_fleet::status::StackView;
use kubectl_fleet::table::Style;
use serde_json::{Value, json};

fn at(rfc3339: &str) -> Time {
    Time(rfc3339.parse().expect("valid time"))
}

fn now() -> Timestamp {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

fn stack() -> FleetStack {
    let mut stack = FleetStack::new(
        "fleet",
        FleetStackSpec {
            nats: Some(NatsSpec::default()),
            ..FleetStackSpec::default()
        },
    );
    stack.metadata.namespace = Some("edge".into());
    stack.metadata.generation = Some(3);
    let mut s = FleetStackStatus {
        observed_generation: Some(3),
        ..Default::default()
    };
    let t = at("2026-12-01T11:55:00Z");
    set_condition(
        &mut s.conditions,
        READY,
        CondStatus::False,
        "ComponentNotReady",
        "agents: 2/3 agents answered",
        3,
        &t,
    );
    set_condition(
        &mut s.conditions,
        RECONCILING,
        CondStatus::True,
        "Recovering",
        "waiting for agents",
        3,
        &t,
    );
    set_condition(
        &mut s.conditions,
        "NatsReady",
        CondStatus::True,
        "ProbeSucceeded",
        "",
        3,
        &at("2026-12-01T10:00:00Z"),
    );
    set_condition(
        &mut s.conditions,
        "AgentsReady",
        CondStatus::False,
        "ProbeFailed",
        "2/3 agents answered",
        3,
        &t,
    );
    s.components = BTreeMap::from([
        (
            "nats".to_string(),
            ComponentStatus {
                ready: true,
                reason: "ProbeSucceeded".into(),
                message: "healthz ok, publish/subscribe ok".into(),
                observed_generation: 3,
            },
        ),
        (
            "agents".to_string(),
            ComponentStatus {
                ready: false,
                reason: "ProbeFailed".into(),
                message: "2/3 agents answered; missing: fleet-agent-1".into(),
                observed_generation: 3,
            },
        ),
    ]);
    s.agents = Some(AgentsStatus::new(3, 2).with_connected(Some(2)));
    stack.status = Some(s);
    stack
}

fn raw_status(stack: &FleetStack) -> Value {
    serde_json::to_value(stack.status.as_ref().unwrap()).unwrap()
}

#[test]
fn status_table_shows_conditions_components_and_agents() {
    let stack = stack();
    let view = StackView::new(&stack, &raw_status(&stack));
    let out = view.render(Style::Plain, now());
    let want = "\
Stack:       edge/fleet
Ready:       False ComponentNotReady for 5m: agents: 2/3 agents answered
Reconciling: True Recovering for 5m: waiting for agents
Stalled:     False
Generation:  3
Agents:      2/3 ready, 2 connected

COMPONENT   READY   REASON           SINCE   MESSAGE
nats        True    ProbeSucceeded   120m    healthz ok, publish/subscribe ok
agents      False   ProbeFailed      5m      2/3 agents answered; missing: fleet-agent-1
";
    assert_eq!(out, want, "\n{out}");
}

#[test]
fn status_shows_endpoints_and_certificates_when_the_status_has_them() {
    let stack = stack();
    let mut raw = raw_status(&stack);
    raw["endpoints"] =
        json!([{"name": "nats-external", "url": "tls://fleet.example:4222", "caBundle": "LS0t"}]);
    raw["certificates"] = json!([
        {"name": "nats-server", "notAfter": "2027-03-01T12:00:00Z"},
        {"name": "callout", "notAfter": "2026-12-05T12:00:00Z"}
    ]);
    let view = StackView::new(&stack, &raw);
    let out = view.render(Style::Plain, now());
    assert!(
        out.contains(
            "ENDPOINT        URL                        CA\nnats-external   tls://fleet.example:4222   yes\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "CERTIFICATE   NOT-AFTER              EXPIRES\n\
             nats-server   2027-03-01T12:00:00Z   in 90d\n\
             callout       2026-12-05T12:00:00Z   in 4d\n"
        ),
        "{out}"
    );
    // Coloured: the soon-expiring certificate is yellow, Ready=False red.
    let coloured = view.render(Style::Colour, now());
    assert!(coloured.contains("\x1b[33min 4d\x1b[0m"), "{coloured:?}");
    assert!(
        coloured.contains("\x1b[31mFalse ComponentNotReady"),
        "{coloured:?}"
    );
}

#[test]
fn status_without_any_status_yet() {
    let mut stack = stack();
    stack.status = None;
    let view = StackView::new(&stack, &Value::Null);
    let out = view.render(Style::Plain, now());
    assert_eq!(
        out,
        "Stack:       edge/fleet\nReady:       Unknown (no status yet)\nReconciling: False\nStalled:     False\nGeneration:  3 (no status yet)\n"
    );
}

#[test]
fn status_json_and_yaml_are_the_view() {
    let stack = stack();
    let view = StackView::new(&stack, &raw_status(&stack));
    let json: Value =
        serde_json::from_str(&output::serialize(&view, Encoding::Json).unwrap()).unwrap();
    assert_eq!(json["name"], "fleet");
    assert_eq!(json["ready"]["status"], "False");
    assert_eq!(json["components"][0]["name"], "nats");
    assert_eq!(json["components"][1]["probe"]["ready"], false);
    assert_eq!(json["agents"]["connected"], 2);
    assert_eq!(json["endpoints"], json!([]));
    let yaml: Value =
        serde_yaml::from_str(&output::serialize(&view, Encoding::Yaml).unwrap()).unwrap();
    assert_eq!(yaml, json, "YAML and JSON carry the same view");
}

fn agent(id: &str, connected: bool, labels: &[(&str, &str)]) -> FleetAgent {
    let mut a = FleetAgent::new(
        id,
        FleetAgentSpec {
            agent_id: id.to_string(),
            ..Default::default()
        },
    );
    a.metadata.namespace = Some("edge".into());
    a.metadata.labels = Some([(STACK_LABEL.to_string(), "fleet".to_string())].into());
    let mut status = FleetAgentStatus {
        connected,
        last_heartbeat_time: Some(at("2026-12-01T11:40:00Z")),
        version: Some("0.1.0".into()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        heartbeat_interval_millis: Some(10_000),
        missed_heartbeats: if connected { 0 } else { 3 },
        ..Default::default()
    };
    let (st, reason) = if connected {
        (CondStatus::True, "Connected")
    } else {
        (CondStatus::False, "HeartbeatsMissed")
    };
    set_condition(
        &mut status.conditions,
        READY,
        st,
        reason,
        "",
        1,
        &at("2026-12-01T11:40:00Z"),
    );
    a.status = Some(status);
    a
}

fn views(agents: &[(FleetAgent, Value)]) -> Vec<AgentView> {
    agents
        .iter()
        .map(|(a, raw)| AgentView::new(a, raw))
        .collect()
}

fn with_raw(a: FleetAgent) -> (FleetAgent, Value) {
    let raw = serde_json::to_value(&a).unwrap();
    (a, raw)
}

#[test]
fn agents_table_reads_heartbeats_as_a_person_would() {
    let mut disabled = with_raw(agent("dev-3", true, &[]));
    disabled.1["spec"]["disabled"] = json!(true);
    let mut pending = with_raw(agent("dev-4", false, &[]));
    pending.1["status"]["phase"] = json!("Pending");
    let list = vec![
        with_raw(agent(
            "fleet-agent-0",
            true,
            &[("site", "lab"), ("zone", "a")],
        )),
        with_raw(agent("fleet-agent-1", false, &[("site", "lab")])),
        disabled,
        pending,
    ];
    let v = views(&list);
    assert_eq!(
        v.iter().map(|a| a.state).collect::<Vec<_>>(),
        vec![
            AgentState::Connected,
            AgentState::Disconnected,
            AgentState::Disabled,
            AgentState::Pending
        ]
    );
    let out = agents::render(&v, false, Style::Plain, now());
    let want = "\
AGENT           STATE          SINCE   LAST-HEARTBEAT   VERSION   STACK   LABELS
fleet-agent-0   Connected      20m     <10s             0.1.0     fleet   site=lab,zone=a
fleet-agent-1   Disconnected   20m     20m ago          0.1.0     fleet   site=lab
dev-3           Disabled       20m     <10s             0.1.0     fleet   <none>
dev-4           Pending        20m     20m ago          0.1.0     fleet   <none>
";
    assert_eq!(out, want, "\n{out}");
    let wide = agents::render(&v[..1], true, Style::Plain, now());
    assert!(wide.starts_with("NAMESPACE   AGENT "), "{wide}");
    assert!(wide.contains("\nedge        fleet-agent-0 "), "{wide}");
}

#[test]
fn agents_tolerate_a_missing_status() {
    let mut bare = agent("new", false, &[]);
    bare.status = None;
    let raw = serde_json::to_value(&bare).unwrap();
    let v = AgentView::new(&bare, &raw);
    let out = agents::render(&[v], false, Style::Plain, now());
    assert!(
        out.ends_with(
            "new     Disconnected   <none>   <none>           <none>    fleet   <none>\n"
        ),
        "{out}"
    );
}

#[test]
fn agent_selector_filters_on_reported_labels_and_json_lists_views() {
    let list = vec![
        with_raw(agent("a", true, &[("site", "lab")])),
        with_raw(agent("b", true, &[("site", "shop")])),
    ];
    let sel = selector::parse("site=lab").unwrap();
    let picked: Vec<_> = views(&list)
        .into_iter()
        .filter(|v| sel.matches(&v.labels))
        .collect();
    assert_eq!(picked.len(), 1);
    let json: Value =
        serde_json::from_str(&output::serialize(&picked, Encoding::Json).unwrap()).unwrap();
    assert_eq!(json[0]["agentId"], "a");
    assert_eq!(json[0]["state"], "Connected");
    assert_eq!(json[0]["labels"], json!({"site": "lab"}));
    assert_eq!(json[0]["stack"], "fleet");
}

fn finished_command(results: Vec<AgentResult>, failed: bool) -> FleetCommand {
    let mut cmd = ping::command("edge", selector::parse("site=lab").unwrap(), 10);
    cmd.metadata.name = Some("kubectl-fleet-ping-x7k2p".into());
    cmd.metadata.generation = Some(1);
    let mut status = FleetCommandStatus {
        observed_generation: Some(1),
        ..Default::default()
    };
    let t = at("2026-12-01T11:59:00Z");
    let (complete, fail) = if failed {
        (CondStatus::False, CondStatus::True)
    } else {
        (CondStatus::True, CondStatus::False)
    };
    let reason = if failed { "AgentsFailed" } else { "Succeeded" };
    set_condition(
        &mut status.conditions,
        COMPLETE,
        complete,
        reason,
        "",
        1,
        &t,
    );
    set_condition(
        &mut status.conditions,
        FAILED,
        fail,
        reason,
        "1 of 2 agents timed out",
        1,
        &t,
    );
    let count = |o| results.iter().filter(|r| r.outcome == o).count() as i32;
    status.summary = Some(CommandSummary {
        selected: results.len() as i32,
        succeeded: count(AgentOutcome::Succeeded),
        failed: count(AgentOutcome::Failed),
        timed_out: count(AgentOutcome::TimedOut),
    });
    status.results = results;
    cmd.status = Some(status);
    cmd
}

fn result(id: &str, outcome: AgentOutcome, ms: Option<i64>) -> AgentResult {
    AgentResult {
        agent_id: id.into(),
        outcome,
        message: match outcome {
            AgentOutcome::Succeeded => "version 0.1.0, up 42s".into(),
            AgentOutcome::Failed | AgentOutcome::TimedOut => "no answer within 10s".into(),
        },
        version: ms.map(|_| "0.1.0".to_string()),
        duration_millis: ms,
    }
}

#[test]
fn ping_command_selects_by_the_reported_labels() {
    let cmd = ping::command(
        "edge",
        selector::parse("site=lab,zone in (a,b)").unwrap(),
        7,
    );
    assert_eq!(
        cmd.metadata.generate_name.as_deref(),
        Some(ping::NAME_PREFIX)
    );
    assert_eq!(cmd.spec.timeout_seconds, 7);
    assert_eq!(
        cmd.spec.selector.match_labels,
        Some(BTreeMap::from([("site".into(), "lab".into())]))
    );
    assert!(!ping::finished(&cmd), "no status yet");
    assert!(ping::finished(&finished_command(vec![], false)));
}

#[test]
fn ping_results_and_exit_codes() {
    let ok = finished_command(
        vec![
            result("fleet-agent-0", AgentOutcome::Succeeded, Some(3)),
            result("fleet-agent-1", AgentOutcome::Succeeded, Some(12)),
        ],
        false,
    );
    let view = PingView::new(&ok, "site=lab");
    assert_eq!(view.exit_code(), 0);
    assert_eq!(
        view.render(Style::Plain),
        "\
AGENT           RESULT      RTT    VERSION   MESSAGE
fleet-agent-0   Succeeded   3ms    0.1.0     version 0.1.0, up 42s
fleet-agent-1   Succeeded   12ms   0.1.0     version 0.1.0, up 42s

2 selected, 2 succeeded, 0 failed, 0 timed out
"
    );

    let bad = finished_command(
        vec![
            result("fleet-agent-1", AgentOutcome::TimedOut, None),
            result("fleet-agent-0", AgentOutcome::Succeeded, Some(3)),
        ],
        true,
    );
    let view = PingView::new(&bad, "site=lab");
    assert_eq!(view.exit_code(), 3);
    let out = view.render(Style::Plain);
    assert!(
        out.contains("fleet-agent-1   TimedOut    <none>   <none>    no answer within 10s\n"),
        "{out}"
    );
    assert!(
        out.ends_with("2 selected, 1 succeeded, 0 failed, 1 timed out\nAgentsFailed: 1 of 2 agents timed out\n"),
        "{out}"
    );
    let yaml: Value =
        serde_yaml::from_str(&output::serialize(&view, Encoding::Yaml).unwrap()).unwrap();
    assert_eq!(yaml["succeeded"], json!(false));
    assert_eq!(yaml["summary"]["timedOut"], json!(1));
    assert_eq!(yaml["results"][0]["outcome"], json!("TimedOut"));

    let none = PingView::new(&finished_command(vec![], false), "site=nowhere");
    assert_eq!(none.exit_code(), 0);
    assert_eq!(
        none.render(Style::Plain),
        "No FleetAgent in edge matches \"site=nowhere\"\n"
    );
}

#[test]
fn plain_output_never_has_escape_codes() {
    let stack = stack();
    let outputs = [
        StackView::new(&stack, &raw_status(&stack)).render(Style::Plain, now()),
        agents::render(
            &views(&[with_raw(agent("a", false, &[]))]),
            true,
            Style::Plain,
            now(),
        ),
        PingView::new(
            &finished_command(vec![result("a", AgentOutcome::Failed, None)], true),
            "all",
        )
        .render(Style::Plain),
    ];
    for out in outputs {
        assert!(!out.contains('\x1b'), "{out:?}");
    }
}
