//! Scale: 10,000 tokens in one `SecretsManagerStore` on LocalStack.
//!
//! Slow (minutes), so ignored by default. One command runs it:
//!
//! ```text
//! cargo test --release --test scale -- --ignored --nocapture
//! ```
//!
//! `scale_10k` stores the tokens (one store instance, many saves in flight),
//! reads them back with `get_tokens`, reports the index shard count, then
//! re-runs this binary as a child process (`scale_memory_child`) that finds
//! every token by user name through a fresh store and reports the resident
//! memory (`VmRSS`) and live heap of a process whose store holds all of them
//! cached. A separate process, so that the writer's buffers and allocator
//! state do not blur the figure. Finally it deletes everything it made
//! (`ZTS_SCALE_KEEP=1` keeps it), prints the version ledger's figures and
//! asserts Secrets Manager's version quota (100 versions of a secret in 24
//! hours), which LocalStack does not enforce. `ZTS_SCALE_TOKENS` changes
//! the count. Call counts are API calls, not HTTP attempts.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Instant;

use common::{human, mib, realistic_token, vm_rss};
use futures::{StreamExt, TryStreamExt};
use zoho_token_store::{OAuthToken, StoreError, TokenStore, generate_id};

/// The system allocator, counting the bytes live on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_heap() -> u64 {
    LIVE.load(Ordering::Relaxed).max(0) as u64
}

/// Saves in flight while storing (one store instance: its index writes
/// are serialised, the token writes and reads around them overlap).
const SAVE_CONCURRENCY: usize = 32;
/// Lookups in flight while finding every token by user.
const FIND_CONCURRENCY: usize = 16;

/// `Backend` errors retried.
static RETRIES: AtomicUsize = AtomicUsize::new(0);

/// `op`, retried up to 5 times on `Backend` errors (see
/// `common::retry_backend`). Saves with an explicit id and reads are safe
/// to repeat. The count is reported.
async fn retried<T, F, Fut>(op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let count = |_| {
        RETRIES.fetch_add(1, Ordering::Relaxed);
    };
    common::retry_backend(6, std::time::Duration::from_millis(20), count, op).await
}

fn count() -> usize {
    std::env::var("ZTS_SCALE_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 10,000 tokens on LocalStack; run with --ignored --nocapture"]
async fn scale_10k() {
    let n = count();
    let (client, counter, ledger) = common::client_with_counter().await;
    let prefix = common::random_prefix_under("bench/scale");
    let writer = common::store_on(&client, &prefix);
    println!("scale: {n} tokens under {prefix}");

    // Store.
    let start = Instant::now();
    let stored = std::sync::atomic::AtomicUsize::new(0);
    futures::stream::iter(0..n)
        .map(|i| {
            let (writer, stored) = (&writer, &stored);
            async move {
                let t = realistic_token(i).with_id(generate_id());
                retried(|| {
                    let mut t = t.clone();
                    async move { writer.save_token(&mut t).await }
                })
                .await?;
                let done = stored.fetch_add(1, Ordering::Relaxed) + 1;
                if done % 1000 == 0 {
                    println!("  stored {done} after {}", human(start.elapsed()));
                }
                Ok::<_, StoreError>(())
            }
        })
        .buffer_unordered(SAVE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .expect("save_token");
    let store_time = start.elapsed();
    let store_calls = counter.snapshot();
    let writer_rss = vm_rss();

    let stats = writer.index_stats().await.expect("index_stats");
    assert_eq!(stats.tokens, n);

    // List.
    counter.reset();
    let start = Instant::now();
    let listed = retried(|| writer.get_tokens()).await.expect("get_tokens");
    let list_time = start.elapsed();
    let list_calls = counter.total();
    assert_eq!(listed.len(), n);
    let mut users: Vec<&str> = listed
        .iter()
        .map(|t| t.user_name.as_deref().unwrap())
        .collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(users.len(), n, "every token listed once");
    drop(listed);

    println!("\n| step | result |\n|---|---|");
    println!(
        "| store {n} tokens (save_token with ids, {SAVE_CONCURRENCY} in flight, 1 instance) | {} ({:.0} tokens/s), {} calls: {store_calls:?} |",
        human(store_time),
        n as f64 / store_time.as_secs_f64(),
        store_calls.values().sum::<u64>()
    );
    println!(
        "| index | {} tokens in {} shards |",
        stats.tokens, stats.shards
    );
    println!(
        "| LocalStack InternalErrors retried (store and list) | {} |",
        RETRIES.load(Ordering::Relaxed)
    );
    println!(
        "| get_tokens of {n} | {}, {list_calls} calls |",
        human(list_time)
    );
    println!(
        "| writer process VmRSS (its cache holds what it saved) | {:.1} MiB |",
        mib(writer_rss)
    );
    // A new instance's first token by user name, at n tokens: one call for
    // a token saved without an id (its id derives from the user name); the
    // derived id's miss plus the index path for the ones above, saved under
    // ids of their own (as an import keeps them).
    let own = retried(|| {
        let (writer, mut t) = (&writer, realistic_token(n));
        async move { writer.save_token(&mut t).await.map(|()| t) }
    })
    .await
    .expect("save_token without an id");
    let mut cold_calls = Vec::new();
    for user in [&own, &realistic_token(0)].map(|t| t.user_name.clone().unwrap()) {
        let cold = common::store_on(&client, &prefix);
        let query = OAuthToken::for_user(&user);
        counter.reset();
        let found = retried(|| cold.find_token(&query))
            .await
            .expect("cold find_token");
        assert_eq!(found.and_then(|t| t.user_name), Some(user));
        cold_calls.push(counter.snapshot());
    }
    assert_eq!(
        cold_calls[0].values().sum::<u64>(),
        1,
        "cold lookup of a token saved without an id: {:?}",
        cold_calls[0]
    );
    println!(
        "| cold find_token by user, {n} tokens stored | saved without an id: {:?}; under its own id: {:?} |",
        cold_calls[0], cold_calls[1]
    );
    retried(|| writer.delete_token(own.id.as_deref().unwrap()))
        .await
        .expect("delete_token");
    drop(writer);

    // Find each by user, in a fresh process.
    let child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["scale_memory_child", "--exact", "--ignored", "--nocapture"])
        .env("ZTS_SCALE_PREFIX", &prefix)
        .env("ZTS_SCALE_TOKENS", n.to_string())
        .output()
        .expect("child process");
    let out = String::from_utf8_lossy(&child.stdout);
    for line in out.lines().filter(|l| l.starts_with('|')) {
        println!("{line}");
    }
    assert!(
        child.status.success(),
        "memory child failed:\n{out}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );

    // Clean up.
    if std::env::var_os("ZTS_SCALE_KEEP").is_none() {
        let cleaner = common::store_on(&client, &prefix);
        counter.reset();
        let retries = RETRIES.load(Ordering::Relaxed);
        let start = Instant::now();
        retried(|| cleaner.delete_tokens())
            .await
            .expect("delete_tokens");
        let took = start.elapsed();
        let calls = counter.snapshot();
        println!(
            "| delete_tokens of {n} | {}, {} calls: {calls:?}; LocalStack InternalErrors retried: {} |",
            human(took),
            calls.values().sum::<u64>(),
            RETRIES.load(Ordering::Relaxed) - retries
        );
        let left = retried(|| cleaner.get_tokens()).await.expect("get_tokens");
        assert!(
            left.is_empty(),
            "{} tokens left after delete_tokens",
            left.len()
        );
        // The index secrets, whatever their names.
        common::delete_prefix(&client, &prefix).await;
    }
    eprintln!("{}", ledger.report());
    ledger.assert_within_quota();
}

/// Run by `scale_10k` in a child process; does nothing on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scale_10k in a child process"]
async fn scale_memory_child() {
    let Ok(prefix) = std::env::var("ZTS_SCALE_PREFIX") else {
        println!("scale_memory_child: nothing to do (run by scale_10k)");
        return;
    };
    let n = count();
    let (client, counter, _ledger) = common::client_with_counter().await;
    let reader = common::store_on(&client, &prefix);
    // Warm the runtime and the connection pool with one call outside the
    // store (its answer dropped), so that what grows from here on is the
    // store: its index snapshot and its token cache.
    let _ = client
        .get_secret_value()
        .secret_id(common::index_root(&prefix))
        .send()
        .await
        .expect("the index root");
    let (rss_before, heap_before) = (vm_rss(), live_heap());

    counter.reset();
    let start = Instant::now();
    // Token 0 alone first: the index snapshot is loaded, one token cached.
    let query = OAuthToken::for_user(realistic_token(0).user_name.unwrap());
    retried(|| reader.find_token(&query))
        .await
        .expect("find_token")
        .expect("token 0 found");
    let heap_index = live_heap();
    futures::stream::iter(1..n)
        .map(|i| {
            let reader = &reader;
            async move {
                let user = realistic_token(i).user_name.unwrap();
                let query = OAuthToken::for_user(user.clone());
                let found = retried(|| reader.find_token(&query))
                    .await?
                    .unwrap_or_else(|| panic!("{user} not found"));
                assert_eq!(found.user_name.as_deref(), Some(user.as_str()));
                Ok::<_, StoreError>(())
            }
        })
        .buffer_unordered(FIND_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .expect("find_token");
    let cold_time = start.elapsed();
    let cold_calls = counter.total();
    let (rss_after, heap_after) = (vm_rss(), live_heap());

    // Every token is now cached: a second pass makes no call.
    counter.reset();
    let start = Instant::now();
    for i in 0..n {
        let found = reader
            .find_token(&OAuthToken::for_user(realistic_token(i).user_name.unwrap()))
            .await
            .expect("find_token");
        assert!(found.is_some());
    }
    let warm_time = start.elapsed();
    let warm_calls = counter.total();

    println!(
        "| find each of {n} by user, cold store ({FIND_CONCURRENCY} in flight) | {} , {cold_calls} calls |",
        human(cold_time)
    );
    println!(
        "| find each of {n} by user again, all cached (sequential) | {} ({} each), {warm_calls} calls |",
        human(warm_time),
        human(warm_time / n as u32)
    );
    println!(
        "| reader process VmRSS, {n} tokens cached | {:.1} MiB (before the store's first call: {:.1} MiB; growth {:.1} MiB) |",
        mib(rss_after),
        mib(rss_before),
        mib(rss_after.saturating_sub(rss_before))
    );
    println!(
        "| reader live heap, {n} tokens cached | {:.1} MiB (before the store's first call: {:.1} MiB; growth, index and cache, {:.1} MiB = {} bytes a token) |",
        mib(heap_after),
        mib(heap_before),
        mib(heap_after.saturating_sub(heap_before)),
        heap_after.saturating_sub(heap_before) / n as u64
    );
    println!(
        "| of which the index snapshot (heap after the first find) | {:.1} MiB; the token cache: {:.1} MiB = {} bytes a token |",
        mib(heap_index.saturating_sub(heap_before)),
        mib(heap_after.saturating_sub(heap_index)),
        heap_after.saturating_sub(heap_index) / (n as u64 - 1).max(1)
    );
    println!(
        "| LocalStack InternalErrors retried (find) | {} |",
        RETRIES.load(Ordering::Relaxed)
    );
    assert_eq!(warm_calls, 0, "a store holding every token cached");
}
