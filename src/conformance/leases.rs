//! Checks of refresh leases ([`TokenStore::refresh_lease`] and
//! [`TokenStore::fail_refresh_lease`]): take, contend, expire, take over,
//! fail, and cleared by a save.
//!
//! A store without leases (the trait's provided methods) passes each check
//! by answering [`RefreshLease::Unsupported`] to every holder. Lease times
//! are the system clock's: a store with a clock of its own must run these
//! with the system's. No check waits: a lease that has ended is one asked
//! for with a duration of zero, a mark that has ended one whose retry time
//! is in the past.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{by_id, id_of, sample_token, save};
use crate::lease::{FailureCause, LeaseFailure, LeaseRequest, RefreshLease};
use crate::store::TokenStore;
use crate::token::OAuthToken;

/// How long the leases of these checks last when they are not meant to end.
const LONG: Duration = Duration::from_secs(600);

/// Now, Unix ms, by the system clock.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A request by `holder` that wants `token`'s access token replaced.
fn request(holder: &str, duration: Duration, token: &OAuthToken) -> LeaseRequest {
    let stale = token.access_token.as_deref().map(Into::into);
    LeaseRequest::new(holder, duration, now(), stale)
}

async fn ask(store: &dyn TokenStore, id: &str, request: &LeaseRequest) -> RefreshLease {
    store
        .refresh_lease(id, request)
        .await
        .unwrap_or_else(|e| panic!("refresh_lease({id}, {request:?}) failed: {e}"))
}

async fn mark(store: &dyn TokenStore, id: &str, holder: &str, failure: &LeaseFailure) {
    store
        .fail_refresh_lease(id, holder, failure)
        .await
        .unwrap_or_else(|e| panic!("fail_refresh_lease({id}, {holder}, {failure:?}) failed: {e}"));
}

/// Saves a token and has `holder` take its lease for `duration`: the token
/// and the lease's end, or `None` for a store without leases (checked to
/// answer `Unsupported` to another holder too).
async fn leased(
    store: &dyn TokenStore,
    n: usize,
    holder: &str,
    duration: Duration,
) -> Option<(OAuthToken, i64)> {
    let token = save(store, sample_token(n)).await;
    match ask(store, id_of(&token), &request(holder, duration, &token)).await {
        RefreshLease::Acquired {
            token: read,
            until,
            failures,
        } => {
            assert_eq!(*read, token, "Acquired carries the stored token");
            assert_eq!(failures, 0, "a token never refreshed has no failures");
            Some((token, until))
        }
        RefreshLease::Unsupported => {
            let other = ask(store, id_of(&token), &request("other", LONG, &token)).await;
            assert_eq!(other, RefreshLease::Unsupported, "leases for some only");
            None
        }
        other => panic!("the first holder to ask must acquire, got {other:?}"),
    }
}

fn assert_acquired(answer: RefreshLease, what: &str) -> u32 {
    match answer {
        RefreshLease::Acquired { failures, .. } => failures,
        other => panic!("{what}: expected Acquired, got {other:?}"),
    }
}

/// Take: the first holder acquires the lease, for its duration, with the
/// stored token; asking again it holds it still; asking does not change the
/// token. An absent token is `Missing`, and a stored access token the
/// request accepts is served as `Refreshed` instead of a lease.
pub async fn lease_is_taken(store: &dyn TokenStore) {
    let before = now();
    let Some((token, until)) = leased(store, 1, "a", LONG).await else {
        return;
    };
    let id = id_of(&token);
    assert!(
        until >= before + LONG.as_millis() as i64,
        "lease ends {until}"
    );
    let again = ask(store, id, &request("a", LONG, &token)).await;
    let expected = RefreshLease::Acquired {
        token: Box::new(token.clone()),
        until,
        failures: 0,
    };
    assert_eq!(again, expected, "the holder asking again keeps its lease");
    assert_eq!(
        by_id(store, id).await,
        Some(token.clone()),
        "a lease changes no field"
    );
    let absent = ask(store, "never-stored", &request("a", LONG, &token)).await;
    assert_eq!(absent, RefreshLease::Missing);
    // Another token, whose stored access token the request accepts.
    let fresh = save(store, sample_token(2)).await;
    let accepting = LeaseRequest::new("b", LONG, now(), None);
    let answer = ask(store, id_of(&fresh), &accepting).await;
    assert_eq!(answer, RefreshLease::Refreshed(Box::new(fresh)));
}

/// Contend: while a lease lasts, every other holder is told `Held` until
/// its end; of concurrent askers for a free lease exactly one acquires it.
pub async fn lease_is_held_against_others(store: &dyn TokenStore) {
    let Some((token, until)) = leased(store, 1, "a", LONG).await else {
        return;
    };
    let id = id_of(&token);
    let held = ask(store, id, &request("b", LONG, &token)).await;
    assert_eq!(held, RefreshLease::Held { until });
    assert_eq!(by_id(store, id).await, Some(token));
    // Eight holders at once for another token's lease.
    let other = save(store, sample_token(2)).await;
    let requests: Vec<LeaseRequest> = (0..8)
        .map(|n| request(&format!("racer-{n}"), LONG, &other))
        .collect();
    let answers = futures::future::join_all(
        requests
            .iter()
            .map(|request| ask(store, id_of(&other), request)),
    )
    .await;
    let acquired = answers
        .iter()
        .filter(|a| matches!(a, RefreshLease::Acquired { .. }))
        .count();
    let held = answers
        .iter()
        .filter(|a| matches!(a, RefreshLease::Held { .. }))
        .count();
    assert_eq!((acquired, held), (1, 7), "{answers:?}");
}

/// Expire: a lease past its duration is taken by the next holder to ask,
/// and its first holder is then told `Held`.
pub async fn lease_expires(store: &dyn TokenStore) {
    let Some((token, _)) = leased(store, 1, "a", Duration::ZERO).await else {
        return;
    };
    let id = id_of(&token);
    let answer = ask(store, id, &request("b", LONG, &token)).await;
    let failures = assert_acquired(answer, "a lease that ended");
    // A store that counts failures counts a lease that ended unmarked.
    assert!(failures <= 1, "{failures} failures after one lapsed lease");
    let first = ask(store, id, &request("a", LONG, &token)).await;
    assert!(
        matches!(first, RefreshLease::Held { .. }),
        "the first holder after a takeover: {first:?}"
    );
}

/// Take over: once another holder took over an ended lease, the first
/// holder's failure mark does nothing; the new holder keeps its lease.
pub async fn lease_is_taken_over(store: &dyn TokenStore) {
    let Some((token, _)) = leased(store, 1, "a", Duration::ZERO).await else {
        return;
    };
    let id = id_of(&token);
    assert_acquired(
        ask(store, id, &request("b", LONG, &token)).await,
        "takeover",
    );
    let late = LeaseFailure::Transport {
        retry_after: now() + 3_600_000,
    };
    mark(store, id, "a", &late).await;
    let answer = ask(store, id, &request("b", LONG, &token)).await;
    assert_acquired(answer, "the new holder after the old one's mark");
    let first = ask(store, id, &request("a", LONG, &token)).await;
    assert!(matches!(first, RefreshLease::Held { .. }), "{first:?}");
}

/// Fail: a failure mark is reported as `Failed` to every holder that asks,
/// the marking one included, until its retry time (or, `Rejected`, until a
/// save); a second mark changes nothing; a mark changes no field.
pub async fn lease_failure_is_reported(store: &dyn TokenStore) {
    let later = now() + 3_600_000;
    let marks = [
        LeaseFailure::Transport { retry_after: later },
        LeaseFailure::Throttled { retry_after: later },
        LeaseFailure::Rejected {
            code: "invalid_code".into(),
        },
        LeaseFailure::GrantExchange {
            cause: FailureCause::Rejected {
                code: "invalid_code".into(),
            },
            retry_after: later,
        },
    ];
    for (n, failure) in marks.into_iter().enumerate() {
        let Some((token, _)) = leased(store, n, "a", LONG).await else {
            return;
        };
        let id = id_of(&token);
        mark(store, id, "a", &failure).await;
        let other = LeaseFailure::Transport {
            retry_after: later + 1,
        };
        mark(store, id, "a", &other).await;
        for holder in ["b", "a"] {
            let answer = ask(store, id, &request(holder, LONG, &token)).await;
            assert_eq!(
                answer,
                RefreshLease::Failed(failure.clone()),
                "{holder} asks"
            );
        }
        assert_eq!(by_id(store, id).await, Some(token));
    }
}

/// Fail, then the retry time passes: the next holder to ask takes the
/// lease, with the failure counted if the store counts.
pub async fn lease_failure_ends_at_its_retry_time(store: &dyn TokenStore) {
    let Some((token, _)) = leased(store, 1, "a", LONG).await else {
        return;
    };
    let id = id_of(&token);
    mark(store, id, "a", &LeaseFailure::Transport { retry_after: 1 }).await;
    let answer = ask(store, id, &request("b", LONG, &token)).await;
    let failures = assert_acquired(answer, "after the mark's retry time");
    assert!(failures <= 1, "{failures} failures after one mark");
}

/// Cleared by a save: a save of the token ends its lease and any failure
/// mark (a `Rejected` one included), and forgets the count of failures.
pub async fn lease_is_cleared_by_a_save(store: &dyn TokenStore) {
    let Some((token, _)) = leased(store, 1, "a", LONG).await else {
        return;
    };
    let id = id_of(&token).to_owned();
    let update = |domain: &str| OAuthToken {
        id: Some(id.clone()),
        api_domain: Some(domain.into()),
        ..OAuthToken::default()
    };
    let saved = save(store, update("https://www.zohoapis.eu")).await;
    let answer = ask(store, &id, &request("b", LONG, &saved)).await;
    assert_eq!(assert_acquired(answer, "after a save ended a lease"), 0);
    let rejected = LeaseFailure::Rejected {
        code: "invalid_code".into(),
    };
    mark(store, &id, "b", &rejected).await;
    let answer = ask(store, &id, &request("c", LONG, &saved)).await;
    assert_eq!(answer, RefreshLease::Failed(rejected));
    let saved = save(store, update("https://www.zohoapis.in")).await;
    let answer = ask(store, &id, &request("c", LONG, &saved)).await;
    let failures = assert_acquired(answer, "after a save ended a rejected mark");
    assert_eq!(failures, 0, "a save forgets the failures");
    assert_eq!(by_id(store, &id).await, Some(saved));
}
