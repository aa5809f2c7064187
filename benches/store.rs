//! Benchmarks of `SecretsManagerStore` against LocalStack, each paired with
//! the baseline a user would reach for instead, measured in the same run.
//!
//! ```text
//! localstack/start && cargo bench --bench store
//! ```
//!
//! `ZTS_BENCH=warm,cold,concurrent,list,write,delete` runs only some
//! sections (default: all). Criterion prints the timings (medians are in
//! `target/criterion/*/*/new/estimates.json`); this file then prints the
//! one-shot timings and the API-call table, counted by an SDK interceptor
//! in separate passes (never while timing). The table counts API calls, one
//! per call whatever the SDK's retries (the figures in BENCHMARKS.md up to
//! the one-support-module change counted HTTP attempts; they differ only
//! where LocalStack failed an attempt the SDK retried).
//!
//! Runtime on the 2-core reference machine: about 5 minutes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_secretsmanager_caching::SecretsManagerCachingClient;
use common::{CallCounter, human, realistic_token, token_secret};
use criterion::{BatchSize, Criterion};
use futures::{StreamExt, TryStreamExt};
use std::hint::black_box;
use tokio::runtime::Runtime;
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore, generate_id};

/// Rows of the API-call table: (operation, calls by API name).
static CALLS: Mutex<Vec<(String, BTreeMap<String, u64>)>> = Mutex::new(Vec::new());
/// One-shot timings: (operation, time).
static ONE_SHOTS: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

const AWS_CACHE_TTL: Duration = Duration::from_secs(300);
/// Concurrency used to fill a prefix with tokens (not a measured figure).
const FILL_CONCURRENCY: usize = 16;

/// Everything the benches share: one runtime, one counted client.
struct Env {
    client: Client,
    counter: Arc<CallCounter>,
    prefixes: Mutex<Vec<String>>,
}

impl Env {
    fn store(&self, prefix: &str) -> SecretsManagerStore {
        common::store_on(&self.client, prefix)
    }

    fn new_prefix(&self, label: &str) -> String {
        let prefix = common::random_prefix_under(&format!("bench/{label}"));
        self.prefixes.lock().unwrap().push(prefix.clone());
        prefix
    }

    fn aws_cache(&self) -> SecretsManagerCachingClient {
        SecretsManagerCachingClient::new(
            self.client.clone(),
            NonZeroUsize::new(1000).unwrap(),
            AWS_CACHE_TTL,
            false,
        )
        .expect("aws caching client")
    }

    /// Runs `f` once, recording the calls it makes under `label`.
    async fn count<T>(&self, label: &str, f: impl Future<Output = T>) -> T {
        self.counter.reset();
        let out = f.await;
        let calls = self.counter.snapshot();
        CALLS.lock().unwrap().push((label.to_owned(), calls));
        out
    }

    /// Deletes every secret under the prefixes used (not timed).
    async fn cleanup(&self) {
        let prefixes = std::mem::take(&mut *self.prefixes.lock().unwrap());
        for prefix in prefixes {
            common::delete_prefix(&self.client, &prefix).await;
        }
    }
}

/// Stores tokens `range` under fresh ids, `FILL_CONCURRENCY` saves in flight.
async fn fill(store: &SecretsManagerStore, range: std::ops::Range<usize>) -> Vec<OAuthToken> {
    futures::stream::iter(range)
        .map(|n| async move {
            // Retried: LocalStack answers InternalError now and then under
            // load (a save with the same id is idempotent).
            let t = realistic_token(n).with_id(generate_id());
            let save = || {
                let mut t = t.clone();
                async move { store.save_token(&mut t).await.map(|()| t) }
            };
            common::retry_backend(5, Duration::from_millis(20), |_| {}, save).await
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .try_collect()
        .await
        .expect("fill")
}

/// The naive baseline of `get_tokens`: one `GetSecretValue` per id, in a loop.
async fn naive_loop(client: &Client, names: &[String]) -> Vec<OAuthToken> {
    let mut tokens = Vec::with_capacity(names.len());
    for name in names {
        let mut out = client.get_secret_value().secret_id(name).send().await;
        if out.is_err() {
            // Once more: LocalStack answers InternalError now and then under load.
            out = client.get_secret_value().secret_id(name).send().await;
        }
        let out = out.expect("GetSecretValue");
        let json = out.secret_string().expect("string");
        tokens.push(serde_json::from_str::<OAuthToken>(json).expect("token JSON"));
    }
    tokens
}

fn sdk_get(client: &Client, name: &str) -> impl Future<Output = ()> {
    let request = client.get_secret_value().secret_id(name).send();
    async move {
        black_box(request.await.expect("GetSecretValue"));
    }
}

fn sdk_batch_get(client: &Client, names: &[String]) -> impl Future<Output = ()> {
    let request = client
        .batch_get_secret_value()
        .set_secret_id_list(Some(names.to_vec()))
        .send();
    async move {
        let out = request.await.expect("BatchGetSecretValue");
        assert_eq!(out.secret_values().len(), 20);
    }
}

fn enabled(section: &str) -> bool {
    std::env::var("ZTS_BENCH").map_or(true, |v| {
        v.split(',')
            .any(|s| s.trim() == section || s.trim() == "all")
    })
}

// ---------------------------------------------------------------- sections

/// Warm reads: the store's cache hits vs the AWS caching crate's hit, a
/// plain moka future cache, and the bare clone of a token.
fn warm(c: &mut Criterion, rt: &Runtime, env: &Env) {
    let prefix = env.new_prefix("warm");
    let store = env.store(&prefix);
    let saved = rt.block_on(fill(&store, 0..1));
    let t = saved[0].clone();
    let id = t.id.clone().unwrap();
    let name = token_secret(&prefix, &id);
    let user_query = OAuthToken::for_user(t.user_name.clone().unwrap());

    // A fresh store instance, warmed by one read of each kind.
    let store = env.store(&prefix);
    let aws = env.aws_cache();
    rt.block_on(async {
        env.count("find_token_by_id, cold", store.find_token_by_id(&id))
            .await
            .unwrap();
        env.count("find_token_by_id, warm", store.find_token_by_id(&id))
            .await
            .unwrap();
        let cold_user = env.store(&prefix);
        env.count(
            "find_token by user, cold",
            cold_user.find_token(&user_query),
        )
        .await
        .unwrap()
        .expect("found by user");
        // Its first lookup by user reads the index (1 call); then warm.
        store
            .find_token(&user_query)
            .await
            .unwrap()
            .expect("found by user");
        env.count("find_token by user, warm", store.find_token(&user_query))
            .await
            .unwrap()
            .expect("found by user");
        env.count(
            "baseline: aws_secretsmanager_caching, cold get_secret_value",
            aws.get_secret_value(&name, None, None, false),
        )
        .await
        .unwrap();
        env.count(
            "baseline: aws_secretsmanager_caching, cache hit",
            aws.get_secret_value(&name, None, None, false),
        )
        .await
        .unwrap();
    });
    let moka_cache: moka::future::Cache<String, Arc<OAuthToken>> =
        moka::future::Cache::builder().max_capacity(10_000).build();
    rt.block_on(moka_cache.insert(id.clone(), Arc::new(t.clone())));

    let mut g = c.benchmark_group("warm");
    g.sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("store_find_token_by_id", |b| {
        b.to_async(rt)
            .iter(|| store.find_token_by_id(black_box(&id)))
    });
    g.bench_function("store_find_token_by_user", |b| {
        b.to_async(rt)
            .iter(|| store.find_token(black_box(&user_query)))
    });
    g.bench_function("aws_caching_hit", |b| {
        b.to_async(rt)
            .iter(|| aws.get_secret_value(black_box(&name), None, None, false))
    });
    g.bench_function("moka_future_get_clone", |b| {
        b.to_async(rt).iter(|| async {
            let hit = moka_cache.get(black_box(&id)).await;
            hit.map(|t| OAuthToken::clone(&t))
        })
    });
    g.bench_function("token_clone_only", |b| b.iter(|| black_box(&t).clone()));
    g.finish();
}

/// Cold reads: a fresh store (empty cache) per read, vs an uncached
/// `GetSecretValue` and a fresh AWS caching client.
fn cold(c: &mut Criterion, rt: &Runtime, env: &Env) {
    let prefix = env.new_prefix("cold");
    let store = env.store(&prefix);
    let saved = rt.block_on(fill(&store, 0..1));
    let id = saved[0].id.clone().unwrap();
    let name = token_secret(&prefix, &id);
    rt.block_on(env.count(
        "baseline: uncached GetSecretValue (SDK)",
        sdk_get(&env.client, &name),
    ));

    let mut g = c.benchmark_group("cold_read");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("sdk_get_secret_value", |b| {
        b.to_async(rt).iter(|| sdk_get(&env.client, &name))
    });
    g.bench_function("store_find_token_by_id_cold", |b| {
        b.to_async(rt).iter_batched(
            || env.store(&prefix),
            |store| {
                let id = id.clone();
                async move { store.find_token_by_id(&id).await.unwrap().unwrap() }
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("aws_caching_cold", |b| {
        b.to_async(rt).iter_batched(
            || env.aws_cache(),
            |aws| {
                let name = name.clone();
                async move {
                    aws.get_secret_value(&name, None, None, false)
                        .await
                        .unwrap()
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

const READERS: usize = 100;

async fn store_readers(store: SecretsManagerStore, id: Arc<str>) {
    let tasks: Vec<_> = (0..READERS)
        .map(|_| {
            let (store, id) = (store.clone(), Arc::clone(&id));
            tokio::spawn(async move { store.find_token_by_id(&id).await.unwrap().unwrap() })
        })
        .collect();
    for task in tasks {
        black_box(task.await.unwrap());
    }
}

async fn aws_readers(aws: Arc<SecretsManagerCachingClient>, name: Arc<str>) {
    let tasks: Vec<_> = (0..READERS)
        .map(|_| {
            let (aws, name) = (Arc::clone(&aws), Arc::clone(&name));
            tokio::spawn(async move {
                aws.get_secret_value(&name, None, None, false)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// 100 concurrent cold reads of one token (spawned tasks).
fn concurrent(c: &mut Criterion, rt: &Runtime, env: &Env) {
    let prefix = env.new_prefix("concurrent");
    let store = env.store(&prefix);
    let saved = rt.block_on(fill(&store, 0..1));
    let id: Arc<str> = saved[0].id.clone().unwrap().into();
    let name: Arc<str> = token_secret(&prefix, &id).into();
    rt.block_on(async {
        for round in 1..=3 {
            env.count(
                &format!("{READERS} concurrent cold find_token_by_id (round {round})"),
                store_readers(env.store(&prefix), Arc::clone(&id)),
            )
            .await;
        }
        for round in 1..=3 {
            env.count(
                &format!(
                    "baseline: {READERS} concurrent cold aws_secretsmanager_caching reads (round {round})"
                ),
                aws_readers(Arc::new(env.aws_cache()), Arc::clone(&name)),
            )
            .await;
        }
    });

    let mut g = c.benchmark_group("concurrent_cold_100");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("store", |b| {
        b.to_async(rt).iter_batched(
            || env.store(&prefix),
            |store| store_readers(store, Arc::clone(&id)),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("aws_caching", |b| {
        b.to_async(rt).iter_batched(
            || Arc::new(env.aws_cache()),
            |aws| aws_readers(aws, Arc::clone(&name)),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// `get_tokens` of N tokens vs a naive loop of `GetSecretValue` per id.
/// The 1,000-token prefix is then used for the `delete_tokens` one-shot.
fn list(c: &mut Criterion, rt: &Runtime, env: &Env, delete: bool) {
    for n in [100usize, 1000] {
        let prefix = env.new_prefix(&format!("list{n}"));
        let store = env.store(&prefix);
        let start = Instant::now();
        let saved = rt.block_on(fill(&store, 0..n));
        let took = start.elapsed();
        ONE_SHOTS.lock().unwrap().push((
            format!("fill: {n} new tokens by save_token with ids, {FILL_CONCURRENCY} in flight"),
            took,
        ));
        let names: Vec<String> = saved
            .iter()
            .map(|t| token_secret(&prefix, t.id.as_deref().unwrap()))
            .collect();
        rt.block_on(async {
            let listed = env
                .count(&format!("get_tokens, {n} tokens"), store.get_tokens())
                .await
                .unwrap();
            assert_eq!(listed.len(), n);
            let looped = env
                .count(
                    &format!("baseline: naive GetSecretValue loop, {n} tokens"),
                    naive_loop(&env.client, &names),
                )
                .await;
            assert_eq!(looped.len(), n);
            env.count(
                &format!("baseline: one BatchGetSecretValue of 20, {n} tokens stored"),
                sdk_batch_get(&env.client, &names[..20]),
            )
            .await;
            let stats = store.index_stats().await.unwrap();
            println!(
                "get_tokens_{n}: index holds {} tokens in {} shards",
                stats.tokens, stats.shards
            );
        });

        let mut g = c.benchmark_group(format!("get_tokens_{n}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_millis(if n > 100 { 100 } else { 2000 }));
        g.bench_function("store_get_tokens", |b| {
            b.to_async(rt).iter(|| async {
                let tokens = store.get_tokens().await.unwrap();
                assert_eq!(tokens.len(), n);
                tokens
            })
        });
        g.bench_function("naive_get_secret_value_loop", |b| {
            b.to_async(rt).iter(|| naive_loop(&env.client, &names))
        });
        // What one request of each kind costs LocalStack with N tokens stored.
        g.bench_function("sdk_one_get_secret_value", |b| {
            b.to_async(rt).iter(|| sdk_get(&env.client, &names[0]))
        });
        g.bench_function("sdk_one_batch_get_secret_value_of_20", |b| {
            b.to_async(rt)
                .iter(|| sdk_batch_get(&env.client, &names[..20]))
        });
        g.finish();

        if n == 1000 && delete {
            delete_tokens_one_shot(rt, env, &store, n);
        }
        rt.block_on(env.cleanup());
    }
}

/// `delete_tokens` of 1,000 tokens, once, vs a naive `DeleteSecret` loop
/// over 1,000 plain secrets of the same size.
fn delete_tokens_one_shot(rt: &Runtime, env: &Env, store: &SecretsManagerStore, n: usize) {
    rt.block_on(async {
        env.counter.reset();
        let start = Instant::now();
        // Run again if LocalStack fails a call under load (it is idempotent);
        // the time and calls then include the failed run, and the label says so.
        let mut runs = 1;
        while let Err(e) = store.delete_tokens().await {
            assert!(runs < 3, "delete_tokens: {e}");
            runs += 1;
        }
        let took = start.elapsed();
        let label = match runs {
            1 => format!("delete_tokens, {n} tokens"),
            runs => format!("delete_tokens, {n} tokens ({runs} runs: LocalStack InternalError)"),
        };
        CALLS
            .lock()
            .unwrap()
            .push((label.clone(), env.counter.snapshot()));
        ONE_SHOTS.lock().unwrap().push((label, took));
        assert!(store.get_tokens().await.unwrap().is_empty());

        // The baseline's secrets, created untimed.
        let prefix = env.new_prefix("naive-delete");
        let names: Vec<String> = (0..n).map(|i| format!("{prefix}/plain/{i}")).collect();
        let json = serde_json::to_string(&realistic_token(0)).unwrap();
        futures::stream::iter(names.clone())
            .map(|name| {
                let (client, json) = (env.client.clone(), json.clone());
                async move {
                    let create = || {
                        client
                            .create_secret()
                            .name(&name)
                            .secret_string(&json)
                            .send()
                    };
                    if create().await.is_err() {
                        // Once more: LocalStack fails a call now and then under load.
                        create().await.expect("CreateSecret");
                    }
                }
            })
            .buffer_unordered(FILL_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        env.counter.reset();
        let start = Instant::now();
        for name in &names {
            env.client
                .delete_secret()
                .secret_id(name)
                .force_delete_without_recovery(true)
                .send()
                .await
                .expect("DeleteSecret");
        }
        let took = start.elapsed();
        CALLS.lock().unwrap().push((
            format!("baseline: naive DeleteSecret loop, {n} secrets"),
            env.counter.snapshot(),
        ));
        ONE_SHOTS.lock().unwrap().push((
            format!("baseline: naive DeleteSecret loop, {n} secrets"),
            took,
        ));
    });
}

/// Writes: the hourly refresh and a new token, vs the bare SDK write.
fn write(c: &mut Criterion, rt: &Runtime, env: &Env) {
    let prefix = env.new_prefix("write");
    let store = env.store(&prefix);
    let saved = rt.block_on(fill(&store, 0..1)).remove(0);
    let refreshed = |n: u64| OAuthToken {
        access_token: Some(format!("1000.{n:032x}.a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2")),
        expiry_time: Some(common::now_millis() + 3_600_000),
        ..saved.clone()
    };
    let plain = format!("{prefix}/plain/put");
    let json = serde_json::to_string(&saved).unwrap();
    let next = std::sync::atomic::AtomicU64::new(1);
    let bump = || next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let new_token = |n: u64| realistic_token(1_000_000 + n as usize);
    rt.block_on(async {
        env.client
            .create_secret()
            .name(&plain)
            .secret_string(&json)
            .send()
            .await
            .expect("CreateSecret");
        let mut t = refreshed(bump());
        env.count(
            "save_token, hourly refresh (same user and refresh token)",
            store.save_token(&mut t),
        )
        .await
        .unwrap();
        env.count(
            "baseline: PutSecretValue (SDK)",
            env.client
                .put_secret_value()
                .secret_id(&plain)
                .secret_string(&json)
                .send(),
        )
        .await
        .unwrap();
        let mut t = new_token(bump());
        env.count(
            "save_token, new token (by user name, no id)",
            store.save_token(&mut t),
        )
        .await
        .unwrap();
        let mut t = new_token(bump()).with_id(generate_id());
        env.count(
            "save_token, new token with an explicit id",
            store.save_token(&mut t),
        )
        .await
        .unwrap();
        env.count(
            "baseline: CreateSecret (SDK)",
            env.client
                .create_secret()
                .name(format!("{prefix}/plain/{}", bump()))
                .secret_string(&json)
                .send(),
        )
        .await
        .unwrap();
    });

    let mut g = c.benchmark_group("save_token");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("store_hourly_refresh", |b| {
        b.to_async(rt).iter(|| async {
            let mut t = refreshed(bump());
            store.save_token(&mut t).await.unwrap();
        })
    });
    g.bench_function("sdk_put_secret_value", |b| {
        b.to_async(rt).iter(|| async {
            env.client
                .put_secret_value()
                .secret_id(&plain)
                .secret_string(&json)
                .send()
                .await
                .unwrap();
        })
    });
    g.bench_function("store_new_token", |b| {
        b.to_async(rt).iter(|| async {
            let mut t = new_token(bump());
            store.save_token(&mut t).await.unwrap();
        })
    });
    g.bench_function("sdk_create_secret", |b| {
        b.to_async(rt).iter(|| async {
            env.client
                .create_secret()
                .name(format!("{prefix}/plain/{}", bump()))
                .secret_string(&json)
                .send()
                .await
                .unwrap();
        })
    });
    g.finish();
    let stats = rt.block_on(store.index_stats()).unwrap();
    println!(
        "save_token: the index grew to {} tokens in {} shards",
        stats.tokens, stats.shards
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Counts calls, not HTTP attempts; the version ledger goes unread (the
    // benches rewrite one secret far more than 100 times on purpose).
    let (client, counter, _ledger) = rt.block_on(common::client_with_counter());
    let env = Env {
        client,
        counter,
        prefixes: Mutex::new(Vec::new()),
    };
    let mut c = Criterion::default().configure_from_args();
    let started = Instant::now();

    // Each section's secrets are deleted before the next: LocalStack looks a
    // secret up by scanning all of them, so leftovers would slow every call.
    if enabled("warm") {
        warm(&mut c, &rt, &env);
        rt.block_on(env.cleanup());
    }
    if enabled("cold") {
        cold(&mut c, &rt, &env);
        rt.block_on(env.cleanup());
    }
    if enabled("concurrent") {
        concurrent(&mut c, &rt, &env);
        rt.block_on(env.cleanup());
    }
    if enabled("write") {
        write(&mut c, &rt, &env);
        rt.block_on(env.cleanup());
    }
    if enabled("list") {
        list(&mut c, &rt, &env, enabled("delete"));
    }
    c.final_summary();

    println!("\n## One-shot timings\n");
    println!("| operation | time |\n|---|---|");
    for (label, took) in ONE_SHOTS.lock().unwrap().iter() {
        println!("| {label} | {} |", human(*took));
    }
    println!("\n## API calls (one run of each, counted by an SDK interceptor)\n");
    println!("| operation | calls | by API |\n|---|---|---|");
    for (label, calls) in CALLS.lock().unwrap().iter() {
        let total: u64 = calls.values().sum();
        let by: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        println!("| {label} | {total} | {} |", by.join(", "));
    }
    println!(
        "\nbench run took {} (before cleanup)",
        human(started.elapsed())
    );
    rt.block_on(env.cleanup());
}
