//! An in-process fake of exactly the Zitadel endpoints the managed-identity
//! provisioning and probe call (management v1 REST and OIDC), for
//! `tests/zitadel_provision.rs`. Zitadel itself cannot run here; each
//! behaviour below names the upstream file (github.com/zitadel/zitadel,
//! v4 line) it reproduces. Verified only against this fake, not a live
//! Zitadel: see docs/adr/0037, "Additional Notes".
//!
//! Deliberate simplifications: one instance, one organization (the
//! provisioner's, so no `x-zitadel-orgid`), client secrets kept in clear
//! (Zitadel stores a hash; nothing here ever shows one twice either).
//!
//! Interruptions: an [`Interrupter`] shared with the test's Secret store
//! counts *steps* (every management call that changes state, every Secret
//! write). At the chosen step the effect happens and then the caller is
//! left waiting forever (the answer is lost) while the test is told to
//! drop the provisioning future: the "server did it, client never knew"
//! case a timeout or a controller restart produces.

// Each test uses some of the fake.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const DOMAIN: &str = "id.fleet.example";

/// Counts steps and trips at one of them.
#[derive(Default)]
pub struct Interrupter {
    steps: AtomicUsize,
    /// 0 = never.
    at: AtomicUsize,
    pub tripped: Notify,
}

impl Interrupter {
    /// Trip at step `at` from now on (steps counted from 1 again).
    pub fn arm(&self, at: Option<usize>) {
        self.steps.store(0, Ordering::SeqCst);
        self.at.store(at.unwrap_or(0), Ordering::SeqCst);
    }

    pub fn steps(&self) -> usize {
        self.steps.load(Ordering::SeqCst)
    }

    /// Called after a step's effect: if this is the armed step, tells the
    /// test and never returns (the answer is lost).
    pub async fn step(&self) {
        let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.at.load(Ordering::SeqCst) {
            self.tripped.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Bearer,
    Jwt,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub name: String,
    pub description: String,
    pub token_type: TokenType,
    /// The current client secret (Zitadel: its hash).
    pub secret: Option<String>,
    /// Searches this user stays invisible to.
    pub search_lag: u32,
    /// Token requests it stays unknown to.
    pub token_lag: u32,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub search_lag: u32,
}

/// Tunable behaviour; the defaults are what a freshly started Zitadel
/// under some load does.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Searches a newly created object is invisible to.
    pub search_lag: u32,
    /// Token requests a newly created user is unknown to.
    pub token_lag: u32,
    /// Answer the next this-many management requests with 503.
    pub unavailable: u32,
    /// `GET /users/{id}` reports Bearer tokens even for JWT users (a read
    /// racing a concurrent update), to provoke NotChanged.
    pub stale_token_type: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            search_lag: 2,
            token_lag: 2,
            unavailable: 0,
            stale_token_type: false,
        }
    }
}

#[derive(Default)]
pub struct Data {
    pub pats: Vec<String>,
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub behaviour: Behaviour,
    /// `METHOD path` of every management request, in order.
    pub calls: Vec<String>,
    next_id: u64,
    tokens_issued: u64,
}

impl Data {
    /// Zitadel ids are snowflake-like numeric strings.
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("3{:017}", self.next_id)
    }

    pub fn user(&self, user_name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.user_name == user_name)
    }

    /// Adds a machine user as someone else (console, an earlier operator)
    /// would have.
    pub fn add_existing_user(&mut self, user_name: &str, token_type: TokenType, search_lag: u32) {
        let id = self.new_id();
        self.users.push(User {
            id,
            user_name: user_name.into(),
            name: user_name.into(),
            description: "fleet agent identity, managed by fleet-reconciler".into(),
            token_type,
            secret: None,
            search_lag,
            token_lag: 0,
        });
    }
}

struct Shared {
    data: Mutex<Data>,
    interrupter: Arc<Interrupter>,
    issuer: String,
}

pub struct FakeZitadel {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeZitadel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeZitadel {
    pub async fn start(pat: &str, behaviour: Behaviour, interrupter: Arc<Interrupter>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Zitadel");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            data: Mutex::new(Data {
                pats: vec![pat.to_string()],
                behaviour,
                ..Data::default()
            }),
            interrupter,
            issuer: format!("http://{DOMAIN}:8080"),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake Zitadel serves");
        });
        FakeZitadel {
            addr,
            shared,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// Direct access to the state, for setting up and checking.
    pub fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.shared.data.lock().expect("fake state")
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/debug/ready", get(ready))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/v2/token", post(token))
        .route("/management/v1/projects/_search", post(search_projects))
        .route("/management/v1/projects", post(create_project))
        .route("/management/v1/users/_search", post(search_users))
        .route("/management/v1/users/machine", post(create_machine))
        .route("/management/v1/users/{id}", get(get_user))
        .route("/management/v1/users/{id}/machine", put(update_machine))
        .route("/management/v1/users/{id}/secret", put(generate_secret))
        .with_state(shared)
}

/// A gRPC-gateway error body as Zitadel builds it: message `key (id)` and
/// an `ErrorDetail` with the id (`internal/api/grpc/gerrors/zitadel_errors.go`,
/// `ZITADELToGRPCError`); the HTTP status is grpc-gateway's mapping of the
/// gRPC code (AlreadyExists 409, FailedPrecondition 400, NotFound 404,
/// Unauthenticated 401, Unavailable 503).
fn zitadel_error(status: StatusCode, code: u32, key: &str, id: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "code": code,
            "message": format!("{key} ({id})"),
            "details": [{
                "@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
                "id": id,
                "message": key,
            }],
        })),
    )
        .into_response()
}

fn host_ok(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    host == DOMAIN || host == format!("{DOMAIN}:8080")
}

/// Every request resolves its instance from the Host header
/// (`internal/api/http/middleware/instance_interceptor.go`); an unknown
/// host is NotFound "Errors.IAM.NotFound" QUERY-n0wng
/// (`internal/query/instance.go`), the "Instance not found" of
/// zitadel#4452.
fn instance_not_found() -> Response {
    zitadel_error(
        StatusCode::NOT_FOUND,
        5,
        "Errors.IAM.NotFound",
        "QUERY-n0wng",
    )
}

/// Management calls: instance by Host, then the PAT (`Authorization:
/// Bearer`), then an injected outage. Returns the error to answer with,
/// `None` to go on.
fn admit(shared: &Shared, headers: &HeaderMap, call: String) -> Option<Response> {
    if !host_ok(headers) {
        return Some(instance_not_found());
    }
    let mut data = shared.data.lock().expect("fake state");
    data.calls.push(call);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !data.pats.iter().any(|p| p == bearer) {
        return Some(zitadel_error(
            StatusCode::UNAUTHORIZED,
            16,
            "Errors.Token.Invalid",
            "AUTH-7fs1e",
        ));
    }
    if data.behaviour.unavailable > 0 {
        data.behaviour.unavailable -= 1;
        return Some(zitadel_error(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "Errors.Internal",
            "FAKE-unavailable",
        ));
    }
    None
}

async fn ready(headers: HeaderMap) -> Response {
    if !host_ok(&headers) {
        return instance_not_found();
    }
    "ok".into_response()
}

async fn discovery(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !host_ok(&headers) {
        return instance_not_found();
    }
    axum::Json(json!({
        "issuer": s.issuer,
        "token_endpoint": format!("{}/oauth/v2/token", s.issuer),
        "jwks_uri": format!("{}/oauth/v2/keys", s.issuer),
    }))
    .into_response()
}

fn text_query<'a>(body: &'a Value, query: &str, field: &str) -> Option<&'a str> {
    body.get("queries")?
        .as_array()?
        .iter()
        .find_map(|q| q.get(query)?.get(field)?.as_str())
}

/// `ListProjects` (`proto/zitadel/management.proto`, `post:
/// "/projects/_search"`; `internal/api/grpc/management/project.go`): reads
/// the project projection, so a project created moments ago may be missing
/// (search lag).
async fn search_projects(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = admit(&s, &headers, "POST /management/v1/projects/_search".into()) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = text_query(&body, "nameQuery", "name").unwrap_or_default();
    let mut data = s.data.lock().expect("fake state");
    let mut result = Vec::new();
    for p in data.projects.iter_mut() {
        if p.search_lag > 0 {
            p.search_lag -= 1;
        } else if p.name == name {
            result.push(json!({"id": p.id, "name": p.name, "state": "PROJECT_STATE_ACTIVE"}));
        }
    }
    axum::Json(json!({"details": {"totalResult": result.len().to_string()}, "result": result}))
        .into_response()
}

/// `AddProject`: the name is unique per organization through the event
/// store's unique constraint `project_names`
/// (`internal/repository/project/project.go`,
/// `NewAddProjectNameUniqueConstraint`, "Errors.Project.AlreadyExists"),
/// violated as AlreadyExists with id V3-DKcYh
/// (`internal/eventstore/v3/unique_constraints.go`): 409, even while the
/// search does not show the project yet.
async fn create_project(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = admit(&s, &headers, "POST /management/v1/projects".into()) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let answer = {
        let mut data = s.data.lock().expect("fake state");
        if data.projects.iter().any(|p| p.name == name) {
            return zitadel_error(
                StatusCode::CONFLICT,
                6,
                "Errors.Project.AlreadyExists",
                "V3-DKcYh",
            );
        }
        let id = data.new_id();
        let search_lag = data.behaviour.search_lag;
        data.projects.push(Project {
            id: id.clone(),
            name,
            search_lag,
        });
        json!({"id": id, "details": {"sequence": "1"}})
    };
    s.interrupter.step().await;
    axum::Json(answer).into_response()
}

fn user_json(u: &User, stale_token_type: bool) -> Value {
    let mut machine = json!({
        "name": u.name,
        "description": u.description,
        "hasSecret": u.secret.is_some(),
    });
    // proto3 JSON leaves the zero value (Bearer) out.
    if u.token_type == TokenType::Jwt && !stale_token_type {
        machine["accessTokenType"] = json!("ACCESS_TOKEN_TYPE_JWT");
    }
    json!({
        "id": u.id,
        "state": "USER_STATE_ACTIVE",
        "userName": u.user_name,
        "loginNames": [u.user_name],
        "preferredLoginName": u.user_name,
        "machine": machine,
    })
}

/// `ListUsers` (`internal/api/grpc/management/user.go`:
/// `s.query.SearchUsers(ctx, queries, false)`, no projection trigger): a
/// user created moments ago is invisible for a few searches.
async fn search_users(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = admit(&s, &headers, "POST /management/v1/users/_search".into()) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let user_name = text_query(&body, "userNameQuery", "userName").unwrap_or_default();
    let mut data = s.data.lock().expect("fake state");
    let mut result = Vec::new();
    for u in data.users.iter_mut() {
        if u.search_lag > 0 {
            u.search_lag -= 1;
        } else if u.user_name == user_name {
            result.push(user_json(u, false));
        }
    }
    axum::Json(json!({"details": {"totalResult": result.len().to_string()}, "result": result}))
        .into_response()
}

/// `GetUserByID` (`proto/zitadel/management.proto`: `get: "/users/{id}"`;
/// `internal/api/grpc/management/user.go`: `s.query.GetUserByID(ctx,
/// true, ...)`, which triggers the user projection): always current, and
/// the triggered projection makes the user visible to later searches too.
/// The Machine message (`proto/zitadel/user.proto`: name, description,
/// has_secret, access_token_type) carries the token type, never a secret.
async fn get_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = admit(&s, &headers, format!("GET /management/v1/users/{id}")) {
        return r;
    }
    let mut data = s.data.lock().expect("fake state");
    let stale = data.behaviour.stale_token_type;
    match data.users.iter_mut().find(|u| u.id == id) {
        Some(u) => {
            u.search_lag = 0;
            axum::Json(json!({"user": user_json(u, stale)})).into_response()
        }
        None => zitadel_error(
            StatusCode::NOT_FOUND,
            5,
            "Errors.User.NotFound",
            "QUERY-Dfbg2",
        ),
    }
}

/// `AddMachineUser` (`internal/command/user_machine.go`, `AddMachine`):
/// a fresh id per call; name and userName required (COMMAND-bs9Ds,
/// COMMAND-bm9Ds); the user name is unique through
/// `NewAddUsernameUniqueConstraint` ("Errors.User.AlreadyExists",
/// `internal/repository/user/user.go`), violated as 409 V3-DKcYh. The
/// token type defaults to Bearer.
async fn create_machine(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = admit(&s, &headers, "POST /management/v1/users/machine".into()) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let str_of = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let (user_name, name) = (str_of("userName"), str_of("name"));
    if name.is_empty() {
        return zitadel_error(
            StatusCode::BAD_REQUEST,
            3,
            "Errors.User.Invalid",
            "COMMAND-bs9Ds",
        );
    }
    if user_name.is_empty() {
        return zitadel_error(
            StatusCode::BAD_REQUEST,
            3,
            "Errors.User.Invalid",
            "COMMAND-bm9Ds",
        );
    }
    let answer = {
        let mut data = s.data.lock().expect("fake state");
        if data.user(&user_name).is_some() {
            return zitadel_error(
                StatusCode::CONFLICT,
                6,
                "Errors.User.AlreadyExists",
                "V3-DKcYh",
            );
        }
        let id = data.new_id();
        let token_type = if body["accessTokenType"] == "ACCESS_TOKEN_TYPE_JWT" {
            TokenType::Jwt
        } else {
            TokenType::Bearer
        };
        let (search_lag, token_lag) = (data.behaviour.search_lag, data.behaviour.token_lag);
        data.users.push(User {
            id: id.clone(),
            user_name,
            name,
            description: str_of("description"),
            token_type,
            secret: None,
            search_lag,
            token_lag,
        });
        json!({"userId": id, "details": {"sequence": "1"}})
    };
    s.interrupter.step().await;
    axum::Json(answer).into_response()
}

/// `UpdateMachine` (`internal/command/user_machine.go`,
/// `changeMachineCommand`): unknown user NotFound COMMAND-5M0od; an update
/// that changes neither name, description nor access token type is
/// FailedPrecondition "Errors.User.NotChanged" COMMAND-2n8vs: HTTP 400.
async fn update_machine(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = admit(
        &s,
        &headers,
        format!("PUT /management/v1/users/{id}/machine"),
    ) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    {
        let mut data = s.data.lock().expect("fake state");
        let Some(u) = data.users.iter_mut().find(|u| u.id == id) else {
            return zitadel_error(
                StatusCode::NOT_FOUND,
                5,
                "Errors.User.NotFound",
                "COMMAND-5M0od",
            );
        };
        let token_type = if body["accessTokenType"] == "ACCESS_TOKEN_TYPE_JWT" {
            TokenType::Jwt
        } else {
            TokenType::Bearer
        };
        let name = body["name"].as_str().unwrap_or_default().to_string();
        let description = body["description"].as_str().unwrap_or_default().to_string();
        if (name.as_str(), description.as_str(), token_type)
            == (u.name.as_str(), u.description.as_str(), u.token_type)
        {
            return zitadel_error(
                StatusCode::BAD_REQUEST,
                9,
                "Errors.User.NotChanged",
                "COMMAND-2n8vs",
            );
        }
        (u.name, u.description, u.token_type) = (name, description, token_type);
    }
    s.interrupter.step().await;
    axum::Json(json!({"details": {"sequence": "2"}})).into_response()
}

/// `GenerateMachineSecret` (`internal/command/user_machine_secret.go`,
/// `prepareGenerateMachineSecret`: unknown user PreconditionFailed
/// COMMAND-x8910n; otherwise a new secret *replaces* the previous one and
/// only its hash is stored): the clear secret is in this answer only, with
/// `clientId` = the user name (`internal/api/grpc/management/user.go`).
async fn generate_secret(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = admit(
        &s,
        &headers,
        format!("PUT /management/v1/users/{id}/secret"),
    ) {
        return r;
    }
    let answer = {
        let mut data = s.data.lock().expect("fake state");
        data.next_id += 1;
        let secret = format!(
            "{}{}",
            fleet_scores::secret::generate_password().expose(),
            data.next_id
        );
        let Some(u) = data.users.iter_mut().find(|u| u.id == id) else {
            return zitadel_error(
                StatusCode::BAD_REQUEST,
                9,
                "Errors.User.NotExisting",
                "COMMAND-x8910n",
            );
        };
        u.secret = Some(secret.clone());
        json!({"clientId": u.user_name, "clientSecret": secret, "details": {"sequence": "3"}})
    };
    s.interrupter.step().await;
    axum::Json(answer).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1..i + 3)) {
                (b'%', Some(hex)) => {
                    let hex = std::str::from_utf8(hex).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 3;
                        }
                        Err(_) => {
                            out.push(b'%');
                            i += 1;
                        }
                    }
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// `client_credentials` for machine users
/// (`internal/api/oidc/client_credentials.go`, `clientCredentialsAuth`):
/// the client is looked up by login name *without* triggering the user
/// projection (`GetUserByLoginName(ctx, false, clientID)`), so a user
/// created moments ago is NotFound, answered `invalid_client` "client not
/// found"; zitadel/oidc answers `invalid_client` with 401
/// (`pkg/op/error.go`, `RequestError`). A user without a secret is a
/// precondition error (OIDC-pieP8, which the OIDC layer turns into a
/// server_error). The answer for a wrong secret (OIDC-VoXo6,
/// InvalidArgument) is modelled as 401 `invalid_client`: the exact OAuth
/// error Zitadel maps it to is not verified.
async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !host_ok(&headers) {
        return instance_not_found();
    }
    let params = form(&body);
    if params.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials here",
        );
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| data_encoding::BASE64.decode(b.as_bytes()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((client_id, client_secret)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no client authentication",
        );
    };
    let mut data = s.data.lock().expect("fake state");
    let Some(u) = data.users.iter_mut().find(|u| u.user_name == client_id) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client not found",
        );
    };
    if u.token_lag > 0 {
        u.token_lag -= 1;
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client not found",
        );
    }
    match &u.secret {
        None => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Errors.User.Machine.Secret.NotExisting",
        ),
        Some(secret) if secret != client_secret => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Errors.User.Machine.Secret.Invalid",
        ),
        Some(_) => {
            let kind = match u.token_type {
                TokenType::Jwt => "jwt",
                TokenType::Bearer => "opaque",
            };
            let user = u.user_name.clone();
            data.tokens_issued += 1;
            axum::Json(json!({
                "access_token": format!("fake-{kind}-{user}-{}", data.tokens_issued),
                "token_type": "Bearer",
                "expires_in": 43199,
            }))
            .into_response()
        }
    }
}
