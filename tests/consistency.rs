//! Review findings on the index commit, the shared compare-and-swap and
//! `get_tokens`, each proved on LocalStack with a step order or a fault the
//! test sets up on purpose (the fault proxy of `tests/common`: a request
//! held until the test has done its part, or one call failed on every
//! attempt), and what the store promises under eventual consistency.

mod common;

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use fault_proxy::{Fault, Proxy, checking_client, client_for};
use zoho_token_store::{
    LeaseRequest, OAuthToken, RefreshLease, SecretsManagerStore, StoreError, TokenStore,
};

/// A store on `prefix` through `proxy`, patient enough that a request the
/// proxy holds for a while is never retried around the hold.
async fn store_through(proxy: &Proxy, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(client_for(&proxy.url(), Duration::from_millis(20)).await)
        .prefix(prefix)
        .attempt_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A store on `prefix` straight to LocalStack (another instance).
fn store_on(client: &Client, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(client.clone())
        .prefix(prefix)
        .attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Writes index node `suffix` (`r`, `r0`, …) of `prefix` by hand.
async fn write_node(client: &Client, prefix: &str, suffix: &str, body: serde_json::Value) {
    let name = format!("{prefix}/index/{suffix}");
    client
        .create_secret()
        .name(&name)
        .secret_string(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e:?}"));
}

/// An index of two empty leaves, `r0` and `r1`, under a split root: two
/// leaves that writers change independently.
async fn two_leaf_index(client: &Client, prefix: &str) {
    for leaf in ["r0", "r1"] {
        write_node(
            client,
            prefix,
            leaf,
            serde_json::json!({"v": 2, "s": 1, "e": []}),
        )
        .await;
    }
    write_node(
        client,
        prefix,
        "r",
        serde_json::json!({"v": 2, "s": 2, "x": [1, 1], "e": []}),
    )
    .await;
}

/// A user name `{tag}-{n}@example.com` that the index routes to `leaf`
/// (depth 1).
fn user_in(leaf: &str, tag: &str) -> String {
    (0..)
        .map(|n| format!("{tag}-{n}@example.com"))
        .find(|user| common::diagnose::leaf_of_user(user, 1) == leaf)
        .unwrap()
}

fn token_for(user: &str) -> OAuthToken {
    OAuthToken::from_refresh_token("client", "secret", format!("1000.refresh-{user}"))
        .with_user_name(user)
}

/// The ids a fresh store lists.
async fn listed_ids(client: &Client, prefix: &str) -> BTreeSet<String> {
    store_on(client, prefix)
        .get_tokens()
        .await
        .expect("get_tokens")
        .into_iter()
        .filter_map(|t| t.id)
        .collect()
}

/// Finding (a), proved: a verifying index update (`ensure`, for a save about
/// to create a token's secret) that the cached index shows as made is
/// answered only after its own leaf is read again, even when another change
/// of the same commit lost its compare-and-swap on another leaf and only
/// that leaf was read again. Here the cached leaf still lists the token
/// that another instance has unindexed meanwhile; the save must index it
/// again before it creates the secret, or the token would be stored and
/// never listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_index_entry_is_checked_in_its_own_leaf_not_only_in_the_leaves_reread() {
    common::localstack().await;
    let direct = checking_client().await;
    let prefix = common::random_prefix();
    two_leaf_index(&direct, &prefix).await;
    let other = store_on(&direct, &prefix);
    // Token x, in leaf r0, indexed with its secret gone (a delete half-way,
    // or a crash after indexing): a save by id creates the secret anew.
    let x_user = user_in("r0", "x");
    let mut x = token_for(&x_user);
    other.save_token(&mut x).await.unwrap();
    let x_id = x.id.clone().unwrap();
    direct
        .delete_secret()
        .secret_id(common::token_secret(&prefix, &x_id))
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();

    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    let store = store_through(&proxy, &prefix).await;
    // The save reads the index (cached: r0 with x), then x's secret: held
    // there while the other instance unindexes x (r0 changes) and adds a
    // token to r1 (so that this save's write to r1 loses its swap).
    let held = proxy.hold("GetSecretValue", &[&common::token_secret(&prefix, &x_id)]);
    let y_user = user_in("r1", "y");
    let mut batch = vec![x.clone(), token_for(&y_user)];
    let saving = tokio::spawn({
        let store = store.clone();
        async move {
            store.save_tokens(&mut batch).await?;
            Ok::<_, StoreError>(batch)
        }
    });
    held.arrived().await;
    other.delete_token(&x_id).await.unwrap();
    other
        .save_token(&mut token_for(&user_in("r1", "z")))
        .await
        .unwrap();
    held.release();
    let saved = saving.await.unwrap().expect("save_tokens");
    assert_eq!(saved[0].id.as_deref(), Some(x_id.as_str()));

    let listed = listed_ids(&direct, &prefix).await;
    let expected = [(x_id.as_str(), Some(x_user.as_str()))];
    let missing = common::diagnose::missing_from(expected, &listed);
    let diagnosis = common::diagnose::explain_missing(&direct, &prefix, missing, None).await;
    assert!(
        listed.contains(&x_id),
        "token {x_id} was saved (its secret created) but is not indexed\n{diagnosis}"
    );
    let found = store_on(&direct, &prefix)
        .find_token(&OAuthToken::for_user(&x_user))
        .await
        .unwrap();
    assert_eq!(found.and_then(|t| t.id), Some(x_id));
    common::delete_prefix(&direct, &prefix).await;
}

/// Finding (b), proved and fixed: a refresh lease whose stage move took
/// effect but was answered with errors on every attempt (each response cut
/// by a connection reset) is acquired, not an error: the lease's
/// compare-and-swap is the index's, which reads the secret again after a
/// failed move and counts a move that took effect as won.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_stage_move_took_effect_but_was_answered_with_errors_is_acquired() {
    common::localstack().await;
    let direct = checking_client().await;
    let prefix = common::random_prefix();
    let mut token = token_for("lease@example.com");
    store_on(&direct, &prefix)
        .save_token(&mut token)
        .await
        .unwrap();
    let id = token.id.clone().unwrap();

    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    let store = store_through(&proxy, &prefix).await;
    let secret = common::token_secret(&prefix, &id);
    proxy.fail_calls(
        "UpdateSecretVersionStage",
        &[&secret, "AWSCURRENT"],
        1,
        Fault::ResetMidResponse,
    );
    let request = LeaseRequest::new("holder-a", Duration::from_secs(60), i64::MAX, None);
    let outcome = store.refresh_lease(&id, &request).await;
    assert!(proxy.injected() >= 1, "the stage move was not failed");
    match outcome {
        Ok(RefreshLease::Acquired { .. }) => {}
        other => panic!("the lease was taken (its move took effect), yet: {other:?}"),
    }
    // Another process sees it held.
    let other = LeaseRequest::new("holder-b", Duration::from_secs(60), i64::MAX, None);
    match store_on(&direct, &prefix)
        .refresh_lease(&id, &other)
        .await
        .unwrap()
    {
        RefreshLease::Held { .. } => {}
        other => panic!("another process should see the lease held: {other:?}"),
    }
    common::delete_prefix(&direct, &prefix).await;
}

/// The same compare-and-swap on an index node: a save whose index write's
/// stage move took effect but was answered with errors on every attempt
/// succeeds (the write counts), and the token is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_write_whose_stage_move_took_effect_but_was_answered_with_errors_counts() {
    common::localstack().await;
    let direct = checking_client().await;
    let prefix = common::random_prefix();
    // The root exists, so the next index write is a compare-and-swap.
    store_on(&direct, &prefix)
        .save_token(&mut token_for("first@example.com"))
        .await
        .unwrap();
    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    let store = store_through(&proxy, &prefix).await;
    proxy.fail_calls(
        "UpdateSecretVersionStage",
        &[&common::index_root(&prefix), "AWSCURRENT"],
        1,
        Fault::ResetMidResponse,
    );
    let mut token = token_for("second@example.com");
    store
        .save_token(&mut token)
        .await
        .expect("the index write took effect: the save succeeds");
    assert!(proxy.injected() >= 1, "the stage move was not failed");
    let id = token.id.unwrap();
    let listed = listed_ids(&direct, &prefix).await;
    let missing =
        common::diagnose::missing_from([(id.as_str(), Some("second@example.com"))], &listed);
    let diagnosis = common::diagnose::explain_missing(&direct, &prefix, missing, None).await;
    assert!(listed.contains(&id), "{diagnosis}");
    common::delete_prefix(&direct, &prefix).await;
}

/// Finding (c), fixed: `get_tokens` over several batches, one of whose
/// `BatchGetSecretValue` calls fails with HTTP 500 on every attempt (past
/// the SDK's retries), reads that batch's tokens again one by one
/// (`GetSecretValue`) and lists every token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tokens_reads_a_batch_that_failed_past_the_sdk_retries_again_exactly() {
    common::localstack().await;
    let direct = checking_client().await;
    let prefix = common::random_prefix();
    let mut tokens: Vec<OAuthToken> = (0..45)
        .map(|n| token_for(&format!("batch-{n}@example.com")))
        .collect();
    store_on(&direct, &prefix)
        .save_tokens(&mut tokens)
        .await
        .unwrap();
    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    let store = store_through(&proxy, &prefix).await;
    let tokens_prefix = common::token_secret(&prefix, "");
    proxy.fail_calls("BatchGetSecretValue", &[&tokens_prefix], 1, Fault::Http500);
    let mut listed = store
        .get_tokens()
        .await
        .expect("get_tokens with one failed batch");
    assert!(proxy.injected() >= 1, "no batch was failed");
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, tokens);
    common::delete_prefix(&direct, &prefix).await;
}

/// Finding (c), the other half: when the exact reads of a failed batch fail
/// too, `get_tokens` fails (`Backend`); it never answers without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tokens_fails_rather_than_omit_a_token_it_cannot_read() {
    common::localstack().await;
    let direct = checking_client().await;
    let prefix = common::random_prefix();
    let mut tokens: Vec<OAuthToken> = (0..25)
        .map(|n| token_for(&format!("omit-{n}@example.com")))
        .collect();
    store_on(&direct, &prefix)
        .save_tokens(&mut tokens)
        .await
        .unwrap();
    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    let store = store_through(&proxy, &prefix).await;
    let victim = common::token_secret(&prefix, tokens[7].id.as_deref().unwrap());
    proxy.fail_calls("BatchGetSecretValue", &[&victim], 1, Fault::Http500);
    proxy.fail_calls("GetSecretValue", &[&victim], 1, Fault::Http500);
    match store.get_tokens().await {
        Err(StoreError::Backend { .. }) => {}
        other => panic!("a token that cannot be read must fail get_tokens: {other:?}"),
    }
    common::delete_prefix(&direct, &prefix).await;
}

/// Eventual consistency: an instance whose batch reads show an older
/// version of an index leaf (as a lagging endpoint, or LocalStack after a
/// half-failed stage move, would) may miss, for as long as the lag lasts, a
/// token another instance has just saved there: in `get_tokens` and in
/// lookups by user name, which read the index with `BatchGetSecretValue`.
/// A read by id is exact and finds it at once. And when that instance
/// writes to the leaf, its compare-and-swap from the older version is
/// refused, it reads the leaf again exactly and keeps the other entry:
/// nothing acknowledged is lost, whatever a read showed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_batch_read_may_hide_a_new_token_for_a_moment_but_never_loses_it() {
    common::localstack().await;
    let direct = checking_client().await;
    let prefix = common::random_prefix();
    two_leaf_index(&direct, &prefix).await;
    let leaf = format!("{prefix}/index/r0");
    let (old_value, old_version) = {
        let out = direct
            .get_secret_value()
            .secret_id(&leaf)
            .send()
            .await
            .unwrap();
        (
            out.secret_string().unwrap().to_owned(),
            out.version_id().unwrap().to_owned(),
        )
    };
    // Another instance saves b into r0, under an id of its own (as an import
    // keeps), so that a lookup of b by user name goes through the index;
    // and c, under the id derived from its user name.
    let b_user = user_in("r0", "b");
    let mut b = token_for(&b_user).with_id("b-own-id");
    store_on(&direct, &prefix).save_token(&mut b).await.unwrap();
    let b_id = b.id.clone().unwrap();
    let c_user = user_in("r0", "c");
    let mut c = token_for(&c_user);
    store_on(&direct, &prefix).save_token(&mut c).await.unwrap();
    let c_id = c.id.clone().unwrap();

    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    proxy.lag_batch_reads(&leaf, &old_value, &old_version);
    let lagging = store_through(&proxy, &prefix).await;
    // Batch readers miss b for now...
    let listed: Vec<Option<String>> = lagging
        .get_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, vec![], "the lagging batch read shows r0 without b");
    assert_eq!(
        lagging
            .find_token(&OAuthToken::for_user(&b_user))
            .await
            .unwrap(),
        None
    );
    // ...an exact read by id finds it, and so does a lookup by user name of
    // a token under its user's derived id (an exact read too)...
    assert_eq!(
        lagging.find_token_by_id(&b_id).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        lagging
            .find_token(&OAuthToken::for_user(&c_user))
            .await
            .unwrap(),
        Some(c.clone())
    );
    // ...and a write to r0 from the older version keeps b's entry.
    let a_user = user_in("r0", "a");
    let mut a = token_for(&a_user);
    lagging.save_token(&mut a).await.unwrap();
    let a_id = a.id.clone().unwrap();
    let listed = listed_ids(&direct, &prefix).await;
    let expected = [
        (a_id.as_str(), Some(a_user.as_str())),
        (b_id.as_str(), Some(b_user.as_str())),
        (c_id.as_str(), Some(c_user.as_str())),
    ];
    let missing = common::diagnose::missing_from(expected, &listed);
    let diagnosis = common::diagnose::explain_missing(&direct, &prefix, missing, None).await;
    assert_eq!(listed, BTreeSet::from([a_id, b_id, c_id]), "{diagnosis}");
    common::delete_prefix(&direct, &prefix).await;
}
