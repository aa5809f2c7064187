//! Network faults between the store and Secrets Manager: a fault-injecting
//! HTTP proxy sits between the SDK and LocalStack and is switched at run time
//! between pass-through, refused connections, connections dropped or reset
//! mid-response, HTTP 500/503, `ThrottlingException` and responses slower than
//! the attempt timeout.
//!
//! The promises checked:
//! - every store operation returns `Ok` (and its effect is durable) or
//!   `StoreError::Backend`, within a bounded time;
//! - once the faults stop, every token whose save returned `Ok` is readable,
//!   found and listed by a fresh store, and no save left a duplicate;
//! - transient faults within the SDK's retry budget are invisible.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use zoho_token_store::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, OAuthToken, SecretsManagerStore,
    StoreError, TokenStore,
};

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use fault_proxy::{Fault, Proxy, Schedule, checking_client, client_for};

// ---------------------------------------------------------------------------
// Stores and timing

/// Limits for stores that see persistent faults: short, so tests are quick.
const SHORT_ATTEMPT: Duration = Duration::from_millis(250);
const SHORT_OPERATION: Duration = Duration::from_millis(700);
/// How long a [`Fault::Slow`] response is held back against the short limits.
const SHORT_SLOW: Duration = Duration::from_millis(1200);

/// Limits for stores whose faults must be invisible: the store's defaults
/// (3 s an attempt, 10 s a call), except against slow responses, where the
/// attempt timeout is what the test waits for each time.
const RETRY_ATTEMPT: Duration = DEFAULT_ATTEMPT_TIMEOUT;
const RETRY_OPERATION: Duration = DEFAULT_OPERATION_TIMEOUT;
const RETRY_SLOW_ATTEMPT: Duration = Duration::from_millis(1000);
/// Slower than [`RETRY_SLOW_ATTEMPT`].
const RETRY_SLOW: Duration = Duration::from_millis(1300);

/// What a failing call may take beyond the operation timeout: scheduling on
/// a loaded 2-core machine, not a performance measure.
const MARGIN: Duration = Duration::from_secs(2);

/// A store under test behind a proxy, and a way to look at the truth.
struct Rig {
    proxy: Proxy,
    /// Through the proxy, with no caching: every operation reaches the backend.
    store: SecretsManagerStore,
    prefix: String,
    operation_timeout: Duration,
}

impl Rig {
    async fn new(attempt: Duration, operation: Duration, slow: Duration) -> Self {
        Self::with_backoff(attempt, operation, slow, Duration::from_secs(1)).await
    }

    async fn with_backoff(
        attempt: Duration,
        operation: Duration,
        slow: Duration,
        backoff: Duration,
    ) -> Self {
        let endpoint = common::localstack().await;
        let proxy = Proxy::start(endpoint, slow).await;
        let prefix = common::random_prefix();
        let store = SecretsManagerStore::builder()
            .client(client_for(&proxy.url(), backoff).await)
            .prefix(prefix.clone())
            .cache_ttl(Duration::ZERO)
            .attempt_timeout(attempt)
            .operation_timeout(operation)
            .build()
            .unwrap();
        Self {
            proxy,
            store,
            prefix,
            operation_timeout: operation,
        }
    }

    /// A new store straight to LocalStack (cold cache), to check what is
    /// stored: not under test, so patient with a loaded LocalStack.
    async fn fresh(&self) -> SecretsManagerStore {
        SecretsManagerStore::builder()
            .client(checking_client().await)
            .prefix(self.prefix.clone())
            .attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(120))
            .build()
            .unwrap()
    }
}

/// Runs one store operation and checks the promise for a store that sees
/// faults: `Ok`, or `StoreError::Backend` within `bound`.
async fn bounded<T>(
    what: &str,
    bound: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = operation.await;
    let elapsed = started.elapsed();
    if let Err(error) = &result {
        assert!(
            matches!(error, StoreError::Backend { .. }),
            "{what}: a network fault must be StoreError::Backend, got {error:?}"
        );
        assert!(
            elapsed < bound,
            "{what}: failed after {elapsed:?}, over the bound of {bound:?}: {error}"
        );
    }
    result
}

// ---------------------------------------------------------------------------
// Tokens and the ledger of what was acknowledged

/// A token for `user` whose secret values are all unique to `tag`.
fn token(user: Option<&str>, tag: &str) -> OAuthToken {
    OAuthToken {
        user_name: user.map(str::to_owned),
        client_id: Some("1000.FAULTS".into()),
        client_secret: Some(format!("secret-{tag}")),
        refresh_token: Some(format!("1000.refresh-{tag}")),
        access_token: Some(format!("1000.access-{tag}")),
        expiry_time: Some(4_000_000_000_000),
        api_domain: Some("https://www.zohoapis.com".into()),
        ..OAuthToken::default()
    }
}

fn without_id(token: &OAuthToken) -> OAuthToken {
    OAuthToken {
        id: None,
        ..token.clone()
    }
}

/// What the operations under test were told, to check against the backend
/// once the faults stop.
#[derive(Default)]
struct Ledger {
    /// Id → the values it may hold: the last acknowledged one first, then
    /// those of later saves that failed (and so may or may not have happened).
    live: BTreeMap<String, Vec<OAuthToken>>,
    /// Ids whose delete failed: each may or may not still exist.
    maybe_deleted: BTreeSet<String>,
    /// Ids whose delete returned `Ok`.
    deleted: BTreeSet<String>,
    /// Content (without id) of new-token saves that failed: a secret under an
    /// id never acknowledged may hold one of these, and nothing else.
    unacknowledged: Vec<OAuthToken>,
}

impl Ledger {
    /// Records a save of `sent` (the token as passed) and its outcome
    /// (`saved` is the token after an `Ok` save).
    fn saved(&mut self, sent: &OAuthToken, outcome: &Result<(), StoreError>, saved: &OAuthToken) {
        match (outcome, &sent.id) {
            (Ok(()), _) => {
                let id = saved.id.clone().expect("an Ok save sets the id");
                self.deleted.remove(&id);
                self.maybe_deleted.remove(&id);
                self.live.insert(id, vec![saved.clone()]);
            }
            (Err(_), Some(id)) if self.live.contains_key(id) => {
                let previous = self.live[id][0].clone();
                self.live
                    .get_mut(id)
                    .unwrap()
                    .push(sent.merged_over(&previous));
            }
            (Err(_), _) => self.unacknowledged.push(without_id(sent)),
        }
    }

    /// Records an update found by lookup key (the stored token was `stored`).
    fn updated(
        &mut self,
        stored: &OAuthToken,
        sent: &OAuthToken,
        outcome: &Result<(), StoreError>,
        saved: &OAuthToken,
    ) {
        let id = stored.id.clone().unwrap();
        match outcome {
            Ok(()) => {
                assert_eq!(saved.id.as_ref(), Some(&id), "an update keeps the id");
                self.live.insert(id, vec![saved.clone()]);
            }
            Err(_) => {
                // It may have applied over any value the token may hold, or
                // (if the token was deleted meanwhile) created it anew.
                let allowed = self.live.entry(id.clone()).or_default();
                let mut maybe: Vec<OAuthToken> =
                    allowed.iter().map(|v| sent.merged_over(v)).collect();
                maybe.push(sent.merged_over(stored));
                maybe.push(sent.clone().with_id(id));
                allowed.extend(maybe);
            }
        }
    }

    fn delete(&mut self, id: &str, outcome: &Result<(), StoreError>) {
        match outcome {
            Ok(()) => {
                self.live.remove(id);
                self.deleted.insert(id.to_owned());
            }
            Err(_) => {
                self.maybe_deleted.insert(id.to_owned());
            }
        }
    }

    /// Checks the backend, through `fresh` (a new store straight to
    /// LocalStack), against the ledger.
    async fn verify(&self, fresh: &SecretsManagerStore) {
        let listed = fresh
            .get_tokens()
            .await
            .expect("get_tokens once the faults stop");
        let mut by_id = BTreeMap::new();
        let mut users = BTreeMap::new();
        for token in &listed {
            let id = token.id.clone().expect("listed tokens have ids");
            assert!(
                by_id.insert(id.clone(), token.clone()).is_none(),
                "token {id} listed twice"
            );
            if let Some(user) = &token.user_name
                && let Some(other) = users.insert(user.clone(), id.clone())
            {
                panic!("user {user} has two stored tokens: {other} and {id}");
            }
        }
        for (id, allowed) in &self.live {
            let may_be_gone = self.maybe_deleted.contains(id);
            let read = fresh.find_token_by_id(id).await.expect("find_token_by_id");
            match (&read, by_id.get(id)) {
                (None, None) if may_be_gone => continue,
                (Some(read), Some(listed)) => {
                    assert_eq!(read, listed, "token {id}: read and listed differ");
                    assert!(
                        allowed.contains(read),
                        "token {id} holds a value no save wrote: {read:?}, expected one of {allowed:?}"
                    );
                }
                (read, listed) => {
                    let why = explain(fresh, id, allowed).await;
                    panic!(
                        "acknowledged token {id} is not durable: read {read:?}, listed {listed:?}\n{why}"
                    )
                }
            }
            let read = read.unwrap();
            if let Some(user) = &read.user_name {
                let found = fresh
                    .find_token(&OAuthToken::for_user(user.as_str()))
                    .await
                    .expect("find_token by user");
                let found = found.and_then(|t| t.id);
                if found.as_ref() != Some(id) {
                    let why = explain(fresh, id, allowed).await;
                    assert_eq!(
                        found,
                        Some(id.clone()),
                        "token {id} is not found by its user\n{why}"
                    );
                }
            }
        }
        for id in &self.deleted {
            assert!(!by_id.contains_key(id), "deleted token {id} is listed");
            assert_eq!(
                fresh.find_token_by_id(id).await.expect("find_token_by_id"),
                None,
                "deleted token {id} is readable"
            );
        }
        for (id, token) in &by_id {
            if self.live.contains_key(id) || self.maybe_deleted.contains(id) {
                continue;
            }
            assert!(
                self.unacknowledged.contains(&without_id(token)),
                "token {id} was never acknowledged nor attempted (a duplicate?): {token:?}"
            );
        }
    }
}

/// What became of acknowledged token `id` (one of the values `allowed`),
/// read straight from LocalStack: see `tests/common/diagnose.rs`.
async fn explain(fresh: &SecretsManagerStore, id: &str, allowed: &[OAuthToken]) -> String {
    let user = allowed.iter().find_map(|t| t.user_name.clone());
    common::diagnose::explain_missing(
        &checking_client().await,
        fresh.prefix(),
        [(id.to_owned(), user)],
        None,
    )
    .await
}

/// Seeds the rig's prefix, straight to LocalStack, with tokens for users
/// `{tag}-0..n`; returns them as saved.
async fn seed(rig: &Rig, tag: &str, n: usize) -> Vec<OAuthToken> {
    let direct = rig.fresh().await;
    let mut saved = Vec::new();
    for i in 0..n {
        let mut t = token(
            Some(&format!("{tag}-{i}@example.com")),
            &format!("{tag}-{i}"),
        );
        direct.save_token(&mut t).await.expect("seeding");
        saved.push(t);
    }
    saved
}

// ---------------------------------------------------------------------------
// Persistent faults: every operation is Ok or Backend, quickly; nothing
// acknowledged is lost.

/// Runs every store operation while `fault` hits every request, then checks
/// the ledger once the faults stop.
async fn every_operation_under(fault: Fault) {
    let rig = Rig::new(SHORT_ATTEMPT, SHORT_OPERATION, SHORT_SLOW).await;
    let seeded = seed(&rig, "seed", 3).await;
    let mut ledger = Ledger::default();
    for t in &seeded {
        ledger.live.insert(t.id.clone().unwrap(), vec![t.clone()]);
    }
    let [a, b, c] = [&seeded[0], &seeded[1], &seeded[2]];
    let store = &rig.store;
    let bound = rig.operation_timeout + MARGIN;
    rig.proxy.set(Schedule::Always(fault)).await;
    let name = |op: &str| format!("{op} under {fault:?}");

    let _ = bounded(
        &name("find_token_by_id"),
        bound,
        store.find_token_by_id(a.id.as_deref().unwrap()),
    )
    .await;
    let _ = bounded(
        &name("find_token by user"),
        bound,
        store.find_token(&OAuthToken::for_user(a.user_name.clone().unwrap())),
    )
    .await;
    let query = OAuthToken {
        user_name: None,
        access_token: None,
        ..b.clone()
    };
    let _ = bounded(
        &name("find_token by refresh token"),
        bound,
        store.find_token(&query),
    )
    .await;
    let query = OAuthToken {
        access_token: a.access_token.clone(),
        ..OAuthToken::default()
    };
    let _ = bounded(
        &name("find_token by access token"),
        bound,
        store.find_token(&query),
    )
    .await;

    // A new token with a generated id.
    let sent = token(Some("new@example.com"), "new");
    let mut saved = sent.clone();
    let outcome = bounded(&name("save_token new"), bound, store.save_token(&mut saved)).await;
    ledger.saved(&sent, &outcome, &saved);

    // A new token under an explicit id.
    let sent = token(Some("explicit@example.com"), "explicit").with_id("explicit-id");
    let mut saved = sent.clone();
    let outcome = bounded(
        &name("save_token with id"),
        bound,
        store.save_token(&mut saved),
    )
    .await;
    ledger.saved(&sent, &outcome, &saved);

    // A token without lookup key (refresh token only): always a new id.
    let sent = OAuthToken {
        refresh_token: Some("1000.refresh-keyless".into()),
        ..OAuthToken::default()
    };
    let mut saved = sent.clone();
    let outcome = bounded(
        &name("save_token without lookup key"),
        bound,
        store.save_token(&mut saved),
    )
    .await;
    ledger.saved(&sent, &outcome, &saved);

    // The hourly refresh: a new access token for a stored user.
    let sent = OAuthToken {
        access_token: Some("1000.access-refreshed".into()),
        expiry_time: Some(4_100_000_000_000),
        ..OAuthToken::for_user(a.user_name.clone().unwrap())
    };
    let mut saved = sent.clone();
    let outcome = bounded(
        &name("save_token refresh"),
        bound,
        store.save_token(&mut saved),
    )
    .await;
    ledger.updated(a, &sent, &outcome, &saved);

    // An update by id that changes the refresh token (an index write).
    let sent = OAuthToken {
        refresh_token: Some("1000.refresh-rotated".into()),
        ..OAuthToken::default().with_id(b.id.clone().unwrap())
    };
    let mut saved = sent.clone();
    let outcome = bounded(
        &name("save_token by id"),
        bound,
        store.save_token(&mut saved),
    )
    .await;
    ledger.updated(b, &sent, &outcome, &saved);

    let id = c.id.clone().unwrap();
    let outcome = bounded(&name("delete_token"), bound, store.delete_token(&id)).await;
    ledger.delete(&id, &outcome);
    let _ = bounded(
        &name("delete_token absent"),
        bound,
        store.delete_token("never-saved"),
    )
    .await;
    let _ = bounded(&name("get_tokens"), bound, store.get_tokens()).await;
    let _ = bounded(&name("index_stats"), bound, store.index_stats()).await;
    let _ = bounded(&name("repair"), bound, store.repair()).await;

    assert!(
        rig.proxy.injected() > 0 || fault == Fault::Refuse,
        "no fault was injected"
    );
    rig.proxy.set(Schedule::PassThrough).await;
    ledger.verify(&rig.fresh().await).await;

    // Last, the operation that may remove everything: after it fails, what
    // is left is still consistent (each listed token readable), and it
    // succeeds once the faults stop.
    rig.proxy.set(Schedule::Always(fault)).await;
    let outcome = bounded(&name("delete_tokens"), bound, store.delete_tokens()).await;
    rig.proxy.set(Schedule::PassThrough).await;
    if outcome.is_err() {
        for id in ledger.live.keys().cloned().collect::<Vec<_>>() {
            ledger.maybe_deleted.insert(id);
        }
    } else {
        ledger = Ledger::default();
    }
    ledger.verify(&rig.fresh().await).await;
    let fresh = rig.fresh().await;
    fresh
        .delete_tokens()
        .await
        .expect("delete_tokens once the faults stop");
    assert_eq!(fresh.get_tokens().await.unwrap(), vec![]);
}

/// Under each persistent fault (refused connections, connections closed before a response, resets mid-response, HTTP 500, HTTP 503, `ThrottlingException`, responses slower than the attempt timeout, unparseable responses), every store operation returns `Ok` or `StoreError::Backend` within the operation timeout (plus a scheduling margin), and once the faults stop every acknowledged token is readable, found and listed, with no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_faults_fail_fast_with_backend_errors_and_lose_nothing() {
    // Each fault on its own proxy and prefix, all at once.
    futures::future::join_all(
        [
            Fault::Refuse,
            Fault::Drop,
            Fault::ResetMidResponse,
            Fault::Http500,
            Fault::Http503,
            Fault::Throttle,
            Fault::Slow,
            Fault::Garble,
        ]
        .map(|fault| Box::pin(every_operation_under(fault))),
    )
    .await;
}

// ---------------------------------------------------------------------------
// Transient faults: invisible to the caller.

/// The panic of an operation that a transient fault must not fail.
fn fail<T>(schedule: Schedule, what: &'static str) -> impl FnOnce(StoreError) -> T {
    move |error| panic!("{what} under {schedule:?} (transient: must be invisible): {error:?}")
}

/// Runs a workload touching every store operation while `schedule` injects
/// faults the SDK retries; every operation must succeed with the same results
/// as without faults.
async fn workload_is_unaffected_by(schedule: Schedule) {
    let started = Instant::now();
    let slow = matches!(
        schedule,
        Schedule::FirstAttempt(Fault::Slow)
            | Schedule::FirstAttemptOfWrites(Fault::Slow)
            | Schedule::OneIn(_, Fault::Slow)
    );
    let attempt = if slow {
        RETRY_SLOW_ATTEMPT
    } else {
        RETRY_ATTEMPT
    };
    let rig = Rig::with_backoff(
        attempt,
        RETRY_OPERATION,
        RETRY_SLOW,
        Duration::from_millis(50),
    )
    .await;
    rig.proxy.set(schedule).await;
    let store = &rig.store;

    let mut a = token(Some("a@example.com"), "a");
    store
        .save_token(&mut a)
        .await
        .unwrap_or_else(fail(schedule, "save_token new"));
    let mut b = token(Some("b@example.com"), "b").with_id("b-explicit");
    store
        .save_token(&mut b)
        .await
        .unwrap_or_else(fail(schedule, "save_token with id"));
    let mut keyless = OAuthToken {
        refresh_token: Some("1000.refresh-keyless".into()),
        ..OAuthToken::default()
    };
    store
        .save_token(&mut keyless)
        .await
        .unwrap_or_else(fail(schedule, "save_token without lookup key"));

    let a_id = a.id.clone().unwrap();
    assert_eq!(
        store
            .find_token_by_id(&a_id)
            .await
            .unwrap_or_else(fail(schedule, "find_token_by_id")),
        Some(a.clone())
    );
    assert_eq!(
        store
            .find_token(&OAuthToken::for_user("a@example.com"))
            .await
            .unwrap_or_else(fail(schedule, "find_token by user")),
        Some(a.clone())
    );
    let query = OAuthToken {
        user_name: None,
        access_token: None,
        id: None,
        ..b.clone()
    };
    assert_eq!(
        store
            .find_token(&query)
            .await
            .unwrap_or_else(fail(schedule, "find_token by refresh token")),
        Some(b.clone())
    );
    let query = OAuthToken {
        access_token: a.access_token.clone(),
        ..OAuthToken::default()
    };
    assert_eq!(
        store
            .find_token(&query)
            .await
            .unwrap_or_else(fail(schedule, "find_token by access token")),
        Some(a.clone())
    );

    let mut refreshed = OAuthToken {
        access_token: Some("1000.access-a2".into()),
        expiry_time: Some(4_100_000_000_000),
        ..OAuthToken::for_user("a@example.com")
    };
    store
        .save_token(&mut refreshed)
        .await
        .unwrap_or_else(fail(schedule, "save_token refresh"));
    assert_eq!(refreshed.id.as_deref(), Some(a_id.as_str()));
    let mut rotated = OAuthToken {
        refresh_token: Some("1000.refresh-b2".into()),
        ..OAuthToken::default().with_id("b-explicit")
    };
    store
        .save_token(&mut rotated)
        .await
        .unwrap_or_else(fail(schedule, "save_token by id"));

    let mut listed = store
        .get_tokens()
        .await
        .unwrap_or_else(fail(schedule, "get_tokens"));
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    let mut expected = vec![refreshed.clone(), rotated.clone(), keyless.clone()];
    expected.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(listed, expected, "get_tokens under {schedule:?}");
    assert_eq!(
        store
            .index_stats()
            .await
            .unwrap_or_else(fail(schedule, "index_stats"))
            .tokens,
        3
    );

    store
        .delete_token("b-explicit")
        .await
        .unwrap_or_else(fail(schedule, "delete_token"));
    assert_eq!(
        store
            .find_token_by_id("b-explicit")
            .await
            .unwrap_or_else(fail(schedule, "find_token_by_id")),
        None
    );
    let report = store
        .repair()
        .await
        .unwrap_or_else(fail(schedule, "repair"));
    assert!(
        report.indexed.is_empty() && report.dropped.is_empty() && report.corrupt.is_empty(),
        "repair found damage left by {schedule:?}: {report:?}"
    );

    let injected = rig.proxy.injected();
    assert!(injected > 0, "{schedule:?} injected no fault");
    rig.proxy.set(Schedule::PassThrough).await;
    let mut ledger = Ledger::default();
    ledger.live.insert(a_id, vec![refreshed]);
    ledger
        .live
        .insert(keyless.id.clone().unwrap(), vec![keyless]);
    ledger.deleted.insert("b-explicit".into());
    ledger.verify(&rig.fresh().await).await;

    rig.proxy.set(schedule).await;
    store
        .delete_tokens()
        .await
        .unwrap_or_else(fail(schedule, "delete_tokens"));
    rig.proxy.set(Schedule::PassThrough).await;
    eprintln!("workload under {schedule:?}: {:?}", started.elapsed());
    assert_eq!(rig.fresh().await.get_tokens().await.unwrap(), vec![]);
}

/// Transient faults within the SDK's retry budget are invisible: with the first attempt of every call failing (connection closed, reset mid-response after the request took effect, HTTP 500, HTTP 503, `ThrottlingException`, or, for writes, slower than the attempt timeout after the request took effect), or one request in three reset or throttled, every store operation succeeds with the results it has without faults, and leaves no duplicate or orphan (writes are idempotent under SDK retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_within_the_retry_budget_are_invisible() {
    futures::future::join_all(
        [
            Schedule::FirstAttempt(Fault::Drop),
            Schedule::FirstAttempt(Fault::ResetMidResponse),
            Schedule::FirstAttempt(Fault::Http500),
            Schedule::FirstAttempt(Fault::Http503),
            Schedule::FirstAttempt(Fault::Throttle),
            Schedule::FirstAttemptOfWrites(Fault::Slow),
            Schedule::OneIn(3, Fault::ResetMidResponse),
            Schedule::OneIn(3, Fault::Throttle),
        ]
        .map(|schedule| Box::pin(workload_is_unaffected_by(schedule))),
    )
    .await;
}

/// A short outage (nothing listening, connections refused) that ends within the SDK's retries is invisible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_refusal_is_invisible() {
    let rig = Rig::new(RETRY_ATTEMPT, RETRY_OPERATION, RETRY_SLOW).await;
    let store = rig.store.clone();
    let mut saved = Vec::new();
    for i in 0..3 {
        rig.proxy.set(Schedule::Always(Fault::Refuse)).await;
        let save = tokio::spawn({
            let store = store.clone();
            async move {
                let mut t = token(
                    Some(&format!("outage-{i}@example.com")),
                    &format!("outage-{i}"),
                );
                store.save_token(&mut t).await.map(|()| t)
            }
        });
        // The first attempt is refused; the retry, after the SDK's backoff
        // (up to 1 s), finds the proxy listening again.
        tokio::time::sleep(Duration::from_millis(20)).await;
        rig.proxy.set(Schedule::PassThrough).await;
        let started = Instant::now();
        saved.push(save.await.unwrap().expect("save across a short outage"));
        eprintln!("save {i} across a short outage: {:?}", started.elapsed());
    }
    let mut ledger = Ledger::default();
    for t in saved {
        ledger.live.insert(t.id.clone().unwrap(), vec![t]);
    }
    ledger.verify(&rig.fresh().await).await;
}

// ---------------------------------------------------------------------------
// Mixed faults: some operations fail, none loses an acknowledged token.

/// Under a random mix of every fault on a third of all requests (retries included, so some operations fail), each operation is `Ok` or `StoreError::Backend`, and once the faults stop every acknowledged token is durable, no failed save left a duplicate, and the index needs no repair beyond dropping entries of saves that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_faults_never_lose_acknowledged_tokens() {
    let rig = Rig::with_backoff(
        SHORT_ATTEMPT,
        SHORT_OPERATION,
        SHORT_SLOW,
        Duration::from_millis(100),
    )
    .await;
    let store = &rig.store;
    let faults = [
        Fault::Drop,
        Fault::ResetMidResponse,
        Fault::Http500,
        Fault::Http503,
        Fault::Throttle,
        Fault::Slow,
        Fault::Garble,
    ];
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..)),
    );
    let seed = rng.get_seed();
    let mut ledger = Ledger::default();
    let mut outcomes = BTreeMap::<&str, (u32, u32)>::new();
    // A store operation makes several calls, each bounded by the operation
    // timeout; the store has no deadline of its own.
    let bound = 12 * rig.operation_timeout + MARGIN;
    for step in 0..30 {
        let fault = faults[rng.usize(..faults.len())];
        rig.proxy.set(Schedule::EveryNth(3, fault)).await;
        let known: Vec<String> = ledger.live.keys().cloned().collect();
        let what = format!("step {step} (seed {seed}) under every 3rd request {fault:?}");
        let (op, ok) = match rng.u8(..6) {
            0 | 1 => {
                let tag = format!("mixed-{step}");
                let sent = token(Some(&format!("{tag}@example.com")), &tag);
                let mut saved = sent.clone();
                let outcome = bounded(&what, bound, store.save_token(&mut saved)).await;
                ledger.saved(&sent, &outcome, &saved);
                ("save new", outcome.is_ok())
            }
            2 if !known.is_empty() => {
                let id = &known[rng.usize(..known.len())];
                let previous = ledger.live[id][0].clone();
                let sent = OAuthToken {
                    access_token: Some(format!("1000.access-step-{step}")),
                    refresh_token: rng.bool().then(|| format!("1000.refresh-step-{step}")),
                    ..OAuthToken::default().with_id(id.clone())
                };
                let mut saved = sent.clone();
                let outcome = bounded(&what, bound, store.save_token(&mut saved)).await;
                ledger.updated(&previous, &sent, &outcome, &saved);
                ("save update", outcome.is_ok())
            }
            3 if !known.is_empty() => {
                let id = known[rng.usize(..known.len())].clone();
                let outcome = bounded(&what, bound, store.delete_token(&id)).await;
                ledger.delete(&id, &outcome);
                ("delete_token", outcome.is_ok())
            }
            4 if !known.is_empty() => {
                let id = &known[rng.usize(..known.len())];
                let outcome = bounded(&what, bound, store.find_token_by_id(id)).await;
                if let Ok(found) = &outcome {
                    // Ok reads are right: the value is one a save may have written.
                    if !ledger.maybe_deleted.contains(id) {
                        let found = found.as_ref().expect("an acknowledged token reads");
                        assert!(ledger.live[id].contains(found), "{what}: read {found:?}");
                    }
                }
                ("find_token_by_id", outcome.is_ok())
            }
            _ => {
                let outcome = bounded(&what, bound, store.get_tokens()).await;
                ("get_tokens", outcome.is_ok())
            }
        };
        let counts = outcomes.entry(op).or_default();
        if ok {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    rig.proxy.set(Schedule::PassThrough).await;
    eprintln!("mixed faults (seed {seed}): (ok, failed) by operation {outcomes:?}");
    ledger.verify(&rig.fresh().await).await;
    // An index entry without a secret (a new save that failed after indexing)
    // is expected; a secret the index misses is an orphan.
    let report = rig.fresh().await.repair().await.expect("repair");
    assert!(
        report.corrupt.is_empty() && report.duplicate_users.is_empty(),
        "seed {seed}: {report:?}"
    );
    for id in &report.indexed {
        assert!(
            !ledger.live.contains_key(id),
            "seed {seed}: acknowledged token {id} was not indexed: {report:?}"
        );
    }
    rig.fresh().await.delete_tokens().await.unwrap();
}
