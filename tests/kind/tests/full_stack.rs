//! Issues 5 and 6 end to end: the whole server side with callout auth.
//!
//! identity.external points at the stand-in issuer (deployed in the test's
//! namespace by `TestIssuerScore`), NATS runs in callout mode, the callout
//! checks agents' tokens, the operator runtime keeps FleetAgents, and three
//! agents log in each with its own OAuth client. The stack must turn Ready
//! (`kubectl wait`), `kubectl get fleetagents` must list every agent as
//! connected, a FleetCommand ping applied with kubectl must complete with
//! one result per agent, and a connect with a bad token must be refused.
//! NATS speaks TLS (the default) and is reached from the test through its
//! exposed endpoint; a packet capture of every NATS connection on the node
//! during the whole test finds no password, no client secret and no token
//! (a JWT starts `eyJ`) in clear.

use std::time::Duration;

use fleet_crds::{
    ExternalIdentitySpec, FleetCommand, FleetStack, IdentitySpec, ProbeSpec, SecretRef,
};
use fleet_e2e::TestNamespace;
use fleet_e2e::capture::{self, Capture};
use fleet_e2e::controller::{ensure_controller, kubectl};
use fleet_e2e::identity::{AUDIENCE, Clients, PROBE_SECRET, deploy_issuer};
use fleet_e2e::stack::{apply_stack, callout_stack, connect_exposed, describe, expose_on_node};
use fleet_proto::AgentId;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;

const STACK: &str = "fleet";
const AGENTS: usize = 3;

#[tokio::test]
async fn callout_stack_with_operator_turns_ready_and_runs_a_fleet_command() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("full").await.expect("namespace");
    let capture = Capture::start(&[4222]).expect("packet capture");
    let clients = Clients::new(STACK, AGENTS);
    let issuer = deploy_issuer(&ns, STACK, &clients)
        .await
        .expect("stand-in issuer deployed and serving discovery");

    let mut spec = callout_stack(
        IdentitySpec {
            external: Some(ExternalIdentitySpec {
                issuer: issuer.clone(),
                client_credentials: SecretRef {
                    name: PROBE_SECRET.into(),
                },
            }),
            ..Default::default()
        },
        Some(AUDIENCE),
        AGENTS as i32,
    );
    if let Some(nats) = spec.nats.as_mut() {
        nats.expose = Some(expose_on_node(&ns.client).await.expect("node address"));
    }
    if let Some(agents) = spec.agents.as_mut() {
        agents.labels = [("site".to_string(), "lab".to_string())].into();
    }
    spec.probe = ProbeSpec {
        interval_seconds: 5,
        ..ProbeSpec::default()
    };
    let stacks = ns.api::<FleetStack>();
    apply_stack(&stacks, STACK, spec)
        .await
        .expect("apply FleetStack");
    let waited = kubectl(
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=300s",
            "-n",
            &ns.name,
            &format!("fleetstack/{STACK}"),
        ],
        None,
    );
    let stack = stacks.get(STACK).await.expect("get stack");
    waited.unwrap_or_else(|e| panic!("stack never turned Ready: {e}\n{}", describe(&stack)));

    let status = stack.status.clone().expect("status");
    for component in ["nats", "identity", "callout", "operator", "agents"] {
        let c = &status.components[component];
        assert!(c.ready, "{component} not ready: {c:?}");
    }
    assert_eq!(status.components["agents"].message, "3/3 agents answered");
    let agents = status.agents.clone().expect("agents status");
    assert_eq!(
        (agents.desired, agents.ready, agents.connected),
        (3, 3, Some(3))
    );

    // Agents really log in with tokens: no NATS password in their pods.
    let sts = ns
        .api::<StatefulSet>()
        .get(&format!("{STACK}-agent"))
        .await
        .expect("agents StatefulSet");
    let env = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert!(env.iter().any(|e| e.name == "FLEET_OIDC_ISSUER"));
    assert!(
        env.iter()
            .all(|e| !e.name.starts_with("FLEET_NATS_PASSWORD"))
    );

    // kubectl get fleetagents: every agent, connected.
    let listed = kubectl(
        &[
            "get",
            "fleetagents",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={range .items[*]}{.spec.agentId}={.status.connected}{\"\\n\"}{end}",
        ],
        None,
    )
    .expect("kubectl get fleetagents");
    let mut lines: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    lines.sort();
    let want: Vec<String> = (0..AGENTS)
        .map(|i| format!("{STACK}-agent-{i}=true"))
        .collect();
    assert_eq!(lines, want, "kubectl get fleetagents");

    // A FleetCommand ping applied with kubectl completes for every agent.
    let command = format!(
        "apiVersion: fleet.nationtech.io/v1alpha1\nkind: FleetCommand\nmetadata:\n  name: ping-lab\n  namespace: {}\nspec:\n  selector:\n    matchLabels:\n      site: lab\n  command: Ping\n  timeoutSeconds: 10\n",
        ns.name
    );
    kubectl(&["apply", "-f", "-"], Some(command.as_bytes())).expect("kubectl apply FleetCommand");
    kubectl(
        &[
            "wait",
            "--for=condition=Complete",
            "--timeout=60s",
            "-n",
            &ns.name,
            "fleetcommand/ping-lab",
        ],
        None,
    )
    .expect("FleetCommand completes");
    let done = ns
        .api::<FleetCommand>()
        .get("ping-lab")
        .await
        .expect("get FleetCommand");
    let st = done.status.expect("command status");
    let summary = st.summary.expect("summary");
    assert_eq!(
        (
            summary.selected,
            summary.succeeded,
            summary.failed,
            summary.timed_out
        ),
        (3, 3, 0, 0),
        "{:?}",
        st.results
    );

    // Through the same NATS: the fleet user (an auth_users member) pings an
    // agent, and a connect with a token the issuer never signed is refused
    // by the callout.
    let creds = ns
        .api::<Secret>()
        .get(&format!("{STACK}-nats-credentials"))
        .await
        .expect("NATS credentials")
        .data
        .expect("data");
    let value = |k: &str| String::from_utf8(creds[k].0.clone()).expect("utf-8");
    let password = value("fleet-password");
    let stack = stacks.get(STACK).await.expect("get stack");
    let fleet = connect_exposed(
        &stack,
        async_nats::ConnectOptions::with_user_and_password("fleet".into(), password.clone()),
    )
    .await
    .expect("fleet user connects through the exposed endpoint, TLS verified");
    let id = AgentId::new(format!("{STACK}-agent-2")).expect("id");
    fleet_proto::client::ping(&fleet, &id, Duration::from_secs(10))
        .await
        .expect("agent 2 answers a ping");
    let refused = match connect_exposed(
        &stack,
        async_nats::ConnectOptions::with_token("not-a-token".into()).max_reconnects(Some(0)),
    )
    .await
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a token the issuer never signed was let in"),
    };
    assert!(
        !refused.contains("not-a-token"),
        "the error must not echo the token: {refused}"
    );
    drop(fleet);

    // Nothing secret crossed the wire in clear. The capture saw the
    // traffic: the agents' and the test's TLS handshakes (0x16 0x03).
    let pcap = capture.finish().expect("capture");
    assert!(
        capture::contains(&pcap, &[0x16, 0x03]),
        "the capture saw no TLS"
    );
    let mut secrets = vec![
        ("fleet password".to_string(), password),
        ("sys password".to_string(), value("sys-password")),
        ("auth password".to_string(), value("auth-password")),
        ("probe client secret".to_string(), clients.probe.1.clone()),
    ];
    secrets.extend(
        clients
            .agents
            .iter()
            .map(|(id, secret)| (format!("{id} client secret"), secret.clone())),
    );
    for (what, secret) in &secrets {
        assert!(
            !capture::contains(&pcap, secret.as_bytes()),
            "the {what} crossed a NATS connection in clear"
        );
    }
    assert!(
        !capture::contains(&pcap, b"eyJ"),
        "a JWT (an agent's token) crossed a NATS connection in clear"
    );
    ns.cleanup().await;
}
