//! `SecretsManagerStore::repair` against LocalStack: the index and the token
//! secrets disagree (as a crash between the two writes, an operator, or a
//! corrupted value leaves them), and `repair` reconciles them.

mod common;

use std::collections::BTreeSet;

use zoho_token_store::{OAuthToken, SecretsManagerStore, StoreError, TokenStore};

fn token(n: usize) -> OAuthToken {
    OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", format!("refresh-{n}"))
        .with_user_name(format!("user{n}@example.com"))
}

/// Saves `count` tokens; returns them as stored.
async fn save_tokens(store: &SecretsManagerStore, count: usize) -> Vec<OAuthToken> {
    let mut saved = Vec::new();
    for n in 0..count {
        let mut t = token(n);
        store.save_token(&mut t).await.unwrap();
        saved.push(t);
    }
    saved
}

async fn listed_ids(store: &SecretsManagerStore) -> BTreeSet<String> {
    store
        .get_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.unwrap())
        .collect()
}

/// `repair()` indexes a token secret that has no index entry (a crash between the writes).
#[tokio::test]
async fn repair_indexes_an_orphan_token_secret() {
    let h = common::harness().await;
    let saved = save_tokens(&h.store, 2).await;
    let orphan = OAuthToken {
        id: Some("orphan-1".into()),
        ..token(99)
    };
    h.client
        .create_secret()
        .name(h.token_secret("orphan-1"))
        .secret_string(serde_json::to_string(&orphan).unwrap())
        .send()
        .await
        .unwrap();

    let store = h.instance();
    assert!(!listed_ids(&store).await.contains("orphan-1"));
    let by_user = OAuthToken::for_user("user99@example.com");
    assert_eq!(store.find_token(&by_user).await.unwrap(), None);

    let report = store.repair().await.unwrap();
    assert_eq!(report.indexed, vec!["orphan-1".to_owned()]);
    assert!(report.dropped.is_empty() && report.corrupt.is_empty());
    assert!(!report.index_rebuilt);
    assert_eq!(report.tokens, 3);

    let expected: BTreeSet<String> = saved
        .iter()
        .map(|t| t.id.clone().unwrap())
        .chain(["orphan-1".to_owned()])
        .collect();
    assert_eq!(listed_ids(&store).await, expected);
    assert_eq!(listed_ids(&h.instance()).await, expected);
    assert_eq!(
        h.instance().find_token(&by_user).await.unwrap(),
        Some(orphan)
    );
}

/// `repair()` drops an index entry whose secret is gone, freeing its user name.
#[tokio::test]
async fn repair_drops_an_entry_whose_secret_is_gone() {
    let h = common::harness().await;
    let saved = save_tokens(&h.store, 3).await;
    let gone = saved[1].id.clone().unwrap();
    h.delete_token_secret(&gone).await;

    let store = h.instance();
    assert_eq!(store.index_stats().await.unwrap().tokens, 3);
    let report = store.repair().await.unwrap();
    assert_eq!(report.dropped, vec![gone.clone()]);
    assert!(report.indexed.is_empty() && report.corrupt.is_empty());
    assert_eq!(report.tokens, 2);

    let store = h.instance();
    assert_eq!(store.index_stats().await.unwrap().tokens, 2);
    let listed = listed_ids(&store).await;
    assert_eq!(listed.len(), 2);
    assert!(!listed.contains(&gone));
    // The user name is free: a new token for it saves (under the id derived
    // from the user name, which the dropped token had too) and is listed.
    let mut again = token(1);
    store.save_token(&mut again).await.unwrap();
    assert_eq!(again.id.as_ref(), Some(&gone));
    assert_eq!(listed_ids(&h.instance()).await.len(), 3);
}

/// A corrupt index shard is never trusted (`Corrupt`) and `repair()` rebuilds the index.
#[tokio::test]
async fn repair_rebuilds_a_corrupt_index_shard() {
    let h = common::harness().await;
    let saved = save_tokens(&h.store, 5).await;
    h.client
        .put_secret_value()
        .secret_id(common::index_root(&h.prefix))
        .secret_string("{not the index")
        .send()
        .await
        .unwrap();

    let store = h.instance();
    let is_corrupt_shard = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::Corrupt { id, .. }) => assert!(id.ends_with("/index/r"), "{what}: {id}"),
        other => panic!("{what}: {other:?}"),
    };
    is_corrupt_shard(store.get_tokens().await.map(drop), "get_tokens");
    let by_refresh = OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", "refresh-0");
    is_corrupt_shard(store.find_token(&by_refresh).await.map(drop), "find_token");
    // A lookup by user name reads the token's own secret first (its id
    // derives from the user name), and so needs no index.
    assert_eq!(
        store
            .find_token(&OAuthToken::for_user("user0@example.com"))
            .await
            .unwrap()
            .as_ref(),
        Some(&saved[0])
    );
    let mut new = token(50);
    is_corrupt_shard(store.save_token(&mut new).await, "save_token");
    is_corrupt_shard(store.delete_tokens().await, "delete_tokens");
    // Reading a token by id needs no index.
    let id0 = saved[0].id.as_deref().unwrap();
    assert_eq!(
        store.find_token_by_id(id0).await.unwrap().as_ref(),
        Some(&saved[0])
    );

    let dry = store.repair_dry_run().await.unwrap();
    assert!(dry.index_rebuilt, "{dry:?}");
    let report = store.repair().await.unwrap();
    assert_eq!(report, dry, "the dry run foretold the rebuild");
    assert!(report.index_rebuilt);
    let expected: BTreeSet<String> = saved.iter().map(|t| t.id.clone().unwrap()).collect();
    assert_eq!(
        report.indexed.iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert!(report.dropped.is_empty() && report.duplicate_users.is_empty());
    assert_eq!(report.tokens, 5);

    for store in [store, h.instance()] {
        assert_eq!(listed_ids(&store).await, expected);
        for t in &saved {
            let query = OAuthToken::for_user(t.user_name.clone().unwrap());
            assert_eq!(store.find_token(&query).await.unwrap().as_ref(), Some(t));
        }
    }
    // The rebuilt index takes writes again.
    let mut new = token(50);
    h.instance().save_token(&mut new).await.unwrap();
    assert_eq!(h.instance().index_stats().await.unwrap().tokens, 6);
}

/// `repair()` changes nothing in a consistent store and ignores non-token secrets.
#[tokio::test]
async fn repair_of_a_consistent_store_changes_nothing() {
    let h = common::harness().await;
    let saved = save_tokens(&h.store, 3).await;
    h.client
        .create_secret()
        .name(format!("{}/notes", h.prefix))
        .secret_string("not a token")
        .send()
        .await
        .unwrap();
    let report = h.store.repair().await.unwrap();
    assert!(report.indexed.is_empty(), "{report:?}");
    assert!(report.dropped.is_empty(), "{report:?}");
    assert!(report.corrupt.is_empty(), "{report:?}");
    assert!(!report.index_rebuilt);
    assert_eq!(report.tokens, 3);
    let expected: BTreeSet<String> = saved.iter().map(|t| t.id.clone().unwrap()).collect();
    assert_eq!(listed_ids(&h.instance()).await, expected);
}

/// `repair()` reports an undecodable token secret as corrupt and keeps it indexed.
#[tokio::test]
async fn repair_reports_an_undecodable_token_secret() {
    let h = common::harness().await;
    save_tokens(&h.store, 2).await;
    h.client
        .create_secret()
        .name(h.token_secret("garbled"))
        .secret_string("garbage")
        .send()
        .await
        .unwrap();
    let report = h.store.repair().await.unwrap();
    assert_eq!(report.corrupt, vec!["garbled".to_owned()]);
    assert_eq!(report.indexed, vec!["garbled".to_owned()]);
    assert_eq!(report.tokens, 3);
    match h.instance().get_tokens().await {
        Err(StoreError::Corrupt { id, .. }) => assert_eq!(id, "garbled"),
        other => panic!("{other:?}"),
    }
}

/// `repair()` never makes two tokens for one user: a duplicate orphan is reported, not indexed.
#[tokio::test]
async fn repair_leaves_out_an_orphan_that_duplicates_a_user() {
    let h = common::harness().await;
    let saved = save_tokens(&h.store, 2).await;
    let twin = OAuthToken {
        id: Some("twin".into()),
        refresh_token: Some("another-refresh".into()),
        ..token(0)
    };
    h.client
        .create_secret()
        .name(h.token_secret("twin"))
        .secret_string(serde_json::to_string(&twin).unwrap())
        .send()
        .await
        .unwrap();
    let report = h.store.repair().await.unwrap();
    assert_eq!(report.duplicate_users, vec!["twin".to_owned()]);
    assert!(report.indexed.is_empty(), "{report:?}");
    assert_eq!(report.tokens, 2);
    let store = h.instance();
    let found = store
        .find_token(&OAuthToken::for_user("user0@example.com"))
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&saved[0]));
    assert!(!listed_ids(&store).await.contains("twin"));
}

/// `repair_dry_run()` reports what `repair()` then does (an orphan to index,
/// an entry to drop, a duplicate user to leave out) and writes nothing.
#[tokio::test]
async fn repair_dry_run_reports_the_repair_and_writes_nothing() {
    let h = common::harness().await;
    let saved = save_tokens(&h.store, 3).await;
    let gone = saved[2].id.clone().unwrap();
    h.delete_token_secret(&gone).await;
    for (id, t) in [
        ("orphan-1", token(10)),
        (
            "twin",
            OAuthToken {
                refresh_token: Some("another-refresh".into()),
                ..token(0)
            },
        ),
    ] {
        h.client
            .create_secret()
            .name(h.token_secret(id))
            .secret_string(serde_json::to_string(&t.with_id(id)).unwrap())
            .send()
            .await
            .unwrap();
    }

    let store = h.instance();
    h.counter.reset();
    let dry = store.repair_dry_run().await.unwrap();
    for write in ["PutSecretValue", "UpdateSecretVersionStage", "CreateSecret"] {
        assert_eq!(h.counter.count(write), 0, "the dry run called {write}");
    }
    assert_eq!(dry.indexed, vec!["orphan-1".to_owned()]);
    assert_eq!(dry.dropped, vec![gone.clone()]);
    assert_eq!(dry.duplicate_users, vec!["twin".to_owned()]);
    assert!(!dry.index_rebuilt && dry.corrupt.is_empty());
    assert_eq!(dry.tokens, 3);
    // Nothing changed: the same report again, and the index as it was.
    assert_eq!(h.instance().repair_dry_run().await.unwrap(), dry);
    assert_eq!(h.instance().index_stats().await.unwrap().tokens, 3);

    let done = h.instance().repair().await.unwrap();
    assert_eq!(done, dry);
}
