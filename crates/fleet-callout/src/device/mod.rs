//! Devices: agents outside Kubernetes that log in with their own NKey
//! (docs/adr/0080-device-identity-enrollment-revocation.md).
//!
//! A CONNECT reaches this module when it carries an `nkey` and no other
//! credential (a key login), or an `auth_token` that is a device request
//! (`fleet_proto::device`: enrollment or key rotation). Everything else
//! goes to the OIDC path of [`crate::service`]. The decision reads only the
//! in-memory [`Directory`]; enrollments and rotations are written through a
//! [`Registrar`]; revocations kick live connections through the [`Kicker`].
//!
//! Modules: [`signature`] (nonce proof), [`directory`], [`registrar`],
//! [`kick`], [`kube`] (the watches and the API writes of a real stack).

pub mod directory;
pub mod kick;
pub mod kube;
pub mod registrar;
pub mod signature;

use std::sync::Arc;

use fleet_proto::AgentId;
use fleet_proto::device::{
    DeviceRequest, DeviceTokenError, EnrollmentRequest, RotationRequest, decode_device_request,
    is_device_request,
};

use crate::claims::ConnectOpts;
pub use directory::{AgentEntry, Directory, KeyLookup, TokenEntry};
pub use kick::{KickError, Kicker};
pub use registrar::{Enrollment, MemoryRegistrar, Registrar, RegistrarError};
pub use signature::{SignatureError, verify_nonce};

/// What kind of device login a CONNECT is.
#[derive(Debug)]
pub enum Login {
    /// `nkey` + `sig`, nothing else: an enrolled device connecting.
    Key,
    /// An enrollment or rotation request (or a malformed one).
    Request(Result<DeviceRequest, DeviceTokenError>),
}

/// Routes a CONNECT: `Some` for the device paths, `None` for the others.
pub fn classify(opts: &ConnectOpts) -> Option<Login> {
    let token = opts.auth_token.expose();
    if is_device_request(token) {
        return Some(Login::Request(decode_device_request(token)));
    }
    let nkey_only = token.is_empty()
        && !opts.nkey.is_empty()
        && opts.user.is_empty()
        && opts.pass.is_empty()
        && opts.jwt.is_empty();
    nkey_only.then_some(Login::Key)
}

/// What a device login was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// An enrolled, approved device: the agent's permissions.
    Agent(AgentId),
    /// Enrollment recorded; the connection gets no permissions and a short
    /// life (its success is the device's receipt).
    Enrolled { agent: AgentId, approved: bool },
    /// Key replaced; same receipt-only connection.
    Rotated(AgentId),
}

impl Grant {
    pub fn agent(&self) -> &AgentId {
        match self {
            Grant::Agent(a) | Grant::Enrolled { agent: a, .. } | Grant::Rotated(a) => a,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Grant::Agent(_) => "device",
            Grant::Enrolled { .. } => "enrollment",
            Grant::Rotated(_) => "key_rotation",
        }
    }
}

/// Why a device was refused. The message goes to the callout's log and the
/// server's; it names tokens and agents, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceDenial {
    #[error("device signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("no FleetAgent holds public key {0}")]
    UnknownKey(String),
    #[error("agent {0} is enrolled but not approved (spec.approved is false)")]
    PendingApproval(AgentId),
    #[error("agent {0} is disabled (spec.disabled is true)")]
    Disabled(AgentId),
    #[error("malformed device request: {0}")]
    BadRequest(#[from] DeviceTokenError),
    #[error("enrollment token {0} does not exist")]
    UnknownToken(String),
    #[error("enrollment token {0}: the secret does not match spec.secretHash")]
    TokenSecret(String),
    #[error("enrollment token {0} is disabled")]
    TokenDisabled(String),
    #[error("enrollment token {0} expired")]
    TokenExpired(String),
    #[error("enrollment token {name} is used up ({uses} of {max} uses)")]
    TokenUsedUp { name: String, uses: i32, max: i32 },
    #[error("public key {key} is already registered to agent {agent}")]
    KeyRegistered { key: String, agent: AgentId },
    #[error("agent id {0} is already taken by another FleetAgent")]
    AgentIdTaken(AgentId),
    #[error("key rotation for {0}: the signing key is not the agent's current key")]
    RotationNotCurrent(String),
    #[error("recording the request failed: {0}")]
    Registrar(#[from] RegistrarError),
}

impl DeviceDenial {
    /// The metrics label and the `reason` field of the refusal log line.
    pub fn reason(&self) -> &'static str {
        match self {
            DeviceDenial::Signature(SignatureError::NoNonce) => "no_nonce",
            DeviceDenial::Signature(_) => "bad_signature",
            DeviceDenial::UnknownKey(_) => "unknown_key",
            DeviceDenial::PendingApproval(_) => "pending_approval",
            DeviceDenial::Disabled(_) => "agent_disabled",
            DeviceDenial::BadRequest(_) => "bad_device_request",
            DeviceDenial::UnknownToken(_) => "unknown_token",
            DeviceDenial::TokenSecret(_) => "token_secret_mismatch",
            DeviceDenial::TokenDisabled(_) => "token_disabled",
            DeviceDenial::TokenExpired(_) => "token_expired",
            DeviceDenial::TokenUsedUp { .. } => "token_used_up",
            DeviceDenial::KeyRegistered { .. } => "key_registered",
            DeviceDenial::AgentIdTaken(_) => "agent_id_taken",
            DeviceDenial::RotationNotCurrent(_) => "rotation_key_not_current",
            DeviceDenial::Registrar(RegistrarError::AgentExists(_)) => "agent_id_taken",
            DeviceDenial::Registrar(
                RegistrarError::TokenConflict(_) | RegistrarError::AgentConflict(_),
            ) => "write_conflict",
            DeviceDenial::Registrar(RegistrarError::Api(_)) => "registry_write_failed",
        }
    }
}

/// `sha256:<hex>` of a token secret: the form of `spec.secretHash`.
pub use fleet_crds::enrollment_token::secret_hash;

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The device side of the callout. Share it behind an `Arc`.
pub struct Devices {
    directory: Arc<Directory>,
    registrar: Arc<dyn Registrar>,
    kicker: Option<Kicker>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("directory", &self.directory)
            .field("kicker", &self.kicker.is_some())
            .finish_non_exhaustive()
    }
}

impl Devices {
    /// `kicker`: `None` leaves revoked connections alone until their JWT
    /// expires (only for tests of the decision itself).
    pub fn new(
        directory: Arc<Directory>,
        registrar: Arc<dyn Registrar>,
        kicker: Option<Kicker>,
    ) -> Self {
        Devices {
            directory,
            registrar,
            kicker,
        }
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Decides a device login. `nonce` is `client_info.nonce` of the
    /// request; `now` is seconds since the epoch.
    pub async fn decide(
        &self,
        login: Login,
        opts: &ConnectOpts,
        nonce: &str,
        now: i64,
    ) -> Result<Grant, DeviceDenial> {
        // Decode first (cheap, says what the device meant), then the proof.
        let request = match login {
            Login::Key => None,
            Login::Request(r) => Some(r?),
        };
        verify_nonce(&opts.nkey, &opts.sig, nonce)?;
        match request {
            None => self.key_login(&opts.nkey),
            Some(DeviceRequest::Enroll(e)) => self.enroll(e, &opts.nkey, now).await,
            Some(DeviceRequest::Rotate(r)) => self.rotate(r, &opts.nkey, nonce).await,
        }
    }

    fn key_login(&self, key: &str) -> Result<Grant, DeviceDenial> {
        match self.directory.lookup_key(key) {
            KeyLookup::Admitted(agent) => Ok(Grant::Agent(agent)),
            KeyLookup::Unknown => Err(DeviceDenial::UnknownKey(key.into())),
            KeyLookup::Pending(agent) => Err(DeviceDenial::PendingApproval(agent)),
            KeyLookup::Disabled(agent) => Err(DeviceDenial::Disabled(agent)),
        }
    }

    async fn enroll(
        &self,
        request: EnrollmentRequest,
        key: &str,
        now: i64,
    ) -> Result<Grant, DeviceDenial> {
        let name = request.token.name.clone();
        let token = self
            .directory
            .token(&name)
            .ok_or_else(|| DeviceDenial::UnknownToken(name.clone()))?;
        let presented = secret_hash(request.token.secret());
        if !constant_time_eq(presented.as_bytes(), token.secret_hash.as_bytes()) {
            return Err(DeviceDenial::TokenSecret(name));
        }
        if token.disabled {
            return Err(DeviceDenial::TokenDisabled(name));
        }
        if token.expires_at <= now {
            return Err(DeviceDenial::TokenExpired(name));
        }
        if token.uses >= token.max_uses {
            return Err(DeviceDenial::TokenUsedUp {
                name,
                uses: token.uses,
                max: token.max_uses,
            });
        }
        if let Some(agent) = self.directory.owner_of(key) {
            return Err(DeviceDenial::KeyRegistered {
                key: key.into(),
                agent,
            });
        }
        if self.directory.agent(&request.agent_id).is_some() {
            return Err(DeviceDenial::AgentIdTaken(request.agent_id));
        }
        let enrollment = Enrollment {
            agent: request.agent_id.clone(),
            public_key: key.into(),
            approved: token.auto_approve,
            labels: token.labels.clone(),
            token,
            now,
        };
        self.registrar.enroll(&enrollment).await?;
        // The watch will deliver the same; recording it now lets the device
        // log in with its key the moment this answer reaches it.
        self.directory.upsert_agent(
            enrollment.agent.clone(),
            AgentEntry {
                public_key: Some(enrollment.public_key),
                approved: enrollment.approved,
                disabled: false,
            },
        );
        Ok(Grant::Enrolled {
            agent: enrollment.agent,
            approved: enrollment.approved,
        })
    }

    async fn rotate(
        &self,
        request: RotationRequest,
        old_key: &str,
        nonce: &str,
    ) -> Result<Grant, DeviceDenial> {
        // The new key proves itself over the same nonce.
        verify_nonce(&request.public_key, &request.sig, nonce)?;
        let agent = match self.directory.lookup_key(old_key) {
            KeyLookup::Admitted(agent) => agent,
            KeyLookup::Unknown => return Err(DeviceDenial::RotationNotCurrent(old_key.into())),
            KeyLookup::Pending(agent) => return Err(DeviceDenial::PendingApproval(agent)),
            KeyLookup::Disabled(agent) => return Err(DeviceDenial::Disabled(agent)),
        };
        if let Some(owner) = self.directory.owner_of(&request.public_key) {
            return Err(DeviceDenial::KeyRegistered {
                key: request.public_key,
                agent: owner,
            });
        }
        self.registrar
            .rotate_key(&agent, old_key, &request.public_key)
            .await?;
        if let Some(entry) = self.directory.agent(&agent) {
            self.directory.upsert_agent(
                agent.clone(),
                AgentEntry {
                    public_key: Some(request.public_key),
                    ..entry
                },
            );
        }
        // Connections still signed with the old key are dropped: a key is
        // often rotated because it may have leaked. The device comes back
        // with the new one.
        self.kick(agent.clone());
        Ok(Grant::Rotated(agent))
    }

    /// Records a FleetAgent as seen (watch event); kicks its connections in
    /// the background when it just lost access.
    pub fn apply_agent(
        &self,
        id: AgentId,
        entry: AgentEntry,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let lost = self.directory.upsert_agent(id.clone(), entry);
        lost.then(|| self.kick(id))
    }

    /// Forgets a deleted FleetAgent; kicks it when it had access.
    pub fn forget_agent(&self, id: &AgentId) -> Option<tokio::task::JoinHandle<()>> {
        let lost = self.directory.remove_agent(id);
        lost.then(|| self.kick(id.clone()))
    }

    /// Replaces the whole agent view (watch relist); kicks those that lost
    /// access meanwhile.
    pub fn replace_agents(&self, agents: Vec<(AgentId, AgentEntry)>) {
        for id in self.directory.replace_agents(agents) {
            self.kick(id);
        }
    }

    /// Kicks `id`'s live connections in a background task (logged).
    pub fn kick(&self, id: AgentId) -> tokio::task::JoinHandle<()> {
        let kicker = self.kicker.clone();
        tokio::spawn(async move {
            let Some(kicker) = kicker else {
                tracing::warn!(agent = %id, "agent revoked; no system connection to kick it (it stays connected until its user JWT expires)");
                return;
            };
            match kicker.kick_user(id.as_str()).await {
                Ok(n) => {
                    tracing::info!(agent = %id, connections = n, "agent revoked; live connections kicked")
                }
                Err(e) => {
                    tracing::error!(agent = %id, error = %e, "agent revoked; kicking its connections failed")
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_has_the_crd_form() {
        let h = secret_hash("abc");
        assert_eq!(
            h,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(
            h.as_bytes(),
            secret_hash("abc").as_bytes()
        ));
        assert!(!constant_time_eq(
            h.as_bytes(),
            secret_hash("abd").as_bytes()
        ));
    }
}
