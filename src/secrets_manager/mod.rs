//! [`SecretsManagerStore`]: tokens in AWS Secrets Manager, one secret each,
//! behind a read-through cache, listed through index secrets.

mod api;
mod builder;
mod bulk;
mod cache;
mod index;
mod layout;
mod lease;
mod record;
mod repair;
mod save;
mod swap;

use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use tracing::Instrument;

pub use builder::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_PREFIX, DeletionMode, SecretsManagerStoreBuilder,
};
pub use repair::RepairReport;

use api::{Api, Fetched, counting_calls};
use cache::{Cached, Loaded, TokenCache, UserIds};
use index::{Entry, Index, Snapshot};
use record::TokenRecord;

use layout::Layout;

use crate::error::StoreError;
use crate::id::{is_valid_id, validate_id};
use crate::lease::{LeaseFailure, LeaseRequest, RefreshLease};
use crate::store::{LookupKey, TokenStore, check_user_name};
use crate::token::OAuthToken;

/// How many API requests one `get_tokens` or `delete_tokens` keeps in flight.
const CONCURRENCY: usize = 8;
/// The most tokens one `BatchGetSecretValue` returns.
const BATCH: usize = 20;
/// Save attempts when concurrent writers keep changing what a save decided
/// on: every write of a token is a compare-and-swap, so N instances saving
/// one token at once each lose up to N - 1 rounds.
const SAVE_ATTEMPTS: u32 = 16;

/// A [`TokenStore`] on AWS Secrets Manager, for serverless apps that share
/// Zoho tokens without a disk or a database server.
///
/// - Each token is one secret, `{prefix}/tokens/{id}`, whose value is the
///   token's JSON (the field names of [`OAuthToken`], absent fields omitted).
/// - Index secrets under `{prefix}/index/` list the token ids with their user
///   names and hashes of their refresh and grant tokens, so that lookups and
///   listing need no `ListSecrets` (which lags writes by minutes). They form
///   a binary tree over a hash of each token's user name (else its id): a
///   lookup by user name reads one path of it, and new tokens spread their
///   writes over its leaves. Nodes are changed by compare-and-swap on version
///   stages, so concurrent writers in other processes lose nothing.
/// - A token saved without an id gets one derived from its user name (a
///   hash: no user name in clear), so that a cold lookup by user name reads
///   that one secret first and needs the index only when it misses (ids
///   given or imported, and users renamed since, keep their ids).
/// - Tokens read are cached (moka) for the cache TTL, but never past their
///   own `expiry_time`; the store's own writes update its cache at once.
///
/// # Writes over what they read
///
/// Every write of a token secret replaces the version it read, by
/// compare-and-swap: the new version is put under one of eight staging
/// labels `zts-save-N` (left on it; each put moves one), with a version id
/// derived from the version read, which writers racing from one version
/// share (the first stores it, the others are refused before anything is
/// stored); then `AWSCURRENT` is moved to it from the version read, which
/// Secrets Manager refuses if another writer moved it first. The save then reads the token again and
/// merges onto what it holds, so a save from a stale cached copy never puts
/// back an old refresh token or user name. A save that changes the token's
/// user name, refresh or grant token writes the secret with its *intent*
/// first (the new token beside the current one), then the index (the commit
/// point), then the new token alone: after a failure at any one call,
/// readers take the token as it was or as the save wanted (the index
/// decides), and the next writer settles it.
///
/// A token saved without an id takes its user's derived id when no secret
/// has it; if the name is still held by Secrets Manager (a deleted secret
/// being purged, or scheduled for deletion), it takes a random id at once
/// instead of waiting: the Zoho SDKs delete a revoked token and save its
/// successor for the same user in the same second. That token is then
/// found through the index, as a token with an id of its own.
///
/// Clones share one cache and index. Build one per process (in a Lambda,
/// once per cold start) with [`SecretsManagerStore::builder`].
///
/// # Secrets Manager's version quota
///
/// Secrets Manager keeps every version of a secret for 24 hours and a secret
/// holds about 100: past that, writes to it fail, which this store reports as
/// [`StoreError::QuotaExceeded`]. The store lives within it:
///
/// - a token secret gets one version per save that changes it (the hourly
///   refresh: 24 a day); a save that changes nothing writes nothing;
/// - an index leaf that has made 60 versions in 24 hours (by the builder's
///   [`clock`](SecretsManagerStoreBuilder::clock)), or grown to 48 KiB, is
///   split into two fresh secrets instead of being written again, so an
///   index secret records at most 61 versions a day however many tokens are
///   added, leaving room for attempts that lost a race and went unrecorded
///   (64 in all at most, in a test day of 10,000 new tokens);
/// - [`save_tokens`](TokenStore::save_tokens) and `delete_tokens` commit the
///   index changes of the whole batch together: each index secret is written
///   a few times, not once per token.
///
/// # API calls
///
/// | operation | calls |
/// |---|---|
/// | `find_token_by_id`, cached | 0 |
/// | `find_token_by_id`, not cached | 1 `GetSecretValue` |
/// | `find_token` by user, refresh or grant token, cached | 0 |
/// | `find_token` by user, not cached, a token this store created without an id | 1 `GetSecretValue` |
/// | `find_token` by user, not cached, any other | 1 `GetSecretValue` (a miss) + 1 index path read (2 in a tree deeper than 4 levels) + 1 |
/// | `find_token` by refresh or grant token, not cached | the index reads + 1 per candidate |
/// | `find_token` by access token | the index reads + ⌈N/20⌉ unless cached |
/// | `save_token`, user and refresh/grant token unchanged (the hourly refresh) | 1 `PutSecretValue` + 1 `UpdateSecretVersionStage` (one version) |
/// | `save_token`, nothing changed | 1 `GetSecretValue`, no write |
/// | `save_token`, user, refresh or grant token changed | 2 × 2 (the secret with the save's intent, then alone) + an index update |
/// | `save_token`, new token | the lookup + an index update + 1 `CreateSecret` + 1 index read (the check that the index says what the secret holds) |
/// | `save_tokens` of N tokens | the index reads + N writes + a few index updates per index secret |
/// | `delete_token` | 1 `DeleteSecret` (with a recovery window, 1 `PutSecretValue` before it) + an index update |
/// | `get_tokens` | the index reads + ⌈N/20⌉ `BatchGetSecretValue` |
/// | `delete_tokens` | the index reads + N `DeleteSecret` + one update per index secret |
///
/// The index reads are every index secret, 20 to a `BatchGetSecretValue`,
/// one round trip per tree level not seen before. An index update is 3 calls
/// (`PutSecretValue`, `UpdateSecretVersionStage` twice) plus a re-read and
/// retry whenever another writer got there first, and a split (about 7
/// calls) when a leaf is full or out of versions for the day.
///
/// # Bad stored data
///
/// A token secret that cannot be decoded (not JSON, the wrong shape, a binary
/// secret) is a [`StoreError::Corrupt`] naming its id, never its contents, for
/// every operation that reads it: `find_token_by_id`, a `find_token` whose
/// candidate it is, a `save_token` that would update it (which then writes
/// nothing), and `get_tokens`, which fails rather than silently leave a token
/// out. Fix or delete the secret (`delete_token` works on it); `repair`
/// reports every corrupt token. A corrupt index shard fails the operations
/// that read the index until `repair` rebuilds it from the token secrets.
#[derive(Clone)]
pub struct SecretsManagerStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: Api,
    layout: Layout,
    cache: TokenCache,
    /// Which token id each recently found user name has: with `cache`, a
    /// warm `find_token` by user name is two map lookups.
    users: UserIds,
    index: Index,
    deletion: DeletionMode,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerStore")
            .field("prefix", &self.inner.layout.prefix())
            .field("deletion", &self.inner.deletion)
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

/// The size of a store's index, from [`SecretsManagerStore::index_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexStats {
    /// Tokens listed.
    pub tokens: usize,
    /// Index secrets: every node of the index tree, split ones included
    /// (each costs as a secret).
    pub shards: usize,
    /// Leaves of the index tree: the nodes that hold entries.
    pub leaves: usize,
}

/// What the index says about a lookup key.
enum Resolved {
    /// The stored token that matches, as read.
    Found(Arc<Cached>),
    /// The index gives the key's user name to this id, but its secret does
    /// not exist (yet, or any more): a save for that user takes the id over.
    Reserved(String),
    /// Nothing matches. For a user name, `free_user_id` is the id a new
    /// token for it would take ([`layout::user_token_id`]) when the lookup
    /// saw that no secret has it.
    Missing { free_user_id: Option<String> },
}

/// What the secret of a user name's derived id holds.
enum Probe {
    /// That user's token, as read.
    Found(Arc<Cached>),
    /// No secret has the id (this one): a new token for the user may take it.
    Free(String),
    /// Another token has the id (its user name changed since), or a value
    /// that cannot be decoded.
    Taken,
}

impl Resolved {
    const MISSING: Self = Self::Missing { free_user_id: None };
}

/// The error for a token secret that holds binary data, not a token's JSON.
fn binary_secret(id: &str) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        reason: "a binary secret, not a token JSON string".into(),
    }
}

impl SecretsManagerStore {
    /// A builder; see [`SecretsManagerStoreBuilder`].
    pub fn builder() -> SecretsManagerStoreBuilder {
        SecretsManagerStoreBuilder::default()
    }

    /// A store under `prefix` with a client from the default AWS configuration
    /// chain (credentials, region, and `AWS_ENDPOINT_URL`, e.g. for LocalStack).
    pub async fn from_env(prefix: impl Into<String>) -> Result<Self, StoreError> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::builder()
            .client(aws_sdk_secretsmanager::Client::new(&config))
            .prefix(prefix)
            .build()
    }

    /// The prefix of the store's secrets.
    pub fn prefix(&self) -> &str {
        self.inner.layout.prefix()
    }

    /// The token stored under `id` if this instance's cache holds it: what
    /// [`find_token_by_id`](TokenStore::find_token_by_id) answers on a cache
    /// hit (within the cache TTL, never past the token's expiry, never after
    /// this instance saved or deleted it), here with no call and no `.await`.
    /// `None` on a miss or a malformed id: then make the
    /// `find_token_by_id` call.
    ///
    /// For bindings whose callers pay for every trip to the runtime (the
    /// Node package answers its SDK's per-request lookup from it on the
    /// JavaScript thread).
    pub fn cached_token_by_id(&self, id: &str) -> Option<OAuthToken> {
        self.with_cached_token(id, |token, _| token.clone())
    }

    /// `f` of what [`cached_token_by_id`](Self::cached_token_by_id) would
    /// answer, without cloning it, and of its *revision*: a number that
    /// changes whenever the cached value of `id` does (in any store of the
    /// process), so that a caller that converted the token once (a binding
    /// making its own objects of it) can tell that its conversion still
    /// holds. `None` on a miss.
    pub fn with_cached_token<T>(
        &self,
        id: &str,
        f: impl FnOnce(&OAuthToken, u64) -> T,
    ) -> Option<T> {
        if !is_valid_id(id) {
            return None;
        }
        self.inner
            .cache
            .with_cached(id, |cached| f(&cached.token, cached.revision))
    }

    /// Runs one operation in a `token_store` span that records the operation,
    /// prefix, id and the number of API calls made (never a secret value).
    async fn traced<T>(
        &self,
        operation: &'static str,
        id: Option<&str>,
        body: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let span = tracing::debug_span!(
            "token_store",
            operation,
            prefix = self.prefix(),
            id,
            api_calls = tracing::field::Empty,
        );
        let (result, calls) = counting_calls(body).instrument(span.clone()).await;
        span.record("api_calls", calls);
        let _entered = span.enter();
        match &result {
            Ok(_) => tracing::debug!(api_calls = calls, "ok"),
            Err(error) => tracing::warn!(api_calls = calls, %error, "failed"),
        }
        result
    }

    /// Reads token `id` from Secrets Manager, bypassing the cache. A save's
    /// intent in the secret (see `record.rs`) is what the index says: the
    /// token it wants when the index has its entry, else the token as it was.
    async fn fetch(&self, id: &str) -> Result<Option<Loaded>, StoreError> {
        let (json, version) = match self.inner.api.get(&self.inner.layout.token(id)).await? {
            Fetched::Value {
                string: Some(json),
                version_id,
            } => (json, version_id),
            Fetched::Value { string: None, .. } => return Err(binary_secret(id)),
            Fetched::Absent | Fetched::Deleted => return Ok(None),
        };
        let Some(record) = TokenRecord::decode_live(id, &json)? else {
            return Ok(None);
        };
        let Some(intent) = record.intent else {
            return Ok(Some(Loaded {
                token: record.token,
                version,
                intent: false,
            }));
        };
        let wanted = Entry::of(id, &intent);
        let committed = self
            .inner
            .index
            .entry_on(id, wanted.route())
            .await?
            .is_some_and(|entry| entry.same_keys(&wanted));
        Ok(Some(Loaded {
            token: if committed { intent } else { record.token },
            version,
            intent: true,
        }))
    }

    /// Token `id`, from the cache or (coalesced) from Secrets Manager.
    async fn get(&self, id: &str) -> Result<Option<Arc<Cached>>, StoreError> {
        self.inner.cache.get_or_fetch(id, || self.fetch(id)).await
    }

    /// What the index snapshot says about `key`.
    async fn resolve_in(
        &self,
        snapshot: &Snapshot,
        key: &LookupKey<'_>,
    ) -> Result<Resolved, StoreError> {
        let mut reserved = None;
        for id in snapshot.candidates(key) {
            match self.get(&id).await? {
                Some(cached) if key.matches(&cached.token) => {
                    return Ok(Resolved::Found(cached));
                }
                None if matches!(key, LookupKey::UserName(_)) => reserved = Some(id),
                _ => {}
            }
        }
        Ok(reserved.map_or(Resolved::MISSING, Resolved::Reserved))
    }

    /// The stored token `key` matches. With `recheck`, a miss in a cached
    /// index is checked against a fresh one, so another instance's new
    /// tokens are found at once.
    async fn resolve(&self, key: &LookupKey<'_>, recheck: bool) -> Result<Resolved, StoreError> {
        if let LookupKey::AccessToken(_) = key {
            // Access tokens change hourly, so they are not indexed: look in
            // the cache, then through every token.
            if let Some(cached) = self.inner.cache.iter().find(|c| key.matches(&c.token)) {
                return Ok(Resolved::Found(cached));
            }
            let tokens = self.read_all().await?;
            let Some(id) = tokens
                .into_iter()
                .find(|t| key.matches(t))
                .and_then(|t| t.id)
            else {
                return Ok(Resolved::MISSING);
            };
            // Read again by id: a writer needs the version it merges onto.
            return Ok(match self.get(&id).await? {
                Some(cached) if key.matches(&cached.token) => Resolved::Found(cached),
                _ => Resolved::MISSING,
            });
        }
        if let LookupKey::UserName(user) = key {
            return self.resolve_user(user, key, recheck).await;
        }
        let index = &self.inner.index;
        let (snapshot, from_cache) = index.current().await?;
        match self.resolve_in(&snapshot, key).await? {
            Resolved::Missing { .. } if from_cache && recheck => {
                let snapshot = index.load().await?;
                self.resolve_in(&snapshot, key).await
            }
            resolved => Ok(resolved),
        }
    }

    /// [`resolve`](Self::resolve) for a user name: a young cached index that
    /// names the user's token, else the secret of the user's derived id
    /// ([`layout::user_token_id`]: one call for a token this store created),
    /// else one path of the index tree.
    async fn resolve_user(
        &self,
        user: &str,
        key: &LookupKey<'_>,
        recheck: bool,
    ) -> Result<Resolved, StoreError> {
        let index = &self.inner.index;
        let resolved = match index.young() {
            Some(snapshot) if snapshot.user_holder(user).is_some() => {
                self.resolve_in(&snapshot, key).await?
            }
            _ => Resolved::MISSING,
        };
        let resolved = match resolved {
            Resolved::Missing { .. } => match self.probe_user_id(user, key).await? {
                Probe::Found(token) => Resolved::Found(token),
                probe => {
                    let (snapshot, from_cache) = index.for_user(user, false).await?;
                    let resolved = match self.resolve_in(&snapshot, key).await? {
                        Resolved::Missing { .. } if from_cache && recheck => {
                            let snapshot = index.for_user(user, true).await?.0;
                            self.resolve_in(&snapshot, key).await?
                        }
                        resolved => resolved,
                    };
                    match (resolved, probe) {
                        (Resolved::Missing { .. }, Probe::Free(id)) => Resolved::Missing {
                            free_user_id: Some(id),
                        },
                        (resolved, _) => resolved,
                    }
                }
            },
            resolved => resolved,
        };
        if let Resolved::Found(cached) = &resolved
            && let Some(id) = &cached.token.id
        {
            self.inner.users.put(user, id);
        }
        Ok(resolved)
    }

    /// Reads the secret of `user`'s derived id ([`layout::user_token_id`]).
    async fn probe_user_id(&self, user: &str, key: &LookupKey<'_>) -> Result<Probe, StoreError> {
        let id = layout::user_token_id(user);
        match self.get(&id).await {
            Ok(Some(cached)) if key.matches(&cached.token) => Ok(Probe::Found(cached)),
            // Not this user's token: the index decides, and a lookup by
            // user name does not fail on another token's bad value.
            Ok(Some(_)) | Err(StoreError::Corrupt { .. }) => Ok(Probe::Taken),
            Ok(None) => Ok(Probe::Free(id)),
            Err(error) => Err(error),
        }
    }

    /// Every indexed token, read in batches of 20 from a fresh index.
    async fn read_all(&self) -> Result<Vec<OAuthToken>, StoreError> {
        let snapshot = self.inner.index.load().await?;
        let names: Vec<String> = snapshot
            .ids()
            .iter()
            .map(|id| self.inner.layout.token(id))
            .collect();
        let batches = futures::stream::iter(names.chunks(BATCH).map(<[String]>::to_vec))
            .map(|batch| self.inner.api.batch_get(batch))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        let mut tokens = Vec::with_capacity(names.len());
        for (name, value) in batches.into_iter().flatten() {
            let Some(id) = self.inner.layout.id_of(&name) else {
                continue;
            };
            let Some(json) = value else {
                return Err(binary_secret(id));
            };
            let Some(record) = TokenRecord::decode_live(id, &json)? else {
                continue;
            };
            // A save's intent: the token it wants if the index has it.
            let token = match record.intent {
                Some(intent)
                    if snapshot
                        .entry(id)
                        .is_some_and(|e| e.same_keys(&Entry::of(id, &intent))) =>
                {
                    intent
                }
                _ => record.token,
            };
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// `find_token_by_id` past the cache: validation errors, misses, and
    /// coalesced reads. Boxed, to keep the hit path's future small.
    fn find_token_by_id_uncached<'a>(
        &'a self,
        id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<OAuthToken>, StoreError>> + Send + 'a>>
    {
        Box::pin(async move {
            validate_id(id)?;
            self.traced("find_token_by_id", Some(id), async {
                Ok(self.get(id).await?.map(|c| c.token.clone()))
            })
            .await
        })
    }

    /// `find_token` past the hot path. Boxed, to keep the hit path's future small.
    fn find_token_uncached<'a>(
        &'a self,
        token: &'a OAuthToken,
        key: LookupKey<'a>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<OAuthToken>, StoreError>> + Send + 'a>>
    {
        Box::pin(self.traced("find_token", None, async move {
            match self.resolve(&key, true).await? {
                Resolved::Found(stored) => Ok(Some(token.merged_over(&stored.token))),
                Resolved::Reserved(_) | Resolved::Missing { .. } => Ok(None),
            }
        }))
    }

    /// How many tokens and index secrets the index has, read fresh.
    pub async fn index_stats(&self) -> Result<IndexStats, StoreError> {
        self.traced("index_stats", None, async {
            let snapshot = self.inner.index.load().await?;
            Ok(IndexStats {
                tokens: snapshot.len(),
                shards: snapshot.node_count(),
                leaves: snapshot.leaf_count(),
            })
        })
        .await
    }

    /// Reconciles the index with the token secrets that exist, listed with
    /// `ListSecrets`: indexes token secrets the index misses (left by a crash
    /// between the two writes of a new token), drops entries whose secret is
    /// gone, and rebuilds a corrupt index. Run it from an ops job, not on the
    /// request path: `ListSecrets` lags recent writes by up to minutes.
    pub async fn repair(&self) -> Result<RepairReport, StoreError> {
        self.traced("repair", None, repair::repair(self, true))
            .await
    }

    /// What [`repair`](Self::repair) would change now, without changing
    /// anything: the same reads (`ListSecrets` by prefix, every candidate
    /// token secret, the index) and no write.
    ///
    /// The report's `tokens` is how many tokens the index would list
    /// afterwards. A concurrent writer may change the picture before a
    /// real repair runs; run this from the same ops job, not to decide a
    /// later one.
    pub async fn repair_dry_run(&self) -> Result<RepairReport, StoreError> {
        self.traced("repair_dry_run", None, repair::repair(self, false))
            .await
    }
}

#[async_trait]
impl TokenStore for SecretsManagerStore {
    async fn find_token(&self, token: &OAuthToken) -> Result<Option<OAuthToken>, StoreError> {
        let key = LookupKey::require(token)?;
        // Hot path, the lookup a Lambda makes on every request: the user's
        // id and token both cached answer with two map lookups and the
        // merge, no span and no index.
        if let LookupKey::UserName(user) = key
            && let Some(found) = self
                .inner
                .users
                .with(user, |id| {
                    self.inner.cache.with_token(id, |stored| {
                        key.matches(stored).then(|| token.merged_over(stored))
                    })
                })
                .flatten()
                .flatten()
        {
            return Ok(Some(found));
        }
        self.find_token_uncached(token, key).await
    }

    async fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>, StoreError> {
        // Hot path: a cache hit is an id check, one map lookup and a clone;
        // no span, and the miss path is boxed apart so that this future
        // (which async_trait boxes on every call) stays a few words long
        // instead of holding the SDK call's state.
        if is_valid_id(id)
            && let Some(token) = self.inner.cache.get_token(id)
        {
            return Ok(Some(token));
        }
        self.find_token_by_id_uncached(id).await
    }

    async fn save_token(&self, token: &mut OAuthToken) -> Result<(), StoreError> {
        if let Some(id) = &token.id {
            validate_id(id)?;
        }
        // Before any API call (and before the index sees it): the shared
        // limit that `prepare_save` also enforces.
        check_user_name(token)?;
        let id = token.id.clone();
        let saved = self
            .traced("save_token", id.as_deref(), async {
                let mut attempts = save::Attempts::default();
                for attempt in 0..SAVE_ATTEMPTS {
                    attempts.number = attempt;
                    if let Some(saved) = self.try_save(token, &mut attempts).await? {
                        return Ok(saved);
                    }
                    // Jittered, so that writers that keep colliding part.
                    if attempt > 0 {
                        let ceiling = 5 * 2u64.pow(attempt.min(6));
                        let wait = fastrand::u64(1..=ceiling);
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    }
                }
                Err(StoreError::Conflict {
                    operation: "save_token".into(),
                    attempts: SAVE_ATTEMPTS,
                })
            })
            .await?;
        *token = saved;
        Ok(())
    }

    async fn save_tokens(&self, tokens: &mut [OAuthToken]) -> Result<(), StoreError> {
        self.traced("save_tokens", None, self.save_many(tokens))
            .await
    }

    async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        validate_id(id)?;
        self.traced("delete_token", Some(id), async {
            // Forget it first: whatever happens next, this instance must not
            // serve it again.
            self.inner.cache.invalidate(id);
            self.inner.users.forget_id(id);
            self.inner.api.delete(&self.inner.layout.token(id)).await?;
            self.inner.index.remove(&[id.to_owned()]).await?;
            self.inner.cache.invalidate(id);
            Ok(())
        })
        .await
    }

    async fn get_tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        self.traced("get_tokens", None, self.read_all()).await
    }

    /// A lease recorded in the token's own secret by compare-and-swap: one
    /// `GetSecretValue`, plus three calls (`PutSecretValue`,
    /// `UpdateSecretVersionStage` twice) and one version of the secret when
    /// it takes the lease; nothing written while another holder has it.
    async fn refresh_lease(
        &self,
        id: &str,
        request: &LeaseRequest,
    ) -> Result<RefreshLease, StoreError> {
        self.traced("refresh_lease", Some(id), self.lease(id, request))
            .await
    }

    /// One `GetSecretValue`, and when `holder` still holds the lease, one
    /// compare-and-swap (three calls, one version).
    async fn fail_refresh_lease(
        &self,
        id: &str,
        holder: &str,
        failure: &LeaseFailure,
    ) -> Result<(), StoreError> {
        self.traced(
            "fail_refresh_lease",
            Some(id),
            self.fail_lease(id, holder, failure),
        )
        .await
    }

    async fn delete_tokens(&self) -> Result<(), StoreError> {
        self.traced("delete_tokens", None, async {
            let inner = &self.inner;
            let ids = inner.index.load().await?.ids();
            inner.cache.invalidate_all();
            inner.users.clear();
            // Secrets first, then their entries: an interrupted run leaves
            // entries whose secrets are gone, which read as absent and which
            // the next run (or repair) removes.
            let names: Vec<String> = ids.iter().map(|id| inner.layout.token(id)).collect();
            futures::stream::iter(names)
                .map(|name| async move { inner.api.delete(&name).await })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<()>()
                .await?;
            inner.index.remove(&ids).await?;
            inner.cache.invalidate_all();
            Ok(())
        })
        .await
    }
}
