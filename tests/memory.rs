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
