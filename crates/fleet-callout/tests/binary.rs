//! The `fleet-callout` binary as deployed: configured only through its
//! environment, serving a real nats-server, answering probes, stopping
//! cleanly on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    AUDIENCE, AUTH_PASSWORD, AUTH_USER, assert_refused, callout_server_config, connect_with_token,
};
use fleet_test_issuer::{Client, IssuerConfig, TestIssuer};
use fleet_testkit::NatsServer;
use nkeys::{KeyPair, XKey};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_from_env_and_stops_on_sigterm() {
    let issuer = TestIssuer::start(IssuerConfig {
        clients: vec![Client::new("agent-a", "secret-a")],
        audience: AUDIENCE.into(),
        ..IssuerConfig::default()
    })
    .await
    .expect("issuer");
    let account = KeyPair::new_account();
    let xkey = XKey::new();
    let config = callout_server_config(&account.public_key(), Some(&xkey.public_key()), 2);
    let nats = tokio::task::spawn_blocking(move || NatsServer::start(&config))
        .await
        .expect("join")
        .expect("nats-server");

    let dir = tempfile::tempdir().expect("tmp");
    let seed_file = dir.path().join("issuer.seed");
    std::fs::write(&seed_file, account.seed().expect("seed")).expect("write");
    let xkey_file = dir.path().join("xkey.seed");
    std::fs::write(&xkey_file, xkey.seed().expect("seed")).expect("write");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{AUTH_PASSWORD}\n")).expect("write");
    let http = format!("127.0.0.1:{}", free_port());

    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-callout"))
        .env_clear()
        .env("FLEET_CALLOUT_NATS_URL", nats.url())
        .env("FLEET_CALLOUT_NATS_USER", AUTH_USER)
        .env("FLEET_CALLOUT_NATS_PASSWORD_FILE", &password_file)
        .env("FLEET_CALLOUT_ISSUER_SEED_FILE", &seed_file)
        .env("FLEET_CALLOUT_XKEY_SEED_FILE", &xkey_file)
        .env("FLEET_CALLOUT_OIDC_ISSUER", issuer.url())
        .env("FLEET_CALLOUT_OIDC_AUDIENCE", AUDIENCE)
        .env("FLEET_CALLOUT_HTTP_ADDR", &http)
        .env("RUST_LOG", "info")
        // Logs go to stdout (container convention); keep both streams.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fleet-callout starts");

    let ready_url = format!("http://{http}/readyz");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = reqwest::get(&ready_url).await
            && r.status() == 200
        {
            break;
        }
        if Instant::now() > deadline || child.try_wait().expect("wait").is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "callout never ready: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut claims = issuer.access_claims("agent-a");
    let good = issuer.sign(&claims).expect("sign");
    connect_with_token(&nats.url(), &good, None)
        .await
        .expect("agent connects through the binary");
    claims["aud"] = serde_json::json!(["other"]);
    let bad = issuer.sign(&claims).expect("sign");
    assert_refused(
        connect_with_token(&nats.url(), &bad, None).await,
        "wrong audience",
    );

    let metrics = reqwest::get(format!("http://{http}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            r#"fleet_callout_decisions_total{outcome="denied",reason="wrong_audience"} 1"#
        ),
        "{metrics}"
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "callout did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = child.wait_with_output().expect("output");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exit.success(), "exit {exit:?}; log:\n{log}");
    for secret in [
        good.as_str(),
        bad.as_str(),
        AUTH_PASSWORD,
        &account.seed().expect("seed"),
    ] {
        assert!(
            !log.contains(secret),
            "the callout log holds a secret:\n{log}"
        );
    }
    assert!(
        log.contains("wrong_audience"),
        "refusal reason not logged:\n{log}"
    );
}
