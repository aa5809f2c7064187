//! The read-through token cache: expiry-aware, bounded, with concurrent
//! misses of one id coalesced into one backend read.
//!
//! Two maps hold the same `Arc<Cached>` values:
//!
//! - the *hot map*, a few read-write-locked hash maps that every read goes
//!   through: a hit is a hash, a shared lock, an expiry check and the clone
//!   the caller asks for (a moka `get` alone costs more than all of that
//!   but the clone, in recency bookkeeping the hit does not need; see
//!   BENCHMARKS.md);
//! - moka, which decides what stays: it enforces the capacity and the
//!   per-entry expiry, and every entry it drops (evicted, expired, rejected
//!   on admission, invalidated) leaves the hot map through its eviction
//!   listener. Hits are reported to moka one in [`TOUCH_EVERY`], so that its
//!   eviction still sees which tokens are in use.
//!
//! Every change goes to the hot map first, then to moka, under the flights
//! mutex; the listener removes a hot entry only if it is still the very
//! value moka dropped. No operation holds a hot-map lock while it calls moka.
//! Backend reads are async and coalesced here, per id.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::notification::RemovalCause;
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
    /// The secret version the token was read from (or written as): what a
    /// save that merges onto it replaces, by compare-and-swap.
    pub(crate) version: Option<String>,
    /// The secret carried a save's intent (see `record.rs`): the token is
    /// what the index confirmed, and a writer must settle the intent before
    /// it merges onto it. Such a token is never kept in the cache.
    pub(crate) intent: bool,
    /// Unique to this value: two reads that see the same revision of an id
    /// see the same token (a binding may keep its own conversion of it).
    pub(crate) revision: u64,
    expires_at: Instant,
}

/// The next [`Cached::revision`]: one counter for every cache of the process.
static NEXT_REVISION: AtomicU64 = AtomicU64::new(1);

fn next_revision() -> u64 {
    NEXT_REVISION.fetch_add(1, Ordering::Relaxed)
}

impl Cached {
    /// A token just read, held by a save only (never put in the cache).
    pub(crate) fn read_now(loaded: Loaded) -> Arc<Self> {
        Arc::new(Self {
            token: loaded.token,
            version: loaded.version,
            intent: loaded.intent,
            revision: next_revision(),
            expires_at: Instant::now(),
        })
    }
}

/// A token as read from its secret, for [`TokenCache::get_or_fetch`].
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The token, as readers see it.
    pub(crate) token: OAuthToken,
    /// The version read.
    pub(crate) version: Option<String>,
    /// See [`Cached::intent`].
    pub(crate) intent: bool,
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

/// Hot-map shards: readers of different ids seldom share a lock.
const SHARDS: usize = 16;
/// One hit in this many (per thread) is reported to moka.
const TOUCH_EVERY: u32 = 64;

/// The hasher of the hot map: foldhash, several times cheaper than SipHash
/// on a 32-byte id, and seeded at random per cache, so that ids cannot be
/// chosen to collide without knowing the seed.
type IdHash = foldhash::fast::RandomState;

type Shard = RwLock<HashMap<String, Arc<Cached>, IdHash>>;

/// The maps every read goes through (see the module docs).
struct HotMap {
    hash: IdHash,
    shards: [Shard; SHARDS],
}

impl HotMap {
    fn new() -> Self {
        let hash = IdHash::default();
        Self {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::with_hasher(hash.clone()))),
            hash,
        }
    }

    /// The shard of `id`: bits of its hash that the shard's own table uses
    /// for neither its bucket index (low bits) nor its tags (top 7 bits).
    #[inline]
    fn shard(&self, id: &str) -> &Shard {
        let hash = self.hash.hash_one(id);
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// `f` of the unexpired entry of `id`, under the shard's read lock.
    #[inline]
    fn with<T>(&self, id: &str, f: impl FnOnce(&Arc<Cached>) -> T) -> Option<T> {
        let shard = self.shard(id).read().unwrap_or_else(|p| p.into_inner());
        let cached = shard.get(id)?;
        (cached.expires_at > Instant::now()).then(|| f(cached))
    }

    fn insert(&self, id: &str, cached: Arc<Cached>) {
        let mut shard = self.shard(id).write().unwrap_or_else(|p| p.into_inner());
        shard.insert(id.to_owned(), cached);
    }

    fn remove(&self, id: &str) {
        let mut shard = self.shard(id).write().unwrap_or_else(|p| p.into_inner());
        shard.remove(id);
    }

    /// Removes the entry of `id` if it is `cached` itself (not a newer value).
    fn remove_if_same(&self, id: &str, cached: &Arc<Cached>) {
        let mut shard = self.shard(id).write().unwrap_or_else(|p| p.into_inner());
        if shard.get(id).is_some_and(|c| Arc::ptr_eq(c, cached)) {
            shard.remove(id);
        }
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// The unexpired entries.
    fn values(&self) -> Vec<Arc<Cached>> {
        let now = Instant::now();
        let mut values = Vec::new();
        for shard in &self.shards {
            let shard = shard.read().unwrap_or_else(|p| p.into_inner());
            values.extend(shard.values().filter(|c| c.expires_at > now).cloned());
        }
        values
    }
}

thread_local! {
    /// Hits on this thread since its last report to moka.
    static HITS: Cell<u32> = const { Cell::new(0) };
}

/// The token cache of one store instance.
pub(crate) struct TokenCache {
    ttl: Duration,
    /// What every read sees.
    hot: Arc<HotMap>,
    /// What decides which entries stay (capacity, expiry).
    entries: Cache<String, Arc<Cached>>,
    /// Reads in progress. A write removes its id's flight, so that a read
    /// that started before the write cannot put the old value back after it.
    flights: Mutex<HashMap<String, Flight>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.hot.len())
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
        let hot = Arc::new(HotMap::new());
        let dropped = Arc::clone(&hot);
        Self {
            ttl,
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(TokenExpiry { ttl })
                .eviction_listener(
                    move |id: Arc<String>, cached: Arc<Cached>, _: RemovalCause| {
                        dropped.remove_if_same(&id, &cached);
                    },
                )
                .build(),
            hot,
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// Caches `cached` as the value of `id`: hot map first, so that moka's
    /// listener can take it out again if moka does not admit it.
    fn insert(&self, id: &str, cached: Arc<Cached>) {
        self.hot.insert(id, Arc::clone(&cached));
        self.entries.insert(id.to_owned(), cached);
    }

    /// Reports one hit in [`TOUCH_EVERY`] on this thread to moka, whose
    /// eviction otherwise never hears of the hot map's hits.
    #[inline]
    fn touch(&self, id: &str) {
        let due = HITS.with(|hits| {
            let n = hits.get().wrapping_add(1);
            hits.set(n);
            n % TOUCH_EVERY == 0
        });
        if due {
            self.entries.get(id);
        }
    }

    fn wrap_loaded(&self, loaded: Loaded) -> Arc<Cached> {
        let mut cached = self.wrap(loaded.token, loaded.version);
        if loaded.intent
            && let Some(cached) = Arc::get_mut(&mut cached)
        {
            cached.intent = true;
        }
        cached
    }

    fn wrap(&self, token: OAuthToken, version: Option<String>) -> Arc<Cached> {
        // Until EXPIRY_MARGIN before the token's expiry_time, at most the TTL.
        let until_expiry = token.expiry_time.map(|expiry| {
            let left = expiry.saturating_sub(now_millis()).max(0) as u64;
            Duration::from_millis(left).saturating_sub(EXPIRY_MARGIN)
        });
        let lifetime = until_expiry.map_or(self.ttl, |left| left.min(self.ttl));
        Arc::new(Cached {
            token,
            version,
            intent: false,
            revision: next_revision(),
            expires_at: Instant::now() + lifetime,
        })
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached token of `id`, if it is cached and not expired.
    #[inline]
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Cached>> {
        let cached = self.hot.with(id, Arc::clone)?;
        self.touch(id);
        Some(cached)
    }

    /// A clone of the cached token of `id`, if it is cached and not expired:
    /// the warm read's hot path (cloned under the shard's read lock, which
    /// saves the `Arc`'s two atomic updates).
    #[inline]
    pub(crate) fn get_token(&self, id: &str) -> Option<OAuthToken> {
        let token = self.hot.with(id, |cached| cached.token.clone())?;
        self.touch(id);
        Some(token)
    }

    /// `f` of the cached token of `id`, if it is cached and not expired,
    /// under the hot map's read lock (no clone unless `f` makes one).
    #[inline]
    pub(crate) fn with_token<T>(&self, id: &str, f: impl FnOnce(&OAuthToken) -> T) -> Option<T> {
        self.with_cached(id, |cached| f(&cached.token))
    }

    /// `f` of the cached value of `id` (token and revision), as
    /// [`with_token`](Self::with_token).
    #[inline]
    pub(crate) fn with_cached<T>(&self, id: &str, f: impl FnOnce(&Cached) -> T) -> Option<T> {
        let result = self.hot.with(id, |cached| f(cached))?;
        self.touch(id);
        Some(result)
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
        Fut: Future<Output = Result<Option<Loaded>, StoreError>>,
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
                Ok(fetch().await?.map(|loaded| self.wrap_loaded(loaded)))
            })
            .await
            .cloned();
        let mut flights = self.flights();
        if flights.get(id).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(id);
            // Still this read's flight: no write happened since it started,
            // so its value may be cached (unless it is in doubt).
            if let Ok(Some(cached)) = &result
                && !cached.intent
            {
                self.insert(id, Arc::clone(cached));
            }
        }
        result
    }

    /// Caches what the store just wrote for `id`, as `version`.
    pub(crate) fn put(&self, id: &str, token: OAuthToken, version: Option<String>) {
        let cached = self.wrap(token, version);
        let mut flights = self.flights();
        flights.remove(id);
        self.insert(id, cached);
    }

    /// Forgets `id` (after a delete, or a write whose outcome is unknown).
    pub(crate) fn invalidate(&self, id: &str) {
        let mut flights = self.flights();
        flights.remove(id);
        self.hot.remove(id);
        self.entries.invalidate(id);
    }

    /// Forgets every token.
    pub(crate) fn invalidate_all(&self) {
        let mut flights = self.flights();
        flights.clear();
        self.hot.clear();
        self.entries.invalidate_all();
    }

    /// The cached tokens, for lookups the index cannot answer (access tokens).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Arc<Cached>> + '_ {
        self.hot.values().into_iter()
    }
}

/// Which token id holds each recently found user name, for the TTL.
///
/// A hint, never the truth: the hot path serves a user's token only when the
/// token cache holds that id and the cached token still has the user name,
/// so a stale mapping costs a slow lookup, never a wrong answer.
pub(crate) struct UserIds {
    ttl: Duration,
    capacity: usize,
    map: RwLock<HashMap<String, (String, Instant), IdHash>>,
}

impl std::fmt::Debug for UserIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserIds")
            .field("ttl", &self.ttl)
            .field("entries", &self.read().len())
            .finish()
    }
}

impl UserIds {
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            ttl,
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            map: RwLock::new(HashMap::with_hasher(IdHash::default())),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (String, Instant), IdHash>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (String, Instant), IdHash>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` of the id of `user`, if one was recorded within the TTL.
    #[inline]
    pub(crate) fn with<T>(&self, user: &str, f: impl FnOnce(&str) -> T) -> Option<T> {
        let map = self.read();
        let (id, at) = map.get(user)?;
        (at.elapsed() < self.ttl).then(|| f(id))
    }

    /// Records that `user` is the user name of token `id`.
    pub(crate) fn put(&self, user: &str, id: &str) {
        let mut map = self.write();
        if map.len() >= self.capacity && !map.contains_key(user) {
            // Bounded like the token cache; a hint is cheap to lose.
            map.clear();
        }
        map.insert(user.to_owned(), (id.to_owned(), Instant::now()));
    }

    /// Forgets `user`.
    pub(crate) fn forget(&self, user: &str) {
        self.write().remove(user);
    }

    /// Forgets every user name of token `id`.
    pub(crate) fn forget_id(&self, id: &str) {
        self.write().retain(|_, (holder, _)| holder != id);
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.write().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: usize) -> OAuthToken {
        OAuthToken::from_refresh_token("c", "s", format!("r{n}"))
    }

    #[test]
    fn put_get_invalidate() {
        let cache = TokenCache::new(Duration::from_secs(60), 100);
        cache.put("a", token(1), None);
        cache.put("b", token(2), None);
        assert_eq!(cache.get_token("a"), Some(token(1)));
        assert_eq!(cache.get("b").map(|c| c.token.clone()), Some(token(2)));
        cache.put("a", token(3), None);
        assert_eq!(cache.get_token("a"), Some(token(3)));
        cache.invalidate("a");
        assert_eq!(cache.get_token("a"), None);
        assert_eq!(cache.iter().count(), 1);
        cache.invalidate_all();
        assert_eq!(cache.get_token("b"), None);
        assert_eq!(cache.iter().count(), 0);
    }

    #[test]
    fn the_hot_map_keeps_only_what_moka_keeps() {
        let cache = TokenCache::new(Duration::from_secs(60), 8);
        for n in 0..200 {
            cache.put(&format!("id{n}"), token(n), None);
        }
        cache.entries.run_pending_tasks();
        let kept = cache.hot.len();
        assert!(kept <= 8, "{kept} entries over a capacity of 8");
        assert_eq!(kept as u64, cache.entries.entry_count());
        for (id, _) in &cache.entries {
            assert!(cache.get(&id).is_some(), "{id} in moka, not in the hot map");
        }
    }

    #[test]
    fn never_served_past_expiry() {
        let cache = TokenCache::new(Duration::from_secs(60), 100);
        let expiring = OAuthToken {
            expiry_time: Some(now_millis() + EXPIRY_MARGIN.as_millis() as i64 + 150),
            ..token(1)
        };
        cache.put("a", expiring.clone(), None);
        assert_eq!(cache.get_token("a"), Some(expiring));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(cache.get_token("a"), None);
        assert!(cache.get("a").is_none());
        assert_eq!(cache.iter().count(), 0);
    }

    #[test]
    fn ids_spread_over_the_shards() {
        let hot = HotMap::new();
        let mut used = std::collections::HashSet::new();
        for n in 0..1000 {
            let id = format!("{n:032x}");
            used.insert(std::ptr::from_ref(hot.shard(&id)));
        }
        assert_eq!(used.len(), SHARDS);
    }
}
