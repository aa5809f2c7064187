//! `SecretsManagerStore` on LocalStack: the stored format, several instances
//! sharing a prefix, deleting and re-saving, and the expiry-aware cache.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use zoho_token_store::conformance::sample_token;
use zoho_token_store::{OAuthToken, SecretsManagerStore, StoreError, TokenStore};

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Another instance on the same prefix, with its own cache, as another
/// Lambda instance would be.
fn instance(h: &common::Harness, ttl: Duration) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(h.client.clone())
        .prefix(h.prefix.clone())
        .cache_ttl(ttl)
        .build()
        .unwrap()
}

async fn raw_value(h: &common::Harness, id: &str) -> Value {
    let out = h
        .client
        .get_secret_value()
        .secret_id(h.token_secret(id))
        .send()
        .await
        .unwrap();
    serde_json::from_str(out.secret_string().unwrap()).unwrap()
}

/// What the store writes is the documented JSON: Zoho field names, absent
/// fields omitted, `expiry_time` an integer.
#[tokio::test]
async fn writes_the_documented_json() {
    let h = common::harness().await;
    let mut token = OAuthToken {
        api_domain: None,
        redirect_url: None,
        grant_token: None,
        ..sample_token(1)
    };
    h.store.save_token(&mut token).await.unwrap();
    let id = token.id.clone().unwrap();
    assert_eq!(
        raw_value(&h, &id).await,
        json!({
            "id": id,
            "user_name": "user1@example.com",
            "client_id": "1000.CLIENT1",
            "client_secret": "client-secret-1",
            "refresh_token": "1000.refresh-1",
            "access_token": "1000.access-1",
            "expiry_time": 4_102_444_800_001_i64,
        })
    );
}

/// A token secret written by another tool in the documented JSON (numeric
/// string expiry, unknown fields) is read by id, and indexed after `repair`.
#[tokio::test]
async fn reads_a_token_written_with_the_sdk() {
    let h = common::harness().await;
    let value = json!({
        "user_name": "other-tool@example.com",
        "client_id": "1000.X",
        "client_secret": "s",
        "refresh_token": "1000.r",
        "expiry_time": "1900000000000",
        "written_by": "python"
    });
    h.client
        .create_secret()
        .name(h.token_secret("from-python"))
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap();
    let token = h
        .store
        .find_token_by_id("from-python")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.id.as_deref(), Some("from-python"));
    assert_eq!(token.user_name.as_deref(), Some("other-tool@example.com"));
    assert_eq!(token.expiry_time, Some(1_900_000_000_000));
    let report = h.store.repair().await.unwrap();
    assert_eq!(report.indexed, vec!["from-python".to_owned()]);
    let found = h
        .store
        .find_token(&OAuthToken::for_user("other-tool@example.com"))
        .await
        .unwrap();
    assert_eq!(found, Some(token));
}

/// Two instances with separate caches see each other's writes: at once for
/// reads they have not cached, after the cache TTL for those they have.
#[tokio::test]
async fn instances_see_each_others_writes() {
    let h = common::harness().await;
    let a = instance(&h, Duration::from_secs(300));
    let b = instance(&h, Duration::from_millis(1500));

    // B has an (empty) index cached before A writes.
    assert_eq!(
        b.find_token(&OAuthToken::for_user("user1@example.com"))
            .await
            .unwrap(),
        None
    );
    let mut token = sample_token(1);
    a.save_token(&mut token).await.unwrap();
    let id = token.id.clone().unwrap();
    // Not cached in B: seen at once, by id and by user.
    assert_eq!(b.find_token_by_id(&id).await.unwrap(), Some(token.clone()));
    let by_user = OAuthToken::for_user("user1@example.com");
    assert_eq!(b.find_token(&by_user).await.unwrap(), Some(token.clone()));
    assert_eq!(b.get_tokens().await.unwrap(), vec![token.clone()]);

    // Cached in B: A's update shows after B's TTL.
    let mut update = OAuthToken {
        access_token: Some("1000.access-new".into()),
        ..by_user.clone()
    };
    a.save_token(&mut update).await.unwrap();
    assert_eq!(update.id.as_deref(), Some(id.as_str()));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(b.find_token_by_id(&id).await.unwrap(), Some(update.clone()));

    // B saves for the same user: it updates A's token, never a second one.
    let mut from_b = OAuthToken {
        api_domain: Some("https://www.zohoapis.eu".into()),
        ..by_user.clone()
    };
    b.save_token(&mut from_b).await.unwrap();
    assert_eq!(from_b.id.as_deref(), Some(id.as_str()));
    assert_eq!(a.get_tokens().await.unwrap().len(), 1);

    // A deletes; B's uncached reads see it at once.
    a.delete_token(&id).await.unwrap();
    let fresh = instance(&h, Duration::from_secs(300));
    assert_eq!(fresh.find_token_by_id(&id).await.unwrap(), None);
    assert_eq!(fresh.get_tokens().await.unwrap(), vec![]);
}

/// Deleting a token and saving the same id again works, repeatedly.
#[tokio::test]
async fn delete_and_resave_the_same_id() {
    let h = common::harness().await;
    for round in 0..3 {
        let mut token = OAuthToken {
            id: Some("same-id".into()),
            access_token: Some(format!("1000.access-{round}")),
            ..sample_token(1)
        };
        h.store.save_token(&mut token).await.unwrap();
        assert_eq!(
            h.store.find_token_by_id("same-id").await.unwrap(),
            Some(token.clone())
        );
        let fresh = instance(&h, Duration::from_secs(300));
        assert_eq!(
            fresh.find_token_by_id("same-id").await.unwrap(),
            Some(token)
        );
        h.store.delete_token("same-id").await.unwrap();
        assert_eq!(h.store.find_token_by_id("same-id").await.unwrap(), None);
        assert_eq!(h.store.get_tokens().await.unwrap(), vec![]);
    }
}

/// A cached token is never served past its `expiry_time` (less a 5 s margin):
/// it is read again from Secrets Manager.
#[tokio::test]
async fn cache_respects_token_expiry() {
    let h = common::harness().await;
    let mut token = OAuthToken {
        // Cached for about 1 s: expiry in 6 s, less the 5 s margin.
        expiry_time: Some(now_millis() + 6_000),
        ..sample_token(1)
    };
    h.store.save_token(&mut token).await.unwrap();
    let id = token.id.clone().unwrap();
    let store = instance(&h, Duration::from_secs(300));
    h.counter.reset();
    store.find_token_by_id(&id).await.unwrap();
    store.find_token_by_id(&id).await.unwrap();
    assert_eq!(
        h.counter.count("GetSecretValue"),
        1,
        "second read is cached"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    store.find_token_by_id(&id).await.unwrap();
    assert_eq!(
        h.counter.count("GetSecretValue"),
        2,
        "expired token served from cache"
    );

    // An already expired token is never cached at all.
    let mut expired = OAuthToken {
        expiry_time: Some(now_millis() - 1_000),
        ..sample_token(2)
    };
    h.store.save_token(&mut expired).await.unwrap();
    let id = expired.id.clone().unwrap();
    h.counter.reset();
    for _ in 0..3 {
        assert_eq!(
            h.store.find_token_by_id(&id).await.unwrap(),
            Some(expired.clone())
        );
    }
    assert_eq!(h.counter.count("GetSecretValue"), 3);
}

/// The builder validates what it is given, without any network call.
#[tokio::test]
async fn builder_rejects_bad_settings() {
    let h = common::harness().await;
    let build = |prefix: &str| {
        SecretsManagerStore::builder()
            .client(h.client.clone())
            .prefix(prefix)
            .build()
    };
    for bad in ["", "/abs", "a b", "a//b"] {
        assert!(
            matches!(build(bad), Err(StoreError::InvalidInput { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        SecretsManagerStore::builder().build(),
        Err(StoreError::InvalidInput { .. })
    ));
    let window = SecretsManagerStore::builder()
        .client(h.client.clone())
        .deletion_mode(zoho_token_store::DeletionMode::RecoveryWindow { days: 3 })
        .build();
    assert!(matches!(window, Err(StoreError::InvalidInput { .. })));
    h.counter.reset();
    build("zoho/crm").unwrap();
    assert_eq!(h.counter.total(), 0, "build() must not call the API");
}

/// A save that changes nothing writes nothing (it reads the secret to make
/// sure), so a caller saving the same token over and over spends no versions
/// of the secret's daily quota.
#[tokio::test]
async fn an_unchanged_save_writes_nothing() {
    let h = common::harness().await;
    let mut token = sample_token(1);
    h.store.save_token(&mut token).await.unwrap();
    let versions = h.ledger.total();
    h.counter.reset();
    let mut again = token.clone();
    h.store.save_token(&mut again).await.unwrap();
    assert_eq!(again, token);
    assert_eq!(h.ledger.total(), versions, "{:?}", h.counter.snapshot());
    assert_eq!(h.counter.count("GetSecretValue"), 1);
    // A change is written.
    let mut changed = OAuthToken {
        access_token: Some("1000.access-new".into()),
        ..token.clone()
    };
    h.store.save_token(&mut changed).await.unwrap();
    assert_eq!(h.ledger.total(), versions + 1);
    h.assert_within_version_quota();
}

/// A user name that moves to another leaf of the index (the entry moves in
/// two writes, the new leaf first) is found under its new name only, is
/// listed once, and its old name is free for another token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_user_across_index_leaves_frees_the_old_name() {
    let h = common::harness().await;
    // Enough tokens that the index has split into several leaves.
    let mut tokens: Vec<OAuthToken> = (0..1_200).map(sample_token).collect();
    h.store.save_tokens(&mut tokens).await.unwrap();
    let stats = h.store.index_stats().await.unwrap();
    assert!(stats.leaves >= 2, "{stats:?}");

    // Six renames: with two leaves or more, some land in another leaf than
    // their old name's (each does with odds of one half or better).
    for (n, stored) in tokens.iter().enumerate().take(13).skip(7) {
        let renamed = format!("renamed-{n}@example.com");
        let renamed = renamed.as_str();
        let old_name = stored.user_name.clone().unwrap();
        let mut rename = OAuthToken {
            user_name: Some(renamed.into()),
            ..stored.clone()
        };
        h.store.save_token(&mut rename).await.unwrap();
        assert_eq!(rename.id, stored.id);

        let other = h.instance();
        let found = other
            .find_token(&OAuthToken::for_user(renamed))
            .await
            .unwrap();
        assert_eq!(found.and_then(|t| t.id), stored.id.clone());
        assert_eq!(
            other
                .find_token(&OAuthToken::for_user(&old_name))
                .await
                .unwrap(),
            None
        );
        // The old name is free: a new token takes it.
        let mut newcomer = OAuthToken::from_refresh_token("c", "s", format!("newcomer-{n}"))
            .with_user_name(&old_name);
        other.save_token(&mut newcomer).await.unwrap();
        assert_ne!(newcomer.id, stored.id);
    }
    let listed = h.instance().get_tokens().await.unwrap();
    assert_eq!(listed.len(), 1_206);
    let mut users: Vec<_> = listed.iter().filter_map(|t| t.user_name.clone()).collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 1_206, "a user name listed twice");
    assert_eq!(h.instance().index_stats().await.unwrap().tokens, 1_206);
    h.assert_within_version_quota();
    h.store.delete_tokens().await.unwrap();
}
