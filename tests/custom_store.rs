//! The conformance suite against the example `JsonFileStore`
//! (examples/custom_store.rs: the crate's `StorageStore` on the example's
//! `JsonFileStorage`), one fresh directory per test, plus the properties of
//! a file store the suite cannot see.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zoho_token_store::conformance::sample_token;
use zoho_token_store::{OAuthToken, StoreError, TokenStore};

#[path = "../examples/custom_store.rs"]
#[allow(dead_code)] // its `main` is not used here
mod custom_store;

use custom_store::{JsonFileStorage, JsonFileStore};

/// A `JsonFileStore` in a fresh temporary directory, removed on drop.
///
/// `conformance_tests!` takes no teardown, so the store itself cleans up: it
/// forwards the trait and removes its directory when the test drops it.
struct TempStore {
    store: JsonFileStore,
    dir: PathBuf,
}

impl TempStore {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "zoho-token-store-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let store = JsonFileStorage::open_store(&dir).await.expect("open store");
        Self { store, dir }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

zoho_token_store::forward_token_store!(TempStore => store);

mod conformance {
    zoho_token_store::conformance_tests!(super::TempStore::new().await);
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn one_json_file_per_token_and_no_temporary_files_left() {
    let temp = TempStore::new().await;
    let mut token = sample_token(1).with_id("mine");
    temp.save_token(&mut token).await.unwrap();
    temp.save_token(&mut sample_token(2).with_id("yours"))
        .await
        .unwrap();
    // An update rewrites the file through a temporary one.
    token.access_token = Some("1000.access-new".into());
    temp.save_token(&mut token).await.unwrap();
    let names = file_names(&temp.dir);
    let tokens: Vec<_> = names.iter().filter(|n| n.starts_with("token.")).collect();
    assert_eq!(tokens, ["token.mine.json", "token.yours.json"]);
    // Besides them, only the records that keep the two user names unique.
    let others: Vec<_> = names.iter().filter(|n| !n.starts_with("token.")).collect();
    assert_eq!(others.len(), 2, "{names:?}");
    assert!(others.iter().all(|n| n.starts_with("user.")), "{names:?}");
}

#[tokio::test]
async fn tokens_outlive_the_store_instance() {
    let temp = TempStore::new().await;
    let mut token = sample_token(1);
    temp.save_token(&mut token).await.unwrap();
    let reopened: JsonFileStore = JsonFileStorage::open_store(&temp.dir).await.unwrap();
    let found = reopened
        .find_token(&OAuthToken::for_user("user1@example.com"))
        .await
        .unwrap();
    assert_eq!(found, Some(token));
}

#[tokio::test]
async fn concurrent_saves_for_one_user_make_one_token() {
    let temp = Arc::new(TempStore::new().await);
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = Arc::clone(&temp);
            tokio::spawn(async move {
                let mut token = OAuthToken {
                    access_token: Some(format!("1000.access-{n}")),
                    ..OAuthToken::for_user("shared@example.com")
                };
                store.save_token(&mut token).await.unwrap();
                token.id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one id for one user: {ids:?}");
    assert_eq!(temp.get_tokens().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_corrupt_file_is_corrupt_and_names_only_the_id() {
    let temp = TempStore::new().await;
    std::fs::write(
        temp.dir.join("token.broken.json"),
        "v1\n{\"refresh_token\":\"leaky-secret\"",
    )
    .unwrap();
    let error = temp.find_token_by_id("broken").await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains("broken") && !shown.contains("leaky"),
        "{shown}"
    );
}

/// Unique user names hold across concurrent saves of new tokens: of 16
/// saves of one new user name under 16 ids, one succeeds and the others are
/// `InvalidInput`, however their steps interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_new_tokens_for_one_user_name_make_one() {
    let temp = Arc::new(TempStore::new().await);
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = Arc::clone(&temp);
            tokio::spawn(async move {
                let mut token = sample_token(1).with_id(format!("racer-{n}"));
                store.save_token(&mut token).await
            })
        })
        .collect();
    let mut saved = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => saved += 1,
            Err(StoreError::InvalidInput { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(saved, 1);
    assert_eq!(temp.get_tokens().await.unwrap().len(), 1);
}
