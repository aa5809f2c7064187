//! Bad and foreign data in Secrets Manager: token secrets that are not a
//! token's JSON (written by something else, or damaged), and tokens too large
//! to store. The store must give a typed error naming the id and never the
//! stored contents, never panic, and never overwrite what it cannot decode.

mod common;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use zoho_token_store::{MAX_TOKEN_BYTES, OAuthToken, StoreError, TokenStore, encode_token};

/// Stands in for a secret value: it must never show up in an error.
const CANARY: &str = "SECRET-CANARY-7f3a9c";

/// A stored value that is not a token's JSON.
#[derive(Debug, Clone)]
enum Garbage {
    String(String),
    Binary(Vec<u8>),
}

fn garbage() -> Vec<(&'static str, Garbage)> {
    let s = |v: String| Garbage::String(v);
    vec![
        ("not JSON", s(format!("refresh={CANARY}; not json"))),
        (
            "truncated JSON",
            s(format!("{{\"refresh_token\": \"{CANARY}")),
        ),
        ("a JSON array", s(format!("[\"{CANARY}\", 1]"))),
        ("a JSON string", s(format!("\"{CANARY}\""))),
        ("JSON null", s("null".to_owned())),
        (
            "a field of the wrong type",
            s(format!(
                "{{\"user_name\": \"u@x\", \"refresh_token\": [\"{CANARY}\"]}}"
            )),
        ),
        (
            "a non-numeric expiry_time",
            s(format!(
                "{{\"refresh_token\": \"r\", \"expiry_time\": \"{CANARY}\"}}"
            )),
        ),
        (
            "a binary secret",
            Garbage::Binary([CANARY.as_bytes(), &[0xff, 0xfe, 0x00, 0x80]].concat()),
        ),
        (
            "a binary secret holding a valid token JSON",
            Garbage::Binary(format!("{{\"refresh_token\": \"{CANARY}\"}}").into_bytes()),
        ),
    ]
}

/// Overwrites secret `name` with `value`, behind the store's back.
///
/// A binary value replaces the secret (force-delete, then `CreateSecret`):
/// LocalStack 4.13 stores a `PutSecretValue` `SecretBinary` base64-decoded
/// once too often, and its `GetSecretValue` then fails ("Incorrect padding").
async fn put_raw(client: &Client, name: &str, value: &Garbage) {
    match value {
        Garbage::String(s) => {
            client
                .put_secret_value()
                .secret_id(name)
                .secret_string(s)
                .send()
                .await
                .unwrap();
        }
        Garbage::Binary(b) => {
            client
                .delete_secret()
                .secret_id(name)
                .force_delete_without_recovery(true)
                .send()
                .await
                .unwrap();
            client
                .create_secret()
                .name(name)
                .secret_binary(Blob::new(b.clone()))
                .send()
                .await
                .unwrap();
        }
    }
}

/// The current value of secret `name`, read with the SDK.
async fn get_raw(client: &Client, name: &str) -> Garbage {
    let out = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .unwrap();
    match (out.secret_string, out.secret_binary) {
        (Some(s), _) => Garbage::String(s),
        (None, Some(b)) => Garbage::Binary(b.into_inner()),
        (None, None) => panic!("{name} has no value"),
    }
}

fn same(a: &Garbage, b: &Garbage) -> bool {
    match (a, b) {
        (Garbage::String(a), Garbage::String(b)) => a == b,
        (Garbage::Binary(a), Garbage::Binary(b)) => a == b,
        _ => false,
    }
}

/// Asserts `result` is `StoreError::Corrupt` naming `id`, and that neither
/// its Display nor its Debug shows the stored contents.
#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, id: &str, what: &str) {
    let error = match result {
        Err(error @ StoreError::Corrupt { .. }) => error,
        other => panic!("{what}: expected Corrupt for {id}, got {other:?}"),
    };
    let StoreError::Corrupt { id: named, .. } = &error else {
        unreachable!()
    };
    assert_eq!(named, id, "{what}");
    let shown = format!("{error} | {error:?}");
    assert!(shown.contains(id), "{what}: {shown}");
    assert!(
        !shown.contains(CANARY),
        "{what} leaks the stored contents: {shown}"
    );
    assert!(
        !shown.contains("7f3a9c"),
        "{what} leaks part of the contents: {shown}"
    );
}

/// Undecodable token data is `StoreError::Corrupt` naming the id, never its contents; no panic.
#[tokio::test]
async fn undecodable_token_secrets_are_corrupt_errors_naming_the_id() {
    let h = common::harness().await;
    for (n, (what, value)) in garbage().into_iter().enumerate() {
        let id = format!("bad-{n}");
        let user = format!("bad{n}@example.com");
        let mut t = OAuthToken::from_refresh_token("c", "s", "r")
            .with_user_name(&user)
            .with_id(&id);
        h.store.save_token(&mut t).await.unwrap();
        put_raw(&h.client, &h.token_secret(&id), &value).await;

        let store = h.instance();
        assert_corrupt(store.find_token_by_id(&id).await, &id, what);
        assert_corrupt(
            store.find_token(&OAuthToken::for_user(&user)).await,
            &id,
            what,
        );
    }
}

/// `save_token` never overwrites a secret it cannot decode: it fails and writes nothing.
#[tokio::test]
async fn save_token_never_overwrites_an_undecodable_secret() {
    let h = common::harness().await;
    for (n, (what, value)) in garbage().into_iter().enumerate() {
        let id = format!("bad-{n}");
        let user = format!("bad{n}@example.com");
        let name = h.token_secret(&id);
        let refresh = format!("r{n}");
        let mut t = OAuthToken::from_refresh_token("c", "s", &refresh)
            .with_user_name(&user)
            .with_id(&id);
        h.store.save_token(&mut t).await.unwrap();
        put_raw(&h.client, &name, &value).await;

        let store = h.instance();
        let mut by_id = OAuthToken::from_refresh_token("c", "s", "refresh-new").with_id(&id);
        assert_corrupt(store.save_token(&mut by_id).await, &id, what);
        let mut by_user = OAuthToken {
            access_token: Some("access-new".into()),
            ..OAuthToken::for_user(&user)
        };
        assert_corrupt(store.save_token(&mut by_user).await, &id, what);
        let mut by_refresh = OAuthToken {
            access_token: Some("access-new".into()),
            ..OAuthToken::from_refresh_token("c", "s", &refresh)
        };
        assert_corrupt(store.save_token(&mut by_refresh).await, &id, what);
        assert!(
            same(&get_raw(&h.client, &name).await, &value),
            "{what}: overwritten"
        );
    }
}

/// `get_tokens` fails with `Corrupt` naming a corrupt token, never silently omits it.
#[tokio::test]
async fn get_tokens_with_one_corrupt_token_names_it_and_delete_clears_it() {
    let h = common::harness().await;
    let mut good = Vec::new();
    for n in 0..3 {
        let mut t = OAuthToken::from_refresh_token("c", "s", format!("r{n}"))
            .with_user_name(format!("good{n}@example.com"));
        h.store.save_token(&mut t).await.unwrap();
        good.push(t);
    }
    for (what, value) in garbage() {
        let mut t = OAuthToken::from_refresh_token("c", "s", "r").with_user_name("bad@example.com");
        h.store.save_token(&mut t).await.unwrap();
        let id = t.id.unwrap();
        put_raw(&h.client, &h.token_secret(&id), &value).await;

        let store = h.instance();
        assert_corrupt(store.get_tokens().await, &id, what);
        store.delete_token(&id).await.unwrap();
        let mut listed = h.instance().get_tokens().await.unwrap();
        listed.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        assert_eq!(listed, good, "{what}");
    }
}

/// A token encoding over 65,536 bytes is `InvalidInput` and writes nothing; 65,536 fits.
#[tokio::test]
async fn tokens_over_64_kib_are_invalid_input_and_write_nothing() {
    let h = common::harness().await;
    // A token with id `id` that encodes to exactly `bytes` bytes.
    let sized = |bytes: usize, user: &str, id: &str| {
        let mut t = OAuthToken::from_refresh_token("c", "s", "r")
            .with_user_name(user)
            .with_id(id);
        t.access_token = Some(String::new());
        let base = encode_token(&t).unwrap().len();
        t.access_token = Some("a".repeat(bytes - base));
        t
    };
    let mut over = sized(MAX_TOKEN_BYTES + 1, "big@example.com", "big");
    h.counter.reset();
    match h.store.save_token(&mut over).await {
        Err(StoreError::InvalidInput { .. }) => {}
        other => panic!("{other:?}"),
    }
    let writes: u64 = ["CreateSecret", "PutSecretValue", "UpdateSecretVersionStage"]
        .iter()
        .map(|op| h.counter.count(op))
        .sum();
    assert_eq!(writes, 0, "{:?}", h.counter.snapshot());
    let store = h.instance();
    assert!(store.get_tokens().await.unwrap().is_empty());
    assert_eq!(store.index_stats().await.unwrap().tokens, 0);
    assert_eq!(
        store
            .find_token(&OAuthToken::for_user("big@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.find_token_by_id("big").await.unwrap(), None);

    // An update that would grow a stored token past the limit changes nothing.
    let mut small =
        OAuthToken::from_refresh_token("c", "s", "r").with_user_name("grow@example.com");
    h.store.save_token(&mut small).await.unwrap();
    let id = small.id.clone().unwrap();
    let name = h.token_secret(&id);
    let before = get_raw(&h.client, &name).await;
    let mut grown = sized(MAX_TOKEN_BYTES + 1, "grow@example.com", &id);
    match h.store.save_token(&mut grown).await {
        Err(StoreError::InvalidInput { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(same(&get_raw(&h.client, &name).await, &before));
    assert_eq!(
        h.instance().find_token_by_id(&id).await.unwrap(),
        Some(small)
    );

    // The limit itself fits.
    let mut at_limit = sized(MAX_TOKEN_BYTES, "limit@example.com", "limit");
    assert_eq!(encode_token(&at_limit).unwrap().len(), MAX_TOKEN_BYTES);
    h.store.save_token(&mut at_limit).await.unwrap();
    let read = h
        .instance()
        .find_token_by_id(at_limit.id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(read, Some(at_limit));
}
