//! From a validated identity to an agent id, and from an agent id to the
//! NATS permissions of its connection.
//!
//! # What an agent needs, and nothing more
//!
//! The agent protocol (see the fleet-agent crate) uses, for agent `<id>`:
//! - **commands in**: the operator sends requests to `fleet.agent.<id>.cmd.<command>`;
//!   the agent subscribes to them -> *subscribe* `fleet.agent.<id>.>`;
//! - **replies out**: the agent answers on the request's reply subject
//!   (`_INBOX.<random>` of the requester). It gets no general publish right
//!   on `_INBOX.>` (that would let it inject into anyone's replies); instead
//!   the `resp` permission lets it publish exactly one reply per request it
//!   received, within [`REPLY_WINDOW`];
//! - **heartbeats out**: it publishes `fleet.agent.<id>.heartbeat` ->
//!   *publish* `fleet.agent.<id>.>`, except `fleet.agent.<id>.cmd.>`: an
//!   agent has no business sending commands, even to itself.
//!
//! An agent cannot make requests itself (no subscribe on `_INBOX.>`); if it
//! ever must, give it a private inbox prefix such as `_INBOX.agent.<id>` rather
//! than `_INBOX.>`, which would let it read every requester's replies.

use crate::claims::{
    Claims, NATS_JWT_VERSION, Permission, ResponsePermission, USER_TYPE, UserNats,
};

/// Longest agent id accepted (Kubernetes pod names are at most 63).
pub const MAX_AGENT_ID_LEN: usize = 64;

/// How long after receiving a request an agent may reply to it.
pub const REPLY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("token has no string claim {claim:?} to take the agent id from")]
    MissingClaim { claim: String },
    #[error("agent id from claim {claim:?} is empty")]
    Empty { claim: String },
    #[error("agent id from claim {claim:?} is {len} characters, above {MAX_AGENT_ID_LEN}")]
    TooLong { claim: String, len: usize },
    /// The id is untrusted input; only its first bad character is reported.
    #[error(
        "agent id from claim {claim:?} contains {bad:?}; only ASCII letters, digits, '-' and '_' are allowed in a NATS subject token"
    )]
    BadCharacter { claim: String, bad: char },
}

/// An agent id that is safe to splice into a NATS subject as one token:
/// non-empty, at most [`MAX_AGENT_ID_LEN`] characters of `[A-Za-z0-9_-]`.
/// This rules out `.` (token separator), `*` and `>` (wildcards), whitespace
/// and control characters, and `$`-prefixed system-looking names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentId(String);

impl AgentId {
    /// Validates `value`; `claim` only names its source in errors.
    pub fn parse(value: &str, claim: &str) -> Result<Self, IdentityError> {
        if value.is_empty() {
            return Err(IdentityError::Empty {
                claim: claim.to_string(),
            });
        }
        let len = value.chars().count();
        if len > MAX_AGENT_ID_LEN {
            return Err(IdentityError::TooLong {
                claim: claim.to_string(),
                len,
            });
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(IdentityError::BadCharacter {
                claim: claim.to_string(),
                bad,
            });
        }
        Ok(AgentId(value.to_string()))
    }

    /// Takes the id from the string claim `claim` of a validated token.
    pub fn from_claims(
        claims: &serde_json::Map<String, serde_json::Value>,
        claim: &str,
    ) -> Result<Self, IdentityError> {
        match claims.get(claim).and_then(serde_json::Value::as_str) {
            Some(v) => AgentId::parse(v, claim),
            None => Err(IdentityError::MissingClaim {
                claim: claim.to_string(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `fleet.agent.<id>.>`: every subject of this agent.
    pub fn subjects(&self) -> String {
        format!("fleet.agent.{}.>", self.0)
    }
}

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The user JWT claims for `agent`'s connection: subject `user_nkey` (from
/// the request), `aud` = the account the connection is placed in, `name` =
/// the agent id (shows as `authorized_user` in `/connz`), `exp` as given.
pub fn agent_user_claims(
    agent: &AgentId,
    user_nkey: &str,
    target_account: &str,
    exp: i64,
) -> Claims<UserNats> {
    let own = agent.subjects();
    let mut claims = Claims::new(
        user_nkey,
        UserNats {
            publish: Permission {
                allow: vec![own.clone()],
                deny: vec![format!("fleet.agent.{agent}.cmd.>")],
            },
            subscribe: Permission {
                allow: vec![own],
                deny: vec![],
            },
            resp: Some(ResponsePermission {
                max: 1,
                ttl: i64::try_from(REPLY_WINDOW.as_nanos()).unwrap_or(i64::MAX),
            }),
            subs: -1,
            data: -1,
            payload: -1,
            kind: USER_TYPE.into(),
            version: NATS_JWT_VERSION,
        },
    );
    claims.name = agent.to_string();
    claims.aud = Some(crate::claims::Audience::One(target_account.to_string()));
    claims.exp = exp;
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_subject_safe_ids() {
        for ok in ["agent-1", "A_b-9", "278923748923748923", &"x".repeat(64)] {
            assert!(AgentId::parse(ok, "sub").is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_ids_that_would_escape_their_subject() {
        for (bad, ch) in [
            ("a.b", '.'),
            ("*", '*'),
            (">", '>'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\nb", '\n'),
            ("$SYS", '$'),
            ("agent@project", '@'),
            ("é", 'é'),
        ] {
            assert_eq!(
                AgentId::parse(bad, "sub"),
                Err(IdentityError::BadCharacter {
                    claim: "sub".into(),
                    bad: ch
                }),
                "{bad:?}"
            );
        }
        assert!(matches!(
            AgentId::parse("", "sub"),
            Err(IdentityError::Empty { .. })
        ));
        assert!(matches!(
            AgentId::parse(&"x".repeat(65), "sub"),
            Err(IdentityError::TooLong { len: 65, .. })
        ));
    }

    #[test]
    fn reads_the_configured_claim() {
        let claims: serde_json::Map<_, _> =
            serde_json::from_value(serde_json::json!({"sub": "s1", "agent": "a-1", "n": 5}))
                .expect("map");
        assert_eq!(
            AgentId::from_claims(&claims, "sub").expect("sub").as_str(),
            "s1"
        );
        assert_eq!(
            AgentId::from_claims(&claims, "agent")
                .expect("agent")
                .as_str(),
            "a-1"
        );
        assert!(matches!(
            AgentId::from_claims(&claims, "n"),
            Err(IdentityError::MissingClaim { .. })
        ));
    }

    #[test]
    fn permissions_are_limited_to_the_agent() {
        let id = AgentId::parse("a1", "sub").expect("id");
        let c = agent_user_claims(&id, "UKEY", "FLEET", 99);
        assert_eq!(c.nats.subscribe.allow, vec!["fleet.agent.a1.>"]);
        assert_eq!(c.nats.publish.allow, vec!["fleet.agent.a1.>"]);
        assert_eq!(c.nats.publish.deny, vec!["fleet.agent.a1.cmd.>"]);
        assert_eq!(c.nats.resp.as_ref().map(|r| r.max), Some(1));
        assert_eq!(c.sub, "UKEY");
        assert_eq!(c.name, "a1");
        assert_eq!(c.exp, 99);
        assert_eq!(c.aud, Some(crate::claims::Audience::One("FLEET".into())));
    }
}
