//! No secret leaks: with a `tracing` subscriber capturing every span and event
//! field at TRACE, every store operation (succeeding and failing: invalid
//! input, corrupt stored data, absent tokens, an unreachable or misbehaving
//! backend) runs on tokens whose secret values are unique canary strings, and
//! none of them may appear in what the crate logs nor in any error it returns.
//!
//! The AWS SDK's own TRACE output is captured too and checked separately
//! (`sdk_trace_output_shows_no_secret_values_by_default`): the SDK redacts
//! request and response bodies unless `LOG_SENSITIVE_BODIES=true` or
//! `LOG_SIGNABLE_BODY=true` is set in the environment.

mod common;
#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use zoho_token_store::{MemoryStore, OAuthToken, SecretsManagerStore, StoreError, TokenStore};

use fault_proxy::{Fault, Proxy, Schedule, checking_client, client_for};

// ---------------------------------------------------------------------------
// The capturing subscriber

/// One captured span creation, span record or event: its target and every
/// field, formatted.
struct Captured {
    target: String,
    text: String,
}

fn log() -> &'static Mutex<Vec<Captured>> {
    static LOG: OnceLock<Mutex<Vec<Captured>>> = OnceLock::new();
    LOG.get_or_init(|| Mutex::new(Vec::new()))
}

/// Records every field as `name=value`, with both `Display`-like and `Debug`
/// forms where they differ, so that nothing escapes the check.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={} ({:?})", field.name(), value, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let _ = write!(self.0, " {}={} ({:?})", field.name(), value, value);
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(self.0, ": {cause} ({cause:?})");
            source = cause.source();
        }
    }
}

/// A layer that keeps everything.
struct CaptureAll;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CaptureAll {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        let mut text = format!("span {}", meta.name());
        attrs.record(&mut Fields(&mut text));
        push(meta.target(), text);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let (target, name) = ctx
            .span(id)
            .map(|s| (s.metadata().target(), s.metadata().name()))
            .unwrap_or(("?", "?"));
        let mut text = format!("record {name}");
        values.record(&mut Fields(&mut text));
        push(target, text);
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut text = format!("event {} {}", meta.level(), meta.name());
        event.record(&mut Fields(&mut text));
        push(meta.target(), text);
    }
}

fn push(target: &str, text: String) {
    log()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Captured {
            target: target.to_owned(),
            text,
        });
}

/// Installs the capturing subscriber (at TRACE, every target) once per test
/// binary, before any test's first operation.
fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CaptureAll))
            .expect("installing the capturing subscriber");
    });
}

/// The captured lines whose target passes `keep`, one per line.
fn captured(keep: impl Fn(&str) -> bool) -> String {
    log()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|c| keep(&c.target))
        .map(|c| format!("[{}] {}\n", c.target, c.text))
        .collect()
}

fn ours(target: &str) -> bool {
    target == "zoho_token_store" || target.starts_with("zoho_token_store::")
}

// ---------------------------------------------------------------------------
// Canary tokens and the check

/// The secret values of one test: unique, recognizable strings.
struct Canaries {
    tag: String,
    values: Mutex<Vec<String>>,
}

impl Canaries {
    fn new(test: &str) -> Self {
        Self {
            tag: format!(
                "CANARY{}{test}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            values: Mutex::new(Vec::new()),
        }
    }

    /// A new secret value, remembered for [`Canaries::assert_absent`].
    fn secret(&self, what: &str) -> String {
        let mut values = self.values.lock().unwrap();
        let value = format!("{}x{what}x{}", self.tag, values.len());
        values.push(value.clone());
        value
    }

    /// A token for `user` whose four secret fields are all canaries.
    fn token(&self, user: Option<&str>) -> OAuthToken {
        OAuthToken {
            user_name: user.map(str::to_owned),
            client_id: Some("1000.LEAKTEST".into()),
            client_secret: Some(self.secret("client_secret")),
            refresh_token: Some(self.secret("refresh_token")),
            access_token: Some(self.secret("access_token")),
            grant_token: Some(self.secret("grant_token")),
            expiry_time: Some(4_000_000_000_000),
            redirect_url: Some("https://example.com/callback".into()),
            api_domain: Some("https://www.zohoapis.com".into()),
            ..OAuthToken::default()
        }
    }

    /// Panics if any canary appears in `text`; `what` names where it looked.
    /// Every canary starts with the tag, so the tag alone is looked for: a
    /// log that shows part of a value still leaks it.
    fn assert_absent(&self, what: &str, text: &str) {
        if let Some(at) = text.find(&self.tag) {
            let start = text[..at].rfind('\n').map_or(0, |n| n + 1);
            let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            panic!(
                "a secret value leaks into {what}:\n{}",
                &text[start..end.min(start + 4000)]
            );
        }
    }

    /// Checks an operation's error: Display, Debug and every source.
    fn check<T: std::fmt::Debug>(&self, what: &str, result: &Result<T, StoreError>) {
        if let Err(error) = result {
            let mut shown = format!("{error}\n{error:?}\n{error:#?}");
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                let _ = write!(shown, "\n{cause}\n{cause:?}");
                source = cause.source();
            }
            self.assert_absent(&format!("the error of {what}"), &shown);
        }
    }
}

/// Every `TokenStore` operation, succeeding and failing, on canary tokens.
/// Results are checked for leaks (not for correctness: other tests do that).
/// `stored` is whether the store keeps what it is given (the unreachable one
/// does not).
async fn exercise(store: &dyn TokenStore, canaries: &Canaries, user_prefix: &str) {
    let user = |n: &str| format!("{user_prefix}-{n}@example.com");

    // Successful (on a working store) writes and reads.
    let mut a = canaries.token(Some(&user("a")));
    canaries.check("save_token new", &store.save_token(&mut a).await);
    let mut b = canaries.token(Some(&user("b"))).with_id("leak-b");
    canaries.check("save_token with id", &store.save_token(&mut b).await);
    let mut keyless = OAuthToken {
        refresh_token: Some(canaries.secret("keyless_refresh")),
        ..OAuthToken::default()
    };
    canaries.check(
        "save_token without lookup key",
        &store.save_token(&mut keyless).await,
    );
    let mut refresh = OAuthToken {
        access_token: Some(canaries.secret("refreshed_access")),
        expiry_time: Some(4_100_000_000_000),
        ..OAuthToken::for_user(user("a"))
    };
    canaries.check("save_token refresh", &store.save_token(&mut refresh).await);
    let mut rotate = OAuthToken {
        refresh_token: Some(canaries.secret("rotated_refresh")),
        ..OAuthToken::default().with_id("leak-b")
    };
    canaries.check("save_token rotate", &store.save_token(&mut rotate).await);

    canaries.check(
        "find_token_by_id",
        &store
            .find_token_by_id(a.id.as_deref().unwrap_or("leak-a"))
            .await,
    );
    canaries.check(
        "find_token by user",
        &store.find_token(&OAuthToken::for_user(user("a"))).await,
    );
    let by_refresh = OAuthToken {
        user_name: None,
        access_token: None,
        grant_token: None,
        id: None,
        ..b.clone()
    };
    canaries.check(
        "find_token by refresh token",
        &store.find_token(&by_refresh).await,
    );
    let by_grant = OAuthToken {
        user_name: None,
        access_token: None,
        id: None,
        ..a.clone()
    };
    canaries.check(
        "find_token by grant token",
        &store.find_token(&by_grant).await,
    );
    let by_access = OAuthToken {
        access_token: refresh.access_token.clone(),
        ..OAuthToken::default()
    };
    canaries.check(
        "find_token by access token",
        &store.find_token(&by_access).await,
    );
    canaries.check("get_tokens", &store.get_tokens().await);

    // Not found.
    canaries.check(
        "find_token_by_id absent",
        &store.find_token_by_id("leak-absent").await,
    );
    canaries.check(
        "find_token absent user",
        &store
            .find_token(&OAuthToken::for_user(user("nobody")))
            .await,
    );
    let absent_refresh = OAuthToken::from_refresh_token(
        "1000.LEAKTEST",
        canaries.secret("absent_secret"),
        canaries.secret("absent_refresh"),
    );
    canaries.check(
        "find_token absent refresh token",
        &store.find_token(&absent_refresh).await,
    );
    canaries.check(
        "delete_token absent",
        &store.delete_token("leak-absent").await,
    );

    // Invalid input, each carrying secret values.
    let mut bad_id = canaries.token(Some(&user("bad-id"))).with_id("bad/id");
    canaries.check("save_token bad id", &store.save_token(&mut bad_id).await);
    let mut no_credential = OAuthToken {
        client_secret: Some(canaries.secret("lonely_secret")),
        ..OAuthToken::for_user(user("no-credential"))
    };
    canaries.check(
        "save_token without credential",
        &store.save_token(&mut no_credential).await,
    );
    let nothing_to_match = OAuthToken {
        client_id: Some("1000.LEAKTEST".into()),
        access_token: Some(canaries.secret("unmatched_access")),
        ..OAuthToken::default()
    };
    canaries.check(
        "find_token with nothing to match",
        &store.find_token(&nothing_to_match).await,
    );
    let mut too_large = OAuthToken {
        access_token: Some(canaries.secret("large").repeat(2_000)),
        ..OAuthToken::for_user(user("large"))
    };
    canaries.check(
        "save_token too large",
        &store.save_token(&mut too_large).await,
    );
    let mut second_for_user = canaries.token(Some(&user("a"))).with_id("leak-second");
    canaries.check(
        "save_token second token for a user",
        &store.save_token(&mut second_for_user).await,
    );
    canaries.check(
        "find_token_by_id bad id",
        &store.find_token_by_id("bad id").await,
    );
    canaries.check("delete_token bad id", &store.delete_token("../x").await);

    // Deletes.
    canaries.check("delete_token", &store.delete_token("leak-b").await);
}

// ---------------------------------------------------------------------------
// The tests

/// `SecretsManagerStore` never puts a secret value (client secret, refresh, access or grant token) in a span or event it emits at any level, nor in any error it returns, for every operation, succeeding or failing (invalid input, not found, corrupt stored token, corrupt index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_store_never_logs_or_returns_secret_values() {
    capture();
    let canaries = Canaries::new("sm");
    let common::Harness {
        store,
        client,
        prefix,
        ..
    } = common::harness_with(|b| b.cache_ttl(Duration::ZERO)).await;
    exercise(&store, &canaries, "sm").await;
    canaries.check("index_stats", &store.index_stats().await);
    canaries.check("repair", &store.repair().await);

    // A stored token that cannot be decoded, whose contents hold secrets:
    // truncated JSON, a wrong type, a non-numeric expiry.
    let corrupt = [
        (
            "leak-trunc",
            format!(r#"{{"refresh_token":"{}""#, canaries.secret("trunc")),
        ),
        (
            "leak-type",
            format!(r#"{{"refresh_token":["{}"]}}"#, canaries.secret("type")),
        ),
        (
            "leak-expiry",
            format!(
                r#"{{"refresh_token":"{}","expiry_time":"{}"}}"#,
                canaries.secret("expiry_rt"),
                canaries.secret("expiry")
            ),
        ),
        ("leak-array", format!(r#"["{}"]"#, canaries.secret("array"))),
    ];
    for (id, json) in &corrupt {
        client
            .create_secret()
            .name(common::token_secret(&prefix, id))
            .secret_string(json)
            .send()
            .await
            .expect("writing a corrupt token");
    }
    // An indexed token whose value is then corrupted behind the store's back.
    let mut c = canaries.token(Some("sm-c@example.com")).with_id("leak-c");
    store.save_token(&mut c).await.unwrap();
    client
        .put_secret_value()
        .secret_id(common::token_secret(&prefix, "leak-c"))
        .secret_string(format!(
            "{{\"access_token\": {}",
            canaries.secret("corrupted")
        ))
        .send()
        .await
        .unwrap();
    for (id, _) in &corrupt {
        let result = store.find_token_by_id(id).await;
        assert!(
            matches!(result, Err(StoreError::Corrupt { .. })),
            "{id}: {result:?}"
        );
        canaries.check("find_token_by_id corrupt", &result);
    }
    canaries.check(
        "find_token_by_id corrupt",
        &store.find_token_by_id("leak-c").await,
    );
    canaries.check(
        "find_token corrupt",
        &store
            .find_token(&OAuthToken::for_user("sm-c@example.com"))
            .await,
    );
    let mut update = OAuthToken {
        access_token: Some(canaries.secret("update_corrupt")),
        ..OAuthToken::default().with_id("leak-c")
    };
    canaries.check(
        "save_token over corrupt",
        &store.save_token(&mut update).await,
    );
    canaries.check("repair with corrupt tokens", &store.repair().await);
    canaries.check("get_tokens with corrupt tokens", &store.get_tokens().await);

    // A corrupt index shard holding secret-looking text.
    client
        .put_secret_value()
        .secret_id(common::index_root(&prefix))
        .secret_string(format!(
            "{{\"v\":1,\"e\":[{{\"i\":\"{}\"",
            canaries.secret("shard")
        ))
        .send()
        .await
        .unwrap();
    canaries.check("get_tokens with corrupt index", &store.get_tokens().await);
    canaries.check(
        "find_token with corrupt index",
        &store
            .find_token(&OAuthToken::for_user("sm-a@example.com"))
            .await,
    );
    canaries.check("repair of corrupt index", &store.repair().await);
    canaries.check("delete_tokens", &store.delete_tokens().await);
    for (id, _) in &corrupt {
        canaries.check("delete_token corrupt", &store.delete_token(id).await);
    }
    let _ = store.delete_tokens().await;

    let ours = captured(ours);
    assert!(
        ours.contains("save_token") && ours.contains("leak-b") && ours.contains("failed"),
        "the capture missed the store's own spans and events:\n{ours}"
    );
    canaries.assert_absent("the store's spans and events", &ours);
}

/// When Secrets Manager cannot be reached, or answers with something the SDK cannot parse (which may hold a secret value), the `StoreError::Backend` returned and the store's own spans and events never show a secret value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_failures_never_show_secret_values() {
    capture();
    let canaries = Canaries::new("down");

    // Nothing listens on this port.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable = SecretsManagerStore::builder()
        .client(
            client_for(
                &format!("http://127.0.0.1:{port}"),
                Duration::from_millis(10),
            )
            .await,
        )
        .prefix(common::random_prefix())
        .attempt_timeout(Duration::from_millis(300))
        .operation_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    exercise(&unreachable, &canaries, "down").await;
    canaries.check("repair unreachable", &unreachable.repair().await);
    canaries.check(
        "delete_tokens unreachable",
        &unreachable.delete_tokens().await,
    );

    // Responses cut short: the SDK fails to parse a body that holds the
    // secret values read (GetSecretValue, BatchGetSecretValue) or written.
    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    let prefix = common::random_prefix();
    let garbled = SecretsManagerStore::builder()
        .client(client_for(&proxy.url(), Duration::from_millis(10)).await)
        .prefix(prefix.clone())
        .cache_ttl(Duration::ZERO)
        .build()
        .unwrap();
    let direct = SecretsManagerStore::builder()
        .client(checking_client().await)
        .prefix(prefix)
        .attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut stored = canaries
        .token(Some("garbled@example.com"))
        .with_id("leak-garbled");
    direct.save_token(&mut stored).await.unwrap();
    proxy.set(Schedule::Always(Fault::Garble)).await;
    let read = garbled.find_token_by_id("leak-garbled").await;
    assert!(matches!(read, Err(StoreError::Backend { .. })), "{read:?}");
    canaries.check("find_token_by_id garbled", &read);
    canaries.check("get_tokens garbled", &garbled.get_tokens().await);
    exercise(&garbled, &canaries, "garbled").await;
    proxy.set(Schedule::PassThrough).await;
    direct.delete_tokens().await.unwrap();

    let ours = captured(ours);
    assert!(
        ours.contains("failed"),
        "the capture missed the store's failure events:\n{ours}"
    );
    canaries.assert_absent("the store's spans and events", &ours);
}

/// `MemoryStore` never puts a secret value in an error it returns (nor in a span or event), for every operation, succeeding or failing.
#[tokio::test]
async fn memory_store_never_logs_or_returns_secret_values() {
    capture();
    let canaries = Canaries::new("mem");
    let store = MemoryStore::new();
    exercise(&store, &canaries, "mem").await;
    canaries.check("get_tokens", &store.get_tokens().await);
    canaries.check("delete_tokens", &store.delete_tokens().await);
    canaries.assert_absent("the crate's spans and events", &captured(ours));
}

/// With the SDK's defaults (environment variables `LOG_SENSITIVE_BODIES` and `LOG_SIGNABLE_BODY` unset), even the AWS SDK's own TRACE output (targets `aws_*`, `hyper*`, …) shows no secret value, for reads, writes and unparseable responses; with either variable set, the test only reports what the SDK shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_trace_output_shows_no_secret_values_by_default() {
    capture();
    let canaries = Canaries::new("sdk");
    let store = common::harness_with(|b| b.cache_ttl(Duration::ZERO))
        .await
        .store;
    let mut token = canaries.token(Some("sdk@example.com"));
    store.save_token(&mut token).await.unwrap();
    store
        .find_token_by_id(token.id.as_deref().unwrap())
        .await
        .unwrap();
    store.get_tokens().await.unwrap();

    // A response the SDK cannot parse, whose body holds the secret values.
    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    let garbled = SecretsManagerStore::builder()
        .client(client_for(&proxy.url(), Duration::from_millis(10)).await)
        .prefix(store.prefix())
        .cache_ttl(Duration::ZERO)
        .build()
        .unwrap();
    proxy.set(Schedule::Always(Fault::Garble)).await;
    let _ = garbled.find_token_by_id(token.id.as_deref().unwrap()).await;
    let _ = garbled.get_tokens().await;
    proxy.set(Schedule::PassThrough).await;
    store.delete_tokens().await.unwrap();

    let theirs = captured(|target| !ours(target));
    let mut leaking_targets = std::collections::BTreeMap::<String, usize>::new();
    for line in theirs.lines() {
        if line.contains(&canaries.tag) {
            let target = line[1..line.find(']').unwrap_or(1)].to_owned();
            *leaking_targets.entry(target).or_default() += 1;
            if std::env::var_os("DUMP_SDK_TRACE").is_some() {
                eprintln!("LEAK: {}", &line[..line.len().min(1500)]);
            }
        }
    }
    eprintln!(
        "SDK output at TRACE: {} lines; lines showing secret values, by target: {leaking_targets:?}",
        theirs.lines().count()
    );
    let sdk_logs_bodies = ["LOG_SENSITIVE_BODIES", "LOG_SIGNABLE_BODY"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| v.eq_ignore_ascii_case("true")));
    if !sdk_logs_bodies {
        assert!(
            leaking_targets.is_empty(),
            "the SDK's TRACE output shows secret values (run with DUMP_SDK_TRACE=1 to see them): {leaking_targets:?}"
        );
    }
    // Our own output stays clean even while the SDK logs at TRACE.
    canaries.assert_absent("the store's spans and events", &captured(ours));
}
