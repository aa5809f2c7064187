//! Benchmarks of `ZohoAuth` over `SecretsManagerStore` on LocalStack and the
//! fake Zoho of `tests/fake_zoho`, each paired with its baseline in the
//! same run.
//!
//! ```text
//! localstack/start && cargo bench --bench auth
//! ```
//!
//! - `warm`: `access_token` for a user whose token is valid, against the AWS
//!   caching crate's cache hit on the same token secret.
//! - `cold`: a first token as a new Lambda instance gets it (load the AWS
//!   config, build the store and `ZohoAuth`, `access_token` by user name:
//!   fresh clients and connections each time) against the plain SDK's
//!   load-config + `GetSecretValue` of the token's secret.
//! - `fleet` (counts, not timed): 6 processes × 20 callers over one prefix
//!   with an expired token, with the refresh lease and without it (each
//!   process refreshing on its own): calls to Zoho and to Secrets Manager.
//!
//! `ZTS_BENCH=warm,cold,fleet` runs only some sections (default: all).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fake_zoho/mod.rs"]
mod fake_zoho;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_secretsmanager_caching::SecretsManagerCachingClient;
use common::{CallCounter, human, token_secret};
use criterion::Criterion;
use fake_zoho::{CLIENT_ID, CLIENT_SECRET, Fake};
use tokio::runtime::Runtime;
use zoho_token_store::auth::ZohoAuth;
use zoho_token_store::{OAuthToken, SecretsManagerStore, StoreError, TokenStore};

const USER: &str = "bench@example.com";
const PROCESSES: usize = 6;
const CALLERS: usize = 20;

fn enabled(section: &str) -> bool {
    std::env::var("ZTS_BENCH").map_or(true, |v| {
        v.split(',')
            .any(|s| s.trim() == section || s.trim() == "all")
    })
}

/// Saves a token for `user` whose access token has `left_ms` left.
async fn seed(store: &SecretsManagerStore, fake: &Fake, user: &str, left_ms: i64) -> OAuthToken {
    let mut token = OAuthToken {
        user_name: Some(user.into()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        refresh_token: Some(fake.refresh_token_of(user, "Bench User")),
        access_token: Some(format!(
            "1000.bench-access-{}",
            uuid::Uuid::new_v4().simple()
        )),
        expiry_time: Some(common::now_millis() + left_ms),
        ..OAuthToken::default()
    };
    store.save_token(&mut token).await.expect("seed");
    token
}

fn auth_on(store: impl TokenStore + 'static, fake: &Fake) -> ZohoAuth {
    ZohoAuth::builder(store)
        .accounts_url(fake.url())
        .build()
        .expect("auth")
}

/// Warm `access_token` vs the AWS caching crate's hit on the same secret.
fn warm(c: &mut Criterion, rt: &Runtime, client: &Client, fake: &Fake, prefixes: &mut Vec<String>) {
    let prefix = common::random_prefix_under("bench/auth-warm");
    prefixes.push(prefix.clone());
    let store = common::store_on(client, &prefix);
    let token = rt.block_on(seed(&store, fake, USER, 3_600_000));
    let name = token_secret(&prefix, token.id.as_deref().unwrap());
    let auth = auth_on(store, fake);
    let query = OAuthToken::for_user(USER);
    let aws = SecretsManagerCachingClient::new(
        client.clone(),
        NonZeroUsize::new(1000).unwrap(),
        Duration::from_secs(300),
        false,
    )
    .expect("aws caching client");
    rt.block_on(async {
        auth.access_token(&query).await.expect("first access_token");
        aws.get_secret_value(&name, None, None, false)
            .await
            .expect("first aws get");
    });
    // As a caller uses each: ask, read the bearer (or the secret string), drop.
    let ours = || async { black_box(auth.access_token(&query).await.unwrap().as_str().len()) };
    let theirs = || async {
        let value = aws
            .get_secret_value(&name, None, None, false)
            .await
            .unwrap();
        black_box(value.secret_string.as_deref().map_or(0, str::len))
    };
    let mut g = c.benchmark_group("auth_warm");
    g.bench_function("access_token_by_user", |b| b.to_async(rt).iter(ours));
    g.bench_function("aws_caching_hit", |b| b.to_async(rt).iter(theirs));
    g.finish();

    // The same on two threads at once, each on a runtime of its own: the
    // time per call of the pair (contention shows as a slower pair).
    let mut g = c.benchmark_group("auth_warm_2_threads");
    g.bench_function("access_token_by_user", |b| {
        b.iter_custom(|iters| on_two_threads(iters, ours));
    });
    g.bench_function("aws_caching_hit", |b| {
        b.iter_custom(|iters| on_two_threads(iters, theirs));
    });
    g.finish();
}

/// Runs `call` `iters` times in all, half on each of two threads with a
/// current-thread runtime each, and answers the wall time.
fn on_two_threads<F, Fut>(iters: u64, call: F) -> Duration
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = usize>,
{
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    for _ in 0..iters / 2 {
                        call().await;
                    }
                });
            });
        }
    });
    started.elapsed()
}

/// A first token in a new instance vs the plain SDK's first secret.
fn cold(c: &mut Criterion, rt: &Runtime, client: &Client, fake: &Fake, prefixes: &mut Vec<String>) {
    let prefix = common::random_prefix_under("bench/auth-cold");
    prefixes.push(prefix.clone());
    let store = common::store_on(client, &prefix);
    let token = rt.block_on(seed(&store, fake, USER, 3_600_000));
    let name = token_secret(&prefix, token.id.as_deref().unwrap());
    let accounts = fake.url();
    let mut g = c.benchmark_group("auth_cold");
    g.sample_size(20);
    g.bench_function("from_env_build_access_token", |b| {
        b.to_async(rt).iter(|| async {
            let store = SecretsManagerStore::from_env(prefix.clone()).await.unwrap();
            let auth = ZohoAuth::builder(store)
                .accounts_url(accounts.clone())
                .build()
                .unwrap();
            black_box(
                auth.access_token(&OAuthToken::for_user(USER))
                    .await
                    .unwrap(),
            )
        });
    });
    g.bench_function("sdk_load_config_get_secret_value", |b| {
        b.to_async(rt).iter(|| async {
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let client = Client::new(&config);
            black_box(
                client
                    .get_secret_value()
                    .secret_id(&name)
                    .send()
                    .await
                    .unwrap(),
            )
        });
    });
    g.finish();
}

/// `SecretsManagerStore` without its refresh lease: the trait's provided
/// `refresh_lease`, so every process refreshes on its own (the naive fleet).
struct WithoutLease(SecretsManagerStore);

#[async_trait]
impl TokenStore for WithoutLease {
    async fn find_token(&self, token: &OAuthToken) -> Result<Option<OAuthToken>, StoreError> {
        self.0.find_token(token).await
    }
    async fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>, StoreError> {
        self.0.find_token_by_id(id).await
    }
    async fn save_token(&self, token: &mut OAuthToken) -> Result<(), StoreError> {
        self.0.save_token(token).await
    }
    async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        self.0.delete_token(id).await
    }
    async fn get_tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        self.0.get_tokens().await
    }
    async fn delete_tokens(&self) -> Result<(), StoreError> {
        self.0.delete_tokens().await
    }
}

/// One fleet: `PROCESSES` instances × `CALLERS` concurrent callers with an
/// expired token; the calls to Zoho and to Secrets Manager it makes.
async fn fleet(
    client: &Client,
    counter: &CallCounter,
    prefix: &str,
    leased: bool,
) -> (usize, BTreeMap<String, u64>, Duration) {
    let fake = Fake::start().await;
    fake.delay_ms
        .store(200, std::sync::atomic::Ordering::SeqCst);
    let store = common::store_on(client, prefix);
    seed(&store, &fake, USER, -1_000).await;
    let fleet: Vec<ZohoAuth> = (0..PROCESSES)
        .map(|_| {
            let store = common::store_on(client, prefix);
            if leased {
                auth_on(store, &fake)
            } else {
                auth_on(WithoutLease(store), &fake)
            }
        })
        .collect();
    counter.reset();
    let started = Instant::now();
    let calls = fleet.iter().flat_map(|auth| {
        (0..CALLERS).map(move |_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.access_token(&OAuthToken::for_user(USER)).await })
        })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().expect("access_token");
    }
    (fake.calls(), counter.snapshot(), started.elapsed())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (client, counter, _ledger) = rt.block_on(common::client_with_counter());
    let fake = rt.block_on(Fake::start());
    let mut c = Criterion::default().configure_from_args();
    let mut prefixes = Vec::new();
    if enabled("warm") {
        warm(&mut c, &rt, &client, &fake, &mut prefixes);
    }
    if enabled("cold") {
        cold(&mut c, &rt, &client, &fake, &mut prefixes);
    }
    c.final_summary();
    if enabled("fleet") {
        println!("\n## Fleet: {PROCESSES} processes × {CALLERS} callers, expired token\n");
        println!(
            "| fleet | Zoho calls | Secrets Manager calls | by API | time |\n|---|---|---|---|---|"
        );
        for (label, leased) in [
            ("refresh lease (SecretsManagerStore)", true),
            ("each process on its own", false),
        ] {
            let prefix = common::random_prefix_under("bench/auth-fleet");
            prefixes.push(prefix.clone());
            let (zoho, calls, took) = rt.block_on(fleet(&client, &counter, &prefix, leased));
            let total: u64 = calls.values().sum();
            let by: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
            println!(
                "| {label} | {zoho} | {total} | {} | {} |",
                by.join(", "),
                human(took)
            );
        }
    }
    rt.block_on(async {
        for prefix in prefixes {
            common::delete_prefix(&client, &prefix).await;
        }
    });
}
