//! Managed refresh (`ZohoAuth::managed_find_token` and
//! `managed_find_token_by_id`, what the Python and Node drop-ins answer the
//! Zoho SDKs) against a fake Zoho (`tests/fake_zoho`, a real HTTP server on
//! loopback) over `MemoryStore` and, on LocalStack, `SecretsManagerStore`.

mod common;
mod fake_zoho;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use zoho_token_store::auth::{AccountsFallback, AuthError, ZohoAuth};
use zoho_token_store::{MemoryStore, OAuthToken, SecretsManagerStore, StoreError, TokenStore};

use common::now_millis;
use fake_zoho::{CLIENT_ID, CLIENT_SECRET, Fake};

const USER: &str = "sdk@example.com";

/// A stored token for [`USER`] as the SDK saves it: client credentials, a
/// refresh token, an access token with `left_ms` left, and the API domain
/// `api_domain`.
fn stored_token(refresh: &str, left_ms: i64, api_domain: &str) -> OAuthToken {
    OAuthToken {
        user_name: Some(USER.into()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        refresh_token: Some(refresh.into()),
        access_token: Some(format!("1000.canary-old-access-{}", uuid::Uuid::new_v4())),
        expiry_time: Some(now_millis() + left_ms),
        api_domain: Some(api_domain.into()),
        ..OAuthToken::default()
    }
}

/// The query the SDK's `get_token` makes on its first call: the client and
/// the refresh token it was configured with.
fn sdk_query(refresh: &str) -> OAuthToken {
    OAuthToken {
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        refresh_token: Some(refresh.into()),
        ..OAuthToken::default()
    }
}

/// The fallback a binding passes: the SDK environment's full token URL.
fn sdk_environment(fake: &Fake) -> AccountsFallback {
    AccountsFallback::TokenUrl(format!("{}/oauth/v2/token", fake.url()))
}

/// A `ZohoAuth` as a binding builds it: no accounts URL override.
fn binding_auth(store: impl TokenStore + 'static) -> ZohoAuth {
    ZohoAuth::builder(store).build().unwrap()
}

async fn save(store: &impl TokenStore, mut token: OAuthToken) -> OAuthToken {
    store.save_token(&mut token).await.unwrap();
    token
}

// ---------------------------------------------------------------- MemoryStore

#[tokio::test]
async fn a_valid_token_is_answered_as_stored_with_no_call() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let stored = save(
        &*store,
        stored_token(&fake.refresh_token(), 3_600_000, &fake.url()),
    )
    .await;
    let auth = binding_auth(Arc::clone(&store));
    let refresh = stored.refresh_token.clone().unwrap();
    let by_query = auth
        .managed_find_token(&sdk_query(&refresh), &sdk_environment(&fake))
        .await
        .unwrap();
    assert_eq!(by_query.as_ref(), Some(&stored));
    let id = stored.id.as_deref().unwrap();
    let by_id = auth
        .managed_find_token_by_id(id, &sdk_environment(&fake))
        .await
        .unwrap();
    assert_eq!(by_id.as_ref(), Some(&stored));
    // A query that carries an access token of its own does not decide what
    // is answered (the store's find_token would lay it over the match).
    let overlaid = OAuthToken {
        access_token: Some("1000.canary-query-access".into()),
        expiry_time: Some(now_millis() + 9_000_000),
        ..OAuthToken::for_user(USER)
    };
    let answered = auth
        .managed_find_token(&overlaid, &sdk_environment(&fake))
        .await
        .unwrap();
    assert_eq!(answered.as_ref(), Some(&stored));
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn an_expiring_or_missing_access_token_is_refreshed_once_saved_and_answered() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let refresh = fake.refresh_token();
    // 200 s left: under the default 300 s refresh_ahead (the SDK would not
    // refresh it yet; it would, by itself, in the last 5 s).
    let stored = save(&*store, stored_token(&refresh, 200_000, &fake.url())).await;
    let auth = binding_auth(Arc::clone(&store));
    let answered = auth
        .managed_find_token(&sdk_query(&refresh), &sdk_environment(&fake))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.calls(), 1);
    assert_ne!(answered.access_token, stored.access_token);
    assert!(answered.expiry_time.unwrap() > now_millis() + 3_500_000);
    assert_eq!(answered.id, stored.id);
    assert_eq!(answered.refresh_token.as_deref(), Some(refresh.as_str()));
    let id = stored.id.clone().unwrap();
    // What is answered is what is stored.
    assert_eq!(
        store.find_token_by_id(&id).await.unwrap().as_ref(),
        Some(&answered)
    );
    // Warm now, by id as the SDK asks on every later request.
    let again = auth
        .managed_find_token_by_id(&id, &sdk_environment(&fake))
        .await
        .unwrap();
    assert_eq!(again.as_ref(), Some(&answered));
    assert_eq!(fake.calls(), 1);

    // A token without an access token (as after an import) is refreshed too.
    let imported = save(
        &*store,
        OAuthToken {
            user_name: Some("imported@example.com".into()),
            access_token: None,
            expiry_time: None,
            ..stored_token(&fake.refresh_token(), 0, &fake.url())
        },
    )
    .await;
    let answered = auth
        .managed_find_token_by_id(imported.id.as_deref().unwrap(), &sdk_environment(&fake))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answered
            .access_token
            .unwrap()
            .starts_with("1000.canary-access-")
    );
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn threads_of_one_process_share_one_refresh() {
    let fake = Fake::start().await;
    fake.delay_ms.store(200, Ordering::SeqCst);
    let store = Arc::new(MemoryStore::new());
    let stored = save(
        &*store,
        stored_token(&fake.refresh_token(), -1_000, &fake.url()),
    )
    .await;
    let auth = binding_auth(Arc::clone(&store));
    let id = stored.id.clone().unwrap();
    let answers = futures::future::join_all((0..50).map(|n| {
        let (auth, id, fallback) = (auth.clone(), id.clone(), sdk_environment(&fake));
        let query = sdk_query(stored.refresh_token.as_deref().unwrap());
        tokio::spawn(async move {
            if n % 2 == 0 {
                auth.managed_find_token_by_id(&id, &fallback).await
            } else {
                auth.managed_find_token(&query, &fallback).await
            }
        })
    }))
    .await;
    let answers: Vec<OAuthToken> = answers
        .into_iter()
        .map(|a| a.unwrap().unwrap().unwrap())
        .collect();
    assert_eq!(fake.calls(), 1);
    assert!(answers.iter().all(|a| a == &answers[0]));
    assert_eq!(
        store.find_token_by_id(&id).await.unwrap().as_ref(),
        Some(&answers[0])
    );
}

#[tokio::test]
async fn credentials_go_to_the_zoho_dc_else_the_fallback_never_to_a_foreign_api_domain() {
    let fake = Fake::start().await;
    let evil = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    // A stored api_domain that is not Zoho's: the fallback decides.
    let stored = save(
        &*store,
        stored_token(&fake.refresh_token(), -1_000, &evil.url()),
    )
    .await;
    let auth = binding_auth(Arc::clone(&store));
    let id = stored.id.clone().unwrap();
    auth.managed_find_token_by_id(&id, &sdk_environment(&fake))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((fake.calls(), evil.calls()), (1, 0));
    let expected_host = fake.url().trim_start_matches("http://").to_owned();
    assert_eq!(*fake.hosts.lock().unwrap(), [expected_host]);

    // With no fallback at all: refused before anything is sent...
    let expired = save(
        &*store,
        OAuthToken {
            user_name: Some("refused@example.com".into()),
            ..stored_token(&fake.refresh_token(), -1_000, &evil.url())
        },
    )
    .await;
    let expired_id = expired.id.clone().unwrap();
    let error = auth
        .managed_find_token_by_id(&expired_id, &AccountsFallback::Refuse)
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::InvalidInput { .. }), "{error:?}");
    assert!(error.to_string().contains("no accounts server"), "{error}");
    // ...and a token still valid (within refresh_ahead, over 5 s left) is
    // answered, needing none.
    let valid = save(
        &*store,
        OAuthToken {
            user_name: Some("valid@example.com".into()),
            ..stored_token(&fake.refresh_token(), 60_000, &evil.url())
        },
    )
    .await;
    let answered = auth
        .managed_find_token_by_id(valid.id.as_deref().unwrap(), &AccountsFallback::Refuse)
        .await
        .unwrap();
    assert_eq!(answered.as_ref(), Some(&valid));
    assert_eq!((fake.calls(), evil.calls()), (1, 0));
    // A fallback that is not a usable URL: refused too.
    let error = auth
        .managed_find_token_by_id(
            &expired_id,
            &AccountsFallback::TokenUrl("ftp://nowhere".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::InvalidInput { .. }), "{error:?}");

    // The builder's accounts URL overrides everything, fallback included.
    let overridden = ZohoAuth::builder(Arc::clone(&store))
        .accounts_url(fake.url())
        .build()
        .unwrap();
    overridden
        .managed_find_token_by_id(
            &expired_id,
            &AccountsFallback::TokenUrl(format!("{}/oauth/v2/token", evil.url())),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((fake.calls(), evil.calls()), (2, 0));
}

#[tokio::test]
async fn nothing_matching_is_none_and_nothing_to_match_on_is_invalid_input() {
    let fake = Fake::start().await;
    let auth = binding_auth(MemoryStore::new());
    let fallback = sdk_environment(&fake);
    assert_eq!(
        auth.managed_find_token(&sdk_query("1000.unknown"), &fallback)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        auth.managed_find_token_by_id("absent", &fallback)
            .await
            .unwrap(),
        None
    );
    let error = auth
        .managed_find_token(&OAuthToken::default(), &fallback)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::Store(StoreError::InvalidInput { .. })),
        "{error:?}"
    );
    let error = auth
        .managed_find_token_by_id("../bad", &fallback)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::Store(StoreError::InvalidInput { .. })),
        "{error:?}"
    );
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn a_grant_that_matches_nothing_is_exchanged_once_and_then_found() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let auth = binding_auth(Arc::clone(&store));
    let grant = fake.grant_code();
    // The SDK's first-time token: client credentials and a grant token.
    let query = OAuthToken::from_grant_token(CLIENT_ID, CLIENT_SECRET, grant.clone());
    let saved = auth
        .managed_find_token(&query, &sdk_environment(&fake))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.calls(), 1);
    assert!(saved.refresh_token.is_some() && saved.access_token.is_some());
    let id = saved.id.clone().unwrap();
    assert_eq!(
        store.find_token_by_id(&id).await.unwrap().as_ref(),
        Some(&saved)
    );
    // The next cold start is configured with the same grant: it is found,
    // not exchanged again (Zoho would refuse it).
    let again = binding_auth(Arc::clone(&store))
        .managed_find_token(&query, &sdk_environment(&fake))
        .await
        .unwrap();
    assert_eq!(again.as_ref(), Some(&saved));
    assert_eq!(fake.calls(), 1);
    let form = fake.forms.lock().unwrap()[0].clone();
    assert_eq!(form["grant_type"], "authorization_code");
}

#[tokio::test]
async fn rejected_and_throttled_keep_the_stored_token_and_serve_a_valid_one() {
    let fake = Fake::start().await;
    let store = Arc::new(MemoryStore::new());
    let auth = binding_auth(Arc::clone(&store));
    let fallback = sdk_environment(&fake);
    // Revoked, expired: Rejected, the stored token unchanged, not asked again.
    let revoked = fake.refresh_token();
    let stored = save(&*store, stored_token(&revoked, -1_000, &fake.url())).await;
    fake.revoke(&revoked);
    let id = stored.id.clone().unwrap();
    for _ in 0..3 {
        let error = auth
            .managed_find_token_by_id(&id, &fallback)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, AuthError::Rejected { error, .. } if error == "invalid_code"),
            "{error:?}"
        );
    }
    assert_eq!(fake.calls(), 1);
    assert_eq!(store.find_token_by_id(&id).await.unwrap(), Some(stored));

    // Throttled while the token still has 60 s: the current token is served.
    let throttled = fake.refresh_token();
    fake.exhaust(&throttled);
    let valid = save(
        &*store,
        OAuthToken {
            user_name: Some("throttled@example.com".into()),
            ..stored_token(&throttled, 60_000, &fake.url())
        },
    )
    .await;
    let answered = auth
        .managed_find_token_by_id(valid.id.as_deref().unwrap(), &fallback)
        .await
        .unwrap();
    assert_eq!(answered.as_ref(), Some(&valid));
    assert_eq!(fake.calls(), 2);
}

// ------------------------------------------------- SecretsManagerStore (LocalStack)

#[tokio::test]
async fn sm_fleet_of_five_processes_times_20_sdk_callers_makes_one_refresh() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    fake.delay_ms.store(300, Ordering::SeqCst);
    let refresh = fake.refresh_token();
    let stored = save(&h.store, stored_token(&refresh, -1_000, &fake.url())).await;
    let id = stored.id.clone().unwrap();
    let fleet: Vec<(SecretsManagerStore, ZohoAuth)> = (0..5)
        .map(|_| {
            let store = h.instance();
            (store.clone(), binding_auth(store))
        })
        .collect();
    let calls = fleet.iter().flat_map(|(_, auth)| {
        (0..20).map(|n| {
            let (auth, id, fallback) = (auth.clone(), id.clone(), sdk_environment(&fake));
            let query = sdk_query(&refresh);
            tokio::spawn(async move {
                if n % 4 == 0 {
                    auth.managed_find_token(&query, &fallback).await
                } else {
                    auth.managed_find_token_by_id(&id, &fallback).await
                }
            })
        })
    });
    let answers: Vec<OAuthToken> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|a| a.unwrap().unwrap().unwrap())
        .collect();
    assert_eq!(fake.calls(), 1, "one refresh for the whole fleet");
    assert!(answers.iter().all(|a| a == &answers[0]));
    assert!(fake.is_live(answers[0].access_token.as_deref().unwrap()));
    let seen = h.instance().find_token_by_id(&id).await.unwrap();
    assert_eq!(seen.as_ref(), Some(&answers[0]));

    // Warm: no call to Zoho, none to Secrets Manager.
    h.counter.reset();
    for (_, auth) in &fleet {
        let warm = auth
            .managed_find_token_by_id(&id, &sdk_environment(&fake))
            .await
            .unwrap();
        assert_eq!(warm.as_ref(), Some(&answers[0]));
    }
    assert_eq!(h.counter.total(), 0, "{:?}", h.counter.snapshot());
    assert_eq!(fake.calls(), 1);
    h.assert_within_version_quota();
    common::delete_prefix(&h.client, &h.prefix).await;
}

#[tokio::test]
async fn sm_one_grant_in_four_processes_is_exchanged_once() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    fake.delay_ms.store(300, Ordering::SeqCst);
    let grant = fake.grant_code();
    let query = OAuthToken::from_grant_token(CLIENT_ID, CLIENT_SECRET, grant);
    let calls = (0..4).flat_map(|_| {
        let auth = binding_auth(h.instance());
        [auth.clone(), auth].map(|auth| {
            let (query, fallback) = (query.clone(), sdk_environment(&fake));
            tokio::spawn(async move { auth.managed_find_token(&query, &fallback).await })
        })
    });
    let answers: Vec<OAuthToken> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|a| a.unwrap().unwrap().unwrap())
        .collect();
    assert_eq!(fake.calls(), 1, "one exchange for one grant");
    assert!(answers.iter().all(|a| a.id == answers[0].id
        && a.access_token == answers[0].access_token
        && a.refresh_token.is_some()));
    let stored = h.instance().get_tokens().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].access_token, answers[0].access_token);
    h.assert_within_version_quota();
    common::delete_prefix(&h.client, &h.prefix).await;
}

#[tokio::test]
async fn sm_rejected_in_one_process_is_not_asked_again_by_another() {
    let h = common::harness().await;
    let fake = Fake::start().await;
    let revoked = fake.refresh_token();
    let stored = save(&h.store, stored_token(&revoked, -1_000, &fake.url())).await;
    fake.revoke(&revoked);
    let id = stored.id.clone().unwrap();
    for _ in 0..2 {
        // Another process each time: the mark on the token's secret tells it.
        let error = binding_auth(h.instance())
            .managed_find_token_by_id(&id, &sdk_environment(&fake))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::Rejected { .. }), "{error:?}");
    }
    assert_eq!(fake.calls(), 1);
    assert_eq!(
        h.instance().find_token_by_id(&id).await.unwrap(),
        Some(stored)
    );
    // Saving a new token (re-authorized) lifts the mark.
    let mended = fake.refresh_token();
    save(
        &h.store,
        OAuthToken {
            refresh_token: Some(mended),
            ..OAuthToken::for_user(USER)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let answered = binding_auth(h.instance())
        .managed_find_token_by_id(&id, &sdk_environment(&fake))
        .await
        .unwrap()
        .unwrap();
    assert!(fake.is_live(answered.access_token.as_deref().unwrap()));
    assert_eq!(fake.calls(), 2);
    common::delete_prefix(&h.client, &h.prefix).await;
}
