//! Provisioning inside a managed Zitadel, through its management API (v1
//! REST over HTTP/1.1) with the provisioner's Personal Access Token that
//! `zitadel setup` created (first-instance machine user, `IAM_OWNER` and
//! `ORG_OWNER` of the first organization, so no `x-zitadel-orgid` header).
//!
//! What is provisioned (docs/adr/0034, 0037):
//! * one project per stack; its id is the `aud` agents request with the
//!   scope `urn:zitadel:iam:org:project:id:<id>:aud` and the callout checks;
//! * one machine user per agent, user name = agent id, access tokens as
//!   JWTs (the callout validates them through JWKS; their `client_id`
//!   claim is the user name), with a client secret;
//! * a probe machine user the identity smoke probe obtains tokens with.
//!
//! Why management v1 although Zitadel marks it deprecated: the v2 user API
//! of v4.2 cannot set `accessTokenType` (zitadel#10850, fixed after 4.2).
//!
//! Requests carry `Host: <ExternalDomain>` (Zitadel routes instances on it)
//! and go to the Service. Request bodies and response parsing are pure
//! functions (unit-tested); [`ZitadelApi`] is the thin HTTP part. Nothing
//! here logs or returns the PAT or a client secret in an error.
//!
//! Every operation is safe to repeat after an interruption at any point
//! (checked against an in-process fake of Zitadel in
//! `tests/zitadel_provision.rs`, behaviours cited from Zitadel's source in
//! `tests/zitadel_fake/mod.rs`):
//! * a create whose answer was lost, or that races a search still blind to
//!   a new object (Zitadel's list endpoints read projections that lag
//!   behind the event store), answers 409 `AlreadyExists`: we search again,
//!   with backoff, and adopt what exists;
//! * an existing machine user is read by id (`GET /users/{id}` triggers the
//!   user projection, so it is current) and updated only when its
//!   `accessTokenType` is not JWT; a 400 `Errors.User.NotChanged`
//!   (COMMAND-2n8vs) from a repeated update counts as success;
//! * generating a client secret replaces the previous one and shows the new
//!   one once, so it is only called for an identity whose secret is not
//!   stored yet, and a retry after a lost answer simply wins.
//!
//! Transport errors, timeouts, 429 and 5xx are retried with bounded
//! exponential backoff ([`Retry`]); each request has its own timeout
//! ([`PROVISION_REQUEST_TIMEOUT`]), independent of the probe timeout.

use std::time::Duration;

use serde_json::{Value, json};

use crate::secret::Sensitive;

/// Timeout of one provisioning request. Longer than a probe's: the first
/// calls land right after Zitadel turned ready, while it still fills its
/// projections (docs/adr/0037).
pub const PROVISION_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Zitadel's error id for an update that changes nothing
/// (`internal/command/user_machine.go`, `changeMachineCommand`).
pub const NOT_CHANGED_ID: &str = "COMMAND-2n8vs";
const NOT_CHANGED_KEY: &str = "Errors.User.NotChanged";

/// Bounded retries with exponential backoff: `attempts` tries in all,
/// waiting `first`, `2*first`, ... (at most `max`) in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Retry {
    /// Production policy: 5 tries, 0.5 s, 1 s, 2 s, 4 s apart (7.5 s of
    /// waiting at most per request).
    pub const PROVISIONING: Retry = Retry {
        attempts: 5,
        first: Duration::from_millis(500),
        max: Duration::from_secs(4),
    };

    /// The wait before try `n + 1` (after `n` failed tries, `n >= 1`).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// Scope that makes Zitadel put `project_id` into a token's `aud`.
pub fn audience_scope(project_id: &str) -> String {
    format!("openid urn:zitadel:iam:org:project:id:{project_id}:aud")
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("Zitadel API {op}: {source}")]
    Http {
        op: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// `detail` is Zitadel's error message, never a request or response
    /// carrying a secret.
    #[error("Zitadel API {op} answered {status}: {detail}")]
    Status {
        op: &'static str,
        status: u16,
        detail: String,
        /// Zitadel's error id (`COMMAND-2n8vs`), when the answer has one.
        error_id: Option<String>,
    },
    #[error("Zitadel API {op}: unexpected answer: {what}")]
    Unexpected { op: &'static str, what: String },
    /// A create answered 409 but the object stayed invisible to search for
    /// every retry (projection lag longer than the retries): the next
    /// reconcile searches again.
    #[error("Zitadel API {op}: {what} {name} already exists but is not found by search yet")]
    NotVisibleYet {
        op: &'static str,
        what: &'static str,
        name: String,
    },
}

impl ProvisionError {
    /// CamelCase reason for the identity condition.
    pub fn reason(&self) -> &'static str {
        match self {
            ProvisionError::Http { .. } => "ZitadelUnreachable",
            ProvisionError::Status { status: 401, .. }
            | ProvisionError::Status { status: 403, .. } => "ProvisionerRefused",
            ProvisionError::Status { .. } | ProvisionError::Unexpected { .. } => {
                "ProvisioningFailed"
            }
            ProvisionError::NotVisibleYet { .. } => "ProvisioningPending",
        }
    }

    /// Worth another try: transport errors (timeouts, refused connections)
    /// and answers that say the server, not the request, failed.
    pub fn is_transient(&self) -> bool {
        match self {
            ProvisionError::Http { .. } => true,
            ProvisionError::Status { status, .. } => *status == 429 || *status >= 500,
            ProvisionError::Unexpected { .. } | ProvisionError::NotVisibleYet { .. } => false,
        }
    }

    /// 409: gRPC `AlreadyExists` through the gateway (a unique constraint:
    /// `Errors.User.AlreadyExists`, `Errors.Project.AlreadyExists`).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ProvisionError::Status { status: 409, .. })
    }

    /// 400 `Errors.User.NotChanged` (COMMAND-2n8vs): the update asked for
    /// what the user already is. Matched on the error id in the details
    /// or the message (Zitadel may translate the message's text, never
    /// the id).
    pub fn is_not_changed(&self) -> bool {
        match self {
            ProvisionError::Status {
                status: 400,
                detail,
                error_id,
                ..
            } => {
                error_id.as_deref() == Some(NOT_CHANGED_ID)
                    || detail.contains(NOT_CHANGED_ID)
                    || detail.contains(NOT_CHANGED_KEY)
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------- pure parts

pub fn project_search_body(name: &str) -> Value {
    json!({"queries": [{"nameQuery": {"name": name, "method": "TEXT_QUERY_METHOD_EQUALS"}}]})
}

pub fn project_create_body(name: &str) -> Value {
    json!({"name": name})
}

pub fn user_search_body(user_name: &str) -> Value {
    json!({"queries": [{"userNameQuery": {"userName": user_name, "method": "TEXT_QUERY_METHOD_EQUALS"}}]})
}

pub fn machine_user_body(user_name: &str) -> Value {
    json!({
        "userName": user_name,
        "name": user_name,
        "description": "fleet agent identity, managed by fleet-reconciler",
        "accessTokenType": "ACCESS_TOKEN_TYPE_JWT",
    })
}

pub fn machine_update_body(user_name: &str) -> Value {
    json!({
        "name": user_name,
        "description": "fleet agent identity, managed by fleet-reconciler",
        "accessTokenType": "ACCESS_TOKEN_TYPE_JWT",
    })
}

/// The id of the project named exactly `name` in a search answer (the
/// search filter is re-checked: an older server may ignore it).
pub fn project_id_in(search: &Value, name: &str) -> Option<String> {
    first_id(search, |item| {
        item.get("name").and_then(Value::as_str) == Some(name)
    })
}

/// The id of the user named exactly `user_name` in a search answer.
pub fn user_id_in(search: &Value, user_name: &str) -> Option<String> {
    first_id(search, |item| {
        item.get("userName").and_then(Value::as_str) == Some(user_name)
            || item.get("username").and_then(Value::as_str) == Some(user_name)
    })
}

fn first_id(search: &Value, matches: impl Fn(&Value) -> bool) -> Option<String> {
    search
        .get("result")
        .and_then(Value::as_array)?
        .iter()
        .filter(|item| matches(item))
        .find_map(|item| item.get("id").and_then(Value::as_str).map(str::to_string))
}

/// `id` (project create) or `userId` (user create).
pub fn created_id(answer: &Value, field: &str) -> Option<String> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `(clientId, clientSecret)` of a generate-secret answer.
pub fn client_secret_in(answer: &Value) -> Option<(String, Sensitive)> {
    let id = answer.get("clientId")?.as_str()?.to_string();
    let secret = answer.get("clientSecret")?.as_str()?;
    (!id.is_empty() && !secret.is_empty()).then(|| (id, Sensitive::new(secret)))
}

/// Whether the user of a `GET /management/v1/users/{id}` answer
/// (`{"user": {..., "machine": {..., "accessTokenType": ...}}}`, message
/// `zitadel.user.v1.Machine` in `proto/zitadel/user.proto`) issues JWT
/// access tokens. An absent field is the enum's zero value, Bearer: proto3
/// JSON may omit defaults.
pub fn issues_jwt(user_answer: &Value) -> bool {
    user_answer
        .pointer("/user/machine/accessTokenType")
        .and_then(Value::as_str)
        == Some("ACCESS_TOKEN_TYPE_JWT")
}

/// Whether a `GET /management/v1/users/{id}` answer is a machine user.
pub fn is_machine(user_answer: &Value) -> bool {
    user_answer.pointer("/user/machine").is_some()
}

/// Zitadel's error message and error id from an error body
/// (`{"code":9,"message":"Errors.User.NotChanged (COMMAND-2n8vs)",
/// "details":[{"@type":"type.googleapis.com/zitadel.v1.ErrorDetail",
/// "id":"COMMAND-2n8vs","message":"Errors.User.NotChanged"}]}`, built by
/// `internal/api/grpc/gerrors/zitadel_errors.go`), the message cut short;
/// empty and `None` when the body is not JSON.
pub fn error_detail(body: &str) -> (String, Option<String>) {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").and_then(Value::as_str))
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let id = parsed.as_ref().and_then(|v| {
        v.get("details")?
            .as_array()?
            .iter()
            .find_map(|d| d.get("id").and_then(Value::as_str).map(str::to_string))
    });
    (message, id)
}

// ---------------------------------------------------------------- HTTP

/// The management API of one Zitadel, reached at `base` (the Service)
/// with `Host: <host>`.
pub struct ZitadelApi {
    http: reqwest::Client,
    base: String,
    host: String,
    pat: Sensitive,
    retry: Retry,
}

impl ZitadelApi {
    /// With the production timeout and retry policy.
    pub fn new(base: &str, host: &str, pat: Sensitive) -> Result<Self, ProvisionError> {
        Self::with_policy(
            base,
            host,
            pat,
            PROVISION_REQUEST_TIMEOUT,
            Retry::PROVISIONING,
        )
    }

    /// With an explicit request timeout and retry policy (tests use short
    /// backoffs).
    pub fn with_policy(
        base: &str,
        host: &str,
        pat: Sensitive,
        timeout: Duration,
        retry: Retry,
    ) -> Result<Self, ProvisionError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| ProvisionError::Http {
                op: "client setup",
                source,
            })?;
        Ok(ZitadelApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            host: host.to_string(),
            pat,
            retry,
        })
    }

    /// One request, retried while the failure is transient.
    async fn call(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProvisionError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.call_once(op, method.clone(), path, body).await {
                Err(e) if e.is_transient() && tries < self.retry.attempts => {
                    tokio::time::sleep(self.retry.backoff(tries)).await;
                }
                result => return result,
            }
        }
    }

    async fn call_once(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProvisionError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::HOST, &self.host)
            .bearer_auth(self.pat.expose());
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| ProvisionError::Http { op, source })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|source| ProvisionError::Http { op, source })?;
        if !status.is_success() {
            let (detail, error_id) = error_detail(&text);
            return Err(ProvisionError::Status {
                op,
                status: status.as_u16(),
                detail,
                error_id,
            });
        }
        serde_json::from_str(&text).map_err(|_| ProvisionError::Unexpected {
            op,
            what: "an answer that is not JSON".into(),
        })
    }

    async fn search_project(&self, name: &str) -> Result<Option<String>, ProvisionError> {
        let found = self
            .call(
                "search projects",
                reqwest::Method::POST,
                "/management/v1/projects/_search",
                Some(&project_search_body(name)),
            )
            .await?;
        Ok(project_id_in(&found, name))
    }

    async fn search_user(&self, user_name: &str) -> Result<Option<String>, ProvisionError> {
        let found = self
            .call(
                "search users",
                reqwest::Method::POST,
                "/management/v1/users/_search",
                Some(&user_search_body(user_name)),
            )
            .await?;
        Ok(user_id_in(&found, user_name))
    }

    /// After a 409: searches until the existing object shows up (the
    /// search reads a projection that may lag), bounded by the retry
    /// policy.
    async fn adopt_after_conflict<F, Fut>(
        &self,
        op: &'static str,
        what: &'static str,
        name: &str,
        search: F,
    ) -> Result<String, ProvisionError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<String>, ProvisionError>>,
    {
        for tries in 1..=self.retry.attempts {
            if let Some(id) = search().await? {
                return Ok(id);
            }
            if tries < self.retry.attempts {
                tokio::time::sleep(self.retry.backoff(tries)).await;
            }
        }
        Err(ProvisionError::NotVisibleYet {
            op,
            what,
            name: name.to_string(),
        })
    }

    /// The project named `name`: found by search, created if missing, or
    /// adopted when the create answers 409.
    pub async fn ensure_project(&self, name: &str) -> Result<String, ProvisionError> {
        if let Some(id) = self.search_project(name).await? {
            return Ok(id);
        }
        match self
            .call(
                "create project",
                reqwest::Method::POST,
                "/management/v1/projects",
                Some(&project_create_body(name)),
            )
            .await
        {
            Ok(created) => created_id(&created, "id").ok_or(ProvisionError::Unexpected {
                op: "create project",
                what: "no project id".into(),
            }),
            Err(e) if e.is_conflict() => {
                self.adopt_after_conflict("create project", "project", name, || {
                    self.search_project(name)
                })
                .await
            }
            Err(e) => Err(e),
        }
    }

    /// The machine user named `user_name` with JWT access tokens: created
    /// if missing (adopted when the create answers 409), an existing one
    /// switched to JWT only if it is not already.
    pub async fn ensure_machine_user(&self, user_name: &str) -> Result<String, ProvisionError> {
        if let Some(id) = self.search_user(user_name).await? {
            self.ensure_jwt(&id, user_name).await?;
            return Ok(id);
        }
        match self
            .call(
                "create machine user",
                reqwest::Method::POST,
                "/management/v1/users/machine",
                Some(&machine_user_body(user_name)),
            )
            .await
        {
            Ok(created) => created_id(&created, "userId").ok_or(ProvisionError::Unexpected {
                op: "create machine user",
                what: "no user id".into(),
            }),
            Err(e) if e.is_conflict() => {
                let id = self
                    .adopt_after_conflict("create machine user", "user", user_name, || {
                        self.search_user(user_name)
                    })
                    .await?;
                // Not necessarily ours: a user of that name made by hand.
                self.ensure_jwt(&id, user_name).await?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the user and updates it only when its tokens are not JWTs; a
    /// NotChanged answer (a concurrent or repeated update won) is success.
    async fn ensure_jwt(&self, id: &str, user_name: &str) -> Result<(), ProvisionError> {
        let user = self
            .call(
                "get user",
                reqwest::Method::GET,
                &format!("/management/v1/users/{id}"),
                None,
            )
            .await?;
        if !is_machine(&user) {
            return Err(ProvisionError::Unexpected {
                op: "get user",
                what: format!("user {user_name} exists but is not a machine user"),
            });
        }
        if issues_jwt(&user) {
            return Ok(());
        }
        match self
            .call(
                "update machine user",
                reqwest::Method::PUT,
                &format!("/management/v1/users/{id}/machine"),
                Some(&machine_update_body(user_name)),
            )
            .await
        {
            Err(e) if e.is_not_changed() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// A new client secret for the user (replaces any previous one; shown
    /// only in this answer).
    pub async fn new_client_secret(
        &self,
        user_id: &str,
    ) -> Result<(String, Sensitive), ProvisionError> {
        let answer = self
            .call(
                "generate client secret",
                reqwest::Method::PUT,
                &format!("/management/v1/users/{user_id}/secret"),
                Some(&json!({})),
            )
            .await?;
        client_secret_in(&answer).ok_or(ProvisionError::Unexpected {
            op: "generate client secret",
            what: "no clientId/clientSecret".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_ask_for_jwt_machine_users_and_exact_names() {
        let b = machine_user_body("demo-agent-0");
        assert_eq!(b["userName"], "demo-agent-0");
        assert_eq!(b["accessTokenType"], "ACCESS_TOKEN_TYPE_JWT");
        assert_eq!(
            machine_update_body("demo-agent-0")["accessTokenType"],
            "ACCESS_TOKEN_TYPE_JWT"
        );
        assert_eq!(
            user_search_body("demo-agent-0")["queries"][0]["userNameQuery"]["method"],
            "TEXT_QUERY_METHOD_EQUALS"
        );
        assert_eq!(
            project_search_body("demo-fleet")["queries"][0]["nameQuery"]["name"],
            "demo-fleet"
        );
    }

    #[test]
    fn search_answers_are_rechecked_by_name() {
        // Shape of ListProjects / ListUsers answers (management v1 docs).
        let projects = json!({"details": {"totalResult": "2"}, "result": [
            {"id": "111", "name": "demo-fleet-old"},
            {"id": "222", "name": "demo-fleet"}
        ]});
        assert_eq!(
            project_id_in(&projects, "demo-fleet").as_deref(),
            Some("222")
        );
        assert_eq!(project_id_in(&projects, "other"), None);
        assert_eq!(project_id_in(&json!({"details": {}}), "demo-fleet"), None);
        let users = json!({"result": [{"id": "9", "userName": "demo-agent-1", "machine": {}}]});
        assert_eq!(user_id_in(&users, "demo-agent-1").as_deref(), Some("9"));
        assert_eq!(user_id_in(&users, "demo-agent-10"), None);
    }

    #[test]
    fn secrets_and_ids_are_read_and_errors_never_echo_bodies_with_secrets() {
        let (id, secret) =
            client_secret_in(&json!({"clientId": "demo-agent-0", "clientSecret": "s3cr3t"}))
                .unwrap();
        assert_eq!(id, "demo-agent-0");
        assert_eq!(secret.expose(), "s3cr3t");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert!(client_secret_in(&json!({"clientId": "x"})).is_none());
        assert_eq!(
            created_id(&json!({"userId": "42"}), "userId").as_deref(),
            Some("42")
        );
        assert_eq!(created_id(&json!({"userId": ""}), "userId"), None);
        assert_eq!(
            error_detail(r#"{"code":7,"message":"No matching permissions found"}"#),
            ("No matching permissions found".to_string(), None)
        );
        assert_eq!(error_detail("<html>"), (String::new(), None));
        assert_eq!(
            audience_scope("222"),
            "openid urn:zitadel:iam:org:project:id:222:aud"
        );
        let e = ProvisionError::Status {
            op: "create project",
            status: 403,
            detail: String::new(),
            error_id: None,
        };
        assert_eq!(e.reason(), "ProvisionerRefused");
        assert!(!e.is_transient());
    }

    #[test]
    fn not_changed_is_recognised_by_id_or_key_and_only_on_400() {
        let body = r#"{"code":9,"message":"Errors.User.NotChanged (COMMAND-2n8vs)",
            "details":[{"@type":"type.googleapis.com/zitadel.v1.ErrorDetail",
            "id":"COMMAND-2n8vs","message":"Errors.User.NotChanged"}]}"#;
        let (detail, error_id) = error_detail(body);
        assert_eq!(error_id.as_deref(), Some(NOT_CHANGED_ID));
        let status = |status, detail: &str, error_id: Option<&str>| ProvisionError::Status {
            op: "update machine user",
            status,
            detail: detail.into(),
            error_id: error_id.map(str::to_string),
        };
        assert!(status(400, &detail, error_id.as_deref()).is_not_changed());
        // A translated message still carries the id in the details.
        assert!(status(400, "User not changed", Some(NOT_CHANGED_ID)).is_not_changed());
        assert!(!status(400, "Errors.User.Invalid (COMMAND-bs9Ds)", None).is_not_changed());
        assert!(!status(409, &detail, error_id.as_deref()).is_not_changed());
        assert!(status(409, "Errors.User.AlreadyExists (V3-DKcYh)", None).is_conflict());
    }

    #[test]
    fn transient_failures_are_5xx_and_429_only_and_backoff_is_bounded() {
        let status = |status| ProvisionError::Status {
            op: "x",
            status,
            detail: String::new(),
            error_id: None,
        };
        assert!(status(503).is_transient() && status(500).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient() && !status(409).is_transient());
        assert!(!status(404).is_transient());
        let r = Retry::PROVISIONING;
        let waits: Vec<_> = (1..r.attempts).map(|n| r.backoff(n)).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000].map(Duration::from_millis).to_vec()
        );
        assert_eq!(r.backoff(40), r.max);
    }

    #[test]
    fn token_type_is_read_from_the_v1_machine_message_and_absent_means_bearer() {
        let jwt = json!({"user": {"id": "9", "userName": "a", "machine":
            {"name": "a", "accessTokenType": "ACCESS_TOKEN_TYPE_JWT"}}});
        let bearer = json!({"user": {"id": "9", "machine":
            {"name": "a", "accessTokenType": "ACCESS_TOKEN_TYPE_BEARER"}}});
        let default = json!({"user": {"id": "9", "machine": {"name": "a"}}});
        let human = json!({"user": {"id": "9", "human": {}}});
        assert!(issues_jwt(&jwt));
        assert!(!issues_jwt(&bearer) && !issues_jwt(&default));
        assert!(is_machine(&default) && !is_machine(&human));
    }
}
