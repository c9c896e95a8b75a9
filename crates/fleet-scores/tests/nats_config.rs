//! The merged nats.conf against the real nats-server (issue 17 item 2):
//! every mode the Score renders, tuned and with user keys, passes
//! `nats-server -t`; configurations it refuses come back as a Stalled-ready
//! SpecError quoting its message; and a running server shows the merged
//! values in /varz (so a key appended inside our block really wins).

use std::collections::BTreeMap;

use fleet_crds::NatsSpec;
use fleet_scores::nats::config::{self, CalloutAuth, ConfigInput};
use fleet_scores::nats::server_check::{self, Verdict};
use fleet_testkit::NatsServer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

mod common;

fn tuned(replicas: i32, jetstream: bool) -> NatsSpec {
    let mut spec = NatsSpec {
        replicas,
        server_tags: vec!["az:a".into(), "edge".into()],
        config: BTreeMap::from([
            ("max_payload".to_string(), "2MB".to_string()),
            ("write_deadline".to_string(), "\"5s\"".to_string()),
        ]),
        ..NatsSpec::default()
    };
    if replicas > 1 {
        spec.config.insert("cluster.pool_size".into(), "5".into());
    }
    if jetstream {
        spec.jetstream.enabled = true;
        spec.jetstream.max_memory_store = Some(Quantity("64Mi".into()));
        spec.jetstream.max_file_store = Some(Quantity("512Mi".into()));
        spec.jetstream.max_streams = Some(10);
        spec.config
            .insert("jetstream.max_buffered_msgs".into(), "1000".into());
    }
    spec
}

fn render(spec: &NatsSpec, callout: Option<&CalloutAuth>) -> String {
    render_tls(spec, callout, None)
}

fn render_tls(
    spec: &NatsSpec,
    callout: Option<&CalloutAuth>,
    tls: Option<&config::TlsFiles>,
) -> String {
    config::render(&ConfigInput {
        stack: "demo",
        namespace: "fleet",
        headless_service: "demo-nats-headless",
        statefulset: "demo-nats",
        spec,
        callout,
        tls,
    })
}

fn callout_keys() -> CalloutAuth {
    CalloutAuth {
        issuer: nkeys::KeyPair::new_account().public_key(),
        xkey: Some(nkeys::XKey::new().public_key()),
    }
}

fn bin() -> std::path::PathBuf {
    fleet_testkit::nats_server_binary().expect("NATS_SERVER_BIN or nats-server on PATH")
}

#[tokio::test]
async fn every_rendered_mode_with_every_tuning_passes_nats_server_t() {
    let keys = callout_keys();
    let pod_tls = config::TlsFiles {
        dir: config::TLS_DIR.into(),
        client_advertise: Some("203.0.113.7:30422".into()),
    };
    for replicas in [1, 3] {
        for jetstream in [false, true] {
            for (callout, tls) in [None, Some(&keys)]
                .into_iter()
                .flat_map(|c| [(c, None), (c, Some(&pod_tls))])
            {
                // With TLS the pod's certificate files do not exist here:
                // the check substitutes throwaway ones.
                let c = render_tls(&tuned(replicas, jetstream), callout, tls);
                let verdict = server_check::run(&bin(), &c).await.expect("ran");
                assert_eq!(
                    verdict,
                    Verdict::Accepted,
                    "replicas {replicas} js {jetstream}\n{c}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_config_nats_server_refuses_is_a_spec_error_quoting_it() {
    for (key, value, expect) in [
        ("max_payloadd", "1", "unknown field \"max_payloadd\""),
        ("write_deadline", "zz", "write_deadline"),
    ] {
        let mut spec = NatsSpec::default();
        spec.config.insert(key.into(), value.into());
        let c = render(&spec, None);
        let Verdict::Rejected(message) = server_check::run(&bin(), &c).await.expect("ran") else {
            panic!("{key}: {value} accepted");
        };
        assert!(message.contains(expect), "{message}");
        assert!(
            message.contains("nats.conf"),
            "path shown as nats.conf: {message}"
        );
        assert!(
            !message.contains("fleet-nats-check"),
            "no temp path: {message}"
        );
        // And through the Score's entry point: the field named.
        let e = server_check::verify_with(Some(&bin()), &c, true)
            .await
            .expect("ran")
            .expect("rejected");
        assert_eq!(e.path, "spec.nats.config");
        assert!(
            e.message
                .starts_with("nats-server rejected the merged configuration: ")
        );
        // Without a binary a spec with user keys is an error, never an accept.
        assert!(matches!(
            server_check::verify_with(None, &c, true).await,
            Err(server_check::CheckError::Unavailable)
        ));
    }
}

#[tokio::test]
async fn a_running_server_reports_the_merged_values() {
    let spec = tuned(1, true);
    let rendered = render(&spec, None);
    let body = common::testkit_body(&rendered);
    let server = NatsServer::start(&body).expect("nats-server starts on the merged config");
    let varz: serde_json::Value = reqwest::get(format!("{}/varz", server.monitor_url()))
        .await
        .expect("varz")
        .json()
        .await
        .expect("varz json");
    assert_eq!(varz["max_payload"], 2 * 1024 * 1024, "{}", server.log());
    assert_eq!(varz["tags"], serde_json::json!(["az:a", "edge"]));
    assert_eq!(varz["jetstream"]["config"]["max_memory"], 64 * 1024 * 1024);
    assert_eq!(
        varz["jetstream"]["config"]["max_storage"],
        512 * 1024 * 1024,
        "max_file_store appended after ours wins"
    );
    // The FLEET account's stream limit, as its own users see it.
    let client = async_nats::ConnectOptions::with_user_and_password("fleet".into(), "fleet".into())
        .connect(server.url())
        .await
        .expect("connect as fleet");
    let info = client
        .request("$JS.API.INFO", "".into())
        .await
        .expect("JetStream account info");
    let info: serde_json::Value = serde_json::from_slice(&info.payload).expect("json");
    assert_eq!(info["limits"]["max_streams"], 10, "{info}");
}

/// `jetstream.storage: Memory` on a real server: memory streams are
/// created, file streams refused (no volume backs them).
#[tokio::test]
async fn memory_storage_takes_memory_streams_and_refuses_file_streams() {
    let mut spec = NatsSpec::default();
    spec.jetstream.enabled = true;
    spec.jetstream.storage = fleet_crds::JetStreamStorage::Memory;
    spec.jetstream.max_memory_store = Some(Quantity("64Mi".into()));
    let rendered = render(&spec, None);
    assert_eq!(
        server_check::run(&bin(), &rendered).await.expect("ran"),
        Verdict::Accepted
    );
    let body = common::testkit_body(&rendered);
    let server = NatsServer::start(&body).expect("nats-server starts");
    let client = async_nats::ConnectOptions::with_user_and_password("fleet".into(), "fleet".into())
        .connect(server.url())
        .await
        .expect("connect as fleet");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "CACHE".into(),
        subjects: vec!["cache.>".into()],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .expect("a memory stream");
    let file = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "DISK".into(),
            subjects: vec!["disk.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await;
    assert!(file.is_err(), "a file stream without a volume: {file:?}");
}
