//! The fleet-zitadel-bootstrap binary against the real API server (the
//! cluster of tests/kind; KUBECONFIG must point at it), running as the setup
//! pod's ServiceAccount: the ServiceAccount, Role and RoleBinding are the
//! ones FleetZitadelScore builds, applied for real, and the binary
//! impersonates that account (kube's `KUBE_RS_DEBUG_IMPERSONATE_*`), so the
//! Role is proven to be enough, and to be limited to the provisioner Secret.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fleet_crds::ManagedZitadelSpec;
use fleet_scores::zitadel::{self, ZitadelInput, ZitadelNames, objects};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

const STACK: &str = "demo";

fn require_cluster() {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: these tests need a real API server \
             (tests/kind/cluster up --control-plane, then export KUBECONFIG)"
        );
    }
}

/// Deletes the test namespace however the test ends.
struct NamespaceGuard {
    name: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's client cannot be used from
        // another runtime (its connection task lives on the test's, which
        // this blocks): a fresh client on a short-lived runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().map(|rt| {
                rt.block_on(async {
                    if let Ok(client) = Client::try_default().await {
                        let api: Api<Namespace> = Api::all(client);
                        let _ = api.delete(&name, &DeleteParams::default()).await;
                    }
                })
            })
        })
        .join();
    }
}

struct Env {
    client: Client,
    ns: String,
    names: ZitadelNames,
    /// FLEET_PAT_SECRET_LABELS and FLEET_OWNER_* as the Score sets them
    /// (the owner replaced by a real object of the namespace).
    env: BTreeMap<String, String>,
    owner_uid: String,
    _guard: NamespaceGuard,
}

fn input(ns: &str) -> ZitadelInput {
    ZitadelInput {
        stack: STACK.into(),
        namespace: ns.into(),
        owner: OwnerReference {
            api_version: "fleet.nationtech.io/v1alpha1".into(),
            kind: "FleetStack".into(),
            name: STACK.into(),
            uid: "0000".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        spec: ManagedZitadelSpec {
            pod: None,
            image: fleet_crds::DEFAULT_ZITADEL_IMAGE.into(),
            external_domain: "id.example".into(),
            database: Default::default(),
            bootstrap_image: fleet_crds::DEFAULT_ZITADEL_BOOTSTRAP_IMAGE.into(),
        },
    }
}

async fn setup(prefix: &str) -> Env {
    require_cluster();
    let client = Client::try_default().await.expect("client from KUBECONFIG");
    let ns = format!("{prefix}-{:08x}", rand::random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &n)
        .await
        .expect("create namespace");
    let guard = NamespaceGuard { name: ns.clone() };

    // A real owner: an ownerReference to a missing uid would have the
    // garbage collector delete the Secret under the test.
    let owners: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut owner = ConfigMap::default();
    owner.metadata.name = Some("owner".into());
    let owner = owners
        .create(&PostParams::default(), &owner)
        .await
        .expect("create owner");
    let mut input = input(&ns);
    input.owner = OwnerReference {
        api_version: ConfigMap::api_version(&()).into(),
        kind: ConfigMap::kind(&()).into(),
        name: owner.name_any(),
        uid: owner.uid().expect("uid"),
        controller: Some(true),
        block_owner_deletion: None,
    };

    // The setup pod's RBAC exactly as built (owner references dropped for
    // the same reason as above).
    let o = zitadel::build(&input);
    let pp = PostParams::default();
    let mut sa = o.setup_service_account.clone();
    sa.metadata.owner_references = None;
    Api::namespaced(client.clone(), &ns)
        .create(&pp, &sa)
        .await
        .expect("create ServiceAccount");
    let mut role = o.setup_role.clone();
    role.metadata.owner_references = None;
    Api::namespaced(client.clone(), &ns)
        .create(&pp, &role)
        .await
        .expect("create Role (the test's admin holds every right)");
    let mut binding = o.setup_role_binding.clone();
    binding.metadata.owner_references = None;
    Api::namespaced(client.clone(), &ns)
        .create(&pp, &binding)
        .await
        .expect("create RoleBinding");

    let names = ZitadelNames::new(STACK);
    let env = objects::bootstrap_env(&input, &names)
        .into_iter()
        .filter(|e| {
            e.name.starts_with("FLEET_PAT_SECRET_LABELS") || e.name.starts_with("FLEET_OWNER_")
        })
        .map(|e| (e.name, e.value.expect("literal")))
        .collect();
    Env {
        client,
        ns,
        owner_uid: input.owner.uid.clone(),
        names,
        env,
        _guard: guard,
    }
}

impl Env {
    /// Runs the binary as the setup pod's ServiceAccount.
    fn run(&self, pat_file: &Path, secret: &str) -> Output {
        let sa = &self.names.setup_service_account;
        Command::new(env!("CARGO_BIN_EXE_fleet-zitadel-bootstrap"))
            .env("FLEET_PAT_FILE", pat_file)
            .env("FLEET_PAT_SECRET", secret)
            .env("POD_NAMESPACE", &self.ns)
            .envs(&self.env)
            .env(
                "KUBE_RS_DEBUG_IMPERSONATE_USER",
                format!("system:serviceaccount:{}:{sa}", self.ns),
            )
            .env(
                "KUBE_RS_DEBUG_IMPERSONATE_GROUP",
                format!(
                    "system:serviceaccounts,system:serviceaccounts:{},system:authenticated",
                    self.ns
                ),
            )
            .env("RUST_LOG", "info")
            .output()
            .expect("run fleet-zitadel-bootstrap")
    }

    /// The first run waits for the new RoleBinding to reach the API
    /// server's RBAC cache (a 403 only; any other failure fails at once).
    fn run_when_authorized(&self, pat_file: &Path, secret: &str) -> Output {
        let start = Instant::now();
        loop {
            let out = self.run(pat_file, secret);
            let forbidden = String::from_utf8_lossy(&out.stderr).contains("forbidden");
            if out.status.success() || !forbidden || start.elapsed() > Duration::from_secs(15) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    async fn secret(&self) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .get_opt(&self.names.provisioner_secret)
            .await
            .expect("get Secret")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pat_of(secret: &Secret) -> String {
    let bytes = &secret.data.as_ref().expect("data")[objects::PROVISIONER_PAT_KEY];
    String::from_utf8(bytes.0.clone()).expect("utf-8")
}

#[tokio::test]
async fn stores_the_trimmed_pat_keeps_it_without_a_file_and_updates_it_on_a_new_one() {
    let env = setup("zbootstrap").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pat");
    std::fs::write(&file, "first-pat-3f9a\n").unwrap();

    // 1. A PAT file: the Secret is created with the trimmed token.
    let out = env.run_when_authorized(&file, &env.names.provisioner_secret);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("first-pat-3f9a"), "the PAT was logged: {log}");
    let secret = env.secret().await.expect("the Secret exists");
    assert_eq!(pat_of(&secret), "first-pat-3f9a");
    // The reconciler's conventions: its labels, its field manager, the
    // FleetStack as controller owner.
    let labels = secret.labels();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("fleet-reconciler")
    );
    assert_eq!(
        labels.get("app.kubernetes.io/instance").map(String::as_str),
        Some(STACK)
    );
    assert_eq!(
        labels
            .get("app.kubernetes.io/component")
            .map(String::as_str),
        Some(zitadel::COMPONENT)
    );
    let owner = &secret.owner_references()[0];
    assert_eq!(owner.uid, env.owner_uid);
    assert_eq!(owner.controller, Some(true));
    assert!(
        secret
            .managed_fields()
            .iter()
            .any(|f| f.manager.as_deref() == Some("fleet-reconciler")),
        "{:?}",
        secret.managed_fields()
    );
    let version = secret.resource_version();

    // 2. No file (setup had run before): exit 0, nothing written.
    let missing = dir.path().join("absent");
    let out = env.run(&missing, &env.names.provisioner_secret);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("existing Secret is kept"), "{log}");
    let secret = env.secret().await.expect("still there");
    assert_eq!(secret.resource_version(), version, "the Secret was written");
    assert_eq!(pat_of(&secret), "first-pat-3f9a");

    // 3. A new PAT replaces the old one.
    std::fs::write(&file, "  second-pat-77c1\n\n").unwrap();
    let out = env.run(&file, &env.names.provisioner_secret);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains("second-pat-77c1"),
        "the PAT was logged: {log}"
    );
    assert_eq!(pat_of(&env.secret().await.unwrap()), "second-pat-77c1");
}

#[tokio::test]
async fn the_role_allows_no_other_secret_and_api_errors_exit_1_without_the_pat() {
    let env = setup("zbootstrap-deny").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pat");
    std::fs::write(&file, "secret-pat-a1b2\n").unwrap();
    // Make sure the binding is live first (the allowed name works) ...
    let out = env.run_when_authorized(&file, &env.names.provisioner_secret);
    assert!(out.status.success(), "{}", stderr(&out));
    // ... then another name is refused: create and patch are limited to
    // the provisioner Secret.
    let out = env.run(&file, "someone-elses-secret");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("cannot apply Secret") && log.contains("someone-elses-secret"),
        "{log}"
    );
    assert!(log.contains("forbidden"), "{log}");
    assert!(
        !log.contains("secret-pat-a1b2"),
        "the PAT was logged: {log}"
    );
    let other: Option<Secret> = Api::namespaced(env.client.clone(), &env.ns)
        .get_opt("someone-elses-secret")
        .await
        .unwrap();
    assert!(other.is_none());
}

#[test]
fn an_empty_file_or_missing_configuration_fails_before_any_api_call() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pat");
    std::fs::write(&file, "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleet-zitadel-bootstrap"))
        .env("FLEET_PAT_FILE", &file)
        .env("FLEET_PAT_SECRET", "s")
        .env("POD_NAMESPACE", "ns")
        // No API server: an API call would fail differently.
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));

    let out = Command::new(env!("CARGO_BIN_EXE_fleet-zitadel-bootstrap"))
        .env_remove("FLEET_PAT_SECRET")
        .env("FLEET_PAT_FILE", &file)
        .env("POD_NAMESPACE", "ns")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("FLEET_PAT_SECRET"),
        "{}",
        stderr(&out)
    );
}
