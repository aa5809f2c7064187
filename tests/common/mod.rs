//! Shared LocalStack harness for the integration tests (`mod common;`).
//!
//! - [`localstack`] makes sure LocalStack answers, running `localstack/start`
//!   once per test binary. It panics with the script's output when that
//!   fails: a test that needs LocalStack fails, it never skips.
//! - [`client_with_counter`] is a Secrets Manager client for LocalStack whose
//!   [`CallCounter`] counts every API call (and separately every HTTP attempt) by
//!   operation name, for the API-call budgets.
//! - [`random_prefix`], [`new_store`], [`new_store_with`] and [`harness_with`]
//!   give each test its own namespace, so tests run in parallel unaware of
//!   each other.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use zoho_token_store::{SecretsManagerStore, SecretsManagerStoreBuilder};

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
    match STARTED.get_or_init(run_start_script) {
        Ok(()) => endpoint(),
        Err(report) => panic!(
            "LocalStack is required by this test and could not be started at {}.\n{report}",
            endpoint()
        ),
    }
}

fn run_start_script() -> Result<(), String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = repo.join("localstack").join("start");
    // Output goes to a file, not a pipe: a LocalStack started in the
    // background can then never keep this process waiting on an open pipe.
    let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "localstack-start-{}-{}.log",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot clone {}: {e}", log_path.display()))?;
    let status = Command::new(&script)
        .current_dir(repo)
        .env("LOCALSTACK_ENDPOINT", endpoint())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status();
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    let _ = fs::remove_file(&log_path);
    match status {
        Ok(status) if status.success() => Ok(()),
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

    /// Attempts of every operation.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Attempts of operation `op` (e.g. `"GetSecretValue"`).
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

    /// The SDK interceptor that feeds this counter.
    pub fn interceptor(self: &Arc<Self>) -> CountingInterceptor {
        CountingInterceptor(Arc::clone(self))
    }
}

/// The [`Intercept`] half of a [`CallCounter`]: counts calls in
/// `read_after_serialization` (once per call) and attempts in
/// `read_before_transmit`, which runs once per attempt, just before the
/// request is sent.
#[derive(Debug, Clone)]
pub struct CountingInterceptor(Arc<CallCounter>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_after_serialization(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map_or("<unknown>", Metadata::name);
        self.0.record(op);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The SDK configuration for LocalStack: [`endpoint`], `us-east-1`,
/// credentials `test`/`test`. Starts LocalStack if needed.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = localstack().await;
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "localstack"))
        // LocalStack 4.13 answers a few concurrent writes with InternalError
        // ("dictionary changed size during iteration"): give the SDK room to
        // retry them, as it would a real service's 500.
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(6))
        .load()
        .await
}

/// A Secrets Manager client for LocalStack whose calls `counter` counts.
pub async fn client_counted_by(counter: &Arc<CallCounter>) -> Client {
    let sdk_config = sdk_config().await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&sdk_config)
        .interceptor(counter.interceptor())
        .build();
    Client::from_conf(config)
}

/// A Secrets Manager client for LocalStack and the counter of its calls.
/// Starts LocalStack if needed.
pub async fn client_with_counter() -> (Client, Arc<CallCounter>) {
    let counter = CallCounter::new();
    let client = client_counted_by(&counter).await;
    (client, counter)
}

/// A fresh namespace, `test/<uuid>`, so parallel tests never see each
/// other's secrets.
pub fn random_prefix() -> String {
    format!("test/{}", uuid::Uuid::new_v4().simple())
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
    /// The store's prefix (`test/<uuid>`).
    pub prefix: String,
}

/// A store on a fresh random prefix, built by `f` from a builder that already
/// has the client (counted) and the prefix. Starts LocalStack if needed.
pub async fn harness_with(
    f: impl FnOnce(SecretsManagerStoreBuilder) -> SecretsManagerStoreBuilder,
) -> Harness {
    let (client, counter) = client_with_counter().await;
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
    }
}

impl Harness {
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
            .secret_id(format!("{}/tokens/{id}", self.prefix))
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("deleting the secret of token {id}: {e:?}"));
    }
}

/// A store with default settings on `prefix` that has read nothing yet.
fn store_on(client: &Client, prefix: &str) -> SecretsManagerStore {
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
