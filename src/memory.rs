//! [`MemoryStore`], the reference implementation of the
//! [`TokenStore`](crate::TokenStore)
//! rules: [`StorageStore`] on [`MemoryStorage`], records in process memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::storage::{Expected, Record, Storage, StorageStore, Version};

/// A [`TokenStore`](crate::TokenStore) in process memory.
///
/// It follows every rule of the trait and is what the other stores are
/// measured against; use it in tests, or where tokens need not outlive the
/// process. It is the crate's [`StorageStore`] on a [`MemoryStorage`], so it
/// keeps the rules exactly as a custom store on that layer does, refresh
/// leases included. Clones share one set of tokens (as clones of a
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
    // Shared by clones: a clone is another handle on the same records.
    store: StorageStore<MemoryStorage>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

crate::forward_token_store!(MemoryStore => store);

/// A [`Storage`] in process memory: the records of a [`MemoryStore`], and a
/// storage to test a [`StorageStore`] on (wrap it to count or fail calls).
///
/// Clones share one map of records; [`MemoryStorage::new`] makes a
/// separate, empty one. Versions count the puts of the whole storage.
#[derive(Debug, Default, Clone)]
pub struct MemoryStorage {
    records: Arc<Mutex<Records>>,
}

#[derive(Debug, Default)]
struct Records {
    by_key: HashMap<String, Record>,
    puts: u64,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // A panic elsewhere while holding the lock leaves the map itself
        // consistent (every write is a single insert or remove), so recover.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.records().by_key.get(key).cloned())
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        expected: Expected<'_>,
    ) -> Result<Option<Version>, StoreError> {
        // One lock over the check and the write: the put is atomic.
        let mut records = self.records();
        let current = records.by_key.get(key).map(|record| &record.version);
        if !expected.is_met_by(current) {
            return Ok(None);
        }
        records.puts += 1;
        let version = Version::new(records.puts.to_string());
        let record = Record::new(value, version.clone());
        records.by_key.insert(key.to_owned(), record);
        Ok(Some(version))
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.records().by_key.keys().cloned().collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.records().by_key.remove(key);
        Ok(())
    }
}
