//! `StorageStore`, the crate's rules on any `Storage`, on storages that
//! interleave, always lose, or fail: unique user names hold however
//! concurrent saves interleave, a save that keeps losing gives up after a
//! bounded number of puts, and the leases give a fleet one refresh.

mod fake_zoho;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use zoho_token_store::auth::ZohoAuth;
use zoho_token_store::conformance::sample_token;
use zoho_token_store::{
    Expected, MemoryStorage, MemoryStore, OAuthToken, Record, Storage, StorageStore, StoreError,
    TokenStore, Version,
};

/// A `MemoryStorage` that lets other tasks run before every operation, so
/// that the steps of concurrent saves interleave; it can fail or refuse
/// puts, and counts them.
#[derive(Default)]
struct Interleaving {
    inner: MemoryStorage,
    /// Operations so far: how many times the next one yields is a hash of it.
    ops: AtomicUsize,
    puts: AtomicUsize,
    /// Hold the first put of a token (not of a placeholder) until another
    /// get reads its record.
    stall_first_token_put: bool,
    stalled: AtomicBool,
    stalled_key: Mutex<Option<String>>,
    stalled_key_reads: AtomicUsize,
    released: AtomicBool,
    /// Puts of tokens (not placeholders) to answer with a backend error,
    /// writing nothing.
    failing_token_puts: AtomicUsize,
    /// Answer every put "not as expected".
    always_lose: bool,
}

impl Interleaving {
    /// Lets other tasks run 0 to 31 times, varying from call to call, so
    /// that concurrent saves interleave at every step.
    async fn interleave(&self) {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) as u64;
        for _ in 0..(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59) {
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl Storage for Interleaving {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        self.interleave().await;
        if self.stalled_key.lock().unwrap().as_deref() == Some(key) {
            self.stalled_key_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: &str,
        expected: Expected<'_>,
    ) -> Result<Option<Version>, StoreError> {
        self.interleave().await;
        if self.stall_first_token_put
            && key.starts_with("token.")
            && carries_a_token(value)
            && !self.stalled.swap(true, Ordering::SeqCst)
        {
            // A slow write: it lands only once another saver has read this
            // token (absent) and then written its record or a user name
            // claim, in the window between this saver's claim and its write.
            *self.stalled_key.lock().unwrap() = Some(key.to_owned());
            while !self.released.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        } else if self.stalled_key_reads.load(Ordering::SeqCst) > 0
            && (key.starts_with("user.")
                || self.stalled_key.lock().unwrap().as_deref() == Some(key))
        {
            self.released.store(true, Ordering::SeqCst);
        }
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.always_lose {
            return Ok(None);
        }
        let failing = &self.failing_token_puts;
        if key.starts_with("token.")
            && carries_a_token(value)
            && failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::backend(
                format!("put {key}"),
                "injected failure",
            ));
        }
        self.inner.put(key, value, expected).await
    }
    async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.interleave().await;
        self.inner.list().await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.interleave().await;
        self.inner.delete(key).await
    }
}

fn interleaving() -> Arc<StorageStore<Interleaving>> {
    Arc::new(StorageStore::new(Interleaving::default()))
}

async fn users_named(store: &dyn TokenStore, user: &str) -> Vec<OAuthToken> {
    let tokens = store.get_tokens().await.unwrap();
    let named = |t: &OAuthToken| t.user_name.as_deref() == Some(user);
    tokens.into_iter().filter(named).collect()
}

/// Runs `n` saves at once on a multi-threaded runtime; their outcomes.
async fn race(
    store: &Arc<StorageStore<Interleaving>>,
    tokens: Vec<OAuthToken>,
) -> Vec<Result<OAuthToken, StoreError>> {
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|mut token| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.save_token(&mut token).await.map(|()| token) })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_new_tokens_for_one_user_name_make_one() {
    let store = Arc::new(StorageStore::new(Interleaving {
        stall_first_token_put: true,
        ..Interleaving::default()
    }));
    let tokens = (0..16)
        .map(|n| sample_token(1).with_id(format!("racer-{n}")))
        .collect();
    let outcomes = race(&store, tokens).await;
    let saved: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(saved.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Ok(_) | Err(StoreError::InvalidInput { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(
        users_named(&*store, "user1@example.com").await,
        vec![saved[0].clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_saves_without_id_for_one_user_update_one_token() {
    let store = interleaving();
    let tokens = (0..16)
        .map(|n| OAuthToken {
            access_token: Some(format!("1000.access-{n}")),
            ..OAuthToken::for_user("shared@example.com")
        })
        .collect();
    let outcomes = race(&store, tokens).await;
    let mut ids: Vec<_> = outcomes.into_iter().map(|o| o.unwrap().id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one id for one user: {ids:?}");
    assert_eq!(store.get_tokens().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_renames_onto_one_name_leave_one_holder() {
    let store = interleaving();
    let mut stored = Vec::new();
    for n in 0..8 {
        let mut token = sample_token(n);
        store.save_token(&mut token).await.unwrap();
        stored.push(token);
    }
    let renames = stored
        .iter()
        .map(|t| OAuthToken {
            id: t.id.clone(),
            ..OAuthToken::for_user("wanted@example.com")
        })
        .collect();
    let outcomes = race(&store, renames).await;
    let renamed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(renamed.len(), 1, "{outcomes:?}");
    let holders = users_named(&*store, "wanted@example.com").await;
    assert_eq!(holders, vec![renamed[0].clone()]);
    let found = store
        .find_token(&OAuthToken::for_user("wanted@example.com"))
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(renamed[0]));
}

#[tokio::test]
async fn a_name_freed_by_a_rename_or_a_delete_can_be_taken_again() {
    let store = MemoryStore::new();
    let mut first = sample_token(1).with_id("first");
    store.save_token(&mut first).await.unwrap();
    let mut rename = OAuthToken::for_user("elsewhere@example.com").with_id("first");
    store.save_token(&mut rename).await.unwrap();
    let mut second = sample_token(1).with_id("second");
    store.save_token(&mut second).await.unwrap();
    store.delete_token("second").await.unwrap();
    let mut third = sample_token(1).with_id("third");
    store.save_token(&mut third).await.unwrap();
    assert_eq!(users_named(&store, "user1@example.com").await, vec![third]);
    assert_eq!(
        users_named(&store, "elsewhere@example.com").await,
        vec![rename]
    );
}

#[tokio::test]
async fn a_save_that_keeps_losing_gives_up_after_32_puts() {
    let store = StorageStore::new(Interleaving {
        always_lose: true,
        ..Interleaving::default()
    });
    // No user name: one put per attempt.
    let mut token = OAuthToken {
        user_name: None,
        ..sample_token(1)
    };
    let error = store.save_token(&mut token).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict { attempts: 32, .. }),
        "{error:?}"
    );
    assert_eq!(store.storage().puts.load(Ordering::SeqCst), 32);
    assert_eq!(token.id, None, "a failed save leaves the token as it was");
}

/// A token record's value that carries a token, not a placeholder the
/// layer writes before claiming a name (which holds no token fields).
fn carries_a_token(value: &str) -> bool {
    value.contains("\"refresh_token\"") || value.contains("\"access_token\"")
}

/// The values of every record in `storage`, raw.
async fn raw_values(storage: &MemoryStorage) -> Vec<String> {
    let mut values = Vec::new();
    for key in storage.list().await.unwrap() {
        if let Some(record) = storage.get(&key).await.unwrap() {
            values.push(record.value);
        }
    }
    values
}

/// A save that claimed its user name but whose token write failed leaves
/// the tokens as they were, for good: the next save of another token for
/// that name succeeds, and the failed save's token never appears (nor do
/// its secrets stay anywhere in the storage).
#[tokio::test]
async fn a_claim_whose_write_failed_is_taken_over_by_the_next_claimant() {
    let store = StorageStore::new(Interleaving::default());
    store
        .storage()
        .failing_token_puts
        .store(1, Ordering::SeqCst);
    let mut first = sample_token(1).with_id("first");
    let error = store.save_token(&mut first).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
    assert_eq!(store.get_tokens().await.unwrap(), vec![]);
    let mut second = OAuthToken {
        refresh_token: Some("1000.refresh-second".into()),
        ..sample_token(1).with_id("second")
    };
    store.save_token(&mut second).await.unwrap();
    assert_eq!(store.get_tokens().await.unwrap(), vec![second]);
    assert_eq!(store.find_token_by_id("first").await.unwrap(), None);
    let values = raw_values(&store.storage().inner).await;
    assert!(
        values.iter().all(|v| !v.contains("1000.refresh-1")),
        "the failed save's refresh token is still stored"
    );
}

/// The same failed save, then the caller deletes its token: the name is
/// free for another token, and nothing brings the deleted token back.
#[tokio::test]
async fn a_failed_save_then_a_delete_leaves_the_name_free_and_the_token_gone() {
    let store = StorageStore::new(Interleaving::default());
    store
        .storage()
        .failing_token_puts
        .store(1, Ordering::SeqCst);
    let mut first = sample_token(1).with_id("first");
    let error = store.save_token(&mut first).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
    store.delete_token("first").await.unwrap();
    let mut second = OAuthToken {
        refresh_token: Some("1000.refresh-second".into()),
        ..sample_token(1).with_id("second")
    };
    store.save_token(&mut second).await.unwrap();
    assert_eq!(store.get_tokens().await.unwrap(), vec![second]);
    assert_eq!(store.find_token_by_id("first").await.unwrap(), None);
    let found = store
        .find_token(&OAuthToken::for_user("user1@example.com"))
        .await
        .unwrap();
    assert_eq!(found.and_then(|t| t.id).as_deref(), Some("second"));
    let values = raw_values(&store.storage().inner).await;
    assert!(
        values.iter().all(|v| !v.contains("1000.refresh-1")),
        "the deleted token's refresh token is still stored"
    );
}

/// Four processes (four `ZohoAuth`s, each its own lease holder) of ten
/// callers each, on one `MemoryStore`, with an expired token: one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_one_memory_store_refreshes_once() {
    let fake = fake_zoho::Fake::start().await;
    fake.delay_ms.store(200, Ordering::SeqCst);
    let store = MemoryStore::new();
    let mut token = OAuthToken {
        client_id: Some(fake_zoho::CLIENT_ID.into()),
        client_secret: Some(fake_zoho::CLIENT_SECRET.into()),
        refresh_token: Some(fake.refresh_token()),
        access_token: Some("1000.expired".into()),
        expiry_time: Some(1),
        ..OAuthToken::for_user("me@example.com")
    };
    store.save_token(&mut token).await.unwrap();
    let fleet: Vec<ZohoAuth> = (0..4)
        .map(|_| {
            ZohoAuth::builder(store.clone())
                .accounts_url(fake.url())
                .build()
                .unwrap()
        })
        .collect();
    let calls = fleet.iter().flat_map(|auth| {
        (0..10).map(move |_| {
            let auth = auth.clone();
            tokio::spawn(async move {
                let query = OAuthToken::for_user("me@example.com");
                auth.access_token(&query).await.unwrap().as_str().to_owned()
            })
        })
    });
    let tokens: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(fake.calls(), 1, "one refresh for the fleet");
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

/// Lease times are the store's clock's: a lease taken for a minute ends
/// when that clock has moved a minute on, and not before.
#[tokio::test]
async fn leases_end_by_the_stores_clock() {
    let offset = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let moved = Arc::clone(&offset);
    let store = StorageStore::new(MemoryStorage::new()).clock(move || {
        std::time::SystemTime::now() + std::time::Duration::from_secs(moved.load(Ordering::SeqCst))
    });
    let mut token = sample_token(1);
    store.save_token(&mut token).await.unwrap();
    let id = token.id.clone().unwrap();
    let ask = |holder: &str| {
        let stale = token.access_token.as_deref().map(Into::into);
        let request = zoho_token_store::LeaseRequest::new(
            holder,
            std::time::Duration::from_secs(60),
            0,
            stale,
        );
        let store = &store;
        let id = id.clone();
        async move { store.refresh_lease(&id, &request).await.unwrap() }
    };
    use zoho_token_store::RefreshLease;
    assert!(matches!(ask("a").await, RefreshLease::Acquired { .. }));
    assert!(matches!(ask("b").await, RefreshLease::Held { .. }));
    offset.store(61, Ordering::SeqCst);
    assert!(matches!(ask("b").await, RefreshLease::Acquired { .. }));
}
