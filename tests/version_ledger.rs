//! The version ledger of `tests/common` counts what Secrets Manager would:
//! its sliding 24-hour window without LocalStack, and one version per
//! successful write (none for a failed one) on LocalStack.

mod common;

use std::time::Duration;

use common::{Lifecycle, SimClock, VERSION_LIMIT, VERSION_WINDOW, VersionLedger};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn sim_clock_moves_only_when_advanced_and_clones_share_it() {
    let clock = SimClock::new();
    let start = clock.now();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(clock.now(), start, "a stopped clock does not move");
    let clone = clock.clone();
    clone.advance(HOUR);
    assert_eq!(clock.now(), start + HOUR);

    let wall = SimClock::wall();
    wall.advance(HOUR);
    assert!(wall.now() >= std::time::SystemTime::now() + HOUR - Duration::from_secs(1));
}

#[test]
fn sliding_window_counts_versions_of_one_secret_in_24_hours() {
    let ledger = VersionLedger::new(SimClock::new());
    // 60 versions, then 23 hours later 60 more: 120 in one window.
    for _ in 0..60 {
        ledger.record("p/index/0");
    }
    ledger.clock().advance(23 * HOUR);
    for _ in 0..60 {
        ledger.record("p/index/0");
    }
    assert_eq!(ledger.versions("p/index/0"), 120);
    assert_eq!(
        ledger.max_in_window(VERSION_WINDOW),
        ("p/index/0".to_owned(), 120)
    );
    // The window slides: the first 60 leave it exactly 24 hours after they came.
    ledger.clock().advance(HOUR);
    ledger.record("p/index/0");
    assert_eq!(ledger.max_in_window(VERSION_WINDOW).1, 120);
    assert_eq!(ledger.max_in_window(HOUR).1, 60);
}

#[test]
fn versions_spread_over_days_stay_within_quota() {
    let ledger = VersionLedger::new(SimClock::new());
    // An hourly refresh for 30 days: 24 versions a day, 720 in all.
    for _ in 0..30 * 24 {
        ledger.record("p/tokens/a");
        ledger.clock().advance(HOUR);
    }
    ledger.record("p/tokens/b");
    assert_eq!(ledger.versions("p/tokens/a"), 720);
    assert_eq!(
        ledger.max_in_window(VERSION_WINDOW),
        ("p/tokens/a".to_owned(), 24)
    );
    assert_eq!(ledger.secrets(), 2);
    ledger.assert_within_quota();
}

#[test]
fn quota_allows_exactly_the_limit_and_reports_what_passes_it() {
    let ledger = VersionLedger::new(SimClock::new());
    for _ in 0..VERSION_LIMIT {
        ledger.record("p/tokens/ok");
    }
    ledger.assert_within_quota();
    for _ in 0..=VERSION_LIMIT {
        ledger.record("p/index/3");
    }
    let report = std::panic::catch_unwind(|| ledger.assert_within_quota())
        .expect_err("101 versions in a day pass the quota");
    let message = report
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(message.contains("p/index/3: 101 versions"), "{message}");
    assert!(message.contains("100 versions in 86400s"), "{message}");
    assert!(!message.contains("p/tokens/ok:"), "{message}");
}

#[test]
fn summary_groups_by_prefix_and_kind() {
    let ledger = VersionLedger::new(SimClock::new());
    for (secret, n) in [
        ("a/tokens/1", 2),
        ("a/tokens/2", 5),
        ("a/index/0", 7),
        ("a/index-meta", 1),
        ("b/tokens/1", 1),
    ] {
        for _ in 0..n {
            ledger.record(secret);
        }
    }
    let summary: Vec<(String, usize, usize, usize, String)> = ledger
        .summary()
        .into_iter()
        .map(|g| (g.group, g.secrets, g.versions, g.max_in_window, g.busiest))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a/index*".into(), 2, 8, 7, "a/index/0".into()),
            ("a/tokens/*".into(), 2, 7, 5, "a/tokens/2".into()),
            ("b/tokens/*".into(), 1, 1, 1, "b/tokens/1".into()),
        ]
    );
    let report = ledger.report();
    assert!(report.contains("16 versions in 5 secrets"), "{report}");
    assert!(report.contains("7 (limit 100) in a/index/0"), "{report}");
}

#[test]
fn ledgers_merge_through_json() {
    let child = VersionLedger::new(SimClock::new());
    child.record("p/index/0");
    child.clock().advance(HOUR);
    child.record("p/index/0");
    child.record("p/tokens/x");
    let parent = VersionLedger::new(SimClock::new());
    parent.record("p/index/0");
    parent.merge_json(&child.to_json()).unwrap();
    assert_eq!(parent.versions("p/index/0"), 3);
    assert_eq!(parent.versions("p/tokens/x"), 1);
    assert_eq!(parent.secrets(), 2);
}

#[test]
fn ledgers_carry_creates_and_deletes_through_json_and_read_the_bare_version_map() {
    let child = VersionLedger::new(SimClock::new());
    child.record("p/index/r");
    child.record_lifecycle("p/index/r", Lifecycle::Create);
    child.clock().advance(HOUR);
    child.record("p/index/r");
    child.record_lifecycle("p/index/r", Lifecycle::Create);
    child.record_lifecycle("p/tokens/x", Lifecycle::Create);
    child.clock().advance(HOUR);
    child.record_lifecycle("p/tokens/x", Lifecycle::Delete);
    child.clock().advance(HOUR);
    child.record_lifecycle("p/tokens/x", Lifecycle::Create);
    let parent = VersionLedger::new(SimClock::new());
    parent.merge_json(&child.to_json()).unwrap();
    assert_eq!(parent.versions("p/index/r"), 2);
    assert_eq!(parent.creates("p/index/r"), 2);
    assert!(parent.created_twice("p/index/r"));
    // Created, deleted, created again: not a double create.
    assert_eq!(parent.creates("p/tokens/x"), 2);
    assert!(!parent.created_twice("p/tokens/x"));
    // The CLI's --api-report writes the versions alone.
    let bare = VersionLedger::new(SimClock::new());
    bare.merge_json(r#"{"p/tokens/y": [1000, 2000]}"#).unwrap();
    assert_eq!(bare.versions("p/tokens/y"), 2);
    assert_eq!(bare.creates("p/tokens/y"), 0);
}

/// On LocalStack: a create and each put count one version each, SDK
/// retries or not; a failed put (to a missing secret) and reads count none.
#[tokio::test]
async fn ledger_counts_one_version_per_successful_write() {
    let (client, counter, ledger) = common::client_with_counter().await;
    let prefix = common::random_prefix();
    let name = common::token_secret(&prefix, "ledger");
    client
        .create_secret()
        .name(&name)
        .secret_string("v1")
        .send()
        .await
        .expect("CreateSecret");
    assert_eq!(ledger.versions(&name), 1);
    for v in 2..=3 {
        client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(format!("v{v}"))
            .send()
            .await
            .expect("PutSecretValue");
    }
    client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("GetSecretValue");
    assert_eq!(ledger.versions(&name), 3);

    let missing = common::token_secret(&prefix, "missing");
    let failed = client
        .put_secret_value()
        .secret_id(&missing)
        .secret_string("never stored")
        .send()
        .await;
    assert!(failed.is_err(), "a put to a missing secret fails");
    assert_eq!(ledger.versions(&missing), 0);
    assert_eq!(ledger.total(), 3);
    assert_eq!(
        (ledger.creates(&name), ledger.created_twice(&name)),
        (1, false)
    );
    assert_eq!(counter.count("PutSecretValue"), 3);
    eprintln!("{}", ledger.report());
    ledger.assert_within_quota();
    common::delete_prefix(&client, &prefix).await;
}
