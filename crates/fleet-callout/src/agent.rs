//! From a validated identity to an agent id, and from an agent id to the
//! NATS permissions of its connection.
//!
//! # What an agent needs, and nothing more
//!
//! The agent protocol (`fleet_proto::subjects`) uses, for agent `<id>`:
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

use fleet_proto::subjects::{agent_wildcard, command_wildcard};
pub use fleet_proto::{AgentId, AgentIdError};

use crate::claims::{
    Claims, NATS_JWT_VERSION, Permission, ResponsePermission, USER_TYPE, UserNats,
};

/// How long after receiving a request an agent may reply to it.
pub const REPLY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Why no agent id could be taken from a valid token. Agent ids are the
/// shared [`fleet_proto::AgentId`]: `[A-Za-z0-9_-]{1,64}`, one subject token,
/// so the ids the callout grants are exactly the ids agents can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("token has no string claim {claim:?} to take the agent id from")]
    MissingClaim { claim: String },
    #[error("claim {claim:?} is not a valid agent id: {source}")]
    Invalid {
        claim: String,
        #[source]
        source: AgentIdError,
    },
}

/// Takes the agent id from the string claim `claim` of a validated token.
pub fn agent_id_from_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    claim: &str,
) -> Result<AgentId, IdentityError> {
    let value = claims
        .get(claim)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| IdentityError::MissingClaim {
            claim: claim.to_string(),
        })?;
    AgentId::new(value).map_err(|source| IdentityError::Invalid {
        claim: claim.to_string(),
        source,
    })
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
    let own = agent_wildcard(agent);
    let mut claims = Claims::new(
        user_nkey,
        UserNats {
            publish: Permission {
                allow: vec![own.clone()],
                deny: vec![command_wildcard(agent)],
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

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_value(v).expect("map")
    }

    #[test]
    fn takes_subject_safe_ids_from_the_configured_claim() {
        let claims = map(serde_json::json!({
            "sub": "278923748923748923", "agent": "agent-1", "n": 5, "bad": "a.b"
        }));
        assert_eq!(
            agent_id_from_claims(&claims, "sub").expect("sub").as_str(),
            "278923748923748923"
        );
        assert_eq!(
            agent_id_from_claims(&claims, "agent")
                .expect("agent")
                .as_str(),
            "agent-1"
        );
        assert!(matches!(
            agent_id_from_claims(&claims, "n"),
            Err(IdentityError::MissingClaim { .. })
        ));
        assert!(matches!(
            agent_id_from_claims(&claims, "missing"),
            Err(IdentityError::MissingClaim { .. })
        ));
    }

    #[test]
    fn rejects_ids_that_would_escape_their_subject() {
        for bad in [
            "a.b",
            "*",
            ">",
            "a b",
            "a\tb",
            "a\nb",
            "$SYS",
            "agent@project",
            "é",
            "",
        ] {
            let claims = map(serde_json::json!({ "sub": bad }));
            assert!(
                matches!(
                    agent_id_from_claims(&claims, "sub"),
                    Err(IdentityError::Invalid { .. })
                ),
                "{bad:?} accepted"
            );
        }
        let long = map(serde_json::json!({ "sub": "x".repeat(65) }));
        assert!(agent_id_from_claims(&long, "sub").is_err());
        let max = map(serde_json::json!({ "sub": "x".repeat(64) }));
        assert!(agent_id_from_claims(&max, "sub").is_ok());
    }

    #[test]
    fn permissions_are_limited_to_the_agent() {
        let id = AgentId::new("a1").expect("id");
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
