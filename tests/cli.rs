//! The `zoho-token-store` binary (feature `cli`), run as a process against
//! LocalStack: imports from FileStore CSVs of every SDK generation, a SQLite
//! database like Zoho's custom-store example, and a real MariaDB DBStore
//! table; each reads back equal field by field through
//! `SecretsManagerStore`, a second import changes nothing, `export` then
//! `import` into another prefix round-trips, bad files are rejected with
//! nothing written, and no output shows a secret value.
//!
//! Each test works under its own prefix and deletes its secrets afterwards,
//! passed or failed (LocalStack scans every secret on every call).

mod cli_support;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cli_support::{Run, cli, mariadb};
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

/// The Python SDK 8 FileStore header.
const PY8: &str = "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_uri,api_domain";

/// Runs `body` with a fresh prefix (and a second one for round trips) and a
/// scratch folder, then deletes every secret under both prefixes.
async fn with_prefixes<F, Fut>(body: F)
where
    F: FnOnce(String, String, PathBuf) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    common::localstack().await;
    let (a, b) = (common::random_prefix(), common::random_prefix());
    let dir = std::env::temp_dir().join(format!("zts-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let outcome = tokio::spawn(body(a.clone(), b.clone(), dir.clone())).await;
    let client = aws_sdk_secretsmanager::Client::new(&common::sdk_config().await);
    common::delete_prefix(&client, &a).await;
    common::delete_prefix(&client, &b).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// A store reading `prefix` afresh (nothing cached).
async fn store(prefix: &str) -> SecretsManagerStore {
    let client = aws_sdk_secretsmanager::Client::new(&common::sdk_config().await);
    common::store_on(&client, prefix)
}

/// Runs the CLI in a blocking task (it is a process; the test is async).
async fn run(prefix: &str, args: &[&str]) -> Run {
    let prefix = prefix.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&prefix, &args)
    })
    .await
    .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Every secret value of `tokens`: none may show in any output.
fn secrets_of(tokens: &[OAuthToken]) -> Vec<String> {
    tokens
        .iter()
        .flat_map(|t| {
            [
                &t.client_secret,
                &t.refresh_token,
                &t.access_token,
                &t.grant_token,
            ]
        })
        .flatten()
        .cloned()
        .collect()
}

#[track_caller]
fn assert_no_secret(run: &Run, secrets: &[String]) {
    let all = run.all();
    for secret in secrets {
        assert!(
            !all.contains(secret.as_str()),
            "output shows a secret value:\n{all}"
        );
    }
}

/// Reads `expected` back: by id when it has one, else by user name (with the
/// id the store gave it); each must equal, field by field.
async fn assert_stored(store: &SecretsManagerStore, expected: &[OAuthToken]) {
    let stored = store.get_tokens().await.unwrap();
    assert_eq!(stored.len(), expected.len(), "stored: {stored:?}");
    for want in expected {
        let got = match &want.id {
            Some(id) => store.find_token_by_id(id).await.unwrap(),
            None => store
                .find_token(&OAuthToken::for_user(want.user_name.clone().unwrap()))
                .await
                .unwrap(),
        };
        let got = got.unwrap_or_else(|| panic!("{want:?} is not stored"));
        let want = OAuthToken {
            id: got
                .id
                .clone()
                .filter(|_| want.id.is_none())
                .or(want.id.clone()),
            ..want.clone()
        };
        assert_eq!(got.id, want.id);
        assert_eq!(got.user_name, want.user_name);
        assert_eq!(got.client_id, want.client_id);
        assert_eq!(got.client_secret, want.client_secret);
        assert_eq!(got.refresh_token, want.refresh_token);
        assert_eq!(got.access_token, want.access_token);
        assert_eq!(got.grant_token, want.grant_token);
        assert_eq!(got.expiry_time, want.expiry_time);
        assert_eq!(got.redirect_url, want.redirect_url);
        assert_eq!(got.api_domain, want.api_domain);
    }
}

/// The Secrets Manager calls and versions a run reported with `--api-report`.
fn api_report(path: &Path) -> (BTreeMap<String, u64>, String) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let calls = serde_json::from_value(json["calls"].clone()).unwrap();
    (calls, json["versions"].to_string())
}

/// Asserts that a second import of the same sources wrote nothing.
fn assert_unchanged(run: &Run, report: &Path, count: usize) {
    assert!(
        run.stdout
            .contains(&format!("0 new, 0 updated, {count} unchanged")),
        "{}",
        run.all()
    );
    let (calls, versions) = api_report(report);
    assert_eq!(versions, "{}", "a second import wrote versions: {calls:?}");
    for write in [
        "CreateSecret",
        "PutSecretValue",
        "DeleteSecret",
        "UpdateSecretVersionStage",
    ] {
        assert!(
            !calls.contains_key(write),
            "a second import called {write}: {calls:?}"
        );
    }
}

fn token(id: Option<&str>, user: &str, n: u32) -> OAuthToken {
    OAuthToken {
        id: id.map(str::to_owned),
        user_name: Some(user.to_owned()),
        client_id: Some(format!("1000.CLIENT{n}")),
        client_secret: Some(format!("client-secret-{n}-zz")),
        refresh_token: Some(format!("1000.refresh-{n}-zz")),
        access_token: Some(format!("1000.access-{n}-zz")),
        grant_token: None,
        expiry_time: Some(1_900_000_000_000 + i64::from(n)),
        redirect_url: Some(format!("https://app.example/cb?x={n},y=\"q\"")),
        api_domain: Some("https://www.zohoapis.eu".into()),
    }
}

/// The CSV of `rows` (quoted as Python's csv module quotes).
fn csv_rows(header: &str, rows: &[Vec<String>]) -> String {
    let mut out = String::from(header);
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| {
                if c.contains([',', '"', '\n']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.clone()
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn expiry(t: &OAuthToken) -> String {
    t.expiry_time.map(|e| e.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn filestore_csv_of_every_sdk_generation_imports_and_reads_back_equal() {
    with_prefixes(|prefix, _, dir| async move {
        // Python SDK 5 to 8: 10 columns, redirect_uri; `None` and empty absent.
        let py = [token(Some("1"), "py1@example.com", 1), OAuthToken {
            access_token: None,
            redirect_url: None,
            ..token(Some("2"), "py2@example.com", 2)
        }];
        let py_csv = csv_rows(
            PY8,
            &py.iter()
                .map(|t| {
                    vec![
                        text(&t.id), text(&t.user_name), text(&t.client_id),
                        text(&t.client_secret), text(&t.refresh_token),
                        t.access_token.clone().unwrap_or_else(|| "None".into()),
                        String::new(), expiry(t),
                        t.redirect_url.clone().unwrap_or_else(|| "None".into()),
                        text(&t.api_domain),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        // Java and Node: redirect_url.
        let java = [token(Some("java-1"), "java@example.com", 3)];
        let java_csv = csv_rows(
            &PY8.replace("redirect_uri", "redirect_url"),
            &java
                .iter()
                .map(|t| {
                    vec![
                        text(&t.id), text(&t.user_name), text(&t.client_id),
                        text(&t.client_secret), text(&t.refresh_token),
                        text(&t.access_token), String::new(), expiry(t),
                        text(&t.redirect_url), text(&t.api_domain),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        // SDK 2.x: user_mail, 9 columns, no api_domain.
        let v2 = [OAuthToken { api_domain: None, ..token(Some("7"), "v2@example.com", 4) }];
        let v2_csv = csv_rows(
            "id,user_mail,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_uri",
            &v2.iter()
                .map(|t| {
                    vec![
                        text(&t.id), text(&t.user_name), text(&t.client_id),
                        text(&t.client_secret), text(&t.refresh_token),
                        text(&t.access_token), String::new(), expiry(t),
                        text(&t.redirect_url),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        // SDK 3.x: 6 columns, no id (the store generates one).
        let v3 = [OAuthToken {
            id: None,
            client_secret: None,
            redirect_url: None,
            api_domain: None,
            ..token(None, "v3@example.com", 5)
        }];
        let v3_csv = csv_rows(
            "user_mail,client_id,refresh_token,access_token,grant_token,expiry_time",
            &v3.iter()
                .map(|t| {
                    vec![
                        text(&t.user_name), text(&t.client_id), text(&t.refresh_token),
                        text(&t.access_token), String::new(), expiry(t),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        let files = [
            write(&dir, "python8.csv", &py_csv),
            write(&dir, "java.csv", &java_csv),
            write(&dir, "sdk2.csv", &v2_csv),
            write(&dir, "sdk3.txt", &v3_csv),
        ];
        let expected: Vec<OAuthToken> = py.iter().chain(&java).chain(&v2).chain(&v3).cloned().collect();
        let secrets = secrets_of(&expected);

        let mut args = vec!["import"];
        args.extend(files.iter().map(String::as_str));
        let first = run(&prefix, &args).await.ok();
        assert!(first.stdout.contains("5 new, 0 updated, 0 unchanged"), "{}", first.all());
        assert_no_secret(&first, &secrets);
        assert_stored(&store(&prefix).await, &expected).await;

        let report = dir.join("second.json");
        args.extend(["--api-report", report.to_str().unwrap()]);
        let second = run(&prefix, &args).await.ok();
        assert_unchanged(&second, &report, 5);
        assert_stored(&store(&prefix).await, &expected).await;

        // list, list --json and stats show the tokens, never a secret value.
        let list = run(&prefix, &["list"]).await.ok();
        assert_no_secret(&list, &secrets);
        assert!(list.stdout.contains("py1@example.com") && list.stdout.contains("5 token(s)"), "{}", list.all());
        assert!(list.stdout.contains("in "), "relative expiry: {}", list.all());
        let json = run(&prefix, &["list", "--json"]).await.ok();
        assert_no_secret(&json, &secrets);
        let listed: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(listed.len(), 5);
        for object in &listed {
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["api_domain", "client_id", "expiry_time", "id", "user_name"]);
        }
        let py1 = listed.iter().find(|o| o["id"] == "1").unwrap();
        assert_eq!(py1["expiry_time"], 1_900_000_000_001_i64);
        assert_eq!(py1["user_name"], "py1@example.com");
        let stats = run(&prefix, &["stats"]).await.ok();
        assert_no_secret(&stats, &secrets);
        assert!(stats.stdout.contains("tokens:              5"), "{}", stats.all());
        assert!(stats.stdout.contains("monthly cost:        USD 2.40"), "{}", stats.all());
    })
    .await;
}

#[tokio::test]
async fn sqlite_token_table_imports_and_reads_back_equal() {
    with_prefixes(|prefix, _, dir| async move {
        let path = dir.join("tokens.db");
        let db = rusqlite::Connection::open(&path).unwrap();
        // The table of Zoho's custom SQLite token store example.
        db.execute_batch(
            "CREATE TABLE oauthtoken (id varchar(10) NOT NULL, user_name varchar(255), \
             client_id varchar(255), client_secret varchar(255), refresh_token varchar(255), \
             access_token varchar(255), grant_token varchar(255), expiry_time varchar(20), \
             redirect_url varchar(255), api_domain varchar(255), primary key (id))",
        )
        .unwrap();
        let expected = vec![
            token(Some("1"), "lite1@example.com", 11),
            OAuthToken {
                access_token: None,
                expiry_time: None,
                ..token(Some("2"), "lite2@example.com", 12)
            },
        ];
        for t in &expected {
            db.execute(
                "INSERT INTO oauthtoken VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    t.id,
                    t.user_name,
                    t.client_id,
                    t.client_secret,
                    t.refresh_token,
                    t.access_token,
                    t.grant_token,
                    t.expiry_time.map(|e| e.to_string()),
                    t.redirect_url,
                    t.api_domain
                ],
            )
            .unwrap();
        }
        drop(db);
        // Detected from its content, whatever its name.
        let file = dir.join("tokens.csv");
        std::fs::rename(&path, &file).unwrap();
        let file = file.to_str().unwrap();
        let first = run(&prefix, &["import", file]).await.ok();
        assert!(first.stdout.contains("2 new"), "{}", first.all());
        assert_stored(&store(&prefix).await, &expected).await;
        let report = dir.join("second.json");
        let second = run(
            &prefix,
            &["import", file, "--api-report", report.to_str().unwrap()],
        )
        .await
        .ok();
        assert_unchanged(&second, &report, 2);
        let wrong = run(&prefix, &["import", file, "--table", "tokens"])
            .await
            .failed();
        assert!(
            wrong.stderr.contains("no table \"tokens\""),
            "{}",
            wrong.all()
        );
    })
    .await;
}

#[tokio::test]
async fn mariadb_dbstore_table_imports_and_reads_back_equal() {
    with_prefixes(|prefix, _, dir| async move {
        let database = format!("zts_{}", uuid::Uuid::new_v4().simple());
        let url = tokio::task::spawn_blocking({
            let database = database.clone();
            move || mariadb::url(&database)
        })
        .await
        .unwrap();
        // The Zoho DBStore table (SDK 5 and later).
        mariadb::sql(&format!(
            "CREATE TABLE `{database}`.oauthtoken (id varchar(10) NOT NULL, user_name varchar(255), \
             client_id varchar(255), client_secret varchar(255), refresh_token varchar(255), \
             access_token varchar(255), grant_token varchar(255), expiry_time varchar(20), \
             redirect_url varchar(255), api_domain varchar(255), primary key (id))"
        ));
        let expected = vec![
            token(Some("1"), "db1@example.com", 21),
            token(Some("2"), "db2@example.com", 22),
            OAuthToken { grant_token: Some("1000.grant-23-zz".into()), ..token(Some("3"), "db3@example.com", 23) },
        ];
        let quote = |v: &Option<String>| match v {
            Some(v) => format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''")),
            None => "NULL".into(),
        };
        for t in &expected {
            mariadb::sql(&format!(
                "INSERT INTO `{database}`.oauthtoken VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                quote(&t.id), quote(&t.user_name), quote(&t.client_id), quote(&t.client_secret),
                quote(&t.refresh_token), quote(&t.access_token), quote(&t.grant_token),
                quote(&t.expiry_time.map(|e| e.to_string())), quote(&t.redirect_url),
                quote(&t.api_domain)
            ));
        }
        let first = run(&prefix, &["import", "--mysql", &url]).await.ok();
        assert!(first.stdout.contains("3 new"), "{}", first.all());
        assert_stored(&store(&prefix).await, &expected).await;
        let report = dir.join("second.json");
        let second = run(&prefix, &["import", "--mysql", &url, "--table", "oauthtoken", "--api-report", report.to_str().unwrap()]).await.ok();
        assert_unchanged(&second, &report, 3);
        mariadb::sql(&format!("DROP DATABASE `{database}`"));
    })
    .await;
}

#[tokio::test]
async fn export_then_import_into_another_prefix_round_trips() {
    with_prefixes(|a, b, dir| async move {
        let tokens: Vec<OAuthToken> = (0..5)
            .map(|n| token(Some(&format!("t{n}")), &format!("u{n}@example.com"), 30 + n))
            .collect();
        let source = store(&a).await;
        let mut saving = tokens.clone();
        source.save_tokens(&mut saving).await.unwrap();

        let file = dir.join("sdk_tokens.csv");
        let file_str = file.to_str().unwrap();
        let export = run(&a, &["export", file_str]).await.ok();
        assert_no_secret(&export, &secrets_of(&tokens));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.starts_with(PY8), "{written}");
        // It holds secrets: an existing file is kept unless --force.
        std::fs::write(&file, "keep me").unwrap();
        let refused = run(&a, &["export", file_str]).await.failed();
        assert!(refused.stderr.contains("--force"), "{}", refused.all());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        run(&a, &["export", file_str, "--force"]).await.ok();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

        run(&b, &["import", file_str]).await.ok();
        let mut there = store(&b).await.get_tokens().await.unwrap();
        let mut here = source.get_tokens().await.unwrap();
        there.sort_by(|x, y| x.id.cmp(&y.id));
        here.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(here, there);
        assert_stored(&store(&b).await, &tokens).await;
    })
    .await;
}

#[tokio::test]
async fn bad_files_are_rejected_and_nothing_is_written() {
    with_prefixes(|prefix, _, dir| async move {
        let good = token(Some("ok-1"), "ok@example.com", 41);
        let bad_id = token(Some("bad/id"), "badid@example.com", 42);
        let no_credential = OAuthToken {
            refresh_token: None,
            access_token: None,
            ..token(Some("ok-3"), "nocred@example.com", 43)
        };
        let row = |t: &OAuthToken| {
            vec![
                text(&t.id),
                text(&t.user_name),
                text(&t.client_id),
                text(&t.client_secret),
                text(&t.refresh_token),
                text(&t.access_token),
                text(&t.grant_token),
                expiry(t),
                text(&t.redirect_url),
                text(&t.api_domain),
            ]
        };
        let mut csv = csv_rows(PY8, &[row(&good), row(&bad_id), row(&no_credential)]);
        csv.push_str("ok-4,short@example.com,1000.C,secret-short-zz\r\n");
        csv.push_str("ok-5,when@example.com,1000.C,secret-5-zz,refresh-5-zz,,,tomorrow,,\r\n");
        let file = write(&dir, "bad.csv", &csv);
        let secrets = {
            let mut s = secrets_of(&[good.clone(), bad_id.clone(), no_credential.clone()]);
            s.extend(["secret-short-zz", "secret-5-zz", "refresh-5-zz"].map(String::from));
            s
        };

        let rejected = run(&prefix, &["import", &file]).await.failed();
        assert_no_secret(&rejected, &secrets);
        for line in ["line 3", "line 4", "line 5", "line 6"] {
            assert!(
                rejected.stderr.contains(&format!("bad.csv {line}:")),
                "{line}: {}",
                rejected.all()
            );
        }
        assert!(
            rejected.stderr.contains("nothing was written"),
            "{}",
            rejected.all()
        );
        let client = aws_sdk_secretsmanager::Client::new(&common::sdk_config().await);
        assert_eq!(
            common::secret_names_under(&client, &format!("{prefix}/")).await,
            Vec::<String>::new()
        );

        let dry = run(&prefix, &["import", &file, "--skip-invalid", "--dry-run"])
            .await
            .ok();
        assert!(dry.stdout.contains("would create ok-1"), "{}", dry.all());
        assert_no_secret(&dry, &secrets);
        assert_eq!(
            common::secret_names_under(&client, &format!("{prefix}/")).await,
            Vec::<String>::new()
        );

        let skipped = run(&prefix, &["import", &file, "--skip-invalid"])
            .await
            .ok();
        assert!(
            skipped
                .stdout
                .contains("1 new, 0 updated, 0 unchanged, 4 invalid skipped"),
            "{}",
            skipped.all()
        );
        assert_stored(&store(&prefix).await, std::slice::from_ref(&good)).await;

        // Not a FileStore CSV at all, and an empty file: refused whole.
        for (name, content) in [("other.csv", "name,email\nx,y\n"), ("empty.csv", "")] {
            let file = write(&dir, name, content);
            let refused = run(&prefix, &["import", &file]).await.failed();
            assert!(
                refused.stderr.starts_with("error: cannot import"),
                "{}",
                refused.all()
            );
        }
        // The same user twice, under two ids.
        let twice = csv_rows(
            PY8,
            &[
                row(&token(Some("d1"), "dup@example.com", 44)),
                row(&token(Some("d2"), "dup@example.com", 45)),
            ],
        );
        let file = write(&dir, "twice.csv", &twice);
        let refused = run(&prefix, &["import", &file]).await.failed();
        assert!(
            refused
                .stderr
                .contains("twice.csv line 3: user \"dup@example.com\" is also on"),
            "{}",
            refused.all()
        );
        assert_stored(&store(&prefix).await, &[good]).await;
    })
    .await;
}

#[tokio::test]
async fn delete_and_repair() {
    with_prefixes(|prefix, _, _| async move {
        let tokens: Vec<OAuthToken> = (0..4)
            .map(|n| {
                token(
                    Some(&format!("d{n}")),
                    &format!("del{n}@example.com"),
                    50 + n,
                )
            })
            .collect();
        let mut saving = tokens.clone();
        store(&prefix).await.save_tokens(&mut saving).await.unwrap();
        let secrets = secrets_of(&tokens);

        run(&prefix, &["delete", "d0", "absent-id"]).await.ok();
        run(&prefix, &["delete", "--user", "del1@example.com"])
            .await
            .ok();
        assert_stored(&store(&prefix).await, &tokens[2..]).await;
        let refused = run(&prefix, &["delete", "--all"]).await;
        assert!(
            !refused.success,
            "--all without --yes deleted: {}",
            refused.all()
        );
        assert_stored(&store(&prefix).await, &tokens[2..]).await;

        // An orphan token secret (a crash between the two writes of a save).
        let client = aws_sdk_secretsmanager::Client::new(&common::sdk_config().await);
        let orphan = token(Some("orphan"), "orphan@example.com", 59);
        client
            .create_secret()
            .name(common::token_secret(&prefix, "orphan"))
            .secret_string(serde_json::to_string(&orphan).unwrap())
            .send()
            .await
            .unwrap();
        let dry = run(&prefix, &["repair", "--dry-run"]).await.ok();
        assert!(
            dry.stdout
                .contains("would be indexed (secret without index entry) (1): orphan"),
            "{}",
            dry.all()
        );
        assert!(
            dry.stdout.contains("would list 3 token(s)"),
            "{}",
            dry.all()
        );
        assert_eq!(store(&prefix).await.get_tokens().await.unwrap().len(), 2);
        let repaired = run(&prefix, &["repair"]).await.ok();
        assert!(
            repaired
                .stdout
                .contains("indexed (secret without index entry) (1): orphan"),
            "{}",
            repaired.all()
        );
        assert_no_secret(&repaired, &secrets);
        assert_eq!(store(&prefix).await.get_tokens().await.unwrap().len(), 3);

        run(&prefix, &["delete", "--all", "--yes"]).await.ok();
        assert_eq!(store(&prefix).await.get_tokens().await.unwrap(), Vec::new());
    })
    .await;
}

/// How many tokens the quota import writes (`CLI_QUOTA_TOKENS`, default 1,000).
fn quota_tokens() -> usize {
    std::env::var("CLI_QUOTA_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

#[tokio::test]
async fn a_large_import_stays_within_the_version_quota() {
    with_prefixes(|prefix, _, dir| async move {
        let n = quota_tokens();
        let rows: Vec<Vec<String>> = (0..n)
            .map(|i| {
                let t = common::realistic_token(i);
                vec![
                    format!("{i}"),
                    text(&t.user_name),
                    text(&t.client_id),
                    text(&t.client_secret),
                    text(&t.refresh_token),
                    text(&t.access_token),
                    String::new(),
                    expiry(&t),
                    String::new(),
                    text(&t.api_domain),
                ]
            })
            .collect();
        let file = write(&dir, "many.csv", &csv_rows(PY8, &rows));
        let report = dir.join("import.json");
        let started = std::time::Instant::now();
        let first = run(
            &prefix,
            &[
                "import",
                &file,
                "--rate",
                "0",
                "--api-report",
                report.to_str().unwrap(),
            ],
        )
        .await
        .ok();
        let took = started.elapsed();
        assert!(
            first.stdout.contains(&format!("{n} new")),
            "{}",
            first.all()
        );
        let (calls, versions) = api_report(&report);
        let ledger = common::VersionLedger::on_wall_clock();
        ledger.merge_json(&versions).unwrap();
        eprintln!(
            "import of {n} tokens: {took:?}, {} Secrets Manager calls {calls:?}\n{}",
            calls.values().sum::<u64>(),
            ledger.report()
        );
        let tokens = ledger
            .summary()
            .into_iter()
            .find(|g| g.group == format!("{prefix}/tokens/*"))
            .expect("token secrets were written");
        assert_eq!(
            (tokens.secrets, tokens.versions),
            (n, n),
            "one version per token secret"
        );
        ledger.assert_within_quota();

        let again = dir.join("again.json");
        let second = run(
            &prefix,
            &["import", &file, "--api-report", again.to_str().unwrap()],
        )
        .await
        .ok();
        assert_unchanged(&second, &again, n);
        assert_eq!(store(&prefix).await.index_stats().await.unwrap().tokens, n);
    })
    .await;
}
