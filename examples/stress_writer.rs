//! A writer process for the multi-process concurrency tests
//! (`tests/concurrency.rs`), standing in for one Lambda instance: it builds
//! its own `SecretsManagerStore` (own cache, own index snapshot) on LocalStack
//! and runs one burst of concurrent operations.
//!
//! ```text
//! stress_writer <prefix> <worker> <start-at-ms> new <count>
//!     saves <count> new tokens at once, users w<worker>-<n>@example.com
//! stress_writer <prefix> <worker> <start-at-ms> same-user <user-base> <count>
//!     saves users <user-base>-<n>@example.com, n < <count>, at once, each with a
//!     refresh token of its own: other workers save the same users
//! stress_writer <prefix> <worker> <start-at-ms> delete <id>...
//!     deletes the tokens <id>... at once
//! ```
//!
//! Every process waits until the Unix time `<start-at-ms>` (milliseconds)
//! before its burst, so that processes started one after the other still
//! collide. Prints `ok <id> <user>` for each token it saved (`ok <id>` for a
//! delete), `err <what>: <error>` for each failure, and exits 1 if any failed.
//! The endpoint is `AWS_ENDPOINT_URL` (default `http://127.0.0.1:4566`).
//! If `ZTS_VERSION_LEDGER` names a file, it writes there, as JSON, the time
//! of every secret version it made (see `VersionLedger` in `tests/common`),
//! failed or not, for the test to check Secrets Manager's version quota.
//!
//! The client is more patient than the store's defaults: LocalStack (moto)
//! scans every secret of the account on each call, so a burst of hundreds of
//! concurrent calls on a busy machine is slow, and it fails some with
//! `InternalError: dictionary changed size during iteration` (a race inside
//! LocalStack; Secrets Manager does not do that). The SDK retries those, and
//! an operation that still fails with `StoreError::Backend` is run again, as
//! a caller would (which also exercises saves that failed half-way): what the
//! tests check is that nothing is lost or duplicated, not LocalStack's speed.

// The tests' support module: the same LocalStack client setup and version
// ledger as the test that runs this.
#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use zoho_token_store::{OAuthToken, SecretsManagerStore, StoreError, TokenStore};

const USAGE: &str = "usage: stress_writer <prefix> <worker> <start-at-ms> \
                     (new <count> | same-user <user-base> <count> | delete <id>...)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn number<T: std::str::FromStr>(args: &[String], at: usize, what: &str) -> Result<T, String> {
    args.get(at)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("missing or bad {what}"))
}

async fn run(args: &[String]) -> Result<bool, String> {
    let prefix = args.first().ok_or("missing prefix")?.clone();
    let worker: u32 = number(args, 1, "worker")?;
    let start_at: u64 = number(args, 2, "start-at-ms")?;
    let mode = args.get(3).map(String::as_str).ok_or("missing mode")?;

    let ledger = common::VersionLedger::on_wall_clock();
    let result = burst(args, prefix, worker, start_at, mode, &ledger).await;
    if let Some(path) = std::env::var_os("ZTS_VERSION_LEDGER") {
        ledger
            .write_json(path.as_ref())
            .map_err(|e| format!("writing the version ledger: {e}"))?;
    }
    result
}

/// Builds the store and runs the burst of `mode`; `Ok(false)` if any
/// operation failed.
async fn burst(
    args: &[String],
    prefix: String,
    worker: u32,
    start_at: u64,
    mode: &str,
    ledger: &std::sync::Arc<common::VersionLedger>,
) -> Result<bool, String> {
    let store = SecretsManagerStore::builder()
        .client(common::patient_client(ledger).await)
        .prefix(prefix)
        .attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("building the store: {e}"))?;

    let outcomes: Vec<Result<String, String>> = match mode {
        "new" => {
            let count: u32 = number(args, 4, "count")?;
            wait_until(start_at).await;
            join_all((0..count).map(|n| {
                let user = format!("w{worker}-{n}@example.com");
                let refresh = format!("refresh-w{worker}-{n}");
                save(&store, user, refresh)
            }))
            .await
        }
        "same-user" => {
            let base = args.get(4).ok_or("missing user-base")?.clone();
            let count: u32 = number(args, 5, "count")?;
            wait_until(start_at).await;
            join_all((0..count).map(|n| {
                let user = format!("{base}-{n}@example.com");
                let refresh = format!("refresh-{base}-{n}-w{worker}");
                save(&store, user, refresh)
            }))
            .await
        }
        "delete" => {
            let ids = &args[4..];
            wait_until(start_at).await;
            join_all(ids.iter().map(|id| {
                let store = &store;
                async move {
                    retrying(|| store.delete_token(id))
                        .await
                        .map(|()| id.clone())
                        .map_err(|e| format!("delete {id}: {e}"))
                }
            }))
            .await
        }
        other => return Err(format!("unknown mode {other:?}")),
    };

    let mut all_ok = true;
    for outcome in outcomes {
        match outcome {
            Ok(line) => println!("ok {line}"),
            Err(line) => {
                all_ok = false;
                println!("err {line}");
            }
        }
    }
    Ok(all_ok)
}

/// Saves a new token for `user`; `Ok("<id> <user>")`.
async fn save(
    store: &SecretsManagerStore,
    user: String,
    refresh: String,
) -> Result<String, String> {
    let token = OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", refresh)
        .with_user_name(&user);
    let saved = retrying(|| {
        let mut token = token.clone();
        async move { store.save_token(&mut token).await.map(|()| token) }
    })
    .await;
    match saved {
        Ok(token) => Ok(format!("{} {user}", token.id.unwrap_or_default())),
        Err(e) => Err(format!("save {user}: {e}")),
    }
}

/// Runs `operation` until it succeeds or fails with anything but
/// `StoreError::Backend`, at most 8 times, with a jittered backoff: what a
/// caller does with a store operation that failed.
async fn retrying<T, F, Fut>(operation: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    // The test counts these lines.
    let report = |attempt| eprintln!("retrying a failed operation (attempt {attempt})");
    common::retry_backend(8, Duration::from_millis(200), report, operation).await
}

async fn wait_until(start_at_ms: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(start_at_ms.saturating_sub(now))).await;
}
