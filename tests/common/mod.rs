//! The one LocalStack support module of the integration tests (`mod
//! common;`), the benches and the stress writer (`#[path =
//! "../tests/common/mod.rs"] mod common;`).
//!
//! - [`localstack`] makes sure LocalStack answers, running `localstack/start`
//!   once per test binary. It panics with the script's output when that
//!   fails: a test that needs LocalStack fails, it never skips.
//! - [`client_with_counter`] is a Secrets Manager client for LocalStack whose
//!   [`CallCounter`] counts every API call (and separately every HTTP attempt) by
//!   operation name, for the API-call budgets, and whose [`VersionLedger`]
//!   records every secret version it creates, for Secrets Manager's version
//!   quota (100 versions a secret in 24 hours).
//! - [`random_prefix`], [`new_store`], [`new_store_with`] and [`harness_with`]
//!   give each test its own namespace, so tests run in parallel unaware of
//!   each other.
//! - [`token_secret`] names a token's secret; [`secret_names_under`] and
//!   [`delete_prefix`] find and remove what a test or bench left.
//! - [`realistic_token`], [`vm_rss`], [`mib`] and [`human`] are for the
//!   benches and the scale test.
#![allow(dead_code, unreachable_pub)]

pub mod diagnose;
mod ledger;
// The interceptor the CLI's meter is built on (the tests share it).
#[path = "../../src/bin/zoho-token-store/sdk_observer.rs"]
mod sdk_observer;

pub use ledger::*;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use futures::StreamExt;
use sdk_observer::{Observe, Observer};
use zoho_token_store::{OAuthToken, SecretsManagerStore, SecretsManagerStoreBuilder, StoreError};

/// The LocalStack endpoint: `AWS_ENDPOINT_URL`, default `http://127.0.0.1:4566`.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| "http://127.0.0.1:4566".to_owned())
    })
}

/// Ensures LocalStack answers at [`endpoint`] and returns the endpoint.
///
/// Runs `localstack/start` once per test binary (it reuses a LocalStack that
/// already runs, in about 20 ms). Panics with the script's output if it fails,
/// in every test that calls this.
pub async fn localstack() -> &'static str {
    localstack_blocking()
}

/// [`localstack`] for code outside an async context. It blocks while
/// LocalStack starts (up to the script's 120 s timeout).
pub fn localstack_blocking() -> &'static str {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        install_emulator_panic_note();
        let output = run_script("start", &[])?;
        // Say what the harness did, past the test's output capture (which
        // takes only `print!`/`eprint!`): a newcomer sees LocalStack start.
        if !output.contains("reused the one already running") {
            say(output.lines().filter(|l| l.contains("ready at")));
        }
        // Delete what finished test runs left, and warn when LocalStack is
        // loaded; a cleaning failure is said, not fatal.
        match run_script("clean", &[]) {
            Ok(output) | Err(output) => say(output.lines().filter(|l| !l.trim().is_empty())),
        }
        Ok(())
    });
    match started {
        Ok(()) => endpoint(),
        Err(report) => panic!(
            "LocalStack is required by this test and could not be started at {}.\n{report}",
            endpoint()
        ),
    }
}

/// Writes `lines` to this process's stderr directly, so that `cargo test`'s
/// output capture does not hide them.
pub fn say<'a>(lines: impl IntoIterator<Item = &'a str>) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
}

/// The words LocalStack's InternalError carries (moto iterating over its
/// secrets while another request changes them).
const EMULATOR_FAULT: [&str; 2] = ["dictionary changed size during iteration", "InternalError"];

/// Adds a note to the failure of any test whose panic message shows a
/// LocalStack `InternalError`: that is the emulator failing under load, not
/// something the store did, and a real Secrets Manager does not answer so.
fn install_emulator_panic_note() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if EMULATOR_FAULT.iter().any(|words| message.contains(words)) {
            eprintln!(
                "note: this failure carries LocalStack's InternalError, which the emulator \
                 answers under concurrent writes or when it holds thousands of secrets (it \
                 scans them all on each call); Secrets Manager does not. \
                 `localstack/clean --check` counts its secrets; `localstack/restart` \
                 gives a fresh one."
            );
        }
    }));
}

/// Runs `localstack/<name> <args>` from the repository; its output (stdout
/// and stderr), or why it failed with that output.
fn run_script(name: &str, args: &[&str]) -> Result<String, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = repo.join("localstack").join(name);
    // Output goes to a file, not a pipe: a LocalStack started in the
    // background can then never keep this process waiting on an open pipe.
    // CARGO_TARGET_TMPDIR is set for tests and benches, not for examples.
    let tmp = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let log_path = tmp.join(format!(
        "localstack-{name}-{}-{}.log",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot clone {}: {e}", log_path.display()))?;
    let status = Command::new(&script)
        .args(args)
        .current_dir(repo)
        .env("LOCALSTACK_ENDPOINT", endpoint())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status();
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    let _ = fs::remove_file(&log_path);
    match status {
        Ok(status) if status.success() => Ok(output),
        Ok(status) => Err(format!(
            "`{}` failed ({status}); its output:\n{output}",
            script.display()
        )),
        Err(e) => Err(format!("cannot run `{}`: {e}", script.display())),
    }
}

/// Counts the API calls a client makes, per operation name
/// (`"GetSecretValue"`, `"PutSecretValue"`, …): one per call the store
/// makes, whatever the SDK's retries; [`CallCounter::attempts`] counts every
/// HTTP attempt, retries included. Budgets are about the store's calls, so
/// a LocalStack hiccup the SDK retries does not fail them.
#[derive(Debug, Default)]
pub struct CallCounter {
    counts: Mutex<BTreeMap<String, u64>>,
    attempts: std::sync::atomic::AtomicU64,
}

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Calls of every operation.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Calls of operation `op` (e.g. `"GetSecretValue"`).
    pub fn count(&self, op: &str) -> u64 {
        self.lock().get(op).copied().unwrap_or(0)
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        self.lock().clear();
        self.attempts.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// HTTP attempts of every operation, SDK retries included.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The counts by operation name; operations not called are absent.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    fn record(&self, op: &str) {
        *self.lock().entry(op.to_owned()).or_insert(0) += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A panicking test must not hide the counts from the others.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The SDK interceptor that feeds this counter: calls once per call,
    /// attempts once per HTTP attempt, just before the request is sent.
    pub fn interceptor(self: &Arc<Self>) -> Observer {
        Observer::new("CallCounter", Arc::clone(self) as Arc<dyn Observe>)
    }
}

impl Observe for CallCounter {
    fn call(&self, operation: &str) {
        self.record(operation);
    }

    fn attempt(&self, _operation: &str) {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The SDK configuration for LocalStack: [`endpoint`], `us-east-1`,
/// credentials `test`/`test`. Starts LocalStack if needed.
pub async fn sdk_config() -> aws_config::SdkConfig {
    localstack().await;
    // LocalStack 4.13 answers a few concurrent writes with InternalError
    // ("dictionary changed size during iteration"): give the SDK room to
    // retry them, as it would a real service's 500.
    sdk_config_with(RetryConfig::standard().with_max_attempts(6)).await
}

/// [`sdk_config`] with `retry`, without starting LocalStack (a stress
/// writer process relies on the test that runs it for that).
pub async fn sdk_config_with(retry: RetryConfig) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "localstack"))
        .retry_config(retry)
        .load()
        .await
}

/// More patience than [`sdk_config`]'s for bursts of hundreds of concurrent
/// calls, which LocalStack (it scans every secret on each call) answers
/// slowly and now and then with `InternalError`: 10 attempts.
pub fn patient_retry() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(10)
}

/// A Secrets Manager client for LocalStack, configured by `config`, whose
/// calls `counter` counts and whose new secret versions `ledger` records.
fn instrumented_client(
    config: &aws_config::SdkConfig,
    counter: &Arc<CallCounter>,
    ledger: &Arc<VersionLedger>,
) -> Client {
    let config = aws_sdk_secretsmanager::config::Builder::from(config)
        .interceptor(counter.interceptor())
        .interceptor(ledger.interceptor())
        .build();
    Client::from_conf(config)
}

/// A Secrets Manager client for LocalStack whose calls `counter` counts
/// and whose new secret versions `ledger` records. Starts LocalStack if needed.
pub async fn client_counted_by(counter: &Arc<CallCounter>, ledger: &Arc<VersionLedger>) -> Client {
    instrumented_client(&sdk_config().await, counter, ledger)
}

/// A client with [`patient_retry`] whose new secret versions `ledger`
/// records (its calls are counted by a counter of its own). Does not start
/// LocalStack.
pub async fn patient_client(ledger: &Arc<VersionLedger>) -> Client {
    let config = sdk_config_with(patient_retry()).await;
    instrumented_client(&config, &CallCounter::new(), ledger)
}

/// A Secrets Manager client for LocalStack, the counter of its calls and
/// the ledger (on the wall clock) of the versions it creates. Starts
/// LocalStack if needed.
pub async fn client_with_counter() -> (Client, Arc<CallCounter>, Arc<VersionLedger>) {
    let counter = CallCounter::new();
    let ledger = VersionLedger::on_wall_clock();
    let client = client_counted_by(&counter, &ledger).await;
    (client, counter, ledger)
}

/// A fresh namespace, `test/<run>/<uuid>`, so parallel tests never see each
/// other's secrets.
pub fn random_prefix() -> String {
    random_prefix_under("test")
}

/// A fresh namespace under `root`: `<root>/<run>/<uuid>` (the benches use
/// `bench/<section>`), where `<run>` is [`run_segment`].
pub fn random_prefix_under(root: &str) -> String {
    format!("{root}/{}/{}", run_segment(), uuid::Uuid::new_v4().simple())
}

/// `run-<pid>-<start>`: this process and its start time (field 22 of
/// `/proc/self/stat`, clock ticks since boot), in every test prefix, so
/// that `localstack/clean` (run by [`localstack`] in each test binary, and
/// by `tests/run-all` at the end) deletes what a test left once its process
/// is gone, whether the test passed, failed or was killed.
pub fn run_segment() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let start = fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                // The command name (field 2) may hold spaces: count after its ')'.
                let fields = &stat[stat.rfind(')')? + 2..];
                fields.split_whitespace().nth(19).map(str::to_owned)
            })
            .unwrap_or_else(|| "0".to_owned());
        format!("run-{}-{start}", std::process::id())
    })
}

/// The name of token `id`'s secret in a store on `prefix`:
/// `<prefix>/tokens/<id>` (`<prefix>/tokens/` for an empty id).
pub fn token_secret(prefix: &str, id: &str) -> String {
    format!("{prefix}/tokens/{id}")
}

/// The name of the root secret of the index of a store on `prefix`
/// (`<prefix>/index/r`: the whole index while the store is small).
pub fn index_root(prefix: &str) -> String {
    format!("{prefix}/index/r")
}

/// A store on a fresh prefix, with everything a test may want to look at.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The store under test.
    pub store: SecretsManagerStore,
    /// Counts the store's calls (and those of `client`, which it shares).
    pub counter: Arc<CallCounter>,
    /// The client the store uses; calls made with it are counted too.
    pub client: Client,
    /// The store's prefix (`test/<run>/<uuid>`).
    pub prefix: String,
    /// Records the secret versions made through `client` (by the store, its
    /// other [`instances`](Harness::instance) and the test), on the wall clock.
    pub ledger: Arc<VersionLedger>,
}

/// A store on a fresh random prefix, built by `f` from a builder that already
/// has the client (counted) and the prefix. Starts LocalStack if needed.
pub async fn harness_with(
    f: impl FnOnce(SecretsManagerStoreBuilder) -> SecretsManagerStoreBuilder,
) -> Harness {
    let (client, counter, ledger) = client_with_counter().await;
    let prefix = random_prefix();
    let builder = SecretsManagerStore::builder()
        .client(client.clone())
        .prefix(prefix.clone());
    let store = f(builder)
        .build()
        .unwrap_or_else(|e| panic!("building a SecretsManagerStore on {prefix}: {e:?}"));
    Harness {
        store,
        counter,
        client,
        prefix,
        ledger,
    }
}

impl Harness {
    /// The name of token `id`'s secret on this harness's prefix.
    pub fn token_secret(&self, id: &str) -> String {
        token_secret(&self.prefix, id)
    }

    /// Prints the [`VersionLedger::report`] (seen with `--nocapture`) and
    /// panics if any secret got more versions than Secrets Manager keeps
    /// (see [`VersionLedger::assert_within_quota`]).
    pub fn assert_within_version_quota(&self) {
        eprintln!("{}", self.ledger.report());
        self.ledger.assert_within_quota();
    }

    /// Another store instance on this harness's prefix with a cold cache:
    /// what another process (another Lambda instance) sees.
    pub fn instance(&self) -> SecretsManagerStore {
        store_on(&self.client, &self.prefix)
    }

    /// Deletes token `id`'s secret behind the store's back, at once (what a
    /// crash, an operator or another tool can leave).
    pub async fn delete_token_secret(&self, id: &str) {
        self.client
            .delete_secret()
            .secret_id(self.token_secret(id))
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("deleting the secret of token {id}: {e:?}"));
    }
}

/// A store with default settings on `prefix` that has read nothing yet.
pub fn store_on(client: &Client, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(client.clone())
        .prefix(prefix)
        .build()
        .unwrap_or_else(|e| panic!("building a SecretsManagerStore on {prefix}: {e:?}"))
}

/// [`harness_with`] with the default settings.
pub async fn harness() -> Harness {
    harness_with(|builder| builder).await
}

/// A store with default settings on a fresh random prefix, and the counter of
/// its API calls.
pub async fn new_store() -> (SecretsManagerStore, Arc<CallCounter>) {
    new_store_with(|builder| builder).await
}

/// A store on a fresh random prefix, configured by `f` (e.g.
/// `|b| b.cache_ttl(Duration::from_secs(60))`), and the counter of its API calls.
pub async fn new_store_with(
    f: impl FnOnce(SecretsManagerStoreBuilder) -> SecretsManagerStoreBuilder,
) -> (SecretsManagerStore, Arc<CallCounter>) {
    let Harness { store, counter, .. } = harness_with(f).await;
    (store, counter)
}

/// The names of the secrets whose names start with `name_prefix` (e.g.
/// `"<prefix>/"`, or [`token_secret`]`(prefix, "")` for the token secrets),
/// as `ListSecrets` has them (LocalStack's listing does not lag).
pub async fn secret_names_under(client: &Client, name_prefix: &str) -> Vec<String> {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let mut names = Vec::new();
    let mut pages = client
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(name_prefix)
                .build(),
        )
        .max_results(100)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("ListSecrets under {name_prefix}: {e:?}"));
        // The filter matches words anywhere in the name: keep the prefix only.
        names.extend(
            page.secret_list()
                .iter()
                .filter_map(|s| s.name())
                .filter(|n| n.starts_with(name_prefix))
                .map(str::to_owned),
        );
    }
    names
}

/// Force-deletes the secrets `names`, `concurrency` at a time, ignoring
/// failures (for cleaning up).
pub async fn force_delete(
    client: &Client,
    names: impl IntoIterator<Item = String>,
    concurrency: usize,
) {
    futures::stream::iter(names)
        .for_each_concurrent(concurrency, |name| async move {
            let _ = client
                .delete_secret()
                .secret_id(name)
                .force_delete_without_recovery(true)
                .send()
                .await;
        })
        .await;
}

/// Force-deletes every secret under `prefix` (token secrets and index
/// secrets alike), so that LocalStack, which scans all secrets on every
/// call, does not slow down with each run.
pub async fn delete_prefix(client: &Client, prefix: &str) {
    let names = secret_names_under(client, &format!("{prefix}/")).await;
    force_delete(client, names, 8).await;
}

/// Runs `op` until it succeeds or fails with anything but
/// `StoreError::Backend`, at most `attempts` times, calling `on_retry(n)`
/// and then sleeping a jittered backoff that starts at `backoff` and
/// doubles (up to 16 times `backoff`) before the n-th rerun: what a caller
/// does with a store operation that failed. LocalStack answers
/// `InternalError` ("dictionary changed size during iteration") now and
/// then under concurrent load. Only for operations safe to repeat (reads,
/// saves with an id or a user, deletes).
pub async fn retry_backend<T, F, Fut>(
    attempts: u32,
    backoff: Duration,
    mut on_retry: impl FnMut(u32),
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(StoreError::Backend { .. }) if attempt < attempts => {
                on_retry(attempt);
                let ceiling = backoff * 2u32.pow((attempt - 1).min(4));
                let jitter = fastrand::u128(0..=ceiling.as_nanos() / 2) as u64;
                tokio::time::sleep(ceiling - Duration::from_nanos(jitter)).await;
            }
            result => return result,
        }
    }
}

/// The time now in Unix milliseconds (a token's `expiry_time`).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A token the size of a real one after the grant exchange: every field
/// but the grant token set, with Zoho-like lengths, expiring in an hour;
/// user `user<n>@example-company.com`.
pub fn realistic_token(n: usize) -> OAuthToken {
    OAuthToken {
        id: None,
        user_name: Some(format!("user{n:05}@example-company.com")),
        client_id: Some("1000.8ZVL1TQZQ0SVOFJ1AB2ZNRPD3XK4SG".into()),
        client_secret: Some("4d6c1a7a0f3e5b2d9c8e7f6a5b4c3d2e1f0a9b8c7d".into()),
        refresh_token: Some(format!(
            "1000.{n:08}f3e5b2d9c8e7f6a5b4c3d2e1f.0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
        )),
        access_token: Some(format!(
            "1000.{n:08}a7b6c5d4e3f2a1b0c9d8e7f6a.5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"
        )),
        grant_token: None,
        expiry_time: Some(now_millis() + 3_600_000),
        redirect_url: Some("https://app.example-company.com/oauth/callback".into()),
        api_domain: Some("https://www.zohoapis.com".into()),
    }
}

/// This process's resident set size (`VmRSS`), in bytes.
pub fn vm_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `bytes` in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `d` in the unit that reads best.
pub fn human(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}
