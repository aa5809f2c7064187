//! Secrets Manager's version quota, counted: AWS keeps every version of a
//! secret for 24 hours and a secret holds about 100, so no workload here may
//! give any secret more than 100 versions in any 24-hour window. LocalStack
//! enforces none of it; the version ledger of the test harness counts every
//! version each call makes (lost compare-and-swap attempts included) on a
//! clock the tests move, so a simulated day takes minutes.
//!
//! The workloads run one at a time and clean up after themselves, passed or
//! failed: LocalStack scans every secret on every call, so a call costs it
//! more the more secrets it holds. They write 2,000 tokens by default (200
//! refreshed hourly), which `cargo test` finishes in minutes; the figures in
//! BENCHMARKS.md are from `QUOTA_TOKENS=10000` (1,000 refreshed hourly),
//! which takes LocalStack the better part of an hour.
//! Run with `--nocapture` for the figures in BENCHMARKS.md.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use zoho_token_store::{OAuthToken, SecretsManagerStore, StoreError, TokenStore};

use common::Harness;

/// One workload at a time: they each hold thousands of secrets.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How many tokens the large workloads write (`QUOTA_TOKENS`, default 2,000).
fn token_count() -> usize {
    std::env::var("QUOTA_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

/// Runs `workload` on a fresh harness, one workload at a time, and deletes
/// every secret under its prefix afterwards, passed or failed: thousands of
/// leftover secrets would slow every later call to LocalStack.
async fn run<F, Fut>(workload: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _serial = SERIAL.lock().await;
    let h = common::harness().await;
    let (client, prefix) = (h.client.clone(), h.prefix.clone());
    let outcome = tokio::spawn(workload(h)).await;
    common::delete_prefix(&client, &prefix).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// A store on the harness's prefix whose clock is the ledger's: moving the
/// ledger's clock moves the store's day too.
fn store_on_ledger_clock(h: &Harness) -> SecretsManagerStore {
    let clock = h.ledger.clock().clone();
    SecretsManagerStore::builder()
        .client(h.client.clone())
        .prefix(h.prefix.clone())
        .clock(move || clock.now())
        // LocalStack slows as it fills up (it scans every secret on every
        // call): patient timeouts, as the real service would not need.
        .attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build()
        .expect("a store")
}

/// Token `n` as the Zoho SDK saves it after the grant: every field set.
fn token(n: usize) -> OAuthToken {
    OAuthToken {
        access_token: Some(format!("1000.access-{n:05}.0")),
        expiry_time: Some(1_900_000_000_000),
        api_domain: Some("https://www.zohoapis.com".into()),
        ..OAuthToken::from_refresh_token(
            "1000.CLIENTID0123456789",
            "client-secret-0123456789",
            format!("1000.refresh-{n:05}.0123456789abcdef"),
        )
        .with_user_name(format!("user{n:05}@example.com"))
    }
}

/// What a caller does with an operation that failed with a backend error:
/// try again (LocalStack 4.13 fails some concurrent writes with
/// `InternalError`, and the SDK's retry quota runs dry over 10,000 writes).
/// Every operation retried here is safe to repeat: a batch or a token saved
/// again matches what the first attempt stored.
const ATTEMPTS: u32 = 10;
const BACKOFF: Duration = Duration::from_millis(300);

fn note_retry(_attempt: u32) {
    eprintln!("retrying after a backend error");
}

/// `save_tokens`, retried as [`ATTEMPTS`] says.
async fn save_all(store: &SecretsManagerStore, tokens: &mut [OAuthToken]) {
    for attempt in 1..=ATTEMPTS {
        match store.save_tokens(tokens).await {
            Ok(()) => return,
            Err(StoreError::Backend { .. }) if attempt < ATTEMPTS => {
                note_retry(attempt);
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            Err(error) => panic!("save_tokens: {error}"),
        }
    }
}

/// `save_token` of `token`, retried as [`ATTEMPTS`] says.
async fn save_one(store: &SecretsManagerStore, token: OAuthToken) -> OAuthToken {
    common::retry_backend(ATTEMPTS, BACKOFF, note_retry, || {
        let mut token = token.clone();
        async move { store.save_token(&mut token).await.map(|()| token) }
    })
    .await
    .expect("save_token")
}

/// `delete_tokens`, retried as [`ATTEMPTS`] says.
async fn delete_all(store: &SecretsManagerStore) {
    common::retry_backend(ATTEMPTS, BACKOFF, note_retry, || store.delete_tokens())
        .await
        .expect("delete_tokens");
}

/// Prints what the workload cost and asserts the quota.
async fn report(h: &Harness, store: &SecretsManagerStore, workload: &str, took: Duration) {
    let stats = store.index_stats().await.expect("index_stats");
    eprintln!(
        "{workload}: {:.1} s, {} calls {:?}; index: {} tokens, {} index secrets, {} leaves",
        took.as_secs_f64(),
        h.counter.total(),
        h.counter.snapshot(),
        stats.tokens,
        stats.shards,
        stats.leaves,
    );
    h.assert_within_version_quota();
}

/// `QUOTA_TOKENS` tokens saved one by one, eight at a time, over a
/// simulated day (10,000: an app that adds a token every 9 seconds for 24
/// hours). The index spreads
/// the new entries over its leaves and splits a leaf that has made 60
/// versions in a day, so no secret passes the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_saved_one_by_one_over_a_day_stay_within_the_quota() {
    run(|h| async move {
        let store = store_on_ledger_clock(&h);
        let n = token_count();
        let clock = h.ledger.clock().clone();
        let step = DAY / n as u32;
        let started = Instant::now();
        futures::stream::iter(0..n)
            .map(|i| {
                let (store, clock) = (&store, &clock);
                async move {
                    save_one(store, token(i)).await;
                    clock.advance(step);
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
        report(&h, &store, "one by one over a day", started.elapsed()).await;
        assert_eq!(store.index_stats().await.unwrap().tokens, n);

        // The day's user names are all found by another instance.
        let reader = h.instance();
        for i in (0..n).step_by(997) {
            let found = reader
                .find_token(&OAuthToken::for_user(format!("user{i:05}@example.com")))
                .await
                .expect("find_token");
            assert_eq!(found.and_then(|t| t.refresh_token), token(i).refresh_token);
        }
        delete_all(&store).await;
    })
    .await;
}

/// A `QUOTA_TOKENS`-token import through `save_tokens`, imported again (nothing
/// changes, nothing is written), then `delete_tokens`: each index secret is
/// written a bounded number of times however many tokens there are. A cold
/// lookup by user name reads one path of the index, not all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_imported_again_then_deleted_stays_within_the_quota() {
    run(|h| async move {
        let store = store_on_ledger_clock(&h);
        let n = token_count();
        let mut tokens: Vec<OAuthToken> = (0..n).map(token).collect();

        let started = Instant::now();
        save_all(&store, &mut tokens).await;
        report(&h, &store, "bulk import", started.elapsed()).await;
        assert_eq!(store.index_stats().await.unwrap().tokens, n);
        assert!(tokens.iter().all(|t| t.id.is_some()));

        // A cold instance finds a user with one or two index path reads (the
        // path down to its leaf) and one token read.
        let reader = h.instance();
        h.counter.reset();
        let query = OAuthToken::for_user(format!("user{:05}@example.com", n / 2));
        let found = reader
            .find_token(&query)
            .await
            .expect("find_token")
            .expect("found");
        assert_eq!(found.refresh_token, token(n / 2).refresh_token);
        eprintln!(
            "cold find_token by user at {n} tokens: {} calls {:?}",
            h.counter.total(),
            h.counter.snapshot()
        );
        assert!(h.counter.total() <= 3, "{:?}", h.counter.snapshot());

        // Importing the same tokens again changes nothing, and writes nothing.
        let versions = h.ledger.total();
        let mut again: Vec<OAuthToken> = (0..n).map(token).collect();
        h.counter.reset();
        let started = Instant::now();
        save_all(&h.instance(), &mut again).await;
        eprintln!(
            "second import: {:.1} s, {} calls {:?}",
            started.elapsed().as_secs_f64(),
            h.counter.total(),
            h.counter.snapshot()
        );
        assert_eq!(h.ledger.total(), versions, "a second import wrote versions");
        assert_eq!(again, tokens);

        h.counter.reset();
        let started = Instant::now();
        delete_all(&store).await;
        report(&h, &store, "delete_tokens", started.elapsed()).await;
        assert_eq!(store.index_stats().await.unwrap().tokens, 0);
    })
    .await;
}

/// `QUOTA_TOKENS / 10` tokens refreshed every hour for a day: each token secret gets 24
/// versions (plus its first), the index none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_hourly_refreshes_stays_within_the_quota() {
    run(|h| async move {
        let store = Arc::new(store_on_ledger_clock(&h));
        let n = token_count() / 10;
        let mut tokens: Vec<OAuthToken> = (0..n).map(token).collect();
        save_all(&store, &mut tokens).await;
        let index_before = index_versions(&h);

        let clock = h.ledger.clock().clone();
        let started = Instant::now();
        for hour in 1..=24 {
            clock.advance(Duration::from_secs(3600));
            futures::stream::iter(0..n)
                .map(|i| {
                    let store = Arc::clone(&store);
                    async move {
                        // What the Zoho SDK saves after a refresh: the user's token
                        // with a new access token and expiry.
                        let refreshed = OAuthToken {
                            access_token: Some(format!("1000.access-{i:05}.{hour}")),
                            expiry_time: Some(1_900_000_000_000 + hour * 3_600_000),
                            ..OAuthToken::for_user(format!("user{i:05}@example.com"))
                        };
                        save_one(&store, refreshed).await;
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<()>>()
                .await;
        }
        report(&h, &store, "24 hourly refreshes", started.elapsed()).await;
        assert_eq!(
            index_versions(&h),
            index_before,
            "refreshes wrote the index"
        );
        let busiest = h.ledger.max_in_window(DAY);
        // Created, then refreshed 24 times: at most 25 versions in any day.
        assert!(busiest.1 <= 25, "{busiest:?}");
        delete_all(&store).await;
    })
    .await;
}

/// Versions of the harness's index secrets so far.
fn index_versions(h: &Harness) -> usize {
    h.ledger
        .summary()
        .iter()
        .filter(|g| g.group.contains("/index"))
        .map(|g| g.versions)
        .sum()
}
