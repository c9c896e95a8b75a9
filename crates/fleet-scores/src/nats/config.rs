//! Renders `nats.conf` (pure).
//!
//! Secrets never enter the ConfigMap: passwords are referenced as
//! `$SYS_PASSWORD` / `$FLEET_PASSWORD`, which nats-server resolves from the
//! container environment (filled from the write-once Secret).

use fleet_crds::{ExposeSpec, ExposeType, JetStreamStorage, NatsSpec, parse_advertise_address};

pub const CLIENT_PORT: u16 = 4222;
pub const CLUSTER_PORT: u16 = 6222;
pub const MONITOR_PORT: u16 = 8222;
pub const CONFIG_DIR: &str = "/etc/nats";
pub const CONFIG_FILE: &str = "nats.conf";
pub const PID_DIR: &str = "/var/run/nats";
/// Where the server certificate Secret (`tls.crt`, `tls.key`, `ca.crt`) is
/// mounted.
pub const TLS_DIR: &str = "/etc/nats-tls";
/// TLS handshake deadline (seconds) on the client port and routes. Above
/// nats-server's 2 s default: a device on a slow link still gets in.
pub const TLS_TIMEOUT_SECS: u32 = 3;
pub const DATA_DIR: &str = "/data";

/// User of the system account; the smoke probe connects as this user.
pub const SYS_USER: &str = "sys";
/// User of the FLEET account (operator, callout bootstrap).
pub const FLEET_USER: &str = "fleet";
pub const SYS_PASSWORD_ENV: &str = "SYS_PASSWORD";
/// Cluster routes authenticate as this user (replicas > 1): without it any
/// pod that reaches port 6222 could join the cluster as a route and see
/// every message of every account.
pub const ROUTE_USER: &str = "route";
pub const ROUTE_PASSWORD_ENV: &str = "ROUTE_PASSWORD";

/// Env var holding the route URL (with credentials) of replica `i`: the
/// URL carries the password, so it is composed in the pod from the Secret
/// (`$(ROUTE_PASSWORD)` expansion), never written into the ConfigMap.
pub fn route_env(i: i32) -> String {
    format!("ROUTE_{i}")
}

/// The route URL of replica `i` as the pod's env composes it.
pub fn route_url(input: &ConfigInput<'_>, i: i32) -> String {
    format!(
        "nats-route://{ROUTE_USER}:$({ROUTE_PASSWORD_ENV})@{sts}-{i}.{svc}.{ns}.svc.cluster.local:{CLUSTER_PORT}",
        sts = input.statefulset,
        svc = input.headless_service,
        ns = input.namespace
    )
}
pub const FLEET_PASSWORD_ENV: &str = "FLEET_PASSWORD";

/// With `auth.mode: Callout`: the auth-callout service's user, alone in the
/// AUTH account, where nats-server publishes `$SYS.REQ.USER.AUTH`.
pub const AUTH_USER: &str = "auth";
pub const AUTH_ACCOUNT: &str = "AUTH";
pub const AUTH_PASSWORD_ENV: &str = "AUTH_PASSWORD";
/// Account the callout places agents in (its `FLEET_CALLOUT_TARGET_ACCOUNT`).
pub const FLEET_ACCOUNT: &str = "FLEET";
/// `authorization.timeout` in callout mode: covers the callout round trip
/// (the callout's own budget is 1 s) and stays below the agents' 5 s
/// connect timeout.
pub const CALLOUT_AUTH_TIMEOUT_SECS: u32 = 2;

/// Public keys of the auth callout (not secret; the seeds stay in the
/// write-once Secret). Present = render `authorization.auth_callout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutAuth {
    /// The issuer account's public key (`A...`): the callout signs its
    /// responses with the matching seed.
    pub issuer: String,
    /// Curve public key (`X...`): requests to the callout are encrypted.
    pub xkey: Option<String>,
}

/// TLS of the listeners. Present = the client port accepts TLS only and
/// routes speak mutually verified TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Directory holding `tls.crt`, `tls.key` and `ca.crt` (in the pod:
    /// [`TLS_DIR`]; a loopback test points it at a temporary directory).
    pub dir: String,
    /// `host:port` told to clients (`client_advertise`): the address
    /// devices outside the cluster dial.
    pub client_advertise: Option<String>,
}

impl TlsFiles {
    fn block(&self, indent: &str, verify: bool) -> String {
        let d = &self.dir;
        let verify = if verify {
            // Routes: the dialing server must present a certificate from
            // the same CA; a pod that merely reaches 6222 cannot.
            format!("{indent}  verify: true\n")
        } else {
            String::new()
        };
        format!(
            "{indent}tls {{\n{indent}  cert_file: \"{d}/tls.crt\"\n{indent}  key_file: \"{d}/tls.key\"\n{indent}  ca_file: \"{d}/ca.crt\"\n{verify}{indent}  timeout: {TLS_TIMEOUT_SECS}\n{indent}}}\n"
        )
    }
}

/// The port devices dial on an advertised address that gives none: the
/// node port with type `NodePort` (`allocated`: the one Kubernetes
/// assigned, read back from the Service; else the fixed `nodePort`), the
/// client port with a load balancer (it listens on the Service port).
pub fn exposed_port(expose: &ExposeSpec, allocated: Option<u16>) -> u16 {
    match expose.type_ {
        ExposeType::NodePort => allocated
            .or_else(|| expose.node_port.and_then(|p| u16::try_from(p).ok()))
            .unwrap_or(CLIENT_PORT),
        ExposeType::LoadBalancer => CLIENT_PORT,
    }
}

/// Every advertised address of `spec.nats.expose` as `host:port`, in the
/// order given (invalid entries, which validation refuses, are skipped).
pub fn advertised(expose: Option<&ExposeSpec>, allocated: Option<u16>) -> Vec<String> {
    let Some(expose) = expose else {
        return Vec::new();
    };
    let port = exposed_port(expose, allocated);
    expose
        .advertise
        .iter()
        .filter_map(|a| parse_advertise_address(a).ok())
        .map(|a| a.host_port(port))
        .collect()
}

/// The `client_advertise` value for `spec.nats.expose`: its first
/// advertised address ([`advertised`]). `None` without an expose or an
/// address.
pub fn client_advertise(expose: Option<&ExposeSpec>, allocated: Option<u16>) -> Option<String> {
    advertised(expose, allocated).into_iter().next()
}

/// Everything the config depends on besides the spec.
#[derive(Debug, Clone)]
pub struct ConfigInput<'a> {
    pub stack: &'a str,
    pub namespace: &'a str,
    pub headless_service: &'a str,
    pub statefulset: &'a str,
    pub spec: &'a NatsSpec,
    /// `Some` with `auth.mode: Callout`.
    pub callout: Option<&'a CalloutAuth>,
    /// `Some` with TLS (the default; `None` only with `tls.mode: Disabled`
    /// or before the Interpret passes the certificate).
    pub tls: Option<&'a TlsFiles>,
}

/// Keys of `server_metadata` carrying the hashes of the file a server
/// loaded; VARZ reports them (`metadata`), so the reconciler can tell
/// which servers a reload must still reach ([`super::reload`]).
pub const METADATA_RESTART: &str = "fleet_restart";
pub const METADATA_CONFIG: &str = "fleet_config";

/// What a server's config is, as two hashes (16 hex digits of SHA-256):
/// `config` of the whole rendered file, `restart` of it without the parts
/// nats-server reloads (`user_config::reloadable`). Equal `restart`, other
/// `config`: a reload applies the difference; other `restart`: only a
/// restart does, so it is what the pod template carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMarker {
    pub restart: String,
    pub config: String,
}

/// The configuration and its marker.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The file: [`render`]'s text, then the `server_metadata` line.
    pub text: String,
    pub marker: ConfigMarker,
}

/// The file a server runs: [`render`], stamped with its [`ConfigMarker`].
pub fn render_marked(input: &ConfigInput<'_>) -> Rendered {
    let full = render(input);
    let fixed_spec = super::user_config::without_reloadable(input.spec);
    let fixed = render(&ConfigInput {
        spec: &fixed_spec,
        ..input.clone()
    });
    let short = |text: &str| {
        use sha2::{Digest, Sha256};
        crate::apply::hex(&Sha256::digest(text.as_bytes()))[..16].to_string()
    };
    let marker = ConfigMarker {
        restart: short(&fixed),
        config: short(&full),
    };
    // nats-server reloads `server_metadata` (2.11+), so a reload changes
    // what VARZ reports exactly when the server read the new file.
    let text = format!(
        "{full}# The hashes of this file, read back from /varz by the reconciler\nserver_metadata: {{ {METADATA_RESTART}: \"{}\", {METADATA_CONFIG}: \"{}\" }}\n",
        marker.restart, marker.config
    );
    Rendered { text, marker }
}

/// The complete server configuration (without the marker).
pub fn render(input: &ConfigInput<'_>) -> String {
    let mut c = String::new();
    c.push_str(
        "# Rendered by fleet-reconciler (FleetNatsScore). Do not edit: changes are overwritten.\n",
    );
    c.push_str("server_name: $SERVER_NAME\n");
    c.push_str(&format!("listen: 0.0.0.0:{CLIENT_PORT}\n"));
    c.push_str(&format!("http: 0.0.0.0:{MONITOR_PORT}\n"));
    if let Some(tls) = input.tls {
        // Plaintext clients are refused on the client port.
        c.push_str(&tls.block("", false));
        if let Some(advertise) = &tls.client_advertise {
            c.push_str(&format!("client_advertise: \"{advertise}\"\n"));
        }
    }
    c.push_str(&format!("pid_file: {PID_DIR}/nats.pid\n"));
    c.push_str("lame_duck_duration: 30s\nlame_duck_grace_period: 10s\n");
    if input.spec.replicas > 1 {
        c.push_str(&cluster_block(input));
    }
    if input.spec.jetstream.enabled {
        c.push_str(&jetstream_block(input.spec));
    }
    match input.callout {
        None => c.push_str(&accounts_block(input.spec.jetstream.enabled)),
        Some(callout) => c.push_str(&callout_block(input.spec.jetstream.enabled, callout)),
    }
    super::user_config::merge(c, input.spec)
}

fn cluster_block(input: &ConfigInput<'_>) -> String {
    // nats-server resolves `$ROUTE_<i>` (whole array elements) from the
    // environment; the URLs carry the route password.
    let routes: Vec<String> = (0..input.spec.replicas)
        .map(|i| format!("    ${}", route_env(i)))
        .collect();
    let tls = input.tls.map(|t| t.block("  ", true)).unwrap_or_default();
    format!(
        "cluster {{\n  name: {name}\n  listen: 0.0.0.0:{CLUSTER_PORT}\n  no_advertise: true\n  connect_retries: 120\n{tls}  authorization {{\n    user: {ROUTE_USER}\n    password: ${ROUTE_PASSWORD_ENV}\n    timeout: 2\n  }}\n  routes: [\n{routes}\n  ]\n}}\n",
        name = input.stack,
        routes = routes.join("\n")
    )
}

fn jetstream_block(spec: &NatsSpec) -> String {
    let mut b = format!("jetstream {{\n  store_dir: {DATA_DIR}/jetstream\n");
    match spec.jetstream.storage {
        JetStreamStorage::File => {
            if let Some(bytes) = quantity_bytes(&spec.jetstream.storage_size.0) {
                b.push_str(&format!("  max_file_store: {bytes}\n"));
            }
        }
        // No volume: a file stream would fill the pod's ephemeral storage
        // and vanish with the pod, so none can be created.
        JetStreamStorage::Memory => b.push_str("  max_file_store: 0\n"),
    }
    b.push_str("}\n");
    b
}

/// The accounts: SYS (system account, probe user) and FLEET (the fleet's
/// traffic). Public so tests can run a real nats-server with the very same
/// accounts.
pub fn accounts_block(jetstream: bool) -> String {
    let fleet_js = if jetstream {
        "    jetstream: enabled\n"
    } else {
        ""
    };
    format!(
        "accounts {{\n  SYS {{\n    users: [{{user: {SYS_USER}, password: ${SYS_PASSWORD_ENV}}}]\n  }}\n  FLEET {{\n{fleet_js}    users: [{{user: {FLEET_USER}, password: ${FLEET_PASSWORD_ENV}}}]\n  }}\n}}\nsystem_account: SYS\n"
    )
}

/// Accounts and `authorization.auth_callout` for callout auth: AUTH holds
/// only the callout's user; SYS and FLEET keep their static users (the
/// probe, the operator), which are listed in `auth_users` so they bypass
/// the callout; every other client (the agents) is decided by the callout
/// and placed in FLEET. Public so tests run a real nats-server with it.
pub fn callout_block(jetstream: bool, callout: &CalloutAuth) -> String {
    let fleet_js = if jetstream {
        "    jetstream: enabled\n"
    } else {
        ""
    };
    let xkey = callout
        .xkey
        .as_ref()
        .map(|x| format!("    xkey: \"{x}\"\n"))
        .unwrap_or_default();
    format!(
        "accounts {{\n  {AUTH_ACCOUNT} {{\n    users: [{{user: {AUTH_USER}, password: ${AUTH_PASSWORD_ENV}}}]\n  }}\n  SYS {{\n    users: [{{user: {SYS_USER}, password: ${SYS_PASSWORD_ENV}}}]\n  }}\n  {FLEET_ACCOUNT} {{\n{fleet_js}    users: [{{user: {FLEET_USER}, password: ${FLEET_PASSWORD_ENV}}}]\n  }}\n}}\nsystem_account: SYS\nauthorization {{\n  timeout: {CALLOUT_AUTH_TIMEOUT_SECS}\n  auth_callout {{\n    issuer: \"{issuer}\"\n    account: {AUTH_ACCOUNT}\n    auth_users: [{AUTH_USER}, {SYS_USER}, {FLEET_USER}]\n{xkey}  }}\n}}\n",
        issuer = callout.issuer,
    )
}

/// Bytes of a Kubernetes quantity (`1Gi`, `500M`, `1e9`); `None` when it
/// does not parse (validation reports that before we get here).
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "m" => 1e-3,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    let bytes = (num * mult).ceil();
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_convert_to_bytes() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_bytes("x"), None);
    }
}
