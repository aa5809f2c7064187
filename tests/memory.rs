//! The conformance suite against [`MemoryStore`], directly and through both
//! dyn forms.

use std::sync::Arc;

use zoho_token_store::{MemoryStore, TokenStore};

mod direct {
    zoho_token_store::conformance_tests!(zoho_token_store::MemoryStore::new());
}

mod boxed {
    zoho_token_store::conformance_tests!({
        let store: Box<dyn zoho_token_store::TokenStore> =
            Box::new(zoho_token_store::MemoryStore::new());
        store
    });
}

mod arced {
    zoho_token_store::conformance_tests!({
        let store: std::sync::Arc<dyn zoho_token_store::TokenStore> =
            std::sync::Arc::new(zoho_token_store::MemoryStore::new());
        store
    });
}

/// `run_all` runs the same checks as `conformance_tests!`, in one test.
#[tokio::test]
async fn run_all_passes_on_a_memory_store() {
    let mut stores = 0;
    zoho_token_store::conformance::run_all(|| {
        stores += 1;
        async { MemoryStore::new() }
    })
    .await;
    assert_eq!(stores, zoho_token_store::conformance::CHECKS.len());
}

/// Clones of a `MemoryStore` are handles on one set of tokens: a save through
/// one is found, listed and deletable through another; `new` is separate.
#[tokio::test]
async fn clones_share_one_set_of_tokens() {
    let store = MemoryStore::new();
    let clone = store.clone();
    let mut token = zoho_token_store::conformance::sample_token(1);
    store.save_token(&mut token).await.unwrap();
    let query = zoho_token_store::OAuthToken::for_user("user1@example.com");
    assert_eq!(clone.find_token(&query).await.unwrap(), Some(token.clone()));
    assert_eq!(clone.get_tokens().await.unwrap(), vec![token.clone()]);
    clone
        .delete_token(token.id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(store.get_tokens().await.unwrap(), vec![]);
    assert_eq!(MemoryStore::new().get_tokens().await.unwrap(), vec![]);
}

#[tokio::test]
async fn clones_of_an_arc_share_tokens_across_tasks() {
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut token = zoho_token_store::conformance::sample_token(n);
            store.save_token(&mut token).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get_tokens().await.unwrap().len(), 16);
}
