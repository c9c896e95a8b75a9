//! The smoke probe against a real nats-server configured with the accounts
//! the Score renders.

use std::time::Duration;

use fleet_scores::ProbeOutcome;
use fleet_scores::nats::{ProbeTarget, config, smoke_probe};
use fleet_scores::secret::Sensitive;
use fleet_testkit::NatsServer;

fn server() -> NatsServer {
    // The pod resolves $SYS_PASSWORD from its environment; here the values
    // are substituted into the very same accounts block.
    let body = config::accounts_block(false)
        .replace("$SYS_PASSWORD", "\"sys-pass\"")
        .replace("$FLEET_PASSWORD", "\"fleet-pass\"");
    NatsServer::start(&body).expect("start nats-server")
}

fn target(s: &NatsServer, password: &str) -> ProbeTarget {
    let monitor_port: u16 = s
        .monitor_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("monitor port");
    ProbeTarget {
        host: "127.0.0.1".into(),
        client_port: s.port(),
        monitor_port,
        user: config::SYS_USER.into(),
        password: Sensitive::new(password),
    }
}

#[tokio::test]
async fn probe_passes_with_the_system_credentials() {
    let s = server();
    let outcome = smoke_probe(&target(&s, "sys-pass"), Duration::from_secs(5)).await;
    assert!(outcome.passed(), "{outcome:?}\n{}", s.log());
}

#[tokio::test]
async fn probe_fails_with_wrong_credentials_and_keeps_the_password_out() {
    let s = server();
    let outcome = smoke_probe(&target(&s, "wrong-pass"), Duration::from_secs(5)).await;
    match outcome {
        ProbeOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, "ConnectFailed", "{message}");
            assert!(message.starts_with("nats: "), "{message}");
            assert!(!message.contains("wrong-pass"), "{message}");
        }
        other => panic!("expected failure, got {other:?}"),
    }
}

#[tokio::test]
async fn probe_fails_when_the_server_is_down() {
    let mut s = server();
    let t = target(&s, "sys-pass");
    s.stop();
    let outcome = smoke_probe(&t, Duration::from_secs(5)).await;
    match outcome {
        ProbeOutcome::Failed { reason, .. } => assert_eq!(reason, "HealthzUnreachable"),
        other => panic!("expected failure, got {other:?}"),
    }
}
