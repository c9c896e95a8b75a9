//! Managed Zitadel end to end: only where its images can be pulled.
//!
//! The whole stack with `identity.managed` (bundled PostgreSQL, Zitadel
//! init/setup Jobs, the provisioner's PAT, a project and one machine user
//! per agent), NATS in callout mode, the callout validating Zitadel's JWT
//! access tokens (`client_id` = agent id) and the operator runtime. It needs
//! `ghcr.io/zitadel/zitadel` and `postgres` from the internet, which the
//! local test cluster of our CI machines cannot reach, so it is `#[ignore]`d
//! (cargo reports it as ignored, with the reason) and the kind path in the
//! README runs it with `--include-ignored`. See README "What is verified
//! where".

use fleet_crds::{FleetStack, IdentitySpec, ProbeSpec};
use fleet_e2e::TestNamespace;
use fleet_e2e::controller::{ensure_controller, kubectl};
use fleet_e2e::stack::{apply_stack, callout_stack, describe};

const STACK: &str = "zfleet";

#[tokio::test]
#[ignore = "needs the Zitadel and PostgreSQL images from the internet: run on kind with --include-ignored"]
async fn managed_zitadel_stack_turns_ready_with_agents_logged_in_by_token() {
    ensure_controller()
        .await
        .expect("controller installed from the chart");
    let ns = TestNamespace::create("zitadel").await.expect("namespace");
    // Pods and the reconciler reach Zitadel at its ExternalDomain: the
    // Service's cluster DNS name works without any Ingress.
    let domain = format!("{STACK}-zitadel.{}.svc.cluster.local", ns.name);
    let mut spec = callout_stack(
        IdentitySpec {
            managed: Some(
                serde_json::from_value(serde_json::json!({"externalDomain": domain}))
                    .expect("managed identity spec"),
            ),
            ..Default::default()
        },
        // Published by the managed identity (its project id).
        None,
        2,
    );
    spec.probe = ProbeSpec {
        interval_seconds: 10,
        timeout_seconds: 10,
        ready_deadline_seconds: 1200,
    };
    let stacks = ns.api::<FleetStack>();
    apply_stack(&stacks, STACK, spec)
        .await
        .expect("apply FleetStack");
    let waited = kubectl(
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=900s",
            "-n",
            &ns.name,
            &format!("fleetstack/{STACK}"),
        ],
        None,
    );
    let stack = stacks.get(STACK).await.expect("get stack");
    waited.unwrap_or_else(|e| panic!("stack never turned Ready: {e}\n{}", describe(&stack)));
    let status = stack.status.expect("status");
    let identity = &status.components["identity"];
    assert!(
        identity.message.contains("obtained a token"),
        "the identity probe must log in as the probe user: {identity:?}"
    );
    let agents = status.agents.expect("agents status");
    assert_eq!((agents.ready, agents.connected), (2, Some(2)));
    ns.cleanup().await;
}
