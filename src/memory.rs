//! [`MemoryStore`]: the reference implementation of the [`TokenStore`] rules.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::id::validate_id;
use crate::store::{LookupKey, TokenStore, check_unique_user, prepare_save};
use crate::token::{OAuthToken, encode_token};

/// A [`TokenStore`] in process memory.
///
/// It follows every rule of the trait and is what the other stores are
/// measured against; use it in tests, or where tokens need not outlive the
/// process. Clones share one set of tokens (as clones of a
/// `SecretsManagerStore` share one cache and index), safely across tasks and
/// threads; [`MemoryStore::new`] makes a separate, empty one.
///
/// ```
/// # tokio_test_block(async {
/// use zoho_token_store::{MemoryStore, OAuthToken, TokenStore};
///
/// let store = MemoryStore::new();
/// let mut token = OAuthToken::from_refresh_token("1000.CLIENT", "secret", "1000.refresh")
///     .with_user_name("me@example.com");
/// store.save_token(&mut token).await?;
/// let found = store.find_token(&OAuthToken::for_user("me@example.com")).await?;
/// assert_eq!(found, Some(token));
/// # Ok::<(), zoho_token_store::StoreError>(())
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    // Shared by clones: a clone is another handle on the same tokens.
    tokens: Arc<RwLock<HashMap<String, OAuthToken>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, OAuthToken>> {
        // A panic elsewhere while holding the lock leaves the map itself
        // consistent (every write is a single insert or remove), so recover.
        self.tokens
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, OAuthToken>> {
        self.tokens
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn find_by_key<'a>(
    tokens: &'a HashMap<String, OAuthToken>,
    key: &LookupKey<'_>,
) -> Option<&'a OAuthToken> {
    tokens.values().find(|stored| key.matches(stored))
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn find_token(&self, token: &OAuthToken) -> Result<Option<OAuthToken>, StoreError> {
        let key = LookupKey::require(token)?;
        Ok(find_by_key(&self.read(), &key).map(|stored| token.merged_over(stored)))
    }

    async fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>, StoreError> {
        validate_id(id)?;
        Ok(self.read().get(id).cloned())
    }

    async fn save_token(&self, token: &mut OAuthToken) -> Result<(), StoreError> {
        // One write lock over lookup, checks and insert: saves are atomic.
        let mut tokens = self.write();
        let target = match &token.id {
            Some(id) => {
                validate_id(id)?;
                tokens.get(id)
            }
            None => LookupKey::of(token).and_then(|key| find_by_key(&tokens, &key)),
        };
        let (id, updated) = prepare_save(token, target)?;
        if let Some(user) = updated.user_name.as_deref().filter(|u| !u.is_empty()) {
            let holder = find_by_key(&tokens, &LookupKey::UserName(user));
            check_unique_user(&updated, holder.and_then(|t| t.id.as_deref()))?;
        }
        encode_token(&updated)?;
        tokens.insert(id, updated.clone());
        *token = updated;
        Ok(())
    }

    async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        validate_id(id)?;
        self.write().remove(id);
        Ok(())
    }

    async fn get_tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        Ok(self.read().values().cloned().collect())
    }

    async fn delete_tokens(&self) -> Result<(), StoreError> {
        self.write().clear();
        Ok(())
    }
}
