//! Issuer configuration, from code (tests) or from the environment (binary).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::IssuerError;
use crate::keys::SigningAlg;

/// A client allowed to use the token endpoint (client_credentials) and
/// introspection. `Debug` hides the secret.
#[derive(Clone, Deserialize)]
pub struct Client {
    pub id: String,
    pub secret: String,
    /// `sub` of the tokens issued to this client; defaults to the client id.
    #[serde(default)]
    pub subject: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .field("subject", &self.subject)
            .finish()
    }
}

impl Client {
    pub fn new(id: &str, secret: &str) -> Self {
        Client {
            id: id.to_string(),
            secret: secret.to_string(),
            subject: None,
        }
    }

    pub fn subject(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.id)
    }
}

#[derive(Clone)]
pub struct IssuerConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The issuer URL (`iss`, discovery); defaults to `http://<bound address>`.
    /// Set it when the issuer is reached through a Service name.
    pub public_url: Option<String>,
    pub clients: Vec<Client>,
    /// `aud` of issued access tokens.
    pub audience: String,
    pub token_lifetime: Duration,
    pub alg: SigningAlg,
    /// Issue opaque (random) access tokens instead of JWTs; they can only be
    /// validated through introspection.
    pub opaque_tokens: bool,
    /// Bearer token required by `/admin/*`; `None` leaves admin open (tests).
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("clients", &self.clients)
            .field("audience", &self.audience)
            .field("token_lifetime", &self.token_lifetime)
            .field("alg", &self.alg)
            .field("opaque_tokens", &self.opaque_tokens)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            clients: Vec::new(),
            audience: "fleet-nats".to_string(),
            token_lifetime: Duration::from_secs(300),
            alg: SigningAlg::EdDsa,
            opaque_tokens: false,
            admin_token: None,
        }
    }
}

impl IssuerConfig {
    /// Reads the configuration of the `fleet-test-issuer` binary:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `FLEET_TEST_ISSUER_LISTEN` | listen address | `0.0.0.0:8080` |
    /// | `FLEET_TEST_ISSUER_PUBLIC_URL` | issuer URL (`iss`) | `http://<listen>` |
    /// | `FLEET_TEST_ISSUER_CLIENTS` | `id:secret[:subject]` entries, comma separated | none |
    /// | `FLEET_TEST_ISSUER_CLIENTS_FILE` | JSON file: `[{"id","secret","subject"?}]` | none |
    /// | `FLEET_TEST_ISSUER_AUDIENCE` | `aud` of access tokens | `fleet-nats` |
    /// | `FLEET_TEST_ISSUER_TOKEN_LIFETIME_SECS` | access token lifetime | `300` |
    /// | `FLEET_TEST_ISSUER_ALG` | `EdDSA` or `RS256` | `EdDSA` |
    /// | `FLEET_TEST_ISSUER_OPAQUE` | `true` for opaque tokens | `false` |
    /// | `FLEET_TEST_ISSUER_ADMIN_TOKEN` | bearer token for `/admin/rotate` | none (open) |
    pub fn from_env() -> Result<Self, IssuerError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut cfg = IssuerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            ..IssuerConfig::default()
        };
        if let Some(v) = var("FLEET_TEST_ISSUER_LISTEN") {
            cfg.listen = v
                .parse()
                .map_err(|e| IssuerError::Config(format!("FLEET_TEST_ISSUER_LISTEN={v:?}: {e}")))?;
        }
        cfg.public_url = var("FLEET_TEST_ISSUER_PUBLIC_URL");
        if let Some(v) = var("FLEET_TEST_ISSUER_CLIENTS") {
            cfg.clients.extend(parse_clients(&v)?);
        }
        if let Some(path) = var("FLEET_TEST_ISSUER_CLIENTS_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| IssuerError::Config(format!("reading clients file {path}: {e}")))?;
            let clients: Vec<Client> = serde_json::from_str(&text)
                .map_err(|e| IssuerError::Config(format!("clients file {path}: {e}")))?;
            cfg.clients.extend(clients);
        }
        if let Some(v) = var("FLEET_TEST_ISSUER_AUDIENCE") {
            cfg.audience = v;
        }
        if let Some(v) = var("FLEET_TEST_ISSUER_TOKEN_LIFETIME_SECS") {
            let secs: u64 = v.parse().map_err(|e| {
                IssuerError::Config(format!("FLEET_TEST_ISSUER_TOKEN_LIFETIME_SECS={v:?}: {e}"))
            })?;
            cfg.token_lifetime = Duration::from_secs(secs);
        }
        if let Some(v) = var("FLEET_TEST_ISSUER_ALG") {
            cfg.alg = v.parse()?;
        }
        if let Some(v) = var("FLEET_TEST_ISSUER_OPAQUE") {
            cfg.opaque_tokens = matches!(v.as_str(), "1" | "true" | "yes");
        }
        cfg.admin_token = var("FLEET_TEST_ISSUER_ADMIN_TOKEN");
        Ok(cfg)
    }
}

/// Parses `id:secret[:subject],id2:secret2`.
fn parse_clients(text: &str) -> Result<Vec<Client>, IssuerError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let mut parts = entry.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(secret), subject) if !id.is_empty() && !secret.is_empty() => {
                    Ok(Client {
                        id: id.to_string(),
                        secret: secret.to_string(),
                        subject: subject.map(str::to_string),
                    })
                }
                // Never echo the entry: it holds a secret.
                _ => Err(IssuerError::Config(
                    "FLEET_TEST_ISSUER_CLIENTS entries must look like id:secret[:subject]".into(),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_list_and_hides_secrets() {
        let clients = parse_clients("a:s1, b:s2:agent-b").expect("parses");
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0].subject(), "a");
        assert_eq!(clients[1].subject(), "agent-b");
        assert!(!format!("{clients:?}").contains("s1"));
        let err = parse_clients("nosecret").expect_err("refused");
        assert!(!err.to_string().contains("nosecret"));
    }
}
