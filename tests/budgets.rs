//! The API-call budgets of `SecretsManagerStore` (its docs' "API calls"
//! table and the cost model of docs/quotas-and-cost.md), counted by an SDK interceptor on LocalStack
//! (never by timing). Each test also asserts Secrets Manager's version quota
//! (100 versions of a secret in 24 hours) on the versions it made.

mod common;

use std::sync::Arc;

use zoho_token_store::auth::ZohoAuth;
use zoho_token_store::conformance::sample_token;
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

/// Calls that change something.
const WRITES: [&str; 5] = [
    "PutSecretValue",
    "CreateSecret",
    "UpdateSecretVersionStage",
    "DeleteSecret",
    "RestoreSecret",
];

fn writes(counter: &common::CallCounter) -> u64 {
    WRITES.iter().map(|op| counter.count(op)).sum()
}

async fn saved(store: &SecretsManagerStore, n: usize) -> OAuthToken {
    let mut token = sample_token(n);
    store.save_token(&mut token).await.unwrap();
    token
}

/// Warm `find_token` and `find_token_by_id` make no API call.
#[tokio::test]
async fn warm_finds_make_no_call() {
    let h = common::harness().await;
    let token = saved(&h.store, 1).await;
    h.store
        .find_token_by_id(token.id.as_deref().unwrap())
        .await
        .unwrap();
    h.counter.reset();
    for _ in 0..10 {
        let found = h
            .store
            .find_token(&OAuthToken::for_user("user1@example.com"))
            .await;
        assert_eq!(found.unwrap(), Some(token.clone()));
        let refresh =
            OAuthToken::from_refresh_token("1000.CLIENT1", "client-secret-1", "1000.refresh-1");
        assert_eq!(
            h.store.find_token(&refresh).await.unwrap(),
            Some(token.clone())
        );
        let by_id = h.store.find_token_by_id(token.id.as_deref().unwrap()).await;
        assert_eq!(by_id.unwrap(), Some(token.clone()));
    }
    assert_eq!(
        h.counter.snapshot(),
        Default::default(),
        "warm finds called the API"
    );
    h.assert_within_version_quota();
}

/// A cold `find_token_by_id` is one `GetSecretValue`.
#[tokio::test]
async fn cold_find_by_id_is_one_call() {
    let h = common::harness().await;
    let token = saved(&h.store, 1).await;
    let cold = h.instance();
    h.counter.reset();
    let found = cold
        .find_token_by_id(token.id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(found, Some(token));
    assert_eq!(h.counter.total(), 1, "{:?}", h.counter.snapshot());
    assert_eq!(h.counter.count("GetSecretValue"), 1);
    // An absent id is one call too, and not an error.
    h.counter.reset();
    assert_eq!(cold.find_token_by_id("absent").await.unwrap(), None);
    assert_eq!(h.counter.total(), 1);
    h.assert_within_version_quota();
}

/// A cold `find_token` by user name or refresh token reads the index shards
/// and the one token.
#[tokio::test]
async fn cold_find_by_key_reads_index_then_token() {
    let h = common::harness().await;
    let token = saved(&h.store, 1).await;
    saved(&h.store, 2).await;
    let shards = h.store.index_stats().await.unwrap().shards as u64;

    let cold = h.instance();
    h.counter.reset();
    let found = cold
        .find_token(&OAuthToken::for_user("user1@example.com"))
        .await
        .unwrap();
    assert_eq!(found, Some(token.clone()));
    assert!(
        h.counter.total() <= 1 + shards,
        "{:?}",
        h.counter.snapshot()
    );

    let cold = h.instance();
    h.counter.reset();
    let refresh =
        OAuthToken::from_refresh_token("1000.CLIENT1", "client-secret-1", "1000.refresh-1");
    assert_eq!(cold.find_token(&refresh).await.unwrap(), Some(token));
    assert!(
        h.counter.total() <= 1 + shards,
        "{:?}",
        h.counter.snapshot()
    );
    h.assert_within_version_quota();
}

/// A new instance's first `access_token` (and `find_token`) by user name,
/// for a token `n` saved by this crate without an id, counted.
async fn cold_first_token_calls(h: &common::Harness, n: usize) -> Vec<(String, u64)> {
    let user = format!("user{n}@example.com");
    let auth = ZohoAuth::builder(h.instance())
        .accounts_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    h.counter.reset();
    let token = auth
        .access_token(&OAuthToken::for_user(&user))
        .await
        .unwrap();
    assert_eq!(token.as_str(), format!("1000.access-{n}"));
    let by_auth = h.counter.snapshot().into_iter().collect::<Vec<_>>();
    let cold = h.instance();
    h.counter.reset();
    let found = cold.find_token(&OAuthToken::for_user(&user)).await.unwrap();
    assert_eq!(found.unwrap().user_name.as_deref(), Some(user.as_str()));
    let by_store = h.counter.snapshot().into_iter().collect::<Vec<_>>();
    assert_eq!(by_auth, by_store, "access_token and find_token differ");
    by_auth
}

fn one_get() -> Vec<(String, u64)> {
    vec![("GetSecretValue".to_owned(), 1)]
}

/// A cold first token by user name is one `GetSecretValue` for a token this
/// crate saved, whatever the token count: its id derives from the user name,
/// so no index read comes first. Saved one at a time or in bulk alike.
#[tokio::test]
async fn cold_first_token_by_user_is_one_call_at_1_and_1000_tokens() {
    let h = common::harness().await;
    saved(&h.store, 0).await;
    assert_eq!(cold_first_token_calls(&h, 0).await, one_get());

    let mut tokens: Vec<OAuthToken> = (1..1000).map(sample_token).collect();
    h.store.save_tokens(&mut tokens).await.unwrap();
    assert_eq!(h.store.index_stats().await.unwrap().tokens, 1000);
    for n in [0, 1, 500, 999] {
        assert_eq!(cold_first_token_calls(&h, n).await, one_get(), "token {n}");
    }
    h.assert_within_version_quota();
    // A thousand secrets slow LocalStack's every call: gone at once.
    common::delete_prefix(&h.client, &h.prefix).await;
}

/// Where the id is not the user's derived one (an explicit or imported id,
/// or a user name that moved to another token), the derived id's read
/// misses and the index path answers: counted, and the right token found.
#[tokio::test]
async fn cold_lookup_by_user_falls_back_to_the_index() {
    let h = common::harness().await;
    // An imported token keeps its id.
    let mut imported = sample_token(1).with_id("imported-1");
    h.store.save_token(&mut imported).await.unwrap();
    let fallback = vec![
        ("BatchGetSecretValue".to_owned(), 1),
        ("GetSecretValue".to_owned(), 2),
    ];
    assert_eq!(cold_first_token_calls(&h, 1).await, fallback);

    // A token saved for user2, renamed to user3: its id stays user2's
    // derived one, so a new user2 token gets a random id.
    let renamed = saved(&h.store, 2).await;
    let mut moved = OAuthToken {
        user_name: Some("user3@example.com".into()),
        access_token: Some("1000.access-3".into()),
        ..renamed.clone()
    };
    h.store.save_token(&mut moved).await.unwrap();
    assert_eq!(moved.id, renamed.id);
    let again = saved(&h.store, 2).await;
    assert_ne!(again.id, renamed.id);
    assert_eq!(cold_first_token_calls(&h, 2).await, fallback);
    assert_eq!(cold_first_token_calls(&h, 3).await, fallback);
    let cold = h.instance();
    let user2 = OAuthToken::for_user("user2@example.com");
    assert_eq!(cold.find_token(&user2).await.unwrap().unwrap().id, again.id);

    // No token at all: the same reads, and `None`.
    h.counter.reset();
    let cold = h.instance();
    let nobody = OAuthToken::for_user("nobody@example.com");
    assert_eq!(cold.find_token(&nobody).await.unwrap(), None);
    assert_eq!(
        h.counter.snapshot().into_iter().collect::<Vec<_>>(),
        vec![
            ("BatchGetSecretValue".to_owned(), 1),
            ("GetSecretValue".to_owned(), 1)
        ]
    );
    h.assert_within_version_quota();
}

/// The hourly refresh (same user and refresh token, new access token) is
/// one version of the token's secret in two calls, and no index write, warm
/// or cold: the new version put under the store's staging label, then
/// `AWSCURRENT` moved to it from the version read, which Secrets Manager
/// refuses if another instance wrote the token since (that save then reads
/// the token again and merges onto what it holds).
#[tokio::test]
async fn hourly_refresh_is_one_version_in_two_calls() {
    let h = common::harness().await;
    let token = saved(&h.store, 1).await;
    let refresh = |n: i64| OAuthToken {
        access_token: Some(format!("1000.access-hour-{n}")),
        expiry_time: Some(4_102_444_800_000 + n),
        ..OAuthToken::for_user("user1@example.com")
    };

    h.counter.reset();
    let mut refreshed = refresh(1);
    h.store.save_token(&mut refreshed).await.unwrap();
    assert_eq!(refreshed.id, token.id);
    assert_eq!(
        h.counter.snapshot().into_iter().collect::<Vec<_>>(),
        vec![
            ("PutSecretValue".to_owned(), 1),
            ("UpdateSecretVersionStage".to_owned(), 1)
        ]
    );

    // By id, with the refresh token restated: the same.
    h.counter.reset();
    let mut by_id = OAuthToken {
        id: token.id.clone(),
        refresh_token: token.refresh_token.clone(),
        ..refresh(2)
    };
    h.store.save_token(&mut by_id).await.unwrap();
    assert_eq!(h.counter.total(), 2, "{:?}", h.counter.snapshot());

    // A cold instance reads what it must, but still writes once.
    let cold = h.instance();
    h.counter.reset();
    cold.save_token(&mut refresh(3)).await.unwrap();
    assert_eq!(writes(&h.counter), 2, "{:?}", h.counter.snapshot());
    assert_eq!(h.counter.count("PutSecretValue"), 1);
    assert_eq!(h.counter.count("UpdateSecretVersionStage"), 1);
    h.assert_within_version_quota();
}

/// `get_tokens` of 100 tokens is the index reads plus ⌈100/20⌉ batch reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tokens_of_100_uses_batches() {
    let h = common::harness().await;
    let store = Arc::new(h.store.clone());
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { saved(&store, n).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let shards = h.store.index_stats().await.unwrap().shards as u64;
    h.counter.reset();
    let tokens = h.instance().get_tokens().await.unwrap();
    assert_eq!(tokens.len(), 100);
    // The index secrets (read 20 to a call, level by level), then the
    // tokens in 5 batches of 20.
    assert!(
        h.counter.total() <= shards + 5,
        "{:?}",
        h.counter.snapshot()
    );
    h.assert_within_version_quota();
}

/// 50 concurrent cold reads of one token coalesce into one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_reads_coalesce() {
    let h = common::harness().await;
    let token = saved(&h.store, 1).await;
    let id = token.id.clone().unwrap();
    let cold = Arc::new(h.instance());
    h.counter.reset();
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let cold = Arc::clone(&cold);
            let id = id.clone();
            tokio::spawn(async move { cold.find_token_by_id(&id).await.unwrap() })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), Some(token.clone()));
    }
    assert_eq!(h.counter.total(), 1, "{:?}", h.counter.snapshot());
    h.assert_within_version_quota();
}
