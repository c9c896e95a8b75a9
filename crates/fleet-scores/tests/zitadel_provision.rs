//! Managed-Zitadel provisioning (`zitadel::provisioning::provision`, the
//! code the Score runs) against the in-process fake of Zitadel's
//! management and OIDC endpoints (`zitadel_fake`), with an in-memory
//! Secret store behind the same `SecretStore` trait as the Kubernetes one.
//!
//! The central property: interrupted after any API call or Secret write
//! (the future dropped, the answer lost), the next run converges: one
//! project, one JWT machine user per identity, every identity's current
//! client secret stored, and every agent (and the probe user) obtains a
//! token from the fake through the real identity probe.

mod zitadel_fake;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_scores::ProbeOutcome;
use fleet_scores::score::InterpretError;
use fleet_scores::secret::Sensitive;
use fleet_scores::zitadel::probe::{self, IdentityProbeTarget};
use fleet_scores::zitadel::provision::{self, Retry};
use fleet_scores::zitadel::provisioning::{
    self, ApiTarget, ProvisionPlan, Provisioned, RECOVERY_DOC, SecretStore,
};
use zitadel_fake::{Behaviour, FakeZitadel, Interrupter, TokenType};

const PAT: &str = "pat-from-first-setup";
const PAT_SECRET: &str = "demo-zitadel-provisioner";
const AGENT_SECRET: &str = "demo-agent-oidc";
const PROBE_SECRET: &str = "demo-zitadel-probe";
const PROBE_USER: &str = "demo-identity-probe";

/// Secrets in memory; every added key is a step of the interrupter.
struct MemStore {
    secrets: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    interrupter: Arc<Interrupter>,
    writes: AtomicUsize,
}

impl MemStore {
    fn put(&self, secret: &str, key: &str, value: &str) {
        self.secrets
            .lock()
            .unwrap()
            .entry(secret.into())
            .or_default()
            .insert(key.into(), value.into());
    }

    fn get(&self, secret: &str, key: &str) -> Option<String> {
        self.secrets.lock().unwrap().get(secret)?.get(key).cloned()
    }

    fn remove(&self, secret: &str, key: &str) {
        if let Some(s) = self.secrets.lock().unwrap().get_mut(secret) {
            s.remove(key);
        }
    }
}

impl SecretStore for MemStore {
    async fn stored_keys(
        &self,
        secret: &str,
    ) -> Result<Option<std::collections::BTreeSet<String>>, InterpretError> {
        Ok(self
            .secrets
            .lock()
            .unwrap()
            .get(secret)
            .map(|s| s.keys().cloned().collect()))
    }

    async fn read(&self, secret: &str, key: &str) -> Result<Option<Sensitive>, InterpretError> {
        Ok(self.get(secret, key).map(Sensitive::new))
    }

    async fn add(
        &self,
        secret: &str,
        key: &str,
        value: &Sensitive,
    ) -> Result<bool, InterpretError> {
        let added = {
            let mut secrets = self.secrets.lock().unwrap();
            let s = secrets.entry(secret.into()).or_default();
            if s.contains_key(key) {
                false
            } else {
                s.insert(key.into(), value.expose().into());
                true
            }
        };
        if added {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.interrupter.step().await;
        }
        Ok(added)
    }
}

struct World {
    fake: FakeZitadel,
    store: MemStore,
    interrupter: Arc<Interrupter>,
    plan: ProvisionPlan,
    target: ApiTarget,
}

/// Backoffs of milliseconds: the same bounded policy shape, quickly.
const FAST: Retry = Retry {
    attempts: 5,
    first: Duration::from_millis(1),
    max: Duration::from_millis(8),
};

fn agents(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("demo-agent-{i}")).collect()
}

fn plan(agents: Vec<String>) -> ProvisionPlan {
    ProvisionPlan {
        project: "demo-fleet".into(),
        provisioner_secret: PAT_SECRET.into(),
        identities: vec![
            (AGENT_SECRET.into(), agents),
            (PROBE_SECRET.into(), vec![PROBE_USER.into()]),
        ],
        probe: (PROBE_SECRET.into(), PROBE_USER.into()),
    }
}

async fn world(n_agents: usize, behaviour: Behaviour) -> World {
    let interrupter = Arc::new(Interrupter::default());
    let fake = FakeZitadel::start(PAT, behaviour, interrupter.clone()).await;
    let store = MemStore {
        secrets: Mutex::new(BTreeMap::new()),
        interrupter: interrupter.clone(),
        writes: AtomicUsize::new(0),
    };
    // What the setup Job's bootstrap container stores.
    store.put(PAT_SECRET, "pat", PAT);
    let target = ApiTarget {
        base: fake.url(),
        host: zitadel_fake::DOMAIN.into(),
        request_timeout: Duration::from_secs(5),
        retry: FAST,
    };
    World {
        fake,
        store,
        interrupter,
        plan: plan(agents(n_agents)),
        target,
    }
}

enum Run {
    Done(Result<Provisioned, ProbeOutcome>),
    Interrupted,
}

/// One run; dropped when the interrupter trips.
async fn run(w: &World) -> Run {
    let provisioning = provisioning::provision(&w.target, &w.store, &w.plan);
    let raced = async {
        tokio::select! {
            biased;
            _ = w.interrupter.tripped.notified() => Run::Interrupted,
            r = provisioning => Run::Done(r.expect("the in-memory store does not fail")),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), raced)
        .await
        .expect("a run is bounded")
}

fn done(r: Run) -> Provisioned {
    match r {
        Run::Done(Ok(p)) => p,
        Run::Done(Err(outcome)) => panic!("not provisioned: {outcome:?}"),
        Run::Interrupted => panic!("interrupted although not armed"),
    }
}

fn failure(r: Run) -> (&'static str, String) {
    match r {
        Run::Done(Err(ProbeOutcome::Failed {
            reason, message, ..
        })) => (reason, message),
        Run::Done(other) => panic!("expected a failed outcome, got {other:?}"),
        Run::Interrupted => panic!("interrupted although not armed"),
    }
}

fn probe_target(w: &World, id: &str, secret: &str, project: &str) -> IdentityProbeTarget {
    IdentityProbeTarget {
        issuer: w.fake.issuer().into(),
        reach_at: Some(w.fake.url()),
        zitadel_ready: true,
        client: Some((id.into(), Sensitive::new(secret))),
        scope: Some(provision::audience_scope(project)),
    }
}

/// The converged state: one project, one JWT machine user per identity
/// whose current secret is the stored one, every identity gets a token.
async fn assert_converged(w: &World, p: &Provisioned) {
    let identities: Vec<(String, String)> = w
        .plan
        .identities
        .iter()
        .flat_map(|(secret, ids)| ids.iter().map(move |id| (secret.clone(), id.clone())))
        .collect();
    {
        let data = w.fake.data();
        let projects: Vec<_> = data
            .projects
            .iter()
            .filter(|pr| pr.name == "demo-fleet")
            .collect();
        assert_eq!(projects.len(), 1, "{projects:?}");
        assert_eq!(projects[0].id, p.project_id);
        assert_eq!(data.users.len(), identities.len(), "{:?}", data.users);
        for (secret, id) in &identities {
            let users: Vec<_> = data.users.iter().filter(|u| &u.user_name == id).collect();
            assert_eq!(users.len(), 1, "{id}: {users:?}");
            let user = users[0];
            assert_eq!(user.token_type, TokenType::Jwt, "{id}");
            let stored = w.store.get(secret, id);
            assert!(stored.is_some(), "{id} has no stored secret");
            assert_eq!(
                user.secret, stored,
                "{id}: the stored secret is not Zitadel's current one"
            );
        }
    }
    assert_eq!(p.probe.0, PROBE_USER);
    for (secret, id) in &identities {
        let value = w.store.get(secret, id).unwrap();
        let outcome = probe::smoke_probe_new_identity(
            &probe_target(w, id, &value, &p.project_id),
            Duration::from_secs(10),
            FAST,
        )
        .await;
        assert!(outcome.passed(), "{id}: {outcome:?}");
    }
}

/// Steps of a clean run with 2 agents: create project, then per identity
/// (2 agents + probe) create user, generate secret, store it.
const CLEAN_STEPS: usize = 1 + 3 * 3;

#[tokio::test]
async fn a_clean_run_provisions_everything_in_the_expected_steps_and_a_rerun_changes_nothing() {
    let w = world(2, Behaviour::default()).await;
    let p = done(run(&w).await);
    assert_eq!(w.interrupter.steps(), CLEAN_STEPS);
    assert_eq!(
        p.written.into_iter().collect::<Vec<_>>(),
        [AGENT_SECRET, PROBE_SECRET]
    );
    let before = w.fake.data().calls.len();
    let p = done(run(&w).await);
    assert!(p.written.is_empty());
    // With every secret stored, a rerun only finds the project (here still
    // invisible to search: create, 409, adopt): no user is touched, no
    // secret generated.
    let calls = w.fake.data().calls[before..].to_vec();
    assert!(calls.iter().all(|c| c.contains("/projects")), "{calls:#?}");
    assert_eq!(w.fake.data().projects.len(), 1);
    assert_converged(&w, &p).await;
}

#[tokio::test]
async fn an_interruption_after_any_api_call_or_secret_write_converges_on_the_next_run() {
    for at in 1..=CLEAN_STEPS {
        let w = world(2, Behaviour::default()).await;
        w.interrupter.arm(Some(at));
        assert!(
            matches!(run(&w).await, Run::Interrupted),
            "step {at} is reached"
        );
        w.interrupter.arm(None);
        let p = done(run(&w).await);
        assert_converged(&w, &p).await;
    }
}

#[tokio::test]
async fn two_interruptions_in_a_row_at_every_pair_of_steps_converge() {
    for first in 1..=CLEAN_STEPS {
        for second in 1..=CLEAN_STEPS {
            let w = world(2, Behaviour::default()).await;
            w.interrupter.arm(Some(first));
            assert!(matches!(run(&w).await, Run::Interrupted));
            w.interrupter.arm(Some(second));
            // The restart may finish before reaching `second`.
            let _ = run(&w).await;
            w.interrupter.arm(None);
            let p = done(run(&w).await);
            assert_converged(&w, &p).await;
        }
    }
}

#[tokio::test]
async fn an_existing_jwt_user_is_not_updated_and_a_bearer_user_once() {
    let w = world(2, Behaviour::default()).await;
    {
        let mut data = w.fake.data();
        data.add_existing_user("demo-agent-0", TokenType::Jwt, 0);
        data.add_existing_user("demo-agent-1", TokenType::Bearer, 0);
    }
    let p = done(run(&w).await);
    let (jwt_id, bearer_id) = {
        let data = w.fake.data();
        (
            data.user("demo-agent-0").unwrap().id.clone(),
            data.user("demo-agent-1").unwrap().id.clone(),
        )
    };
    let updates = |id: &str| {
        let put = format!("PUT /management/v1/users/{id}/machine");
        w.fake.data().calls.iter().filter(|c| **c == put).count()
    };
    assert_eq!(updates(&jwt_id), 0);
    assert_eq!(updates(&bearer_id), 1);
    assert_converged(&w, &p).await;
    // Secret lost for the once-Bearer user: regenerated, not updated again.
    w.store.remove(AGENT_SECRET, "demo-agent-1");
    let p = done(run(&w).await);
    assert_eq!(updates(&bearer_id), 1);
    assert_converged(&w, &p).await;
}

#[tokio::test]
async fn not_changed_from_an_update_that_lost_a_race_counts_as_success() {
    // GET reports Bearer although the user is JWT already: the PUT is
    // answered 400 Errors.User.NotChanged (COMMAND-2n8vs).
    let w = world(
        1,
        Behaviour {
            stale_token_type: true,
            ..Behaviour::default()
        },
    )
    .await;
    w.fake
        .data()
        .add_existing_user("demo-agent-0", TokenType::Jwt, 0);
    let p = done(run(&w).await);
    let id = w.fake.data().user("demo-agent-0").unwrap().id.clone();
    assert!(
        w.fake
            .data()
            .calls
            .contains(&format!("PUT /management/v1/users/{id}/machine"))
    );
    assert_converged(&w, &p).await;
}

#[tokio::test]
async fn a_user_that_exists_but_is_invisible_to_search_is_adopted_after_409() {
    let w = world(1, Behaviour::default()).await;
    w.fake
        .data()
        .add_existing_user("demo-agent-0", TokenType::Bearer, 3);
    let p = done(run(&w).await);
    let calls = w.fake.data().calls.clone();
    let creates = calls
        .iter()
        .filter(|c| *c == "POST /management/v1/users/machine")
        .count();
    // agent-0 (answered 409) and the probe user (created).
    assert_eq!(creates, 2, "{calls:#?}");
    assert_converged(&w, &p).await;
}

#[tokio::test]
async fn lag_outlasting_the_retries_is_pending_and_a_later_run_converges() {
    let w = world(1, Behaviour::default()).await;
    w.fake
        .data()
        .add_existing_user("demo-agent-0", TokenType::Jwt, 40);
    let (reason, message) = failure(run(&w).await);
    assert_eq!(reason, "ProvisioningPending", "{message}");
    assert!(message.contains("demo-agent-0"), "{message}");
    let mut converged = None;
    for _ in 0..10 {
        if let Run::Done(Ok(p)) = run(&w).await {
            converged = Some(p);
            break;
        }
    }
    assert_converged(&w, &converged.expect("converges once the lag is over")).await;
}

#[tokio::test]
async fn transient_unavailability_is_retried_within_one_run() {
    let w = world(
        2,
        Behaviour {
            unavailable: 3,
            ..Behaviour::default()
        },
    )
    .await;
    let p = done(run(&w).await);
    assert_converged(&w, &p).await;
}

#[tokio::test]
async fn an_unreachable_zitadel_fails_bounded_as_unreachable() {
    let mut w = world(1, Behaviour::default()).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    w.target.base = format!("http://{closed}");
    let (reason, message) = failure(run(&w).await);
    assert_eq!(reason, "ZitadelUnreachable", "{message}");
    assert!(!message.contains(PAT), "{message}");
}

#[tokio::test]
async fn a_lost_pat_names_the_recovery_and_a_new_pat_resumes_without_wiping_anything() {
    let mut w = world(1, Behaviour::default()).await;
    let first = done(run(&w).await);
    let agent0 = w.store.get(AGENT_SECRET, "demo-agent-0").unwrap();

    // The PAT Secret is lost (e.g. the setup pod was replaced before its
    // bootstrap container stored it) and a new agent is wanted.
    w.store.remove(PAT_SECRET, "pat");
    w.plan = plan(agents(2));
    let (reason, message) = failure(run(&w).await);
    assert_eq!(reason, "ProvisionerMissing");
    assert!(message.contains(RECOVERY_DOC), "{message}");

    // A stored but revoked or expired PAT is refused with the same pointer.
    w.fake.data().pats.clear();
    w.store.put(PAT_SECRET, "pat", PAT);
    let (reason, message) = failure(run(&w).await);
    assert_eq!(reason, "ProvisionerRefused");
    assert!(message.contains(RECOVERY_DOC), "{message}");
    assert!(!message.contains(PAT), "{message}");

    // The documented recovery: an administrator creates a new PAT for the
    // provisioner in Zitadel and stores it in the Secret.
    w.fake.data().pats.push("pat-made-by-an-admin".into());
    w.store.remove(PAT_SECRET, "pat");
    w.store.put(PAT_SECRET, "pat", "pat-made-by-an-admin");
    let p = done(run(&w).await);
    assert_eq!(p.project_id, first.project_id, "the same project");
    assert_eq!(
        w.store.get(AGENT_SECRET, "demo-agent-0").as_deref(),
        Some(agent0.as_str()),
        "existing credentials are kept"
    );
    assert_converged(&w, &p).await;
}

#[tokio::test]
async fn a_new_probe_user_unknown_to_the_token_endpoint_is_retried_not_refused() {
    let w = world(
        0,
        Behaviour {
            token_lag: 3,
            ..Behaviour::default()
        },
    )
    .await;
    let p = done(run(&w).await);
    let secret = w.store.get(PROBE_SECRET, PROBE_USER).unwrap();
    let target = probe_target(&w, PROBE_USER, &secret, &p.project_id);
    // The plain probe reports the lag as a refusal...
    match probe::smoke_probe(&target, Duration::from_secs(5)).await {
        ProbeOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, "TokenRefused");
            assert!(message.contains("invalid_client"), "{message}");
            assert!(!message.contains(&secret), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // ...the provisioning probe waits it out.
    let outcome = probe::smoke_probe_new_identity(&target, Duration::from_secs(5), FAST).await;
    assert!(outcome.passed(), "{outcome:?}");
}

#[tokio::test]
async fn a_probe_user_that_stays_unknown_is_refused_after_bounded_retries() {
    let w = world(
        0,
        Behaviour {
            token_lag: 1000,
            ..Behaviour::default()
        },
    )
    .await;
    let p = done(run(&w).await);
    let secret = w.store.get(PROBE_SECRET, PROBE_USER).unwrap();
    let target = probe_target(&w, PROBE_USER, &secret, &p.project_id);
    let outcome = probe::smoke_probe_new_identity(&target, Duration::from_secs(5), FAST).await;
    assert!(
        matches!(
            outcome,
            ProbeOutcome::Failed {
                reason: "TokenRefused",
                ..
            }
        ),
        "{outcome:?}"
    );
    // FAST allows 5 tries: 1000 - 5 lag left.
    assert_eq!(w.fake.data().user(PROBE_USER).unwrap().token_lag, 995);
}

#[tokio::test]
async fn a_wrong_host_is_instance_not_found_so_the_host_header_is_what_routes() {
    let mut w = world(0, Behaviour::default()).await;
    w.target.host = "other.example".into();
    let (reason, message) = failure(run(&w).await);
    assert_eq!(reason, "ProvisioningFailed", "{message}");
    assert!(message.contains("404"), "{message}");
}
