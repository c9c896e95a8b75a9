//! deploy/grafana/fleetstack.json queries only metrics the code exports:
//! every `fleet_*` name in a panel's query is one of the series the
//! reconciler, the callout or the operator runtime (including its NATS
//! metrics) render on `/metrics`. A renamed metric breaks this test, not
//! the dashboard in production.

use std::collections::BTreeSet;
use std::time::Duration;

use fleet_operator::metrics::{OutcomeLabels, ResultLabels, StateLabels, WriteLabels};
use fleet_runtime::http::{MetricsSource, render};

const DASHBOARD: &str = include_str!("../../../deploy/grafana/fleetstack.json");

/// Sample names Prometheus stores for each `# TYPE` line of an exposition.
fn series_names(exposition: &str, out: &mut BTreeSet<String>) {
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                out.insert(name.to_string());
            }
        }
    }
}

/// A labelled family renders only once it has a child, so each binary's
/// metrics are touched once through their own recording functions first.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();

    let reconciler = fleet_reconciler::Metrics::new();
    reconciler.error("ProbeFailed");
    reconciler.probe("nats", Duration::from_millis(3));
    reconciler.set_ready("ns", "fleet", true);
    reconciler.child_write("StatefulSet");
    series_names(&render(reconciler.registry()), &mut names);

    let callout = fleet_callout::Metrics::new();
    callout.decision(false, "expired", 0.001);
    callout.dropped("bad_signature");
    callout.idp_call("jwks", "ok");
    series_names(&callout.encode(), &mut names);

    let operator = fleet_operator::Metrics::new();
    let outcome = OutcomeLabels {
        outcome: "complete",
    };
    operator
        .heartbeats
        .get_or_create(&ResultLabels { result: "accepted" })
        .inc();
    operator
        .writes
        .get_or_create(&WriteLabels {
            op: "create",
            result: "ok",
        })
        .inc();
    operator
        .agents
        .get_or_create(&StateLabels { state: "connected" })
        .set(1);
    operator.commands.get_or_create(&outcome).inc();
    operator.command_agents.get_or_create(&outcome).inc();
    series_names(&render(operator.registry()), &mut names);
    // The NATS collector renders only what it polled.
    names.extend(fleet_operator::nats_monitor::exported_names());
    names
}

fn queried() -> BTreeSet<String> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard is JSON");
    let mut names = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            let mut rest = expr;
            while let Some(i) = rest.find("fleet_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    names
}

#[test]
fn every_queried_metric_exists() {
    let exported = exported();
    let queried = queried();
    assert!(
        queried.len() > 20,
        "the dashboard queries too little: {queried:?}"
    );
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics no binary exports: {missing:?}\nexported: {exported:?}"
    );
}

#[test]
fn the_dashboard_covers_what_issue_17_asks_for() {
    let queried = queried();
    for needed in [
        "fleet_reconciler_stack_ready",
        "fleet_reconciler_probe_duration_seconds_bucket",
        "fleet_operator_agents",
        "fleet_callout_decisions_total",
        "fleet_operator_nats_connections",
        "fleet_operator_nats_in_msgs_total",
        "fleet_operator_nats_jetstream_storage_bytes",
        "fleet_operator_nats_up",
    ] {
        assert!(queried.contains(needed), "{needed} not on the dashboard");
    }
    assert!(
        DASHBOARD.contains("outcome=\\\"denied\\\""),
        "refusals by reason must be on the dashboard"
    );
}
