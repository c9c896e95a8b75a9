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
//! and go to the Service. Generating a client secret replaces the previous
//! one, so it is only called for an agent whose secret is not stored yet.
//! Request bodies and response parsing are pure functions (unit-tested);
//! [`ZitadelApi`] is the thin HTTP part. Nothing here logs or returns the
//! PAT or a client secret in an error.

use std::time::Duration;

use serde_json::{Value, json};

use crate::secret::Sensitive;

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
    },
    #[error("Zitadel API {op}: unexpected answer: {what}")]
    Unexpected { op: &'static str, what: String },
}

impl ProvisionError {
    /// CamelCase reason for the identity condition.
    pub fn reason(&self) -> &'static str {
        match self {
            ProvisionError::Http { .. } => "ZitadelUnreachable",
            ProvisionError::Status { status: 401, .. }
            | ProvisionError::Status { status: 403, .. } => "ProvisionerRefused",
            _ => "ProvisioningFailed",
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

/// Zitadel's error message from an error body (`{"code":5,"message":...}`),
/// cut short; empty when the body is not JSON.
pub fn error_detail(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    message.chars().take(200).collect()
}

// ---------------------------------------------------------------- HTTP

/// The management API of one Zitadel, reached at `base` (the Service)
/// with `Host: <host>`.
pub struct ZitadelApi {
    http: reqwest::Client,
    base: String,
    host: String,
    pat: Sensitive,
}

impl ZitadelApi {
    pub fn new(
        base: &str,
        host: &str,
        pat: Sensitive,
        timeout: Duration,
    ) -> Result<Self, ProvisionError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
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
        })
    }

    async fn call(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ProvisionError> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::HOST, &self.host)
            .bearer_auth(self.pat.expose())
            .json(body)
            .send()
            .await
            .map_err(|source| ProvisionError::Http { op, source })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|source| ProvisionError::Http { op, source })?;
        if !status.is_success() {
            return Err(ProvisionError::Status {
                op,
                status: status.as_u16(),
                detail: error_detail(&text),
            });
        }
        serde_json::from_str(&text).map_err(|_| ProvisionError::Unexpected {
            op,
            what: "an answer that is not JSON".into(),
        })
    }

    /// The project named `name`, created if missing.
    pub async fn ensure_project(&self, name: &str) -> Result<String, ProvisionError> {
        let found = self
            .call(
                "search projects",
                reqwest::Method::POST,
                "/management/v1/projects/_search",
                &project_search_body(name),
            )
            .await?;
        if let Some(id) = project_id_in(&found, name) {
            return Ok(id);
        }
        let created = self
            .call(
                "create project",
                reqwest::Method::POST,
                "/management/v1/projects",
                &project_create_body(name),
            )
            .await?;
        created_id(&created, "id").ok_or(ProvisionError::Unexpected {
            op: "create project",
            what: "no project id".into(),
        })
    }

    /// The machine user named `user_name` with JWT access tokens, created
    /// if missing (an existing one is switched to JWT tokens).
    pub async fn ensure_machine_user(&self, user_name: &str) -> Result<String, ProvisionError> {
        let found = self
            .call(
                "search users",
                reqwest::Method::POST,
                "/management/v1/users/_search",
                &user_search_body(user_name),
            )
            .await?;
        if let Some(id) = user_id_in(&found, user_name) {
            self.call(
                "update machine user",
                reqwest::Method::PUT,
                &format!("/management/v1/users/{id}/machine"),
                &machine_update_body(user_name),
            )
            .await?;
            return Ok(id);
        }
        let created = self
            .call(
                "create machine user",
                reqwest::Method::POST,
                "/management/v1/users/machine",
                &machine_user_body(user_name),
            )
            .await?;
        created_id(&created, "userId").ok_or(ProvisionError::Unexpected {
            op: "create machine user",
            what: "no user id".into(),
        })
    }

    /// A new client secret for the user (replaces any previous one).
    pub async fn new_client_secret(
        &self,
        user_id: &str,
    ) -> Result<(String, Sensitive), ProvisionError> {
        let answer = self
            .call(
                "generate client secret",
                reqwest::Method::PUT,
                &format!("/management/v1/users/{user_id}/secret"),
                &json!({}),
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
            "No matching permissions found"
        );
        assert_eq!(error_detail("<html>"), "");
        assert_eq!(
            audience_scope("222"),
            "openid urn:zitadel:iam:org:project:id:222:aud"
        );
        let e = ProvisionError::Status {
            op: "create project",
            status: 403,
            detail: String::new(),
        };
        assert_eq!(e.reason(), "ProvisionerRefused");
    }
}
