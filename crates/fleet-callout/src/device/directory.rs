//! The callout's in-memory view of the devices and enrollment tokens of its
//! stack, fed by watches on FleetAgents and FleetEnrollmentTokens
//! ([`super::kube`]) and by the callout's own writes. Every login decision
//! reads only this view: a reconnect storm costs no API call.
//!
//! Updates report the agents that just LOST access (disabled, unapproved,
//! deleted, key replaced), so the caller can kick their live connections.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use fleet_proto::AgentId;

/// What the directory knows about one FleetAgent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentEntry {
    /// `spec.publicKey`; `None` for pod agents (they log in through OIDC
    /// or passwords, never through this directory).
    pub public_key: Option<String>,
    pub approved: bool,
    pub disabled: bool,
}

impl AgentEntry {
    /// May a device log in with `public_key` as this agent?
    fn admits(&self, public_key: &str) -> bool {
        self.public_key.as_deref() == Some(public_key) && self.approved && !self.disabled
    }
}

/// What the directory knows about one FleetEnrollmentToken.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenEntry {
    pub name: String,
    /// `spec.secretHash` (`sha256:<hex>`).
    pub secret_hash: String,
    /// `spec.expiresAt`, seconds since the epoch.
    pub expires_at: i64,
    pub max_uses: i32,
    /// `status.uses`.
    pub uses: i32,
    pub auto_approve: bool,
    pub labels: BTreeMap<String, String>,
    pub disabled: bool,
    /// The object's `metadata.resourceVersion`: the use counter is written
    /// with it, so two replicas cannot spend the same use.
    pub resource_version: Option<String>,
}

/// Why a device key login is refused (the directory's part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    Admitted(AgentId),
    Unknown,
    Pending(AgentId),
    Disabled(AgentId),
}

#[derive(Default)]
struct Inner {
    agents: HashMap<AgentId, AgentEntry>,
    by_key: HashMap<String, AgentId>,
    tokens: HashMap<String, TokenEntry>,
}

impl Inner {
    fn insert(&mut self, id: AgentId, entry: AgentEntry) -> Option<AgentEntry> {
        let old = self.agents.insert(id.clone(), entry.clone());
        if let Some(key) = old.as_ref().and_then(|o| o.public_key.as_ref())
            && self.by_key.get(key) == Some(&id)
        {
            self.by_key.remove(key);
        }
        if let Some(key) = entry.public_key {
            self.by_key.insert(key, id);
        }
        old
    }
}

/// Shared behind an `Arc`; every method takes a short lock, never across
/// an await.
#[derive(Default)]
pub struct Directory {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (agents, tokens) = self
            .inner
            .read()
            .map(|i| (i.agents.len(), i.tokens.len()))
            .unwrap_or_default();
        f.debug_struct("Directory")
            .field("agents", &agents)
            .field("tokens", &tokens)
            .finish()
    }
}

/// `true` when an agent that could log in with its key before cannot now.
fn lost_access(old: Option<&AgentEntry>, new: Option<&AgentEntry>) -> bool {
    match (old, new) {
        (Some(o), _) if o.public_key.is_none() => false,
        (None, _) => false,
        (Some(o), None) => o.approved && !o.disabled,
        (Some(o), Some(n)) => {
            let was = o.approved && !o.disabled;
            let key = o.public_key.as_deref().unwrap_or_default();
            was && !n.admits(key)
        }
    }
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A writer never panics while holding the lock (no user code runs
        // under it), so poisoning cannot happen; recover the data anyway.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a FleetAgent as seen; returns true when it just lost access.
    pub fn upsert_agent(&self, id: AgentId, entry: AgentEntry) -> bool {
        let mut inner = self.write();
        let new = entry.clone();
        let old = inner.insert(id, entry);
        lost_access(old.as_ref(), Some(&new))
    }

    /// Forgets a deleted FleetAgent; returns true when it had access.
    pub fn remove_agent(&self, id: &AgentId) -> bool {
        let mut inner = self.write();
        let old = inner.agents.remove(id);
        if let Some(key) = old.as_ref().and_then(|o| o.public_key.as_ref())
            && inner.by_key.get(key) == Some(id)
        {
            inner.by_key.remove(key);
        }
        lost_access(old.as_ref(), None)
    }

    /// Replaces every agent (a watch (re)listed): returns the agents that
    /// lost access, including those that vanished while the watch was down.
    pub fn replace_agents(&self, agents: Vec<(AgentId, AgentEntry)>) -> Vec<AgentId> {
        let mut inner = self.write();
        let old = std::mem::take(&mut inner.agents);
        inner.by_key.clear();
        for (id, entry) in agents {
            inner.insert(id, entry);
        }
        let mut lost: Vec<AgentId> = old
            .iter()
            .filter(|(id, o)| lost_access(Some(o), inner.agents.get(*id)))
            .map(|(id, _)| id.clone())
            .collect();
        lost.sort();
        lost
    }

    pub fn upsert_token(&self, entry: TokenEntry) {
        self.write().tokens.insert(entry.name.clone(), entry);
    }

    pub fn remove_token(&self, name: &str) {
        self.write().tokens.remove(name);
    }

    pub fn replace_tokens(&self, tokens: Vec<TokenEntry>) {
        self.write().tokens = tokens.into_iter().map(|t| (t.name.clone(), t)).collect();
    }

    pub fn token(&self, name: &str) -> Option<TokenEntry> {
        self.read().tokens.get(name).cloned()
    }

    pub fn agent(&self, id: &AgentId) -> Option<AgentEntry> {
        self.read().agents.get(id).cloned()
    }

    /// The agent whose `spec.publicKey` is `public_key`, if any.
    pub fn owner_of(&self, public_key: &str) -> Option<AgentId> {
        self.read().by_key.get(public_key).cloned()
    }

    /// The login decision for a device key.
    pub fn lookup_key(&self, public_key: &str) -> KeyLookup {
        let inner = self.read();
        let Some(id) = inner.by_key.get(public_key) else {
            return KeyLookup::Unknown;
        };
        match inner.agents.get(id) {
            None => KeyLookup::Unknown,
            Some(e) if e.disabled => KeyLookup::Disabled(id.clone()),
            Some(e) if !e.approved => KeyLookup::Pending(id.clone()),
            Some(_) => KeyLookup::Admitted(id.clone()),
        }
    }

    pub fn agent_count(&self) -> usize {
        self.read().agents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AgentId {
        AgentId::new(s).expect("id")
    }

    fn device(key: &str, approved: bool, disabled: bool) -> AgentEntry {
        AgentEntry {
            public_key: Some(key.into()),
            approved,
            disabled,
        }
    }

    #[test]
    fn a_key_logs_in_only_while_approved_and_enabled() {
        let d = Directory::new();
        assert_eq!(d.lookup_key("UK1"), KeyLookup::Unknown);
        assert!(!d.upsert_agent(id("a"), device("UK1", false, false)));
        assert_eq!(d.lookup_key("UK1"), KeyLookup::Pending(id("a")));
        assert!(!d.upsert_agent(id("a"), device("UK1", true, false)));
        assert_eq!(d.lookup_key("UK1"), KeyLookup::Admitted(id("a")));
        // Disabling is a loss of access (kick); re-enabling is not.
        assert!(d.upsert_agent(id("a"), device("UK1", true, true)));
        assert_eq!(d.lookup_key("UK1"), KeyLookup::Disabled(id("a")));
        assert!(!d.upsert_agent(id("a"), device("UK1", true, false)));
        // A rotated key: the old one is unknown at once.
        assert!(d.upsert_agent(id("a"), device("UK2", true, false)));
        assert_eq!(d.lookup_key("UK1"), KeyLookup::Unknown);
        assert_eq!(d.lookup_key("UK2"), KeyLookup::Admitted(id("a")));
        assert!(d.remove_agent(&id("a")));
        assert_eq!(d.lookup_key("UK2"), KeyLookup::Unknown);
        // Pod agents never had key access, so losing them kicks nothing.
        assert!(!d.upsert_agent(id("pod"), AgentEntry::default()));
        assert!(!d.remove_agent(&id("pod")));
    }

    #[test]
    fn a_relist_reports_agents_that_vanished_or_were_disabled_meanwhile() {
        let d = Directory::new();
        d.upsert_agent(id("a"), device("UKA", true, false));
        d.upsert_agent(id("b"), device("UKB", true, false));
        d.upsert_agent(id("c"), device("UKC", true, false));
        let lost = d.replace_agents(vec![
            (id("b"), device("UKB", true, true)),
            (id("c"), device("UKC", true, false)),
        ]);
        assert_eq!(lost, vec![id("a"), id("b")]);
        assert_eq!(d.lookup_key("UKA"), KeyLookup::Unknown);
        assert_eq!(d.lookup_key("UKC"), KeyLookup::Admitted(id("c")));
    }
}
