//! The deletion lifecycle of `SecretsManagerStore` against LocalStack:
//! re-saving deleted ids (recovery window or immediate) and `delete_tokens`
//! interrupted half-way.

mod common;

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use zoho_token_store::{DeletionMode, OAuthToken, SecretsManagerStore, TokenStore};

fn token(n: usize) -> OAuthToken {
    OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", format!("refresh-{n}"))
        .with_user_name(format!("user{n}@example.com"))
}

/// What `GetSecretValue` says about a secret, read directly with the SDK:
/// its string value, or the error code.
async fn raw(client: &Client, name: &str) -> Result<String, String> {
    match client.get_secret_value().secret_id(name).send().await {
        Ok(out) => Ok(out.secret_string.unwrap_or_default()),
        Err(e) => Err(e.code().unwrap_or("no code").to_owned()),
    }
}

/// Re-saving an id scheduled for deletion (recovery window) restores and updates it.
#[tokio::test]
async fn resaving_a_token_scheduled_for_deletion_restores_and_updates_it() {
    let h =
        common::harness_with(|b| b.deletion_mode(DeletionMode::RecoveryWindow { days: 7 })).await;
    let mut t = token(1);
    h.store.save_token(&mut t).await.unwrap();
    let id = t.id.clone().unwrap();
    let name = h.token_secret(&id);
    h.store.delete_token(&id).await.unwrap();

    // Scheduled for deletion, not gone: the secret still exists.
    let described = h
        .client
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date.is_some());
    assert_eq!(h.store.find_token_by_id(&id).await.unwrap(), None);
    assert!(h.store.get_tokens().await.unwrap().is_empty());

    let mut again = OAuthToken {
        refresh_token: Some("refresh-new".into()),
        access_token: Some("access-new".into()),
        ..token(1)
    }
    .with_id(&id);
    h.store.save_token(&mut again).await.unwrap();
    assert_eq!(again.id.as_deref(), Some(id.as_str()));

    let described = h
        .client
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert!(
        described.deleted_date.is_none(),
        "still scheduled for deletion"
    );
    let store = h.instance();
    assert_eq!(
        store.find_token_by_id(&id).await.unwrap().as_ref(),
        Some(&again)
    );
    let by_user = store
        .find_token(&OAuthToken::for_user("user1@example.com"))
        .await
        .unwrap();
    assert_eq!(by_user.as_ref(), Some(&again));
    assert_eq!(store.get_tokens().await.unwrap(), vec![again]);
}

/// A token scheduled for deletion does not hold its user name: a new save for the user works.
#[tokio::test]
async fn saving_a_user_whose_token_is_scheduled_for_deletion_works() {
    let h =
        common::harness_with(|b| b.deletion_mode(DeletionMode::RecoveryWindow { days: 7 })).await;
    let mut t = token(2);
    h.store.save_token(&mut t).await.unwrap();
    h.store
        .delete_token(t.id.as_deref().unwrap())
        .await
        .unwrap();

    let store = h.instance();
    let mut again = token(2);
    store.save_token(&mut again).await.unwrap();
    let found = h
        .instance()
        .find_token(&OAuthToken::for_user("user2@example.com"))
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&again));
}

/// Re-saving an id right after an immediate delete works and stores the new value.
#[tokio::test]
async fn resaving_right_after_an_immediate_delete_works() {
    let h = common::harness().await;
    for round in 0..3 {
        let mut t = OAuthToken {
            refresh_token: Some(format!("refresh-round-{round}")),
            ..token(3)
        }
        .with_id("same-id");
        h.store.save_token(&mut t).await.unwrap();
        let store = h.instance();
        assert_eq!(store.find_token_by_id("same-id").await.unwrap(), Some(t));
        h.store.delete_token("same-id").await.unwrap();
        assert_eq!(h.store.find_token_by_id("same-id").await.unwrap(), None);
        let store = h.instance();
        assert_eq!(store.find_token_by_id("same-id").await.unwrap(), None);
        assert!(store.get_tokens().await.unwrap().is_empty());
    }
}

/// Checks that nothing of the saved tokens is left: `get_tokens` is empty,
/// the index lists nothing, and every token secret is gone (read directly,
/// not through the lagging `ListSecrets`).
async fn assert_all_gone(h: &common::Harness, ids: &[String]) {
    let store = h.instance();
    assert!(store.get_tokens().await.unwrap().is_empty());
    assert_eq!(store.index_stats().await.unwrap().tokens, 0);
    for id in ids {
        let name = h.token_secret(id);
        assert_eq!(
            raw(&h.client, &name).await,
            Err("ResourceNotFoundException".to_owned()),
            "{name}"
        );
        assert_eq!(store.find_token_by_id(id).await.unwrap(), None);
    }
}

async fn save_many(store: &SecretsManagerStore, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let mut t = token(n);
        store.save_token(&mut t).await.unwrap();
        ids.push(t.id.unwrap());
    }
    ids
}

/// `delete_tokens` run again after a partial run leaves no secret and no index entry.
#[tokio::test]
async fn delete_tokens_after_a_partial_run_leaves_nothing() {
    let h = common::harness().await;
    let ids = save_many(&h.store, 12).await;
    // As far as an interrupted run gets: some secrets deleted, index intact.
    for id in &ids[..5] {
        h.delete_token_secret(id).await;
    }
    let store = h.instance();
    assert_eq!(store.index_stats().await.unwrap().tokens, 12);
    assert_eq!(store.get_tokens().await.unwrap().len(), 7);
    store.delete_tokens().await.unwrap();
    assert_all_gone(&h, &ids).await;
}

/// `delete_tokens` dropped mid-way (e.g. a Lambda timeout), then run again, leaves nothing.
#[tokio::test]
async fn delete_tokens_dropped_mid_way_then_run_again_leaves_nothing() {
    let h = common::harness().await;
    let ids = save_many(&h.store, 40).await;
    h.counter.reset();
    // Drop the future once some deletes are on the wire.
    let interrupted = tokio::select! {
        result = h.store.delete_tokens() => {
            result.unwrap();
            false
        }
        () = async {
            while h.counter.count("DeleteSecret") < 10 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => true,
    };
    assert!(
        interrupted,
        "delete_tokens finished before it could be interrupted"
    );
    // Let the requests already sent land, then look at what is left.
    let mut left = ids.len();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = 0;
        for id in &ids {
            if raw(&h.client, &h.token_secret(id)).await.is_ok() {
                left += 1;
            }
        }
        if left < ids.len() {
            break;
        }
    }
    assert!(
        left > 0 && left < ids.len(),
        "{left} of {} left: not half-way",
        ids.len()
    );

    // Run again, from the same instance and from a fresh one.
    h.store.delete_tokens().await.unwrap();
    h.instance().delete_tokens().await.unwrap();
    assert_all_gone(&h, &ids).await;
    assert!(h.store.get_tokens().await.unwrap().is_empty());
}

/// Checks that a fresh instance lists `token` and finds it by its user.
async fn assert_listed_and_found(h: &common::Harness, token: &OAuthToken) {
    let store = h.instance();
    assert_eq!(store.get_tokens().await.unwrap(), vec![token.clone()]);
    assert_eq!(store.index_stats().await.unwrap().tokens, 1);
    let query = OAuthToken::for_user(token.user_name.clone().unwrap());
    assert_eq!(
        store.find_token(&query).await.unwrap().as_ref(),
        Some(token)
    );
}

/// Re-saving a token another instance deleted indexes it again: listed and found everywhere.
#[tokio::test]
async fn resaving_a_token_another_instance_deleted_indexes_it_again() {
    let h = common::harness().await;
    let mut t = token(4);
    h.store.save_token(&mut t).await.unwrap();
    let id = t.id.clone().unwrap();
    h.instance().delete_token(&id).await.unwrap();

    // h.store still caches the token and its index entry.
    let mut again = OAuthToken {
        access_token: Some("access-new".into()),
        ..OAuthToken::for_user("user4@example.com")
    };
    h.store.save_token(&mut again).await.unwrap();
    assert_listed_and_found(&h, &again).await;

    // The same with the id given.
    h.instance().delete_token(&id).await.unwrap();
    let mut by_id = OAuthToken {
        access_token: Some("access-newer".into()),
        ..token(4)
    }
    .with_id(&id);
    h.store.save_token(&mut by_id).await.unwrap();
    assert_listed_and_found(&h, &by_id).await;
}

/// Saving a user whose token another instance deleted is durable despite a stale cached index.
#[tokio::test]
async fn saving_a_user_another_instance_deleted_indexes_it_again() {
    let h = common::harness().await;
    let mut t = OAuthToken {
        expiry_time: Some(1_000),
        ..token(5)
    };
    h.store.save_token(&mut t).await.unwrap();
    h.instance()
        .delete_token(t.id.as_deref().unwrap())
        .await
        .unwrap();

    let mut again = token(5);
    h.store.save_token(&mut again).await.unwrap();
    assert_listed_and_found(&h, &again).await;
}

/// Deleting a token newer than the cached index removes its secret and its index entry.
#[tokio::test]
async fn deleting_a_token_newer_than_the_cached_index_removes_its_entry() {
    let h = common::harness().await;
    // h.store caches an empty index.
    assert!(h.store.get_tokens().await.unwrap().is_empty());
    let mut t = token(6);
    h.instance().save_token(&mut t).await.unwrap();
    let id = t.id.clone().unwrap();
    h.store.delete_token(&id).await.unwrap();
    assert_all_gone(&h, &[id]).await;
    // The user name is free again, for any instance.
    let mut again = token(6);
    h.instance().save_token(&mut again).await.unwrap();
    assert_listed_and_found(&h, &again).await;
}
