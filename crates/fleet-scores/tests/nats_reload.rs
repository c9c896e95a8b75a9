//! Reloadable config changes reach a running nats-server without a restart
//! (issue 17 item 2, docs/adr/0073-nats-config-escape-hatch.md): the
//! rendered file carries its hashes in `server_metadata`; the probe finds
//! a server reporting older ones, reloads it, and passes once it reports
//! the applied ones. A change only a restart applies is never reloaded
//! (the StatefulSet roll replaces the server), and every key we classify
//! as reloadable really is reloaded by nats-server.

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_crds::NatsSpec;
use fleet_scores::nats::config::{self, ConfigInput, ConfigMarker, Rendered};
use fleet_scores::nats::reload::{self, Expected, Rollout};
use fleet_scores::nats::user_config::RELOADABLE_KEYS;
use fleet_testkit::NatsServer;

mod common;

fn rendered(config: &[(&str, &str)]) -> Rendered {
    let spec = NatsSpec {
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..NatsSpec::default()
    };
    config::render_marked(&ConfigInput {
        stack: "demo",
        namespace: "fleet",
        headless_service: "demo-nats-headless",
        statefulset: "demo-nats",
        spec: &spec,
        callout: None,
        tls: None,
    })
}

fn body(r: &Rendered) -> String {
    common::testkit_body(&r.text)
}

async fn sys(server: &NatsServer) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password("sys".into(), "sys".into())
        .connect(server.url())
        .await
        .expect("connect as the system user")
}

async fn varz(server: &NatsServer) -> serde_json::Value {
    reqwest::get(format!("{}/varz", server.monitor_url()))
        .await
        .expect("varz")
        .json()
        .await
        .expect("varz json")
}

fn expect(marker: &ConfigMarker) -> Expected {
    Expected {
        servers: 1,
        not_after: None,
        config: Some(marker.clone()),
    }
}

const WAIT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_reloadable_change_is_reloaded_and_a_restart_only_change_is_not() {
    let first = rendered(&[("max_payload", "1MB")]);
    let mut server = NatsServer::start(&body(&first)).expect("server");
    let pid = server.pid();
    let client = sys(&server).await;
    assert_eq!(
        reload::converge(&client, &expect(&first.marker), WAIT)
            .await
            .unwrap(),
        Rollout::Served,
        "{}",
        server.log()
    );

    // max_payload is reloadable: same restart hash, another config hash.
    let second = rendered(&[("max_payload", "2MB")]);
    assert_eq!(second.marker.restart, first.marker.restart);
    assert_ne!(second.marker.config, first.marker.config);
    server.rewrite_config(&body(&second)).unwrap();
    assert_eq!(
        reload::converge(&client, &expect(&second.marker), WAIT)
            .await
            .unwrap(),
        Rollout::Converging {
            current: 0,
            servers: 1,
            reloaded: 1,
            restarting: 0
        }
    );
    assert_eq!(
        reload::converge(&client, &expect(&second.marker), WAIT)
            .await
            .unwrap(),
        Rollout::Served,
        "{}",
        server.log()
    );
    assert_eq!(varz(&server).await["max_payload"], 2 * 1024 * 1024);
    assert_eq!(server.pid(), pid, "no restart");
    assert_eq!(
        client
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the client connected before the reload kept its connection"
    );

    // max_subscriptions is not reloadable (nats-server refuses: "config reload not supported for MaxSubs"): another restart hash, and
    // the server is left to the roll (no reload sent, it keeps 2MB).
    let third = rendered(&[("max_payload", "2MB"), ("max_subscriptions", "5000")]);
    assert_ne!(third.marker.restart, second.marker.restart);
    server.rewrite_config(&body(&third)).unwrap();
    for _ in 0..2 {
        assert_eq!(
            reload::converge(&client, &expect(&third.marker), WAIT)
                .await
                .unwrap(),
            Rollout::Converging {
                current: 0,
                servers: 1,
                reloaded: 0,
                restarting: 1
            }
        );
    }
    assert_eq!(
        varz(&server).await["metadata"][config::METADATA_CONFIG],
        second.marker.config.as_str()
    );
    // The roll (a restart) brings it up to date.
    server.restart().unwrap();
    let client = sys(&server).await;
    assert_eq!(
        reload::converge(&client, &expect(&third.marker), WAIT)
            .await
            .unwrap(),
        Rollout::Served
    );
}

/// Two values per reloadable key; a reload switching every one of them
/// must be accepted by nats-server (it answers an unsupported change with
/// an error naming the option).
#[tokio::test]
async fn every_key_classified_reloadable_is_reloaded_by_nats_server() {
    let values: BTreeMap<&str, (&str, &str)> = BTreeMap::from([
        ("debug", ("false", "true")),
        ("logtime", ("true", "false")),
        ("logtime_utc", ("false", "true")),
        ("max_connections", ("1000", "2000")),
        ("max_control_line", ("4096", "8192")),
        ("max_payload", ("1MB", "2MB")),
        ("max_traced_msg_len", ("100", "200")),
        ("ping_interval", ("\"2m\"", "\"3m\"")),
        ("ping_max", ("2", "3")),
        ("trace", ("false", "true")),
        ("trace_verbose", ("false", "true")),
        ("write_deadline", ("\"10s\"", "\"5s\"")),
    ]);
    let classified: Vec<&str> = values.keys().copied().collect();
    assert_eq!(
        classified, RELOADABLE_KEYS,
        "every reloadable key has test values"
    );
    let a: Vec<(&str, &str)> = values.iter().map(|(k, (a, _))| (*k, *a)).collect();
    let b: Vec<(&str, &str)> = values.iter().map(|(k, (_, b))| (*k, *b)).collect();
    let (first, second) = (rendered(&a), rendered(&b));
    assert_eq!(first.marker.restart, second.marker.restart);
    let mut server = NatsServer::start(&body(&first)).expect("server");
    let client = sys(&server).await;
    server.rewrite_config(&body(&second)).unwrap();
    let served = reload::served(&client, 1, WAIT).await.unwrap();
    let result = reload::reload(&client, &served[0], WAIT).await;
    assert!(result.is_ok(), "{result:?}\n{}", server.log());
    let v = varz(&server).await;
    assert_eq!(v["max_payload"], 2 * 1024 * 1024);
    assert_eq!(v["max_connections"], 2000);
    assert_eq!(
        v["metadata"][config::METADATA_CONFIG],
        second.marker.config.as_str()
    );
}
