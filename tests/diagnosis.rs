//! The diagnosis that lose-nothing tests attach to their assertions
//! (`tests/common/diagnose.rs`), checked on situations built on purpose:
//! each way a token can go missing from `get_tokens` is made to happen, and
//! the diagnosis must name it.

mod common;

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use common::diagnose::{Verdict, diagnose_missing};
use fault_proxy::{Proxy, checking_client, client_for};
use zoho_token_store::{OAuthToken, TokenStore, encode_token};

/// The current value and version id of secret `name`.
async fn current(client: &Client, name: &str) -> (String, String) {
    let out = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading {name}: {e:?}"));
    (
        out.secret_string().unwrap().to_owned(),
        out.version_id().unwrap().to_owned(),
    )
}

async fn save(store: &impl TokenStore, user: &str) -> String {
    let mut token =
        OAuthToken::from_refresh_token("c", "s", format!("1000.r-{user}")).with_user_name(user);
    store.save_token(&mut token).await.unwrap();
    token.id.unwrap()
}

/// A token listed everywhere, one a batch read hides, one whose entry a
/// later index version dropped, one whose secret was never indexed, one
/// indexed without its secret, and one whose index node was created twice:
/// each gets its own verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diagnosis_names_each_way_a_token_goes_missing() {
    let (client, _, ledger) = common::client_with_counter().await;
    let prefix = common::random_prefix();
    let root = common::index_root(&prefix);
    let store = common::store_on(&client, &prefix);
    let listed = save(&store, "listed@example.com").await;
    let lost = save(&store, "lost@example.com").await;
    let gone = save(&store, "gone@example.com").await;
    // What a lagging batch read will show: the root before `hidden` was indexed.
    let (before_value, before_version) = current(&client, &root).await;
    let hidden = save(&store, "hidden@example.com").await;
    let (with_lost, holding_version) = current(&client, &root).await;

    // A version written by hand that drops `lost`'s entry.
    let mut body: serde_json::Value = serde_json::from_str(&with_lost).unwrap();
    body["e"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["i"].as_str() != Some(lost.as_str()));
    body["s"] = (body["s"].as_u64().unwrap() + 1).into();
    let dropping_version = client
        .put_secret_value()
        .secret_id(&root)
        .secret_string(body.to_string())
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();

    // A token secret created without an index entry.
    let never = "never-indexed".to_owned();
    let token = OAuthToken::for_user("never@example.com").with_id(&never);
    client
        .create_secret()
        .name(common::token_secret(&prefix, &never))
        .secret_string(encode_token(&token).unwrap())
        .send()
        .await
        .unwrap();
    // An indexed token whose secret is gone.
    client
        .delete_secret()
        .secret_id(common::token_secret(&prefix, &gone))
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();

    // Read through a proxy whose batch reads show the root's older version.
    let proxy = Proxy::start(common::localstack().await, Duration::from_secs(1)).await;
    proxy.lag_batch_reads(&root, &before_value, &before_version);
    let lagging = client_for(&proxy.url(), Duration::from_millis(20)).await;
    let ids = [&listed, &hidden, &lost, &never, &gone];
    let diagnosis = diagnose_missing(
        &lagging,
        &prefix,
        ids.iter().map(|id| ((*id).clone(), None)),
        Some(&ledger),
    )
    .await;
    let shown = diagnosis.to_string();
    eprintln!("{shown}");
    assert_eq!(
        diagnosis.verdict(&listed),
        Some(&Verdict::Listed),
        "{shown}"
    );
    assert_eq!(
        diagnosis.verdict(&hidden),
        Some(&Verdict::Hidden {
            node: root.clone(),
            exact_version: dropping_version.clone(),
            batch_version: before_version.clone(),
        }),
        "{shown}"
    );
    assert_eq!(
        diagnosis.verdict(&lost),
        Some(&Verdict::Lost {
            node: root.clone(),
            version: holding_version,
            dropped_by: Some(dropping_version),
        }),
        "{shown}"
    );
    assert_eq!(
        diagnosis.verdict(&never),
        Some(&Verdict::NeverIndexed),
        "{shown}"
    );
    assert_eq!(
        diagnosis.verdict(&gone),
        Some(&Verdict::SecretMissing),
        "{shown}"
    );
    for id in ids {
        assert!(shown.contains(id.as_str()), "{id} missing from {shown}");
    }
    for word in [
        "LISTED",
        "HIDDEN",
        "LOST",
        "NEVER INDEXED",
        "SECRET MISSING",
    ] {
        assert!(shown.contains(word), "{word} missing from {shown}");
    }

    // An index root created twice with no delete between, as LocalStack's
    // non-atomic CreateSecret does under a race (which cannot be forced):
    // the ledger's client sees two creates when another client deletes the
    // root in between, and the second create holds none of the first's entries.
    let twice = common::random_prefix();
    let store = common::store_on(&client, &twice);
    let replaced = save(&store, "replaced@example.com").await;
    let twice_root = common::index_root(&twice);
    checking_client()
        .await
        .delete_secret()
        .secret_id(&twice_root)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    client
        .create_secret()
        .name(&twice_root)
        .secret_string(r#"{"v":2,"s":1,"e":[]}"#)
        .send()
        .await
        .unwrap();
    assert!(ledger.created_twice(&twice_root));
    let diagnosis =
        diagnose_missing(&client, &twice, [(replaced.clone(), None)], Some(&ledger)).await;
    assert_eq!(
        diagnosis.verdict(&replaced),
        Some(&Verdict::DoublyCreated { node: twice_root }),
        "{diagnosis}"
    );
    assert!(diagnosis.to_string().contains("DOUBLY CREATED"));

    // Nothing missing: no reads, one line.
    let none = diagnose_missing(&client, &prefix, [], Some(&ledger)).await;
    assert_eq!(none.to_string(), "diagnosis: no token missing");

    common::delete_prefix(&client, &prefix).await;
    common::delete_prefix(&client, &twice).await;
}
