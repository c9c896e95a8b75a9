//! FleetCommand execution against a real API server, a real nats-server and
//! real (or deliberately mute) agents.

mod common;

use std::time::Duration;

use common::*;
use fleet_crds::{
    AgentOutcome, FleetAgent, FleetAgentSpec, FleetCommand, FleetCommandName, FleetCommandSpec,
    STACK_LABEL,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Patch, PatchParams, PostParams};

fn command(
    name: &str,
    labels: &[(&str, &str)],
    cmd: FleetCommandName,
    timeout: i32,
) -> FleetCommand {
    FleetCommand::new(
        name,
        FleetCommandSpec {
            selector: LabelSelector {
                match_labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                match_expressions: None,
            },
            command: cmd,
            timeout_seconds: timeout,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_completes_with_one_result_per_selected_agent_and_never_runs_twice() {
    let mut env = TestEnv::start("op-ping").await;
    env.start_operator(env.run_config()).await;
    let agents = [
        env.spawn_agent("edge-1", &[("role", "edge")]).await,
        env.spawn_agent("edge-2", &[("role", "edge")]).await,
        env.spawn_agent("core-1", &[("role", "core")]).await,
    ];
    for id in ["edge-1", "edge-2", "core-1"] {
        env.wait_agent(id, "connected", |a| {
            a.status.as_ref().is_some_and(|s| s.connected)
        })
        .await;
    }
    env.commands()
        .create(
            &PostParams::default(),
            &command("ping-edge", &[("role", "edge")], FleetCommandName::Ping, 5),
        )
        .await
        .expect("create FleetCommand");
    let done = env.wait_command_finished("ping-edge").await;
    let s = done.status.clone().expect("status");
    assert_eq!(s.observed_generation, done.metadata.generation);
    let summary = s.summary.expect("summary");
    assert_eq!(
        (
            summary.selected,
            summary.succeeded,
            summary.failed,
            summary.timed_out
        ),
        (2, 2, 0, 0)
    );
    let ids: Vec<&str> = s.results.iter().map(|r| r.agent_id.as_str()).collect();
    assert_eq!(ids, vec!["edge-1", "edge-2"]);
    for r in &s.results {
        assert_eq!(r.outcome, AgentOutcome::Succeeded, "{r:?}");
        assert_eq!(r.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    }
    let complete = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Complete")
        .expect("Complete");
    assert_eq!(
        (complete.status.as_str(), complete.reason.as_str()),
        ("True", "AllSucceeded")
    );
    assert!(
        s.conditions.iter().all(|c| c.type_ != "Reconciling"),
        "{:?}",
        s.conditions
    );

    // A restarted operator sees the generation done and sends nothing.
    let sent_before = env
        .metrics
        .command_agents
        .get_or_create(&fleet_operator::metrics::OutcomeLabels {
            outcome: "succeeded",
        })
        .get();
    env.stop_operator().await;
    env.start_operator(env.run_config()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = env.commands().get("ping-edge").await.expect("get");
    assert_eq!(
        again.status, done.status,
        "status rewritten after a restart"
    );
    let sent_after = env
        .metrics
        .command_agents
        .get_or_create(&fleet_operator::metrics::OutcomeLabels {
            outcome: "succeeded",
        })
        .get();
    assert_eq!(sent_after, sent_before, "the command was sent again");

    // A new generation runs again: info to every agent.
    let patch = serde_json::json!({"spec": {"command": "Info", "selector": {"matchLabels": null}}});
    env.commands()
        .patch("ping-edge", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let done2 = wait_for("generation 2 finished", || {
        let api = env.commands();
        async move {
            let c = api.get("ping-edge").await.ok()?;
            let g = c.metadata.generation?;
            let s = c.status.as_ref()?;
            (g == 2
                && s.conditions.iter().any(|x| {
                    x.type_ == "Complete" && x.status == "True" && x.observed_generation == Some(2)
                }))
            .then_some(c.clone())
        }
    })
    .await;
    let s2 = done2.status.expect("status");
    assert_eq!(s2.summary.expect("summary").succeeded, 3);
    assert!(
        s2.results
            .iter()
            .all(|r| r.message.contains("capabilities")),
        "{:?}",
        s2.results
    );

    for a in agents {
        a.stop().await;
    }
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_matching_nobody_completes_with_zero_results_and_says_so() {
    let mut env = TestEnv::start("op-nobody").await;
    env.start_operator(env.run_config()).await;
    let a = env.spawn_agent("lonely", &[("role", "edge")]).await;
    env.wait_agent("lonely", "connected", |a| {
        a.status.as_ref().is_some_and(|s| s.connected)
    })
    .await;
    env.commands()
        .create(
            &PostParams::default(),
            &command("nobody", &[("role", "nope")], FleetCommandName::Ping, 5),
        )
        .await
        .expect("create");
    let done = env.wait_command_finished("nobody").await;
    let s = done.status.expect("status");
    let summary = s.summary.expect("summary");
    assert_eq!(summary.selected, 0);
    assert!(s.results.is_empty());
    let complete = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Complete")
        .expect("Complete");
    assert_eq!(complete.status, "True");
    assert_eq!(complete.reason, "NoAgentsSelected");
    assert!(
        complete.message.contains("matched no FleetAgent"),
        "{}",
        complete.message
    );
    a.stop().await;
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_that_never_answer_are_reported_as_timed_out() {
    let mut env = TestEnv::start("op-timeout").await;
    env.start_operator(env.run_config()).await;
    let real = env.spawn_agent("answers", &[("group", "t")]).await;
    // Beats, but nobody listens on its command subject (no responders).
    let mute = env.fake_heartbeats("mute", &[("group", "t")]).await;
    // Beats and receives commands, but never replies (a hung agent).
    let deaf = env.fake_heartbeats("hung", &[("group", "t")]).await;
    let nc = async_nats::connect(env.nats.url()).await.expect("connect");
    let _hung_sub = nc
        .subscribe(fleet_proto::subjects::command_wildcard(&id("hung")))
        .await
        .expect("subscribe");
    for a in ["answers", "mute", "hung"] {
        env.wait_agent(a, "connected", |x| {
            x.status.as_ref().is_some_and(|s| s.connected)
        })
        .await;
    }
    env.commands()
        .create(
            &PostParams::default(),
            &command("ping-t", &[("group", "t")], FleetCommandName::Ping, 2),
        )
        .await
        .expect("create");
    let done = env.wait_command_finished("ping-t").await;
    let s = done.status.expect("status");
    let summary = s.summary.expect("summary");
    assert_eq!(
        (
            summary.selected,
            summary.succeeded,
            summary.failed,
            summary.timed_out
        ),
        (3, 1, 0, 2),
        "{:?}",
        s.results
    );
    // Failures first, then by id.
    let got: Vec<(&str, AgentOutcome)> = s
        .results
        .iter()
        .map(|r| (r.agent_id.as_str(), r.outcome))
        .collect();
    assert_eq!(
        got,
        vec![
            ("hung", AgentOutcome::TimedOut),
            ("mute", AgentOutcome::TimedOut),
            ("answers", AgentOutcome::Succeeded)
        ]
    );
    assert!(
        s.results[0].message.contains("within"),
        "{}",
        s.results[0].message
    );
    assert!(
        s.results[1].message.contains("no responders"),
        "{}",
        s.results[1].message
    );
    let failed = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "AgentsTimedOut")
    );
    mute.cancel();
    deaf.cancel();
    real.stop().await;
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_interrupted_mid_run_is_reported_not_resent() {
    let mut env = TestEnv::start("op-interrupt").await;
    let cmd = env
        .commands()
        .create(
            &PostParams::default(),
            &command("cut", &[], FleetCommandName::Ping, 5),
        )
        .await
        .expect("create");
    // What a previous operator leaves behind when it dies after stamping.
    let g = cmd.metadata.generation.expect("generation");
    let stamp = serde_json::json!({
        "apiVersion": "fleet.nationtech.io/v1alpha1",
        "kind": "FleetCommand",
        "metadata": {"name": "cut"},
        "status": {
            "observedGeneration": g,
            "conditions": [{"type": "Reconciling", "status": "True", "reason": "Running", "message": "running",
                            "observedGeneration": g, "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }
    });
    env.commands()
        .patch_status(
            "cut",
            &PatchParams::apply("fleet-operator").force(),
            &Patch::Apply(&stamp),
        )
        .await
        .expect("stamp");
    env.start_operator(env.run_config()).await;
    let done = env.wait_command_finished("cut").await;
    let s = done.status.expect("status");
    let failed = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "Interrupted")
    );
    assert!(s.summary.is_none(), "nothing was sent: {s:?}");
    env.teardown().await;
}

/// Another FleetStack's FleetAgent in the same namespace matches the
/// selector too, but it is not this operator's to command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reaches_only_the_operators_own_stack() {
    let mut env = TestEnv::start("op-cmd-stack").await;
    env.create_owner_stack("north").await;
    let mut config = env.run_config();
    config.owner_stack = Some("north".into());
    env.start_operator(config).await;
    let ours = env.spawn_agent("ours", &[("role", "edge")]).await;
    env.wait_agent("ours", "connected", |a| {
        a.status.as_ref().is_some_and(|s| s.connected)
    })
    .await;
    // What south's operator would have written: connected, same labels.
    let mut theirs = FleetAgent::new(
        "theirs",
        FleetAgentSpec {
            agent_id: "theirs".into(),
            ..Default::default()
        },
    );
    theirs.metadata.labels = Some(
        [
            ("app.kubernetes.io/managed-by", "fleet-operator"),
            (STACK_LABEL, "south"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    env.agents()
        .create(&PostParams::default(), &theirs)
        .await
        .expect("create FleetAgent");
    let status = serde_json::json!({"status": {"connected": true, "labels": {"role": "edge"}}});
    env.agents()
        .patch_status("theirs", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");

    env.commands()
        .create(
            &PostParams::default(),
            &command("ping-edge", &[("role", "edge")], FleetCommandName::Ping, 2),
        )
        .await
        .expect("create FleetCommand");
    let done = env.wait_command_finished("ping-edge").await;
    let s = done.status.expect("status");
    let summary = s.summary.expect("summary");
    assert_eq!(
        (summary.selected, summary.succeeded),
        (1, 1),
        "{:?}",
        s.results
    );
    let ids: Vec<&str> = s.results.iter().map(|r| r.agent_id.as_str()).collect();
    assert_eq!(ids, vec!["ours"]);
    ours.stop().await;
    env.teardown().await;
}
