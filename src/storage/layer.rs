//! [`StorageStore`]: the rules of [`TokenStore`] on any [`Storage`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use super::claims::{self, Claimed};
use super::lease;
use super::record::{Stored, TOKEN_PREFIX, read_stored, read_token, token_key};
use super::retry::{ATTEMPTS, yield_now};
use super::{Expected, Storage, Version};
use crate::error::StoreError;
use crate::id::{is_valid_id, validate_id};
use crate::lease::{LeaseFailure, LeaseRequest, RefreshLease};
use crate::store::{LookupKey, TokenStore, prepare_save};
use crate::token::{OAuthToken, encode_token};

/// The [`TokenStore`] on a [`Storage`]: every rule of the trait in one
/// place, so that a custom store writes only its storage.
///
/// - **Records.** Each token is one record, `token.<id>`, holding its JSON
///   ([`encode_token`], so the size limit holds; [`decode_token`](crate::decode_token) reads it).
/// - **Lookups** ([`LookupKey`]) read every token record, as the Zoho SDK's
///   `FileStore` reads its file: fine for the handful of tokens a Zoho app
///   keeps. `find_token` answers Zoho's merge.
/// - **Saves** ([`prepare_save`]: upsert, merge, ids, limits) resolve the
///   stored token, then write its record by a conditional put expecting the
///   version read, and start over (up to 32 times, then
///   [`StoreError::Conflict`]) when another writer got in first: a save
///   never overwrites a write it did not see.
/// - **Unique user names** hold across processes: a save that gives a token
///   a user name first claims the name in a record of its own
///   (`user.<hash>`) by conditional put, and a claim whose token still has
///   the name refuses the save. Of two concurrent saves of one new user
///   name, exactly one succeeds; the other starts over and is then
///   [`StoreError::InvalidInput`] (or updates the token, if its lookup key
///   now matches it). A new token with a user name is first given a
///   placeholder record (no token: readers skip it), so that the put of the
///   token expects a version that a delete ends for good. Claims hold no
///   token value. Tokens written to the storage around this layer are not
///   covered by claims.
/// - **A failed call** (any storage call answering an error, or the process
///   stopping between two calls) leaves the tokens as they were before it
///   or as they would be had it succeeded (a save without an id that would
///   have made a new token: made under an id the caller never learnt), and
///   which one is settled when the call returns: no later call makes a
///   failed save's write appear, or takes it back. The one exception is
///   `delete_tokens`, which deletes record by record: after a failure each
///   token is either as it was or deleted. What else a failed save may
///   leave is invisible to every reader and settled by the next save: a
///   pending claim (the next save of the name fences its put and takes the
///   claim over; after a `delete_token` of its token it can no longer bring
///   anything back) and a placeholder record (the next save of its id
///   writes over it, `delete_token` of its id removes it; a save under a
///   generated id that failed may leave one for good, one small record).
/// - **Refresh leases** ([`TokenStore::refresh_lease`]) are a field of the
///   token's record, taken and marked failed by conditional put, so that of
///   the processes sharing the storage one refreshes a token at Zoho; a save
///   ends the lease and any failure mark. Lease times are the system
///   clock's, or [`clock`](Self::clock)'s.
/// - **Read your writes** holds as the storage is linearizable; there is no
///   cache.
///
/// Clones share the storage when `S` does (as `MemoryStorage` does).
#[derive(Clone, Default)]
pub struct StorageStore<S> {
    storage: S,
    /// Where lease times are read; `None`: the system clock.
    clock: Option<Clock>,
}

/// A clock, as [`StorageStore::clock`] takes it.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

impl<S: fmt::Debug> fmt::Debug for StorageStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageStore")
            .field("storage", &self.storage)
            .field("clock", &self.clock.as_ref().map_or("system", |_| "custom"))
            .finish()
    }
}

impl<S: Storage> StorageStore<S> {
    /// The token store on `storage`.
    pub fn new(storage: S) -> Self {
        Self {
            storage,
            clock: None,
        }
    }

    /// Where this store reads the time of day for refresh leases (default:
    /// the system clock): for tests that simulate hours or days, the clock
    /// given to `ZohoAuth` as well, since it stamps retry times the store
    /// compares with its own.
    pub fn clock<F>(mut self, now: F) -> Self
    where
        F: Fn() -> SystemTime + Send + Sync + 'static,
    {
        self.clock = Some(Arc::new(now));
        self
    }

    /// Now, Unix ms, by this store's clock.
    fn now_millis(&self) -> i64 {
        let now = self
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock());
        lease::unix_millis(now)
    }

    /// The storage underneath.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, for the helpers that take any.
    fn dyn_storage(&self) -> &dyn Storage {
        &self.storage
    }

    /// Every stored token with its record's version. A record deleted while
    /// we list is skipped.
    async fn all(&self) -> Result<Vec<(OAuthToken, Version)>, StoreError> {
        let mut tokens = Vec::new();
        for key in self.storage.list().await? {
            let Some(id) = key.strip_prefix(TOKEN_PREFIX).filter(|id| is_valid_id(id)) else {
                continue;
            };
            if let Some((token, record)) = read_token(self.dyn_storage(), id).await? {
                tokens.push((token, record.version));
            }
        }
        Ok(tokens)
    }

    /// The stored token `key` matches, with its record's version.
    async fn find_by_key(
        &self,
        key: &LookupKey<'_>,
    ) -> Result<Option<(OAuthToken, Version)>, StoreError> {
        Ok(self.all().await?.into_iter().find(|(t, _)| key.matches(t)))
    }

    /// The stored token a save of `token` updates, and the version of the
    /// record it writes (`None`: absent).
    async fn target_of(
        &self,
        token: &OAuthToken,
    ) -> Result<(Option<OAuthToken>, Option<Version>), StoreError> {
        // A given id decides alone.
        if let Some(id) = token.id.as_deref() {
            validate_id(id)?;
            return Ok(match read_stored(self.dyn_storage(), id).await? {
                Stored::Token(stored, record) => (Some(*stored), Some(record.version)),
                // A save that did not finish left its placeholder: write
                // over it.
                Stored::Reserved(version) => (None, Some(version)),
                Stored::Absent => (None, None),
            });
        }
        let Some(key) = LookupKey::of(token) else {
            return Ok((None, None));
        };
        Ok(match self.find_by_key(&key).await? {
            Some((stored, version)) => (Some(stored), Some(version)),
            None => (None, None),
        })
    }

    /// One attempt at `save_token`: the token as stored, or `Ok(None)` when
    /// a concurrent writer got in first.
    async fn try_save(&self, token: &OAuthToken) -> Result<Option<OAuthToken>, StoreError> {
        let (target, version) = self.target_of(token).await?;
        let (id, updated) = prepare_save(token, target.as_ref())?;
        let value = encode_token(&updated)?;
        let had = target.as_ref().and_then(|t| t.user_name.as_deref());
        let gained =
            (updated.user_name.as_deref()).filter(|user| !user.is_empty() && had != Some(*user));
        let settle = match gained {
            Some(user) => {
                let id_given = token.id.is_some();
                let storage = self.dyn_storage();
                let claimed =
                    claims::claim(storage, user, &id, &updated, version.as_ref(), id_given).await?;
                match claimed {
                    Claimed::Pending(settle) => Some(settle),
                    Claimed::Lost => return Ok(None),
                }
            }
            None => None,
        };
        // A claimed name's put expects the version the claim names (the
        // reservation's, for a new token), so that a claimant can fence it.
        let expected = match (&settle, &version) {
            (Some(settle), _) => Expected::Version(settle.expected()),
            (None, Some(version)) => Expected::Version(version),
            (None, None) => Expected::Absent,
        };
        if self
            .storage
            .put(&token_key(&id), &value, expected)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        if let Some(settle) = settle {
            claims::settle(self.dyn_storage(), settle).await;
        }
        Ok(Some(updated))
    }
}

#[async_trait]
impl<S: Storage> TokenStore for StorageStore<S> {
    async fn find_token(&self, token: &OAuthToken) -> Result<Option<OAuthToken>, StoreError> {
        let key = LookupKey::require(token)?;
        let found = self.find_by_key(&key).await?;
        Ok(found.map(|(stored, _)| token.merged_over(&stored)))
    }

    async fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>, StoreError> {
        validate_id(id)?;
        let read = read_token(self.dyn_storage(), id).await?;
        Ok(read.map(|(token, _)| token))
    }

    async fn save_token(&self, token: &mut OAuthToken) -> Result<(), StoreError> {
        for _ in 0..ATTEMPTS {
            if let Some(saved) = self.try_save(token).await? {
                *token = saved;
                return Ok(());
            }
            // Let the writer we lost to finish.
            yield_now().await;
        }
        Err(StoreError::Conflict {
            operation: format!("save_token {}", token.id.as_deref().unwrap_or("(new)")),
            attempts: ATTEMPTS,
        })
    }

    async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        validate_id(id)?;
        self.storage.delete(&token_key(id)).await
    }

    async fn get_tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        Ok(self.all().await?.into_iter().map(|(t, _)| t).collect())
    }

    async fn delete_tokens(&self) -> Result<(), StoreError> {
        // Token records (and placeholders) first: a failure midway must not
        // leave a token whose user name claim is gone, or a later save
        // could give its name to a second token.
        let keys = self.storage.list().await?;
        let (claims, others): (Vec<_>, Vec<_>) =
            keys.into_iter().partition(|key| claims::is_claim_key(key));
        for key in others {
            self.storage.delete(&key).await?;
        }
        // Then the claims, now stale, pruned rather than deleted: a claim
        // written by a concurrent save must survive.
        for key in claims {
            claims::prune(self.dyn_storage(), &key).await?;
        }
        Ok(())
    }

    async fn refresh_lease(
        &self,
        id: &str,
        request: &LeaseRequest,
    ) -> Result<RefreshLease, StoreError> {
        let now = || self.now_millis();
        lease::refresh_lease(self.dyn_storage(), &now, id, request).await
    }

    async fn fail_refresh_lease(
        &self,
        id: &str,
        holder: &str,
        failure: &LeaseFailure,
    ) -> Result<(), StoreError> {
        lease::fail_refresh_lease(self.dyn_storage(), id, holder, failure).await
    }
}
