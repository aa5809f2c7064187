//! The read-through token cache: moka, expiry-aware, with concurrent misses
//! of one id coalesced into one backend read.
//!
//! The map is moka's synchronous cache: every operation on it is in memory
//! and never waits on I/O, so the hot path (a hit) needs no `.await` and no
//! allocation besides the clone the caller asks for. The backend reads it
//! caches are async and coalesced here, per id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::sync::Cache;
use tokio::sync::OnceCell;

use crate::error::StoreError;
use crate::token::OAuthToken;

/// A cached token is dropped this long before its access token expires, so
/// that a caller never gets a token that expires while it is being used.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// A cached token and the instant it stops being served.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) token: OAuthToken,
    expires_at: Instant,
}

/// Per-entry expiry: the shorter of the TTL and the token's own expiry.
struct TokenExpiry {
    ttl: Duration,
}

impl Expiry<String, Arc<Cached>> for TokenExpiry {
    fn expire_after_create(
        &self,
        _id: &String,
        value: &Arc<Cached>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(
            value
                .expires_at
                .saturating_duration_since(created_at)
                .min(self.ttl),
        )
    }

    fn expire_after_update(
        &self,
        id: &String,
        value: &Arc<Cached>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(id, value, updated_at)
    }
}

/// One backend read of an id that concurrent misses share.
type Flight = Arc<OnceCell<Option<Arc<Cached>>>>;

/// The token cache of one store instance.
pub(crate) struct TokenCache {
    ttl: Duration,
    entries: Cache<String, Arc<Cached>>,
    /// Reads in progress. A write removes its id's flight, so that a read
    /// that started before the write cannot put the old value back after it.
    flights: Mutex<HashMap<String, Flight>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl TokenCache {
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            ttl,
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(TokenExpiry { ttl })
                .build(),
            flights: Mutex::new(HashMap::new()),
        }
    }

    fn wrap(&self, token: OAuthToken) -> Arc<Cached> {
        // Until EXPIRY_MARGIN before the token's expiry_time, at most the TTL.
        let until_expiry = token.expiry_time.map(|expiry| {
            let left = expiry.saturating_sub(now_millis()).max(0) as u64;
            Duration::from_millis(left).saturating_sub(EXPIRY_MARGIN)
        });
        let lifetime = until_expiry.map_or(self.ttl, |left| left.min(self.ttl));
        Arc::new(Cached {
            token,
            expires_at: Instant::now() + lifetime,
        })
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached token of `id`, if it is cached and not expired.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Cached>> {
        let cached = self.entries.get(id)?;
        (cached.expires_at > Instant::now()).then_some(cached)
    }

    /// The token of `id` from the cache, else from `fetch`; concurrent calls
    /// for one id while it is not cached share one `fetch`.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        id: &str,
        fetch: F,
    ) -> Result<Option<Arc<Cached>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<OAuthToken>, StoreError>>,
    {
        if let Some(cached) = self.get(id) {
            return Ok(Some(cached));
        }
        let flight = Arc::clone(self.flights().entry(id.to_owned()).or_default());
        let result = flight
            .get_or_try_init(|| async {
                // A flight that just finished may have filled the cache.
                if let Some(cached) = self.get(id) {
                    return Ok(Some(cached));
                }
                Ok(fetch().await?.map(|token| self.wrap(token)))
            })
            .await
            .cloned();
        let mut flights = self.flights();
        if flights.get(id).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(id);
            // Still this read's flight: no write happened since it started,
            // so its value may be cached.
            if let Ok(Some(cached)) = &result {
                self.entries.insert(id.to_owned(), Arc::clone(cached));
            }
        }
        result
    }

    /// Caches what the store just wrote for `id`.
    pub(crate) fn put(&self, id: &str, token: OAuthToken) {
        let cached = self.wrap(token);
        let mut flights = self.flights();
        flights.remove(id);
        self.entries.insert(id.to_owned(), cached);
    }

    /// Forgets `id` (after a delete, or a write whose outcome is unknown).
    pub(crate) fn invalidate(&self, id: &str) {
        let mut flights = self.flights();
        flights.remove(id);
        self.entries.invalidate(id);
    }

    /// Forgets every token.
    pub(crate) fn invalidate_all(&self) {
        let mut flights = self.flights();
        flights.clear();
        self.entries.invalidate_all();
    }

    /// The cached tokens, for lookups the index cannot answer (access tokens).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Arc<Cached>> + '_ {
        let now = Instant::now();
        self.entries
            .iter()
            .map(|(_, cached)| cached)
            .filter(move |cached| cached.expires_at > now)
    }
}
