//! Issue 17 part 4 end to end: the `kubectl fleet` plugin against a real
//! stack (NATS, the operator runtime, two agents labelled `site=lab`).
//!
//! The plugin binary is built from this workspace and put on PATH, and
//! every command runs as a user runs it: `kubectl fleet ...` (kubectl finds
//! `kubectl-fleet` on PATH). Stdout is a pipe, so the output must carry no
//! colour codes. Checked: `status` (table and JSON), `agents` (table,
//! selector, `-A -o json`), `ping` (every agent answers, exit 0, the
//! FleetCommand is cleaned up) and a ping that includes an agent that is
//! gone (exit 3, the agent named as TimedOut).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use fleet_crds::{
    AgentsSpec, FleetAgent, FleetCommand, FleetStack, FleetStackSpec, NatsSpec, OperatorSpec,
    ProbeSpec,
};
use fleet_e2e::controller::{ensure_controller, kubectl, repo_root};
use fleet_e2e::stack::{apply_stack, describe, is_ready, wait_stack};
use fleet_e2e::{TestNamespace, image, poll};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use serde_json::Value;

const STACK: &str = "fleet";

/// Builds `kubectl-fleet` (a no-op when it is up to date) and returns the
/// directory holding it.
fn plugin_dir() -> PathBuf {
    let root = repo_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "kubectl-fleet"])
        .current_dir(&root)
        .status()
        .expect("run cargo build -p kubectl-fleet");
    assert!(status.success(), "cargo build -p kubectl-fleet failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("debug");
    assert!(
        dir.join("kubectl-fleet").is_file(),
        "no binary in {}",
        dir.display()
    );
    dir
}

/// `kubectl fleet <args>` with the plugin first on PATH.
fn fleet(dir: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("kubectl")
        .arg("fleet")
        .args(args)
        .env("PATH", path)
        .env_remove("NO_COLOR")
        .output()
        .expect("run kubectl fleet")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        !text.contains('\x1b'),
        "{what}: colour codes on a pipe: {text:?}"
    );
    text
}

#[tokio::test]
async fn kubectl_fleet_status_agents_and_ping_against_a_real_stack() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let dir = plugin_dir();
    let ns = TestNamespace::create("plugin").await.expect("namespace");
    let n = ns.name.as_str();
    let stacks = ns.api::<FleetStack>();
    let spec = |agents: i32| FleetStackSpec {
        nats: Some(NatsSpec::default()),
        operator: Some(OperatorSpec {
            pod: None,
            image: image("fleet-operator"),
            replicas: 1,
        }),
        agents: Some(AgentsSpec {
            replicas: agents,
            image: image("fleet-agent"),
            labels: [("site".to_string(), "lab".to_string())].into(),
            ..AgentsSpec::default()
        }),
        probe: ProbeSpec {
            interval_seconds: 5,
            ..ProbeSpec::default()
        },
        ..FleetStackSpec::default()
    };
    apply_stack(&stacks, STACK, spec(2))
        .await
        .expect("apply FleetStack");
    let waited = kubectl(
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=240s",
            "-n",
            n,
            &format!("fleetstack/{STACK}"),
        ],
        None,
    );
    let stack = stacks.get(STACK).await.expect("get stack");
    waited.unwrap_or_else(|e| panic!("stack never turned Ready: {e}\n{}", describe(&stack)));

    // status: the summary, then one row per component, all True.
    let status = ok(fleet(&dir, &["status", STACK, "-n", n]), "status");
    assert!(
        status.starts_with(&format!("Stack:       {n}/{STACK}\n")),
        "{status}"
    );
    assert!(status.contains("\nReady:       True "), "{status}");
    // Absent or False (the status contract may write Stalled=False).
    assert!(status.contains("\nStalled:     False"), "{status}");
    assert!(
        status.contains("\nAgents:      2/2 ready, 2 connected\n"),
        "{status}"
    );
    assert!(status.contains("\nCOMPONENT   READY   REASON "), "{status}");
    for component in ["nats", "operator", "agents"] {
        let row = status
            .lines()
            .find(|l| l.starts_with(&format!("{component} ")))
            .unwrap_or_else(|| panic!("no {component} row:\n{status}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], "True", "{row}");
    }
    let json: Value = serde_json::from_str(&ok(
        fleet(&dir, &["status", STACK, "-n", n, "-o", "json"]),
        "status -o json",
    ))
    .expect("status -o json is JSON");
    assert_eq!(json["ready"]["status"], "True", "{json}");
    assert_eq!(json["agents"]["connected"], 2, "{json}");
    let names: Vec<&str> = json["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, vec!["nats", "operator", "agents"], "{json}");
    let yaml = ok(
        fleet(&dir, &["status", STACK, "-n", n, "-o", "yaml"]),
        "status -o yaml",
    );
    assert!(yaml.contains(&format!("name: {STACK}\n")), "{yaml}");
    let missing = fleet(&dir, &["status", "nope", "-n", n]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("FleetStack \"nope\" not found"),
        "{missing:?}"
    );

    // agents: both connected with their labels and version.
    let agents = ok(fleet(&dir, &["agents", "-n", n]), "agents");
    let lines: Vec<&str> = agents.lines().collect();
    assert!(lines[0].starts_with("AGENT "), "{agents}");
    assert_eq!(lines.len(), 3, "{agents}");
    for (i, line) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0], format!("{STACK}-agent-{i}"), "{agents}");
        assert_eq!(cells[1], "Connected", "{agents}");
        assert_eq!(cells.last(), Some(&"site=lab"), "{agents}");
        assert_eq!(cells[cells.len() - 2], STACK, "{agents}");
    }
    let filtered = ok(
        fleet(&dir, &["agents", "-n", n, "-l", "site=elsewhere"]),
        "agents -l",
    );
    assert_eq!(
        filtered,
        format!("No FleetAgents found in {n} namespace.\n")
    );
    let all: Value = serde_json::from_str(&ok(
        fleet(&dir, &["agents", "-A", "-o", "json"]),
        "agents -A -o json",
    ))
    .expect("agents -o json is JSON");
    let ours = all
        .as_array()
        .expect("a list")
        .iter()
        .filter(|a| a["namespace"] == n)
        .count();
    assert_eq!(ours, 2, "{all}");

    // ping: every agent answers, the FleetCommand is deleted afterwards.
    let ping = ok(fleet(&dir, &["ping", "site=lab", "-n", n]), "ping");
    assert!(
        ping.contains("2 selected, 2 succeeded, 0 failed, 0 timed out"),
        "{ping}"
    );
    assert_eq!(ping.matches(" Succeeded ").count(), 2, "{ping}");
    let left = ns
        .api::<FleetCommand>()
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kubectl-fleet"))
        .await
        .expect("list FleetCommands");
    assert!(
        left.items.is_empty(),
        "the ping's FleetCommand was not deleted"
    );

    // One agent gone (scaled away; its FleetAgent stays until the TTL):
    // the ping names it as TimedOut and exits 3.
    apply_stack(&stacks, STACK, spec(1))
        .await
        .expect("scale agents to 1");
    wait_stack(
        &stacks,
        STACK,
        "is Ready with 1 agent",
        Duration::from_secs(120),
        |s| {
            is_ready(s)
                && s.status
                    .as_ref()
                    .and_then(|st| st.agents.as_ref())
                    .is_some_and(|a| a.desired == 1 && a.ready == 1)
        },
    )
    .await
    .expect("Ready with one agent");
    // The pod must be gone (not terminating, still answering), and its
    // FleetAgent still listed (FLEET_AGENT_TTL is 15 minutes).
    let gone = format!("{STACK}-agent-1");
    poll(
        &format!("pod {gone} to be deleted"),
        Duration::from_secs(90),
        || async {
            match ns.api::<Pod>().get_opt(&gone).await {
                Ok(None) => Ok(Some(())),
                Ok(Some(_)) => Err(format!("pod {gone} still exists")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .expect("the scaled-away agent pod is deleted");
    let listed = ns
        .api::<FleetAgent>()
        .list(&ListParams::default())
        .await
        .expect("list FleetAgents");
    assert!(
        listed.items.iter().any(|a| a.spec.agent_id == gone),
        "the FleetAgent of the removed agent is still listed"
    );
    let failed = fleet(
        &dir,
        &[
            "ping",
            "site=lab",
            "-n",
            n,
            "--agent-timeout",
            "2",
            "-o",
            "json",
        ],
    );
    let text = stdout(&failed);
    assert_eq!(
        failed.status.code(),
        Some(3),
        "{text}\n{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    let view: Value = serde_json::from_str(&text).expect("ping -o json is JSON");
    assert_eq!(view["succeeded"], false, "{view}");
    assert_eq!(view["summary"]["selected"], 2, "{view}");
    assert_eq!(view["summary"]["succeeded"], 1, "{view}");
    let timed_out: Vec<&str> = view["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["outcome"] == "TimedOut" || r["outcome"] == "Failed")
        .filter_map(|r| r["agentId"].as_str())
        .collect();
    assert_eq!(timed_out, vec![format!("{STACK}-agent-1")], "{view}");
    ns.cleanup().await;
}

/// The device commands (issue 17 part 4 with issue 15's API): `token
/// create` prints the token once and the API holds only its hash; `token
/// list` shows it Active, then Revoked after `token revoke`; `token rotate`
/// writes a new hash; `approve`, `disable` and `enable` set the FleetAgent's
/// spec fields, and `agents` shows the device Pending, then Disabled.
#[tokio::test]
async fn kubectl_fleet_tokens_and_device_admission_against_the_api() {
    ensure_controller()
        .await
        .expect("controller installed from the chart (CRDs)");
    let dir = plugin_dir();
    let ns = TestNamespace::create("plugin-tokens")
        .await
        .expect("namespace");
    let n = ns.name.as_str();
    let tokens = ns.api::<fleet_crds::FleetEnrollmentToken>();

    let created: Value = serde_json::from_str(&ok(
        fleet(
            &dir,
            &[
                "token", "create", "site-a", "-n", n, "--ttl", "2h", "--uses", "3", "--labels",
                "site=a", "-o", "json",
            ],
        ),
        "token create",
    ))
    .expect("token create -o json is JSON");
    let token = created["token"].as_str().expect("token").to_string();
    let (name, secret) = token.split_once('.').expect("<name>.<secret>");
    assert_eq!(name, "site-a");
    assert_eq!(secret.len(), 64);
    let stored = tokens.get("site-a").await.expect("token object");
    assert_eq!(
        stored.spec.secret_hash,
        kubectl_fleet::tokens::secret_hash(secret)
    );
    assert_eq!(stored.spec.max_uses, 3);
    assert_eq!(
        stored.spec.labels.get("site").map(String::as_str),
        Some("a")
    );
    let stored_json = serde_json::to_string(&stored).unwrap();
    assert!(
        !stored_json.contains(secret),
        "the secret half is never stored"
    );
    // The table form says it is shown once, and a second name is refused
    // as the API refuses it.
    let table = ok(
        fleet(&dir, &["token", "create", "site-b", "-n", n]),
        "token create",
    );
    assert!(table.contains("shown only now"), "{table}");
    let again = fleet(&dir, &["token", "create", "site-b", "-n", n]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");

    let list = ok(fleet(&dir, &["token", "list", "-n", n]), "token list");
    let row = list
        .lines()
        .find(|l| l.starts_with("site-a "))
        .unwrap_or_else(|| panic!("{list}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "Active", "{list}");
    assert_eq!(cells[2], "0/3", "{list}");
    assert_eq!(cells.last(), Some(&"site=a"), "{list}");

    let rotated: Value = serde_json::from_str(&ok(
        fleet(&dir, &["token", "rotate", "site-a", "-n", n, "-o", "json"]),
        "token rotate",
    ))
    .expect("JSON");
    let new_secret = rotated["token"]
        .as_str()
        .and_then(|t| t.split_once('.'))
        .map(|(_, s)| s.to_string())
        .expect("rotated token");
    assert_ne!(new_secret, secret);
    assert_eq!(
        tokens.get("site-a").await.unwrap().spec.secret_hash,
        kubectl_fleet::tokens::secret_hash(&new_secret)
    );
    ok(
        fleet(&dir, &["token", "revoke", "site-a", "-n", n]),
        "token revoke",
    );
    assert!(tokens.get("site-a").await.unwrap().spec.disabled);
    let list: Value = serde_json::from_str(&ok(
        fleet(&dir, &["token", "list", "-n", n, "-o", "json"]),
        "token list -o json",
    ))
    .unwrap();
    let states: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, vec![("site-a", "Revoked"), ("site-b", "Active")]);
    let missing = fleet(&dir, &["token", "revoke", "nope", "-n", n]);
    assert_eq!(missing.status.code(), Some(1));

    // A device's FleetAgent as enrollment writes it: not approved yet.
    let agents = ns.api::<FleetAgent>();
    let mut device = FleetAgent::new(
        "dev-1",
        fleet_crds::FleetAgentSpec {
            agent_id: "dev-1".into(),
            public_key: Some(nkeys::KeyPair::new_user().public_key()),
            enrollment_token: Some("site-b".into()),
            ..Default::default()
        },
    );
    device.metadata.namespace = Some(n.to_string());
    agents
        .create(&Default::default(), &device)
        .await
        .expect("create the device's FleetAgent");
    let state = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("dev-1 "))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    };
    let listed = ok(fleet(&dir, &["agents", "-n", n]), "agents");
    assert_eq!(state(&listed).as_deref(), Some("Pending"), "{listed}");
    let approved = ok(fleet(&dir, &["approve", "dev-1", "-n", n]), "approve");
    assert_eq!(approved, format!("FleetAgent {n}/dev-1 approved\n"));
    assert!(agents.get("dev-1").await.unwrap().spec.approved);
    ok(fleet(&dir, &["disable", "dev-1", "-n", n]), "disable");
    assert!(agents.get("dev-1").await.unwrap().spec.disabled);
    let listed = ok(fleet(&dir, &["agents", "-n", n]), "agents");
    assert_eq!(state(&listed).as_deref(), Some("Disabled"), "{listed}");
    ok(fleet(&dir, &["enable", "dev-1", "-n", n]), "enable");
    assert!(!agents.get("dev-1").await.unwrap().spec.disabled);
    let gone = fleet(&dir, &["approve", "dev-2", "-n", n]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("FleetAgent \"dev-2\" not found"),
        "{gone:?}"
    );
    ns.cleanup().await;
}
