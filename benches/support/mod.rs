//! Shared LocalStack support for `benches/store.rs` and `tests/scale.rs`
//! (`#[path = "../benches/support/mod.rs"] mod support;` from `tests/`).
//!
//! A self-contained copy of the ideas of `tests/common`: a Secrets Manager
//! client for LocalStack whose every HTTP attempt is counted per operation
//! by an SDK interceptor ([`CallCounter`]), fresh prefixes, realistic tokens,
//! and the resident memory of this process.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use zoho_token_store::OAuthToken;

/// The LocalStack endpoint: `AWS_ENDPOINT_URL`, default `http://127.0.0.1:4566`.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:4566".to_owned())
}

/// Makes sure LocalStack answers: runs `localstack/start` (idempotent) once.
pub fn ensure_localstack() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(repo.join("localstack").join("start"))
            .current_dir(repo)
            .env("LOCALSTACK_ENDPOINT", endpoint())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cannot run localstack/start");
        assert!(status.success(), "localstack/start failed: {status}");
    });
}

/// Counts the HTTP attempts of a client per operation name (SDK retries included).
#[derive(Debug, Default)]
pub struct CallCounter {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl CallCounter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    pub fn reset(&self) {
        self.lock().clear();
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone)]
struct CountingInterceptor(Arc<CallCounter>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map_or("<unknown>", Metadata::name);
        *self.0.lock().entry(op.to_owned()).or_insert(0) += 1;
        Ok(())
    }
}

/// The SDK configuration for LocalStack (`us-east-1`, `test`/`test`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    ensure_localstack();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "localstack"))
        .load()
        .await
}

/// A client builder whose calls `counter` counts.
pub async fn counted_builder(
    counter: &Arc<CallCounter>,
) -> aws_sdk_secretsmanager::config::Builder {
    aws_sdk_secretsmanager::config::Builder::from(&sdk_config().await)
        .interceptor(CountingInterceptor(Arc::clone(counter)))
}

/// A LocalStack client and the counter of its calls.
pub async fn counted_client() -> (Client, Arc<CallCounter>) {
    let counter = CallCounter::new();
    let client = Client::from_conf(counted_builder(&counter).await.build());
    (client, counter)
}

/// A fresh namespace, `bench/<label>/<uuid>`.
pub fn prefix(label: &str) -> String {
    format!("bench/{label}/{}", uuid::Uuid::new_v4().simple())
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A token the size of a real one after the grant exchange: every field
/// but the grant token set, with Zoho-like lengths, expiring in an hour.
pub fn token(n: usize) -> OAuthToken {
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
