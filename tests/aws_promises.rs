//! The promises that must hold on AWS itself, not only on LocalStack: two
//! instances on one prefix, and the failures and timings that Secrets
//! Manager documents but the emulator does not show (modelled by the fault
//! proxy of `tests/common`: a force-deleted name held while its purge runs,
//! one call failed past the SDK's retries after others succeeded).
//!
//! - No save merges onto a stale copy: a save by id from an instance that
//!   read the token before another instance changed it neither undoes a new
//!   refresh token nor a rename.
//! - Derived ids survive the secret lifecycle: the Zoho SDKs'
//!   re-authorisation (delete the token, save its successor for the same
//!   user at once) succeeds while the deleted name is held, and no reader
//!   sees the deleted token.
//! - A rename failed at any one of its calls leaves the token as it was or
//!   as the rename wanted, the same to every lookup, never a mix.

mod common;

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use fault_proxy::{Fault, Proxy, checking_client, client_for};
use zoho_token_store::{DeletionMode, OAuthToken, SecretsManagerStore, StoreError, TokenStore};

/// A store on `prefix` through `proxy`, with short SDK backoffs.
async fn store_through(proxy: &Proxy, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(client_for(&proxy.url(), Duration::from_millis(10)).await)
        .prefix(prefix)
        .attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Another instance on `prefix`, straight to LocalStack, with a cold cache.
fn instance(client: &Client, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(client.clone())
        .prefix(prefix)
        .build()
        .unwrap()
}

fn token_for(user: &str, refresh: &str) -> OAuthToken {
    OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", refresh).with_user_name(user)
}

/// What an hourly refresh saves: the id, a new access token and its expiry.
fn refreshed(id: &str, n: i64) -> OAuthToken {
    OAuthToken {
        access_token: Some(format!("1000.access-{n}")),
        expiry_time: Some(4_102_444_800_000 + n),
        ..OAuthToken::default()
    }
    .with_id(id)
}

/// Two instances on a new prefix, straight to LocalStack.
async fn two_instances() -> (Client, String, SecretsManagerStore, SecretsManagerStore) {
    let client = checking_client().await;
    let prefix = common::random_prefix();
    let a = instance(&client, &prefix);
    let b = instance(&client, &prefix);
    (client, prefix, a, b)
}

async fn delete_all(client: &Client, prefix: &str) {
    instance(client, prefix).delete_tokens().await.unwrap();
}

/// Finding 1: instance B read token T; instance A then saves a new refresh
/// token for T (a new grant after a revocation); B's hourly refresh by id
/// must merge onto A's token, not onto its own stale copy.
#[tokio::test]
async fn a_refresh_from_a_stale_copy_keeps_the_new_refresh_token() {
    common::localstack().await;
    let (client, prefix, a, b) = two_instances().await;
    let mut t = token_for("stale-refresh@example.com", "1000.refresh-old");
    a.save_token(&mut t).await.unwrap();
    let id = t.id.clone().unwrap();
    // B has T cached.
    assert!(b.find_token_by_id(&id).await.unwrap().is_some());

    let mut regranted = OAuthToken {
        refresh_token: Some("1000.refresh-new".into()),
        ..OAuthToken::default()
    }
    .with_id(&id);
    a.save_token(&mut regranted).await.unwrap();

    let mut refresh = refreshed(&id, 1);
    b.save_token(&mut refresh).await.unwrap();
    assert_eq!(refresh.refresh_token.as_deref(), Some("1000.refresh-new"));

    let stored = instance(&client, &prefix)
        .find_token_by_id(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("1000.refresh-new"));
    assert_eq!(stored.access_token.as_deref(), Some("1000.access-1"));
    // And the new refresh token finds it (the index has its hash).
    let by_refresh =
        OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", "1000.refresh-new");
    let found = instance(&client, &prefix)
        .find_token(&by_refresh)
        .await
        .unwrap();
    assert_eq!(found.and_then(|t| t.id).as_deref(), Some(id.as_str()));
    delete_all(&client, &prefix).await;
}

/// Finding 1, with a rename: B's refresh from its stale copy must not put
/// the old user name back.
#[tokio::test]
async fn a_refresh_from_a_stale_copy_keeps_the_rename() {
    common::localstack().await;
    let (client, prefix, a, b) = two_instances().await;
    let mut t = token_for("before-rename@example.com", "1000.refresh-r");
    a.save_token(&mut t).await.unwrap();
    let id = t.id.clone().unwrap();
    assert!(b.find_token_by_id(&id).await.unwrap().is_some());

    let mut renamed = OAuthToken::for_user("after-rename@example.com").with_id(&id);
    a.save_token(&mut renamed).await.unwrap();
    b.save_token(&mut refreshed(&id, 2)).await.unwrap();

    let fresh = instance(&client, &prefix);
    let stored = fresh.find_token_by_id(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.user_name.as_deref(),
        Some("after-rename@example.com")
    );
    assert_eq!(stored.access_token.as_deref(), Some("1000.access-2"));
    let old = fresh
        .find_token(&OAuthToken::for_user("before-rename@example.com"))
        .await
        .unwrap();
    assert_eq!(old, None, "the old name still finds the renamed token");
    delete_all(&client, &prefix).await;
}

/// Finding 2: the Zoho SDKs' re-authorisation (a revoked refresh token: the
/// SDK deletes the token, then saves the one a new grant gives for the same
/// user) succeeds at once while Secrets Manager still holds the deleted
/// secret's name, and no instance serves the deleted token afterwards.
#[tokio::test]
async fn reauthorisation_succeeds_while_the_deleted_name_is_held() {
    common::localstack().await;
    let client = checking_client().await;
    let prefix = common::random_prefix();
    let proxy = Proxy::start(common::endpoint(), Duration::from_millis(10)).await;
    proxy.hold_deleted_names();
    let store = store_through(&proxy, &prefix).await;
    let user = "reauthorised@example.com";

    let mut first = token_for(user, "1000.refresh-revoked");
    store.save_token(&mut first).await.unwrap();
    let old_id = first.id.clone().unwrap();
    // Another instance has the first token cached.
    let other = instance(&client, &prefix);
    assert!(other.find_token_by_id(&old_id).await.unwrap().is_some());

    store.delete_token(&old_id).await.unwrap();
    assert_eq!(proxy.purging().len(), 1, "the delete holds its name");
    let mut successor = token_for(user, "1000.refresh-regranted");
    store
        .save_token(&mut successor)
        .await
        .expect("the successor is saved while the old name is held");
    let new_id = successor.id.clone().unwrap();
    assert_ne!(new_id, old_id, "the held name is not waited for");
    assert!(proxy.injected() >= 1, "the held name was met");

    // Every instance, cold, finds the successor by user and by refresh token.
    for reader in [
        instance(&client, &prefix),
        store_through(&proxy, &prefix).await,
    ] {
        let found = reader
            .find_token(&OAuthToken::for_user(user))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id.as_deref(), Some(new_id.as_str()));
        assert_eq!(
            found.refresh_token.as_deref(),
            Some("1000.refresh-regranted")
        );
        assert_eq!(reader.find_token_by_id(&old_id).await.unwrap(), None);
        let ids: Vec<_> = reader
            .get_tokens()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|t| t.id)
            .collect();
        assert_eq!(ids, vec![new_id.clone()]);
    }
    // The instance that had the deleted token cached: its refresh by id
    // cannot put the deleted token back under the user's name.
    let stale = other
        .save_token(&mut OAuthToken {
            user_name: Some(user.into()),
            ..refreshed(&old_id, 3)
        })
        .await;
    assert!(
        matches!(stale, Err(StoreError::InvalidInput { .. })),
        "a save by the deleted id takes the successor's user name: {stale:?}"
    );

    // Once the purge is over, the user's next tokens still work.
    proxy.purge();
    let mut again = token_for(user, "1000.refresh-regranted");
    store.save_token(&mut again).await.unwrap();
    assert_eq!(again.id.as_deref(), Some(new_id.as_str()));
    delete_all(&client, &prefix).await;
}

/// Finding 4, second part: with a recovery window, a successor saved for
/// the user of a deleted token does not restore the deleted secret, so no
/// reader ever sees the deleted token (its refresh token, its failure mark).
#[tokio::test]
async fn a_successor_does_not_restore_the_deleted_token() {
    common::localstack().await;
    let client = checking_client().await;
    let prefix = common::random_prefix();
    let store = SecretsManagerStore::builder()
        .client(client.clone())
        .prefix(&prefix)
        .deletion_mode(DeletionMode::RecoveryWindow { days: 7 })
        .build()
        .unwrap();
    let user = "windowed@example.com";
    let mut first = token_for(user, "1000.refresh-deleted");
    store.save_token(&mut first).await.unwrap();
    let old_id = first.id.clone().unwrap();
    store.delete_token(&old_id).await.unwrap();

    let mut successor = token_for(user, "1000.refresh-successor");
    store.save_token(&mut successor).await.unwrap();
    assert_ne!(successor.id.as_deref(), Some(old_id.as_str()));
    let described = client
        .describe_secret()
        .secret_id(common::token_secret(&prefix, &old_id))
        .send()
        .await
        .unwrap();
    assert!(
        described.deleted_date.is_some(),
        "the deleted secret stays deleted"
    );
    let reader = instance(&client, &prefix);
    assert_eq!(reader.find_token_by_id(&old_id).await.unwrap(), None);
    let found = reader
        .find_token(&OAuthToken::for_user(user))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.refresh_token.as_deref(),
        Some("1000.refresh-successor")
    );
    store.delete_tokens().await.unwrap();
    // Clean up the scheduled secret too.
    client
        .delete_secret()
        .secret_id(common::token_secret(&prefix, &old_id))
        .force_delete_without_recovery(true)
        .send()
        .await
        .ok();
}

/// What every lookup of a fresh instance says about token `id`, renamed
/// (or not) from `from` to `to`: the user name it has, after checking that
/// the lookups by both names agree with it.
async fn agreed_user(reader: &SecretsManagerStore, id: &str, from: &str, to: &str) -> String {
    let by_id = reader
        .find_token_by_id(id)
        .await
        .unwrap()
        .expect("the token is still there");
    let user = by_id.user_name.clone().unwrap();
    assert!(user == from || user == to, "{user}");
    for name in [from, to] {
        let found = reader
            .find_token(&OAuthToken::for_user(name))
            .await
            .unwrap();
        let found_id = found.and_then(|t| t.id);
        if name == user {
            assert_eq!(
                found_id.as_deref(),
                Some(id),
                "{name} does not find the token that has it"
            );
        } else {
            assert_ne!(
                found_id.as_deref(),
                Some(id),
                "{name} finds the token, whose name is {user}"
            );
        }
    }
    user
}

/// Finding 3: a rename failed at each of its calls in turn (past the SDK's
/// retries: throttling, a timeout, a killed Lambda) leaves a state that
/// every instance reads one way: the token under its old name or its new
/// one. Then a new token for the old name is accepted only if the token
/// really left it, and a cold lookup of the old name finds the new token.
#[tokio::test]
async fn a_rename_failed_at_any_call_reads_as_before_or_after() {
    common::localstack().await;
    let client = checking_client().await;
    let proxy = Proxy::start(common::endpoint(), Duration::from_millis(10)).await;
    let mut outcomes = Vec::new();
    for call in 0..20u64 {
        let prefix = common::random_prefix();
        let from = format!("renamed-from-{call}@example.com");
        let to = format!("renamed-to-{call}@example.com");
        let store = store_through(&proxy, &prefix).await;
        let mut t = token_for(&from, &format!("1000.refresh-{call}"));
        store.save_token(&mut t).await.unwrap();
        let id = t.id.clone().unwrap();

        proxy.fail_call_number(call as usize + 1, Fault::Http500, false);
        let mut rename = OAuthToken::for_user(&to).with_id(&id);
        let result = store.save_token(&mut rename).await;
        let failed = proxy.picked_call_came();
        proxy.clear_call_faults();
        if !failed {
            // The rename made fewer calls than `call`: every one was failed once.
            result.unwrap();
            delete_all(&client, &prefix).await;
            assert!(call >= 2, "a rename makes more than {call} calls");
            break;
        }
        let user = agreed_user(&instance(&client, &prefix), &id, &from, &to).await;
        outcomes.push((call, result.is_ok(), user.clone()));

        // A new token for the old name, under an id of its own.
        let mut newcomer = token_for(&from, "1000.refresh-newcomer").with_id("newcomer");
        let saved = instance(&client, &prefix).save_token(&mut newcomer).await;
        if user == from {
            assert!(
                matches!(saved, Err(StoreError::InvalidInput { .. })),
                "call {call}: {saved:?}"
            );
        } else {
            saved.unwrap();
            let found = instance(&client, &prefix)
                .find_token(&OAuthToken::for_user(&from))
                .await
                .unwrap()
                .and_then(|t| t.id);
            assert_eq!(found.as_deref(), Some("newcomer"), "call {call}");
        }
        // The next save settles whatever the failure left.
        let mut again = refreshed(&id, 9);
        instance(&client, &prefix)
            .save_token(&mut again)
            .await
            .unwrap();
        assert_eq!(again.user_name.as_deref(), Some(user.as_str()));
        assert_eq!(
            agreed_user(&instance(&client, &prefix), &id, &from, &to).await,
            user
        );
        delete_all(&client, &prefix).await;
    }
    eprintln!("(failed call, save answered Ok, name read after): {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|(_, _, user)| user.starts_with("renamed-to"))
    );
    assert!(
        outcomes
            .iter()
            .any(|(_, _, user)| user.starts_with("renamed-from"))
    );
}

/// Finding 4, first part: two first saves of one new user race onto the
/// user's derived id. The one that loses (its index entry written over the
/// winner's, its create refused or failed) must not leave the index with
/// its refresh token's hash while the secret holds the winner's: the
/// winner's token stays found by its refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_saves_leave_the_winner_found_by_its_refresh_token() {
    common::localstack().await;
    let client = checking_client().await;
    let prefix = common::random_prefix();
    let user = "racing-first@example.com";
    let proxy_a = Proxy::start(common::endpoint(), Duration::from_millis(10)).await;
    let proxy_b = Proxy::start(common::endpoint(), Duration::from_millis(10)).await;
    let a = store_through(&proxy_a, &prefix).await;
    let b = store_through(&proxy_b, &prefix).await;

    // A has indexed its token and is about to create its secret.
    let hold = proxy_a.hold("CreateSecret", &["/tokens/"]);
    let a_save = tokio::spawn(async move {
        let mut first = token_for(user, "1000.refresh-winner");
        a.save_token(&mut first).await.map(|()| first)
    });
    hold.arrived().await;
    // B indexes its own token under the same derived id, then fails to
    // create it (its create never reaches Secrets Manager).
    proxy_b.fail_calls("CreateSecret", &["/tokens/"], 1, Fault::Http500);
    let lost = b
        .save_token(&mut token_for(user, "1000.refresh-loser"))
        .await;
    assert!(lost.is_err(), "{lost:?}");
    hold.release();
    let winner = a_save.await.unwrap().unwrap();

    let reader = instance(&client, &prefix);
    let by_refresh =
        OAuthToken::from_refresh_token("1000.CLIENT", "client-secret", "1000.refresh-winner");
    let found = reader.find_token(&by_refresh).await.unwrap();
    assert_eq!(found.and_then(|t| t.id), winner.id);
    let by_user = reader
        .find_token(&OAuthToken::for_user(user))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        by_user.refresh_token.as_deref(),
        Some("1000.refresh-winner")
    );
    delete_all(&client, &prefix).await;
}

/// Finding 4, second part, for a re-save under the deleted token's own id
/// (recovery window): between the `RestoreSecret` and the write of the new
/// token, readers see no token, never the deleted one's values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resave_by_id_never_shows_the_restored_deleted_token() {
    common::localstack().await;
    let client = checking_client().await;
    let prefix = common::random_prefix();
    let proxy = Proxy::start(common::endpoint(), Duration::from_millis(10)).await;
    let store = SecretsManagerStore::builder()
        .client(client_for(&proxy.url(), Duration::from_millis(10)).await)
        .prefix(&prefix)
        .deletion_mode(DeletionMode::RecoveryWindow { days: 7 })
        .attempt_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut first = token_for("restored@example.com", "1000.refresh-deleted");
    store.save_token(&mut first).await.unwrap();
    let id = first.id.clone().unwrap();
    store.delete_token(&id).await.unwrap();

    // The re-save has restored the secret; its write of the new token waits.
    let hold = proxy.hold("PutSecretValue", &["/tokens/"]);
    let resave = {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let mut again = token_for("restored@example.com", "1000.refresh-new").with_id(&id);
            store.save_token(&mut again).await
        })
    };
    hold.arrived().await;
    let reader = instance(&client, &prefix);
    assert_eq!(reader.find_token_by_id(&id).await.unwrap(), None);
    let by_user = reader
        .find_token(&OAuthToken::for_user("restored@example.com"))
        .await
        .unwrap();
    assert_eq!(by_user, None);
    hold.release();
    resave.await.unwrap().unwrap();
    let stored = instance(&client, &prefix)
        .find_token_by_id(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("1000.refresh-new"));
    delete_all(&client, &prefix).await;
    client
        .delete_secret()
        .secret_id(common::token_secret(&prefix, &id))
        .force_delete_without_recovery(true)
        .send()
        .await
        .ok();
}
