//! Where enrollments and key rotations are written. In a stack that is the
//! Kubernetes API ([`super::kube::KubeRegistrar`]); [`MemoryRegistrar`]
//! keeps the same rules in memory for loopback tests and benchmarks that
//! run without an API server.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use fleet_proto::AgentId;

use super::directory::{AgentEntry, Directory, TokenEntry};

/// One accepted enrollment, to be recorded.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub agent: AgentId,
    pub public_key: String,
    pub approved: bool,
    /// Stamped on the FleetAgent (the token's labels).
    pub labels: BTreeMap<String, String>,
    /// The token as the decision saw it; its `resource_version` guards the
    /// use counter.
    pub token: TokenEntry,
    /// Seconds since the epoch.
    pub now: i64,
}

/// Why a write did not happen. `Conflict` is a lost race (another replica
/// or person wrote first): the device is refused and may retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarError {
    #[error("FleetEnrollmentToken {0} changed while this enrollment was decided; retry")]
    TokenConflict(String),
    #[error("a FleetAgent for agent {0} already exists")]
    AgentExists(AgentId),
    #[error("FleetAgent for agent {0} changed while its key rotation was decided; retry")]
    AgentConflict(AgentId),
    #[error("writing to the Kubernetes API failed: {0}")]
    Api(String),
}

#[async_trait]
pub trait Registrar: Send + Sync + 'static {
    /// Counts one use of the token (guarded by its resource version), then
    /// creates the FleetAgent.
    async fn enroll(&self, enrollment: &Enrollment) -> Result<(), RegistrarError>;
    /// Replaces `agent`'s public key `old` by `new` (refused if the key on
    /// record is no longer `old`).
    async fn rotate_key(&self, agent: &AgentId, old: &str, new: &str)
    -> Result<(), RegistrarError>;
}

/// The API server's rules in memory: a use counter guarded by a version,
/// agents created at most once, a rotation guarded by the old key. It
/// writes straight into the [`Directory`], where the watch would deliver
/// the same change.
#[derive(Debug, Clone)]
pub struct MemoryRegistrar {
    directory: Arc<Directory>,
}

impl MemoryRegistrar {
    pub fn new(directory: Arc<Directory>) -> Self {
        MemoryRegistrar { directory }
    }
}

#[async_trait]
impl Registrar for MemoryRegistrar {
    async fn enroll(&self, e: &Enrollment) -> Result<(), RegistrarError> {
        let current = self
            .directory
            .token(&e.token.name)
            .ok_or_else(|| RegistrarError::TokenConflict(e.token.name.clone()))?;
        if current.resource_version != e.token.resource_version {
            return Err(RegistrarError::TokenConflict(e.token.name.clone()));
        }
        if self.directory.agent(&e.agent).is_some() {
            return Err(RegistrarError::AgentExists(e.agent.clone()));
        }
        let version = current
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        self.directory.upsert_token(TokenEntry {
            uses: current.uses.saturating_add(1),
            resource_version: Some((version + 1).to_string()),
            ..current
        });
        self.directory.upsert_agent(
            e.agent.clone(),
            AgentEntry {
                public_key: Some(e.public_key.clone()),
                approved: e.approved,
                disabled: false,
            },
        );
        Ok(())
    }

    async fn rotate_key(
        &self,
        agent: &AgentId,
        old: &str,
        new: &str,
    ) -> Result<(), RegistrarError> {
        let entry = self
            .directory
            .agent(agent)
            .filter(|a| a.public_key.as_deref() == Some(old))
            .ok_or_else(|| RegistrarError::AgentConflict(agent.clone()))?;
        self.directory.upsert_agent(
            agent.clone(),
            AgentEntry {
                public_key: Some(new.into()),
                ..entry
            },
        );
        Ok(())
    }
}
