//! `ZohoAuth` against a fake Zoho (`tests/fake_zoho`: an accounts server
//! and a CRM endpoint, a real HTTP server on loopback, started by each test)
//! over `MemoryStore` and, on LocalStack, `SecretsManagerStore`.

mod common;
mod fake_zoho;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zoho_token_store::auth::{AccessToken, AuthError, ZohoAuth};
use zoho_token_store::{
    LeaseFailure, LeaseRequest, MemoryStore, OAuthToken, RefreshLease, SecretsManagerStore,
    TokenStore,
};

use common::now_millis;
use fake_zoho::{CLIENT_ID, CLIENT_SECRET, Fake};

/// A stored token for `user` with refresh token `refresh` and an access
/// token with `left_ms` left.
fn stored_token(user: &str, refresh: &str, left_ms: i64) -> OAuthToken {
    OAuthToken {
        user_name: Some(user.into()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        refresh_token: Some(refresh.into()),
        access_token: Some(format!("1000.canary-old-access-{}", uuid::Uuid::new_v4())),
        expiry_time: Some(now_millis() + left_ms),
        api_domain: Some("https://www.zohoapis.com".into()),
        ..OAuthToken::default()
    }
}

fn auth_on(store: impl TokenStore + 'static, fake: &Fake) -> ZohoAuth {
    ZohoAuth::builder(store)
        .accounts_url(fake.url())
        .build()
        .unwrap()
}

async fn save(store: &impl TokenStore, mut token: OAuthToken) -> OAuthToken {
    store.save_token(&mut token).await.unwrap();
    token
}

const USER: &str = "me@example.com";

fn me() -> OAuthToken {
    OAuthToken::for_user(USER)
}

// ---------------------------------------------------------------- MemoryStore

#[tokio::test]
async fn memory_warm_calls_make_no_call_and_share_the_bearer() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let stored = save(
        &*store,
        stored_token(USER, &fake.refresh_token(), 3_600_000),
    )
    .await;
    let auth = auth_on(Arc::clone(&store), &fake);
    let first = auth.access_token(&me()).await.unwrap();
    let second = auth.access_token(&me()).await.unwrap();
    assert_eq!(fake.calls(), 0);
    assert_eq!(Some(first.as_str()), stored.access_token.as_deref());
    assert_eq!(Some(first.expiry_time()), stored.expiry_time);
    // One bearer string for both callers, not a copy each.
    assert!(std::ptr::eq(first.as_str(), second.as_str()));
}

#[tokio::test]
async fn memory_warm_token_of_a_deleted_user_stops_within_the_recheck() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let saved = save(
        &*store,
        stored_token(USER, &fake.refresh_token(), 3_600_000),
    )
    .await;
    let clock = common::SimClock::new();
    let now = clock.clone();
    let auth = ZohoAuth::builder(Arc::clone(&store))
        .accounts_url(fake.url())
        .clock(move || now.now())
        .build()
        .unwrap();
    let first = auth.access_token(&me()).await.unwrap();
    store
        .delete_token(saved.id.as_deref().unwrap())
        .await
        .unwrap();
    // Within the recheck: served from the warm map.
    assert_eq!(auth.access_token(&me()).await.unwrap(), first);
    clock.advance(zoho_token_store::auth::WARM_RECHECK);
    let error = auth.access_token(&me()).await.unwrap_err();
    assert!(matches!(error, AuthError::NotFound { .. }), "{error:?}");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn memory_near_expiry_refreshes_once_and_saves() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let refresh = fake.refresh_token();
    // 200 s left, under the default 300 s refresh_ahead.
    let stored = save(&*store, stored_token(USER, &refresh, 200_000)).await;
    let auth = auth_on(Arc::clone(&store), &fake);
    let token = auth.access_token(&me()).await.unwrap();
    assert_eq!(fake.calls(), 1);
    assert_ne!(Some(token.as_str()), stored.access_token.as_deref());
    assert!(token.expiry_time() > now_millis() + 3_500_000);
    let saved = store.find_token(&me()).await.unwrap().unwrap();
    assert_eq!(saved.access_token.as_deref(), Some(token.as_str()));
    assert_eq!(saved.expiry_time, Some(token.expiry_time()));
    assert_eq!(saved.refresh_token.as_deref(), Some(refresh.as_str()));
    assert_eq!(saved.id, stored.id);
    assert_eq!(
        saved.api_domain.as_deref(),
        Some("https://www.zohoapis.com")
    );
    // Warm now.
    auth.access_token(&me()).await.unwrap();
    assert_eq!(fake.calls(), 1);
    let form = fake.forms.lock().unwrap()[0].clone();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], refresh);
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn memory_under_five_seconds_left_or_no_access_token_is_refreshed() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    // A short refresh_ahead: only the 5-second floor applies.
    let auth = ZohoAuth::builder(Arc::clone(&store))
        .accounts_url(fake.url())
        .refresh_ahead(Duration::from_secs(1))
        .build()
        .unwrap();
    let stored = save(&*store, stored_token(USER, &fake.refresh_token(), 4_000)).await;
    let token = auth.access_token(&me()).await.unwrap();
    assert_ne!(Some(token.as_str()), stored.access_token.as_deref());
    assert_eq!(fake.calls(), 1);
    // As after an import: a refresh token and no access token.
    let imported = OAuthToken {
        access_token: None,
        expiry_time: None,
        ..stored_token("imported@example.com", &fake.refresh_token(), 0)
    };
    save(&*store, imported).await;
    let token = auth
        .access_token(&OAuthToken::for_user("imported@example.com"))
        .await
        .unwrap();
    assert!(token.as_str().starts_with("1000.canary-access-"));
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn memory_older_answers_give_expires_in_sec() {
    let fake = Fake::start().await;
    fake.old_format.store(true, Ordering::SeqCst);
    let store = Arc::new(MemoryStore::new());
    save(&*store, stored_token(USER, &fake.refresh_token(), 0)).await;
    let token = auth_on(Arc::clone(&store), &fake)
        .access_token(&me())
        .await
        .unwrap();
    let left = token.expiry_time() - now_millis();
    assert!((3_500_000..=3_600_000).contains(&left), "{left}");
}

#[tokio::test]
async fn memory_100_concurrent_callers_share_one_refresh() {
    let fake = Fake::start().await;
    fake.delay_ms.store(200, Ordering::SeqCst);
    let store = Arc::new(MemoryStore::new());
    save(&*store, stored_token(USER, &fake.refresh_token(), -1_000)).await;
    let store: Arc<dyn TokenStore> = store;
    let auth = auth_on(store, &fake);
    let tokens = futures::future::join_all((0..100).map(|_| {
        let auth = auth.clone();
        tokio::spawn(async move { auth.access_token(&me()).await.unwrap() })
    }))
    .await;
    assert_eq!(fake.calls(), 1);
    let first = tokens[0].as_ref().unwrap().as_str().to_owned();
    assert!(tokens.iter().all(|t| t.as_ref().unwrap().as_str() == first));
}

#[tokio::test]
async fn memory_rejected_keeps_the_stored_token_and_is_not_retried_at_once() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let refresh = fake.refresh_token();
    let stored = save(&*store, stored_token(USER, &refresh, -1_000)).await;
    fake.revoke(&refresh);
    let auth = auth_on(Arc::clone(&store), &fake);
    let error = auth.access_token(&me()).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::Rejected { error, .. } if error == "invalid_code"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(store.find_token(&me()).await.unwrap(), Some(stored));
    // Not asked again for the same refresh token right away.
    let again = auth.access_token(&me()).await.unwrap_err();
    assert!(matches!(again, AuthError::Rejected { .. }));
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn memory_throttled_serves_the_valid_token_and_fails_an_expired_one() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let refresh = fake.refresh_token();
    // 100 s left: due for a refresh, still valid.
    let stored = save(&*store, stored_token(USER, &refresh, 100_000)).await;
    fake.exhaust(&refresh);
    let auth = auth_on(Arc::clone(&store), &fake);
    let token = auth.access_token(&me()).await.unwrap();
    assert_eq!(Some(token.as_str()), stored.access_token.as_deref());
    assert_eq!(fake.calls(), 1);

    let expired_refresh = fake.refresh_token();
    save(
        &*store,
        stored_token("expired@example.com", &expired_refresh, -1_000),
    )
    .await;
    fake.exhaust(&expired_refresh);
    let error = auth
        .access_token(&OAuthToken::for_user("expired@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::Throttled { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn memory_unknown_user_is_not_found() {
    let fake = Fake::start().await;
    let auth = auth_on(MemoryStore::new(), &fake);
    let error = auth.access_token(&me()).await.unwrap_err();
    assert!(matches!(error, AuthError::NotFound { .. }), "{error:?}");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn grant_exchange_saves_and_a_second_exchange_is_rejected() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let auth = auth_on(Arc::clone(&store), &fake);
    let code = fake.grant_code();
    let grant = || {
        OAuthToken {
            redirect_url: Some("https://app.example.com/cb".into()),
            ..OAuthToken::from_grant_token(CLIENT_ID, CLIENT_SECRET, code.clone())
        }
        .with_user_name(USER)
    };
    let saved = auth.exchange_grant_token(grant()).await.unwrap();
    assert!(saved.id.is_some());
    assert!(
        saved
            .refresh_token
            .as_deref()
            .unwrap()
            .starts_with("1000.canary-refresh-")
    );
    assert_eq!(
        store.find_token(&me()).await.unwrap().as_ref(),
        Some(&saved)
    );
    let form = fake.forms.lock().unwrap()[0].clone();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], code);
    assert_eq!(form["redirect_uri"], "https://app.example.com/cb");
    // The access token it saved is served with no more calls.
    let token = auth.access_token(&me()).await.unwrap();
    assert_eq!(Some(token.as_str()), saved.access_token.as_deref());
    assert_eq!(fake.calls(), 1);

    let error = auth.exchange_grant_token(grant()).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::Rejected { error, .. } if error == "invalid_code"),
        "{error:?}"
    );
    assert_eq!(store.find_token(&me()).await.unwrap(), Some(saved));
}

#[tokio::test]
async fn secrets_go_only_to_the_accounts_url_never_to_a_stored_api_domain() {
    let fake = Fake::start().await;
    let evil = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let token = OAuthToken {
        api_domain: Some(evil.url()),
        ..stored_token(USER, &fake.refresh_token(), -1_000)
    };
    save(&*store, token).await;
    auth_on(Arc::clone(&store), &fake)
        .access_token(&me())
        .await
        .unwrap();
    assert_eq!(evil.calls(), 0);
    let expected_host = fake.url().trim_start_matches("http://").to_owned();
    assert_eq!(*fake.hosts.lock().unwrap(), [expected_host]);

    // Without an accounts URL, an api_domain that is not Zoho's does not
    // choose the host either: the builder's data center does (here an
    // unreachable one, so the call fails, but not at the evil host).
    let evil_only = Arc::new(MemoryStore::new());
    save(
        &*evil_only,
        OAuthToken {
            api_domain: Some(evil.url()),
            ..stored_token(USER, &fake.refresh_token(), -1_000)
        },
    )
    .await;
    let auth = ZohoAuth::builder(Arc::clone(&evil_only))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let _ = auth.access_token(&me()).await;
    assert_eq!(evil.calls(), 0);
}

#[tokio::test]
async fn no_secret_value_in_errors_or_debug() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let revoked = fake.refresh_token();
    save(
        &*store,
        stored_token("revoked@example.com", &revoked, -1_000),
    )
    .await;
    fake.revoke(&revoked);
    let throttled = fake.refresh_token();
    save(
        &*store,
        stored_token("throttled@example.com", &throttled, -1_000),
    )
    .await;
    fake.exhaust(&throttled);
    save(
        &*store,
        stored_token(USER, &fake.refresh_token(), 3_600_000),
    )
    .await;
    let auth = auth_on(Arc::clone(&store), &fake);
    let mut shown = Vec::new();
    for user in ["revoked@example.com", "throttled@example.com", "nobody@x"] {
        let error = auth
            .access_token(&OAuthToken::for_user(user))
            .await
            .unwrap_err();
        shown.push(format!("{error} {error:?}"));
    }
    let grant = OAuthToken::from_grant_token(CLIENT_ID, CLIENT_SECRET, "1000.canary-grant-x");
    let error = auth.exchange_grant_token(grant).await.unwrap_err();
    shown.push(format!("{error} {error:?}"));
    // A wrong client secret.
    let wrong = OAuthToken::from_grant_token(CLIENT_ID, "canary-wrong-secret", "g");
    let error = auth.exchange_grant_token(wrong).await.unwrap_err();
    shown.push(format!("{error} {error:?}"));
    // Transport: nothing listens there. (A token of its own: the store
    // shares the throttled token's failure mark with every process.)
    save(
        &*store,
        stored_token("unreachable@example.com", &fake.refresh_token(), -1_000),
    )
    .await;
    let closed = ZohoAuth::builder(Arc::clone(&store))
        .accounts_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    let error = closed
        .access_token(&OAuthToken::for_user("unreachable@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::Transport { .. }), "{error:?}");
    shown.push(format!("{error} {error:?}"));
    let token: AccessToken = auth.access_token(&me()).await.unwrap();
    shown.push(format!("{token:?} {auth:?}"));
    for text in shown {
        assert!(!text.contains("canary"), "a secret value shown: {text}");
    }
}

// ------------------------------------------------- SecretsManagerStore (LocalStack)

/// `n` simulated processes over one prefix: a store instance with its own
/// cache and a `ZohoAuth` each.
fn processes(h: &common::Harness, fake: &Fake, n: usize) -> Vec<(SecretsManagerStore, ZohoAuth)> {
    (0..n)
        .map(|_| {
            let store = h.instance();
            let auth = auth_on(store.clone(), fake);
            (store, auth)
        })
        .collect()
}

#[tokio::test]
async fn sm_warm_no_call_expired_refreshed_once_and_seen_by_a_fresh_instance() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    let refresh = fake.refresh_token();
    let stored = save(&h.store, stored_token(USER, &refresh, -1_000)).await;
    let id = stored.id.clone().unwrap();
    let auth = auth_on(h.store.clone(), &fake);
    let token = auth.access_token(&me()).await.unwrap();
    assert_eq!(fake.calls(), 1);
    h.counter.reset();
    // Warm: no Zoho call, no Secrets Manager call.
    for _ in 0..10 {
        assert_eq!(auth.access_token(&me()).await.unwrap(), token);
    }
    assert_eq!(fake.calls(), 1);
    assert_eq!(h.counter.total(), 0, "{:?}", h.counter.snapshot());
    let seen = h.instance().find_token(&me()).await.unwrap().unwrap();
    assert_eq!(seen.access_token.as_deref(), Some(token.as_str()));
    assert_eq!(seen.refresh_token.as_deref(), Some(refresh.as_str()));
    assert_eq!(seen.id.as_deref(), Some(id.as_str()));
    // Creation, the lease and the new token.
    assert!(h.ledger.versions(&h.token_secret(&id)) <= 3);
    h.assert_within_version_quota();
}

#[tokio::test]
async fn sm_fleet_of_six_processes_times_20_callers_makes_one_refresh() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    fake.delay_ms.store(300, Ordering::SeqCst);
    let stored = save(&h.store, stored_token(USER, &fake.refresh_token(), -1_000)).await;
    let secret = h.token_secret(stored.id.as_deref().unwrap());
    let before = h.ledger.versions(&secret);
    let fleet = processes(&h, &fake, 6);
    // Every process has read the (expired) token, as a running fleet has.
    for (store, _) in &fleet {
        store.find_token(&me()).await.unwrap();
    }
    let calls = fleet.iter().flat_map(|(_, auth)| {
        (0..20).map(move |_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.access_token(&me()).await })
        })
    });
    let tokens = futures::future::join_all(calls).await;
    let tokens: Vec<AccessToken> = tokens.into_iter().map(|t| t.unwrap().unwrap()).collect();
    assert_eq!(fake.calls(), 1, "one refresh for the whole fleet");
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert!(fake.is_live(tokens[0].as_str()));
    // The lease and the new token: two versions for the refresh, however
    // many processes raced; waiters wrote nothing.
    let added = h.ledger.versions(&secret) - before;
    assert!(added <= 2, "{added} versions for one refresh");
    h.assert_within_version_quota();
}

#[tokio::test]
async fn sm_crashed_lease_holder_is_taken_over_after_the_lease_ends() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    let stored = save(&h.store, stored_token(USER, &fake.refresh_token(), -1_000)).await;
    let id = stored.id.clone().unwrap();
    // A holder that took the lease and died: its lease ends in 2 s.
    let mut value: serde_json::Map<String, Value> =
        serde_json::from_str(&zoho_token_store::encode_token(&stored).unwrap()).unwrap();
    value.insert(
        "refresh_lease".into(),
        json!({"holder": "crashed", "until": now_millis() + 2_000}),
    );
    h.client
        .put_secret_value()
        .secret_id(h.token_secret(&id))
        .secret_string(Value::Object(value).to_string())
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let auth = auth_on(h.instance(), &fake);
    let token = auth.access_token(&me()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.calls(), 1);
    let seen = h.instance().find_token_by_id(&id).await.unwrap().unwrap();
    assert_eq!(seen.access_token.as_deref(), Some(token.as_str()));
    h.assert_within_version_quota();
}

#[tokio::test]
async fn sm_a_lease_that_ended_unmarked_counts_as_one_more_failure() {
    let h = common::harness().await;
    let stored = save(&h.store, stored_token(USER, "1000.refresh", -1_000)).await;
    let id = stored.id.clone().unwrap();
    // A holder whose refresh was the third failure in a row, and whose
    // failure mark never landed: its lease just ended.
    let mut value: serde_json::Map<String, Value> =
        serde_json::from_str(&zoho_token_store::encode_token(&stored).unwrap()).unwrap();
    value.insert(
        "refresh_lease".into(),
        json!({"holder": "lost-mark", "until": now_millis() - 1, "failures": 2}),
    );
    h.client
        .put_secret_value()
        .secret_id(h.token_secret(&id))
        .secret_string(Value::Object(value).to_string())
        .send()
        .await
        .unwrap();
    let request = LeaseRequest::new("next", Duration::from_secs(20), now_millis(), None);
    match h.instance().refresh_lease(&id, &request).await.unwrap() {
        RefreshLease::Acquired { failures, .. } => assert_eq!(failures, 3),
        other => panic!("{other:?}"),
    }
    // The new holder's failure is marked (the fourth) and holds the others off.
    h.store
        .fail_refresh_lease(
            &id,
            "next",
            &LeaseFailure::Transport {
                retry_after: now_millis() + 60_000,
            },
        )
        .await
        .unwrap();
    let other = LeaseRequest::new("other", Duration::from_secs(20), now_millis(), None);
    match h.instance().refresh_lease(&id, &other).await.unwrap() {
        RefreshLease::Failed(failure) => assert!(
            matches!(failure, LeaseFailure::Transport { .. }),
            "{failure:?}"
        ),
        other => panic!("{other:?}"),
    }
    // A caller in another process reports that failure as another
    // process's, with no call to Zoho and no secret in the message.
    let fake = Fake::start().await;
    let error = auth_on(h.instance(), &fake)
        .access_token(&me())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::FailedElsewhere { id: failed, request: "refresh", .. } if *failed == id),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(fake.calls(), 0);
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("1000.refresh") && !shown.contains(CLIENT_SECRET),
        "{shown}"
    );
    h.assert_within_version_quota();
}

#[tokio::test]
async fn sm_instances_exchanging_one_grant_make_one_call() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    fake.delay_ms.store(300, Ordering::SeqCst);
    let with_user = fake.grant_code();
    let without_user = fake.grant_code();
    let fleet = processes(&h, &fake, 4);
    for (code, user) in [(&with_user, Some(USER)), (&without_user, None)] {
        let before = fake.calls();
        let grant = OAuthToken::from_grant_token(CLIENT_ID, CLIENT_SECRET, code.clone());
        let grant = match user {
            Some(user) => grant.with_user_name(user),
            None => grant,
        };
        // Each instance is handed the grant twice (two concurrent requests).
        let calls = fleet.iter().flat_map(|(_, auth)| {
            [auth.clone(), auth.clone()].map(|auth| {
                let grant = grant.clone();
                tokio::spawn(async move { auth.exchange_grant_token(grant).await })
            })
        });
        let saved: Vec<OAuthToken> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(fake.calls() - before, 1, "one call to Zoho for one grant");
        assert!(
            saved
                .iter()
                .all(|t| t.id == saved[0].id && t.access_token == saved[0].access_token)
        );
        let stored = h
            .instance()
            .find_token_by_id(saved[0].id.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.access_token, saved[0].access_token);
        assert!(stored.refresh_token.is_some());
    }
    // Exchanged again later: Zoho refuses it, and the stored token is kept.
    let stored = h.instance().find_token(&me()).await.unwrap().unwrap();
    let again = OAuthToken::from_grant_token(CLIENT_ID, CLIENT_SECRET, with_user.clone())
        .with_user_name(USER);
    let error = fleet[0].1.exchange_grant_token(again).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::Rejected { error, .. } if error == "invalid_code"),
        "{error:?}"
    );
    assert_eq!(
        h.instance().find_token(&me()).await.unwrap().unwrap(),
        stored
    );
    // ...and the token's refreshes are not held back by the failed exchange.
    assert_eq!(
        fleet[1].1.access_token(&me()).await.unwrap().as_str(),
        stored.access_token.as_deref().unwrap()
    );
    h.assert_within_version_quota();
}

#[tokio::test]
async fn sm_rejected_keeps_the_stored_token_and_tells_the_other_processes() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    let refresh = fake.refresh_token();
    let stored = save(&h.store, stored_token(USER, &refresh, -1_000)).await;
    fake.revoke(&refresh);
    let fleet = processes(&h, &fake, 3);
    for (_, auth) in &fleet {
        let error = auth.access_token(&me()).await.unwrap_err();
        assert!(matches!(error, AuthError::Rejected { .. }), "{error:?}");
    }
    // The first process asked Zoho; the others read its failed lease.
    assert_eq!(fake.calls(), 1);
    let seen = h.instance().find_token(&me()).await.unwrap();
    assert_eq!(seen, Some(stored));
    h.assert_within_version_quota();
}

#[tokio::test]
async fn sm_throttled_while_valid_serves_the_current_token() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    let refresh = fake.refresh_token();
    let stored = save(&h.store, stored_token(USER, &refresh, 100_000)).await;
    fake.exhaust(&refresh);
    let auth = auth_on(h.instance(), &fake);
    let token = auth.access_token(&me()).await.unwrap();
    assert_eq!(Some(token.as_str()), stored.access_token.as_deref());
    assert_eq!(fake.calls(), 1);
    // Not asked again at once, and still served.
    auth.access_token(&me()).await.unwrap();
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn sm_invalidate_on_two_instances_makes_one_refresh() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    save(
        &h.store,
        stored_token(USER, &fake.refresh_token(), 3_600_000),
    )
    .await;
    let fleet = processes(&h, &fake, 2);
    let (_, a) = &fleet[0];
    let (_, b) = &fleet[1];
    let old_a = a.access_token(&me()).await.unwrap();
    let old_b = b.access_token(&me()).await.unwrap();
    assert_eq!(old_a, old_b);
    assert_eq!(fake.calls(), 0);
    // The CRM API answered 401 to both.
    a.invalidate(&old_a).await;
    b.invalidate(&old_b).await;
    let new_a = a.access_token(&me()).await.unwrap();
    assert_ne!(new_a, old_a);
    assert_eq!(fake.calls(), 1);
    // B re-reads past its cache and finds A's token: no call.
    let new_b = b.access_token(&me()).await.unwrap();
    assert_eq!(new_b, new_a);
    assert_eq!(fake.calls(), 1);
    h.assert_within_version_quota();
}

/// `GET {fake}/crm/v8/users?type=CurrentUser` with `token`: the user's full
/// name, or the HTTP status and Zoho's error code.
async fn current_user(fake: &Fake, token: &AccessToken) -> Result<String, (u16, String)> {
    // The crate's reqwest has no crypto provider of its own (ZohoAuth gives
    // it the AWS SDK's): a client built here needs the default one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let answer = reqwest::Client::new()
        .get(format!("{}/crm/v8/users?type=CurrentUser", fake.url()))
        .header(
            "Authorization",
            format!("Zoho-oauthtoken {}", token.as_str()),
        )
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    match body["users"][0]["full_name"].as_str() {
        Some(name) if status == 200 => Ok(name.to_owned()),
        _ => Err((status, body["code"].as_str().unwrap_or_default().to_owned())),
    }
}

#[tokio::test]
async fn sm_crm_401_invalid_token_is_mended_by_invalidate_with_one_refresh() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    let refresh = fake.refresh_token_of(USER, "Ada Lovelace");
    save(&h.store, stored_token(USER, &refresh, -1_000)).await;
    let (a, b) = (auth_on(h.instance(), &fake), auth_on(h.instance(), &fake));
    let first = a.access_token(&me()).await.unwrap();
    assert_eq!(current_user(&fake, &first).await.unwrap(), "Ada Lovelace");
    assert_eq!(b.access_token(&me()).await.unwrap(), first);

    // Zoho invalidates it (say, a 16th access token was issued elsewhere).
    fake.invalidate_access(first.as_str());
    let rejected = current_user(&fake, &first).await.unwrap_err();
    assert_eq!(rejected, (401, "INVALID_TOKEN".to_owned()));

    // Instance a: invalidate, then one refresh; instance b, told the same,
    // picks up a's new token from the store without calling Zoho.
    a.invalidate(&first).await;
    let second = a.access_token(&me()).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(current_user(&fake, &second).await.unwrap(), "Ada Lovelace");
    b.invalidate(&first).await;
    assert_eq!(b.access_token(&me()).await.unwrap(), second);
    assert_eq!(fake.calls(), 2, "one refresh at first, one after the 401");
    assert_eq!(fake.crm_rejected.load(Ordering::SeqCst), 1);
    h.assert_within_version_quota();
}

#[tokio::test]
async fn sm_fleet_stays_within_zohos_limits_where_the_naive_loop_does_not() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    let refresh = fake.refresh_token();
    save(&h.store, stored_token(USER, &refresh, -1_000)).await;
    // The naive loop: each of 12 instances refreshes on its own.
    let naive = Fake::start().await;
    let naive_refresh = naive.refresh_token();
    let mut naive_errors = 0;
    for _ in 0..12 {
        let store = MemoryStore::new();
        save(&store, stored_token(USER, &naive_refresh, -1_000)).await;
        if auth_on(store, &naive).access_token(&me()).await.is_err() {
            naive_errors += 1;
        }
    }
    assert_eq!(naive_errors, 2, "Zoho throttles the 11th and 12th refresh");

    // The same 12 instances on one store: one refresh, a token for all.
    let fleet = processes(&h, &fake, 12);
    let mut tokens = Vec::new();
    for (_, auth) in &fleet {
        tokens.push(auth.access_token(&me()).await.unwrap());
    }
    assert_eq!(fake.calls(), 1);
    assert!(tokens.iter().all(|t| fake.is_live(t.as_str())));
    h.assert_within_version_quota();
}

/// `n` processes over one prefix whose store and `ZohoAuth` read the time
/// from `clock` (the ledger's), so that a test can move it by hours.
fn clocked_processes(
    h: &common::Harness,
    fake: &Fake,
    clock: &common::SimClock,
    n: usize,
) -> Vec<ZohoAuth> {
    (0..n)
        .map(|_| {
            let (c1, c2) = (clock.clone(), clock.clone());
            let store = SecretsManagerStore::builder()
                .client(h.client.clone())
                .prefix(h.prefix.clone())
                .clock(move || c1.now())
                .build()
                .unwrap();
            ZohoAuth::builder(store)
                .accounts_url(fake.url())
                .clock(move || c2.now())
                .build()
                .unwrap()
        })
        .collect()
}

/// Every caller of every process asks for a token, at once.
async fn ask_all(fleet: &[ZohoAuth], callers: usize) -> Vec<Result<AccessToken, AuthError>> {
    let calls = fleet.iter().flat_map(|auth| {
        (0..callers).map(move |_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.access_token(&me()).await })
        })
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test]
async fn sm_revoked_refresh_token_for_a_day_asks_zoho_once_and_writes_one_failure() {
    let h = common::harness().await;
    let clock = h.ledger.clock().clone();
    let fake = Fake::start().await;
    let refresh = fake.refresh_token();
    let stored = save(&h.store, stored_token(USER, &refresh, -1_000)).await;
    let secret = h.token_secret(stored.id.as_deref().unwrap());
    fake.revoke(&refresh);
    let before = h.ledger.versions(&secret);
    let fleet = clocked_processes(&h, &fake, &clock, 4);
    // A day of requests, every 10 minutes: 4 long-lived processes × 3
    // callers, and a new process (a cold start) every 2 hours.
    let mut answers = 0;
    for step in 0..144 {
        let mut results = ask_all(&fleet, 3).await;
        if step % 12 == 0 {
            results.extend(ask_all(&clocked_processes(&h, &fake, &clock, 1), 2).await);
        }
        for result in results {
            let error = result.unwrap_err();
            assert!(
                matches!(&error, AuthError::Rejected { error, .. } if error == "invalid_code"),
                "{error:?}"
            );
            answers += 1;
        }
        clock.advance(Duration::from_secs(600));
    }
    let added = h.ledger.versions(&secret) - before;
    eprintln!(
        "revoked token, 24 h: {answers} answers, {} Zoho calls, {added} versions",
        fake.calls()
    );
    assert_eq!(
        fake.calls(),
        1,
        "Zoho asked once for a revoked refresh token"
    );
    assert!(
        added <= 2,
        "{added} versions: the lease and the failure mark"
    );
    h.assert_within_version_quota();

    // Saving a new token ends it: the next caller refreshes with it.
    let renewed = fake.refresh_token();
    let mut token = stored_token(USER, &renewed, -1_000);
    token.id = stored.id.clone();
    save(&h.store, token).await;
    let fresh = clocked_processes(&h, &fake, &clock, 1);
    fresh[0].access_token(&me()).await.unwrap();
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn sm_failing_accounts_server_for_a_day_backs_off_under_the_version_quota() {
    let h = common::harness().await;
    let clock = h.ledger.clock().clone();
    let fake = Fake::start().await;
    fake.broken.store(true, Ordering::SeqCst);
    let stored = save(&h.store, stored_token(USER, &fake.refresh_token(), -1_000)).await;
    let secret = h.token_secret(stored.id.as_deref().unwrap());
    let before = h.ledger.versions(&secret);
    let fleet = clocked_processes(&h, &fake, &clock, 3);
    // A day of requests: every second for the first minute, every minute
    // for the first hour, then every 10 minutes.
    let mut elapsed = Duration::ZERO;
    while elapsed < Duration::from_secs(24 * 3600) {
        for result in ask_all(&fleet, 2).await {
            let error = result.unwrap_err();
            assert!(error.is_retryable(), "{error:?}");
        }
        let step = match elapsed.as_secs() {
            0..60 => 1,
            60..3600 => 60,
            _ => 600,
        };
        clock.advance(Duration::from_secs(step));
        elapsed += Duration::from_secs(step);
    }
    let added = h.ledger.versions(&secret) - before;
    eprintln!(
        "failing accounts server, 24 h: {} Zoho calls, {added} versions",
        fake.calls()
    );
    // 2 s, 8 s, 32 s, 128 s, 512 s, 2048 s, then every 2 h: 18 attempts.
    assert!(fake.calls() <= 18, "{} Zoho calls", fake.calls());
    assert!(added <= 2 * fake.calls(), "{added} versions");
    assert!(added <= 36, "{added} versions");
    h.assert_within_version_quota();

    // Zoho is back: the next attempt (at most 2 h on) refreshes.
    fake.broken.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(2 * 3600));
    ask_all(&fleet, 1).await.into_iter().for_each(|r| {
        r.unwrap();
    });
}
