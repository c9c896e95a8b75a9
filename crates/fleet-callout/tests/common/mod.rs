//! Test stack: a real nats-server configured for auth callout, the test OIDC
//! issuer, and the callout, all on loopback in this process (the server is
//! a child process).

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;
use std::time::Duration;

use fleet_callout::device::{Devices, Directory, Kicker, MemoryRegistrar};
use fleet_callout::{
    Callout, ClientCredentials, Metrics, OidcConfig, OidcValidator, Policy, RequestVerifier, Secret,
};
use fleet_test_issuer::{Client, IssuerConfig, SigningAlg, TestIssuer};
use fleet_testkit::NatsServer;
use nkeys::{KeyPair, XKey};
use tokio_util::sync::CancellationToken;

pub const AUTH_USER: &str = "auth";
pub const AUTH_PASSWORD: &str = "auth-password";
/// A FLEET-account user that bypasses the callout (listed in `auth_users`),
/// playing the operator's part: it sends commands and reads heartbeats.
pub const OPERATOR_USER: &str = "operator";
pub const OPERATOR_PASSWORD: &str = "operator-password";
pub const AUDIENCE: &str = "fleet-nats";

#[derive(Clone)]
pub struct StackOptions {
    pub xkey: bool,
    pub alg: SigningAlg,
    pub opaque_tokens: bool,
    pub introspection: bool,
    pub max_token_bytes: usize,
    pub jwks_min_refresh: Duration,
    pub max_user_lifetime: Duration,
    /// nats-server `authorization.timeout`.
    pub auth_timeout_secs: u64,
    /// Connections the callout serves on (one `serve` call each).
    pub connections: usize,
    /// Lifetime of the tokens the issuer's token endpoint hands out.
    pub token_lifetime: Duration,
    /// Serve the client port with TLS only (a certificate for `localhost`
    /// from a fresh stack CA); clients dial [`Stack::url`].
    pub tls: bool,
    /// Serve device logins (ADR 0080): the server config gets the
    /// callout's system nkey user, the callout a directory (enrollments
    /// recorded in memory) and a kicker on a system connection.
    pub devices: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            xkey: false,
            alg: SigningAlg::EdDsa,
            opaque_tokens: false,
            introspection: false,
            max_token_bytes: 4096,
            jwks_min_refresh: Duration::from_millis(200),
            max_user_lifetime: Duration::from_secs(3600),
            auth_timeout_secs: 2,
            connections: 1,
            token_lifetime: Duration::from_secs(300),
            tls: false,
            devices: false,
        }
    }
}

pub struct Stack {
    pub issuer: TestIssuer,
    pub nats: NatsServer,
    pub callout: Arc<Callout>,
    pub metrics: Metrics,
    /// Seed of the issuer account (for building more callout replicas).
    pub account_seed: String,
    /// With `devices`: the device side of the callout.
    pub devices: Option<Arc<Devices>>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    connections: usize,
    /// With `StackOptions::tls`: the directory of `tls.crt`, `tls.key`,
    /// `ca.crt` (kept alive with the stack).
    pub tls_dir: Option<tempfile::TempDir>,
}

/// A stack CA and a server certificate for `localhost`, as the Secret
/// volume would hold them.
fn write_localhost_cert() -> tempfile::TempDir {
    use fleet_scores::tls;
    let dir = tempfile::tempdir().expect("tempdir");
    let now = tls::unix_now();
    let life = Duration::from_secs(3600);
    let ca =
        tls::CertificateAuthority::generate("bench", "bench", "bench-ca", life, now).expect("CA");
    let id = tls::ServerIdentity::new().with_name("localhost");
    let cert = tls::issue_server_cert(&ca, &id, life, now, ("bench", "bench-nats-tls"))
        .expect("certificate");
    let secret = tls::secret::server_cert_secret(
        "bench",
        "bench-nats-tls",
        &Default::default(),
        &Default::default(),
        &cert,
        &ca,
    );
    for (k, v) in secret.data.expect("data") {
        std::fs::write(dir.path().join(k), v.0).expect("write certificate file");
    }
    dir
}

/// The nats-server configuration body for callout auth.
pub fn callout_server_config(
    issuer_account: &str,
    xkey: Option<&str>,
    timeout_secs: u64,
) -> String {
    callout_server_config_with_system_user(issuer_account, xkey, timeout_secs, None)
}

/// [`callout_server_config`] plus, with `system_user`, the callout's system
/// nkey user in SYS (bypassing the callout): it makes the server send a
/// nonce to every client, and lets the callout kick connections.
pub fn callout_server_config_with_system_user(
    issuer_account: &str,
    xkey: Option<&str>,
    timeout_secs: u64,
    system_user: Option<&str>,
) -> String {
    let xkey_line = xkey.map(|x| format!("xkey: \"{x}\"")).unwrap_or_default();
    let (sys_users, sys_auth) = match system_user {
        Some(key) => (format!("users: [ {{ nkey: {key} }} ]"), format!(", {key}")),
        None => (String::new(), String::new()),
    };
    format!(
        r#"
accounts {{
  AUTH {{ users: [ {{ user: {AUTH_USER}, password: "{AUTH_PASSWORD}" }} ] }}
  FLEET {{ users: [ {{ user: {OPERATOR_USER}, password: "{OPERATOR_PASSWORD}" }} ] }}
  SYS {{ {sys_users} }}
}}
system_account: SYS
authorization {{
  timeout: {timeout_secs}
  auth_callout {{
    issuer: "{issuer_account}"
    account: AUTH
    auth_users: [ {AUTH_USER}, {OPERATOR_USER}{sys_auth} ]
    {xkey_line}
  }}
}}
"#
    )
}

impl Stack {
    pub async fn start(opts: StackOptions) -> Stack {
        let issuer = TestIssuer::start(IssuerConfig {
            clients: vec![
                Client::new("agent-a", "secret-a"),
                Client::new("agent-b", "secret-b"),
                Client::new("callout", "callout-secret"),
            ],
            audience: AUDIENCE.into(),
            alg: opts.alg,
            opaque_tokens: opts.opaque_tokens,
            token_lifetime: opts.token_lifetime,
            ..IssuerConfig::default()
        })
        .await
        .expect("test issuer starts");

        let account = KeyPair::new_account();
        let xkey = opts.xkey.then(XKey::new);
        let system_user = opts.devices.then(KeyPair::new_user);
        let mut config = callout_server_config_with_system_user(
            &account.public_key(),
            xkey.as_ref().map(XKey::public_key).as_deref(),
            opts.auth_timeout_secs,
            system_user.as_ref().map(KeyPair::public_key).as_deref(),
        );
        let tls_dir = opts.tls.then(write_localhost_cert);
        if let Some(dir) = &tls_dir {
            let d = dir.path().display();
            config.push_str(&format!(
                "tls {{ cert_file: \"{d}/tls.crt\", key_file: \"{d}/tls.key\", ca_file: \"{d}/ca.crt\", timeout: 3 }}\n"
            ));
        }
        let nats = tokio::task::spawn_blocking(move || NatsServer::start(&config))
            .await
            .expect("join")
            .expect("nats-server starts with the callout config");

        let metrics = Metrics::new();
        let mut oidc_cfg = OidcConfig::new(issuer.url(), AUDIENCE);
        oidc_cfg.max_token_bytes = opts.max_token_bytes;
        oidc_cfg.jwks_min_refresh = opts.jwks_min_refresh;
        if opts.introspection {
            oidc_cfg.client = Some(ClientCredentials {
                id: "callout".into(),
                secret: Secret::new("callout-secret"),
            });
        }
        let oidc = OidcValidator::new(oidc_cfg, metrics.clone()).expect("oidc client");
        let account_seed = account.seed().expect("account seed");
        let verifier = RequestVerifier::new(account, xkey);
        let mut callout = Callout::new(
            verifier,
            oidc,
            Policy {
                max_user_lifetime: opts.max_user_lifetime,
                ..Policy::default()
            },
            metrics.clone(),
        );
        let mut devices = None;
        if let Some(system_user) = system_user {
            let system =
                async_nats::ConnectOptions::with_nkey(system_user.seed().expect("system seed"))
                    .name("fleet-callout-system")
                    .connect(nats.url())
                    .await
                    .expect("the callout's system user connects (bypasses the callout)");
            let directory = Arc::new(Directory::new());
            let d = Arc::new(Devices::new(
                directory.clone(),
                Arc::new(MemoryRegistrar::new(directory)),
                Some(Kicker::new(system, "FLEET")),
            ));
            callout = callout.with_devices(d.clone());
            devices = Some(d);
        }
        let callout = Arc::new(callout);
        let mut stack = Stack {
            issuer,
            nats,
            callout,
            metrics,
            account_seed,
            devices,
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
            connections: opts.connections.max(1),
            tls_dir,
        };
        stack.start_callout().await;
        stack
    }

    /// The URL clients dial: `tls://localhost:<port>` with TLS (the name
    /// the certificate carries), the server's URL otherwise.
    pub fn url(&self) -> String {
        match &self.tls_dir {
            Some(_) => format!("tls://localhost:{}", self.nats.port()),
            None => self.nats.url(),
        }
    }

    /// Connect options verifying the server with the stack's CA (no-op
    /// without TLS).
    pub fn client_tls(&self, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        match &self.tls_dir {
            Some(dir) => fleet_proto::client::ClientTls::with_ca_file(dir.path().join("ca.crt"))
                .apply(options),
            None => options,
        }
    }

    /// (Re)starts the callout's NATS loop and waits until it is subscribed.
    pub async fn start_callout(&mut self) {
        self.shutdown = CancellationToken::new();
        for _ in 0..self.connections {
            let client = self
                .client_tls(async_nats::ConnectOptions::with_user_and_password(
                    AUTH_USER.into(),
                    AUTH_PASSWORD.into(),
                ))
                .name("fleet-callout-test")
                .connect(self.url())
                .await
                .expect("callout connects as the auth user");
            let callout = self.callout.clone();
            let shutdown = self.shutdown.clone();
            self.tasks.push(tokio::spawn(async move {
                callout
                    .serve(client, "fleet-callout", shutdown)
                    .await
                    .expect("callout serves");
            }));
        }
        self.callout
            .oidc()
            .expect("the test stack has an issuer")
            .warm_up()
            .await
            .expect("discovery and JWKS load");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.callout.is_ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "callout never became ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop_callout(&mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            task.await.expect("callout task ends cleanly");
        }
    }

    /// A token from the issuer's token endpoint (client_credentials over HTTP).
    pub async fn token_for(&self, client_id: &str, secret: &str) -> String {
        fetch_token(self.issuer.url(), client_id, secret).await
    }

    pub async fn connect_with_token(
        &self,
        token: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        connect_with_token(&self.nats.url(), token, None).await
    }

    /// Another callout replica with the same keys and issuer (plaintext
    /// requests only), serving in the same queue group until `shutdown`.
    pub async fn start_replica(&self, shutdown: CancellationToken) -> Metrics {
        let metrics = Metrics::new();
        let oidc = OidcValidator::new(
            OidcConfig::new(self.issuer.url(), AUDIENCE),
            metrics.clone(),
        )
        .expect("oidc client");
        let verifier = RequestVerifier::new(
            KeyPair::from_seed(&self.account_seed).expect("account key"),
            None,
        );
        let replica = Arc::new(Callout::new(
            verifier,
            oidc,
            Policy::default(),
            metrics.clone(),
        ));
        replica
            .oidc()
            .expect("the replica has an issuer")
            .warm_up()
            .await
            .expect("replica warms up");
        let client = async_nats::ConnectOptions::with_user_and_password(
            AUTH_USER.into(),
            AUTH_PASSWORD.into(),
        )
        .connect(self.nats.url())
        .await
        .expect("replica connects");
        let r = replica.clone();
        tokio::spawn(async move {
            r.serve(client, "fleet-callout", shutdown)
                .await
                .expect("replica serves");
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !replica.is_ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "replica never ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        metrics
    }

    pub async fn operator(&self) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password(
            OPERATOR_USER.into(),
            OPERATOR_PASSWORD.into(),
        )
        .connect(self.nats.url())
        .await
        .expect("operator connects (bypasses the callout)")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A token from `issuer_url`'s token endpoint (client_credentials over HTTP),
/// as an agent obtains it.
pub async fn fetch_token(issuer_url: &str, client_id: &str, secret: &str) -> String {
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{issuer_url}/oauth/v2/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
        .error_for_status()
        .expect("token granted")
        .json()
        .await
        .expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// [`fetch_token`] for agent-a, with owned arguments (for spawned tasks).
pub async fn fetch_token_owned(issuer_url: String) -> String {
    fetch_token(&issuer_url, "agent-a", "secret-a").await
}

/// Connects with token auth and no reconnect retries; `events`, if given,
/// receives the server errors (permission violations) of the connection.
pub async fn connect_with_token(
    url: &str,
    token: &str,
    events: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let mut opts = async_nats::ConnectOptions::with_token(token.to_string())
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(1));
    if let Some(tx) = events {
        opts = opts.event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        });
    }
    opts.connect(url).await
}

/// Asserts that `result` is the server refusing the client's credentials.
pub fn assert_refused(result: Result<async_nats::Client, async_nats::ConnectError>, what: &str) {
    match result {
        Ok(_) => panic!("{what}: connection was accepted"),
        Err(e) => assert_eq!(
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{what}: expected Authorization Violation, got {e}"
        ),
    }
}
