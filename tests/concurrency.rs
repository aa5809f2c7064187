//! Concurrent writers in separate processes, as separate Lambda instances
//! are: each process is `examples/stress_writer.rs` with its own store, cache
//! and index snapshot, all on one prefix in LocalStack.
//!
//! The tests build the helper once (`cargo build --example stress_writer`,
//! same profile and target directory as the test binary), or use the binary
//! named by `STRESS_WRITER` if set.
//!
//! Each test ends by asserting Secrets Manager's version quota (100 versions
//! of a secret in 24 hours) on a ledger of every version its writers made:
//! its own client's, and each writer process's, which it writes as JSON to
//! the file named by `ZTS_VERSION_LEDGER`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::VersionLedger;
use futures::{StreamExt, TryStreamExt};
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

/// The helper binary, built once per test binary.
fn stress_writer() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("STRESS_WRITER") {
            return PathBuf::from(path);
        }
        // This test binary is <target>/<profile>/deps/concurrency-<hash>; the
        // example lands in <target>/<profile>/examples/.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary is in <target>/<profile>/deps");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args([
                "build",
                "--quiet",
                "--example",
                "stress_writer",
                "--manifest-path",
            ])
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(profile) => {
                build.args(["--profile", profile]);
            }
        }
        let output = build
            .stdin(Stdio::null())
            .output()
            .expect("running cargo build --example stress_writer");
        assert!(
            output.status.success(),
            "cargo build --example stress_writer failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let binary = profile_dir
            .join("examples")
            .join(format!("stress_writer{}", std::env::consts::EXE_SUFFIX));
        assert!(
            binary.is_file(),
            "{} is missing after the build (a --target build? set STRESS_WRITER)",
            binary.display()
        );
        binary
    })
}

/// A Unix time in milliseconds, `delay` from now: when the writers start.
fn start_at(delay: Duration) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (now + delay).as_millis().to_string()
}

/// What one writer process reported.
#[derive(Debug)]
struct Report {
    worker: usize,
    /// `ok` lines: `<id> <user>` for saves, `<id>` for deletes.
    ok: Vec<String>,
}

/// Runs one writer process per argument list, all starting their bursts at
/// the same instant; panics (with their output) if any failed. The versions
/// the writers made go into `ledger`.
async fn run_writers(prefix: &str, jobs: Vec<Vec<String>>, ledger: &VersionLedger) -> Vec<Report> {
    let binary = tokio::task::spawn_blocking(stress_writer)
        .await
        .unwrap()
        .clone();
    common::localstack().await;
    // Time for every process to start and build its store before the burst.
    let lead = Duration::from_millis(1500 + 250 * jobs.len() as u64);
    let start = start_at(lead);
    let ledger_files = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let children: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(worker, args)| {
            let ledger_file = ledger_files.join(format!(
                "version-ledger-{}-{worker}.json",
                uuid::Uuid::new_v4().simple()
            ));
            let child = tokio::process::Command::new(&binary)
                .arg(prefix)
                .arg(worker.to_string())
                .arg(&start)
                .args(args)
                .env("AWS_ENDPOINT_URL", common::endpoint())
                .env("ZTS_VERSION_LEDGER", &ledger_file)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawning stress_writer");
            (worker, child, ledger_file)
        })
        .collect();
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let mut retries = 0;
    let launched = Instant::now();
    for (worker, child, ledger_file) in children {
        let output = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("writer {worker} still runs after 240 s"))
            .expect("waiting for stress_writer");
        // A writer that failed still wrote its ledger: its versions count.
        match std::fs::read_to_string(&ledger_file) {
            Ok(json) => ledger
                .merge_json(&json)
                .unwrap_or_else(|e| panic!("writer {worker}'s ledger: {e}")),
            Err(e) => failures.push(format!("writer {worker} wrote no ledger: {e}")),
        }
        let _ = std::fs::remove_file(&ledger_file);
        let stdout = String::from_utf8_lossy(&output.stdout);
        retries += String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.starts_with("retrying"))
            .count();
        if !output.status.success() {
            let errors: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("ok ")).collect();
            failures.push(format!(
                "writer {worker} ({}): {errors:#?}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let ok = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("ok "))
            .map(str::to_owned)
            .collect();
        reports.push(Report { worker, ok });
    }
    assert!(
        failures.is_empty(),
        "writers failed:\n{}",
        failures.join("\n")
    );
    eprintln!(
        "{} writers: burst done {:?} after their common start \
         ({retries} operations retried after a backend error)",
        reports.len(),
        launched.elapsed().saturating_sub(lead)
    );
    reports
}

/// `(id, user)` of each `ok <id> <user>` line of the reports.
fn saved(reports: &[Report]) -> Vec<(String, String)> {
    reports
        .iter()
        .flat_map(|r| &r.ok)
        .map(|line| {
            let (id, user) = line.split_once(' ').expect("`<id> <user>`");
            (id.to_owned(), user.to_owned())
        })
        .collect()
}

/// A client that retries LocalStack's transient failures longer than the
/// default (see `examples/stress_writer.rs`: LocalStack fails some calls with
/// `InternalError` under concurrent writes), the ledger of the versions it
/// and the writer processes make, and a fresh prefix. Starts LocalStack.
async fn setup() -> (aws_sdk_secretsmanager::Client, Arc<VersionLedger>, String) {
    common::localstack().await;
    let ledger = VersionLedger::on_wall_clock();
    let client = common::patient_client(&ledger).await;
    (client, ledger, common::random_prefix())
}

/// Deletes what the test made, then prints the version ledger's figures
/// and asserts the version quota.
async fn finish(client: &aws_sdk_secretsmanager::Client, prefix: &str, ledger: &VersionLedger) {
    common::delete_prefix(client, prefix).await;
    eprintln!("{}", ledger.report());
    ledger.assert_within_quota();
}

/// A store that has never read anything: what another instance would see.
fn fresh_store(client: &aws_sdk_secretsmanager::Client, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(client.clone())
        .prefix(prefix)
        .attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Every stored token, by user name; panics on two tokens for one user.
async fn tokens_by_user(store: &SecretsManagerStore) -> BTreeMap<String, OAuthToken> {
    let mut by_user = BTreeMap::new();
    for token in store.get_tokens().await.unwrap() {
        let user = token.user_name.clone().expect("every token has a user");
        if let Some(other) = by_user.insert(user.clone(), token) {
            panic!(
                "two tokens for {user}: {:?} and {:?}",
                other.id, by_user[&user].id
            );
        }
    }
    by_user
}

/// The ids of the token secrets under `prefix`, as `ListSecrets` has them
/// (LocalStack's listing does not lag).
async fn token_secret_ids(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
) -> BTreeSet<String> {
    let tokens = common::token_secret(prefix, "");
    common::secret_names_under(client, &tokens)
        .await
        .iter()
        .filter_map(|name| name.strip_prefix(&tokens))
        .map(str::to_owned)
        .collect()
}

/// What became of each of `saved` (id, user) that `found` lacks (see
/// `tests/common/diagnose.rs`), for an assertion message: hidden by a
/// lagging batch read, lost from the index, never indexed, or replaced by a
/// second `CreateSecret` of one name.
async fn diagnosis<'a>(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    saved: impl IntoIterator<Item = (&'a str, &'a str)>,
    found: &BTreeSet<String>,
    ledger: &VersionLedger,
) -> String {
    let missing =
        common::diagnose::missing_from(saved.into_iter().map(|(id, user)| (id, Some(user))), found);
    common::diagnose::explain_missing(client, prefix, missing, Some(ledger)).await
}

/// The ids of the tokens in `by_user`.
fn ids_of(by_user: &BTreeMap<String, OAuthToken>) -> BTreeSet<String> {
    by_user.values().filter_map(|t| t.id.clone()).collect()
}

/// Concurrent writers in separate processes lose no new token: 8 × 50 are all listed and found.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_processes_saving_new_tokens_lose_none() {
    const PROCESSES: usize = 8;
    const PER_PROCESS: usize = 50;
    let (client, ledger, prefix) = setup().await;
    let reports = run_writers(
        &prefix,
        (0..PROCESSES)
            .map(|_| vec!["new".to_owned(), PER_PROCESS.to_string()])
            .collect(),
        &ledger,
    )
    .await;
    let saved = saved(&reports);
    assert_eq!(saved.len(), PROCESSES * PER_PROCESS);

    let store = fresh_store(&client, &prefix);
    let by_user = tokens_by_user(&store).await;
    let pairs = || saved.iter().map(|(id, user)| (id.as_str(), user.as_str()));
    let why = diagnosis(&client, &prefix, pairs(), &ids_of(&by_user), &ledger).await;
    assert_eq!(
        by_user.len(),
        PROCESSES * PER_PROCESS,
        "get_tokens lost tokens\n{why}"
    );
    for (id, user) in &saved {
        assert_eq!(by_user[user].id.as_ref(), Some(id), "{user}\n{why}");
    }
    for report in &reports {
        for n in 0..PER_PROCESS {
            let user = format!("w{}-{n}@example.com", report.worker);
            assert!(by_user.contains_key(&user), "{user} missing\n{why}");
        }
    }

    // find_token by user, from yet another fresh instance.
    let store = fresh_store(&client, &prefix);
    let found: BTreeSet<String> = futures::stream::iter(saved.clone())
        .map(|(id, user)| {
            let store = &store;
            async move {
                let found = store.find_token(&OAuthToken::for_user(&user)).await?;
                Ok::<_, zoho_token_store::StoreError>(found.and_then(|t| t.id).filter(|f| *f == id))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    let why = diagnosis(&client, &prefix, pairs(), &found, &ledger).await;
    assert_eq!(found.len(), saved.len(), "find_token missed tokens\n{why}");
    assert_eq!(
        store.index_stats().await.unwrap().tokens,
        PROCESSES * PER_PROCESS,
        "{why}"
    );
    let secrets = token_secret_ids(&client, &prefix).await;
    let outside: Vec<(String, Option<String>)> = secrets
        .iter()
        .filter(|id| !found.contains(*id))
        .map(|id| (id.clone(), None))
        .collect();
    let why = common::diagnose::explain_missing(&client, &prefix, outside, Some(&ledger)).await;
    assert_eq!(
        secrets.len(),
        PROCESSES * PER_PROCESS,
        "a token secret outside the index\n{why}"
    );
    finish(&client, &prefix, &ledger).await;
}

/// Two processes saving the same user at once make exactly one token for that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_processes_saving_one_user_make_one_token() {
    const ROUNDS: usize = 3;
    const USERS: usize = 10;
    let (client, ledger, prefix) = setup().await;
    for round in 0..ROUNDS {
        let base = format!("round{round}");
        let job = vec!["same-user".to_owned(), base.clone(), USERS.to_string()];
        let reports = run_writers(&prefix, vec![job.clone(), job], &ledger).await;
        // Both processes got the same id for each user.
        let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (id, user) in saved(&reports) {
            ids.entry(user).or_default().insert(id);
        }
        assert_eq!(ids.len(), USERS);
        for (user, ids) in &ids {
            assert_eq!(ids.len(), 1, "{user} saved under {ids:?}");
        }

        let store = fresh_store(&client, &prefix);
        let by_user = tokens_by_user(&store).await;
        let expected: Vec<(&str, &str)> = ids
            .iter()
            .flat_map(|(user, ids)| ids.iter().map(move |id| (id.as_str(), user.as_str())))
            .collect();
        let why = diagnosis(&client, &prefix, expected, &ids_of(&by_user), &ledger).await;
        assert_eq!(by_user.len(), (round + 1) * USERS, "{why}");
        for n in 0..USERS {
            let user = format!("{base}-{n}@example.com");
            let token = &by_user[&user];
            assert!(ids[&user].contains(token.id.as_ref().unwrap()), "{why}");
            let refresh = token.refresh_token.as_deref().unwrap();
            assert!(
                [0, 1]
                    .iter()
                    .any(|w| refresh == format!("refresh-{base}-{n}-w{w}")),
                "{user}: {refresh}"
            );
        }
    }
    assert_eq!(
        token_secret_ids(&client, &prefix).await.len(),
        ROUNDS * USERS,
        "a token secret outside the index (the losing save wrote one)"
    );
    finish(&client, &prefix, &ledger).await;
}

/// Concurrent saves and deletes of distinct tokens in separate processes lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_and_deletes_lose_nothing() {
    const KEEP: usize = 30;
    const DELETERS: usize = 3;
    const PER_DELETER: usize = 20;
    const SAVERS: usize = 3;
    const PER_SAVER: usize = 30;
    let (client, ledger, prefix) = setup().await;
    let store = &fresh_store(&client, &prefix);
    let save = |user: String| async move {
        let mut token =
            OAuthToken::from_refresh_token("c", "s", format!("r-{user}")).with_user_name(user);
        store.save_token(&mut token).await.map(|()| token)
    };
    let keep: Vec<OAuthToken> =
        futures::stream::iter((0..KEEP).map(|n| save(format!("keep-{n}@x"))))
            .buffer_unordered(16)
            .try_collect()
            .await
            .unwrap();
    let doomed: Vec<OAuthToken> =
        futures::stream::iter((0..DELETERS * PER_DELETER).map(|n| save(format!("del-{n}@x"))))
            .buffer_unordered(16)
            .try_collect()
            .await
            .unwrap();

    let mut jobs: Vec<Vec<String>> = Vec::new();
    // Savers and deleters interleaved, so they start in the same instant.
    for w in 0..DELETERS.max(SAVERS) {
        if w < SAVERS {
            jobs.push(vec!["new".to_owned(), PER_SAVER.to_string()]);
        }
        if w < DELETERS {
            let mut job = vec!["delete".to_owned()];
            job.extend(
                doomed[w * PER_DELETER..(w + 1) * PER_DELETER]
                    .iter()
                    .map(|t| t.id.clone().unwrap()),
            );
            jobs.push(job);
        }
    }
    let reports = run_writers(&prefix, jobs, &ledger).await;
    let new: Vec<(String, String)> = reports
        .iter()
        .flat_map(|r| &r.ok)
        .filter_map(|line| line.split_once(' '))
        .map(|(id, user)| (id.to_owned(), user.to_owned()))
        .collect();
    assert_eq!(new.len(), SAVERS * PER_SAVER);

    let fresh = fresh_store(&client, &prefix);
    let by_user = tokens_by_user(&fresh).await;
    let expected: BTreeSet<String> = keep
        .iter()
        .map(|t| t.user_name.clone().unwrap())
        .chain(new.iter().map(|(_, user)| user.clone()))
        .collect();
    let listed: BTreeSet<String> = by_user.keys().cloned().collect();
    let wanted = keep
        .iter()
        .map(|t| (t.id.as_deref().unwrap(), t.user_name.as_deref().unwrap()))
        .chain(new.iter().map(|(id, user)| (id.as_str(), user.as_str())));
    let why = diagnosis(&client, &prefix, wanted, &ids_of(&by_user), &ledger).await;
    assert_eq!(listed, expected, "{why}");
    for token in &keep {
        assert_eq!(&by_user[token.user_name.as_ref().unwrap()], token);
    }
    for (id, user) in &new {
        assert_eq!(by_user[user].id.as_ref(), Some(id));
    }
    for token in &doomed {
        let id = token.id.as_deref().unwrap();
        assert_eq!(fresh.find_token_by_id(id).await.unwrap(), None, "{id}");
        let user = token.user_name.clone().unwrap();
        assert_eq!(
            fresh.find_token(&OAuthToken::for_user(user)).await.unwrap(),
            None
        );
    }
    let secrets = token_secret_ids(&client, &prefix).await;
    assert_eq!(secrets.len(), expected.len(), "token secrets: {secrets:?}");
    finish(&client, &prefix, &ledger).await;
}
