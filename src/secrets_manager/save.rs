//! `save_token`: one attempt at deciding and writing a token, and the
//! writes it is made of.

use std::sync::Arc;

use super::api::{Created, Fetched, Put};
use super::cache::Cached;
use super::index::{Entry, UpdateError};
use super::record::{TokenRecord, encode_with_intent, is_tombstone};
use super::swap::{Staging, Swap, claim};
use super::{Resolved, SecretsManagerStore};
use crate::error::StoreError;
use crate::store::{LookupKey, check_unique_user, prepare_save};
use crate::token::{OAuthToken, encode_token};

/// What one save attempt decided to store.
struct Decision {
    /// The stored token it updates, as read (with its version); `None` for
    /// a new token.
    target: Option<Arc<Cached>>,
    /// The id it is stored under.
    id: String,
    /// What will be stored.
    updated: OAuthToken,
    /// `updated`, encoded.
    json: String,
}

/// What a save's attempts carry from one to the next.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// The id the index gives the user name while its secret is gone: the
    /// next attempt takes it over.
    takeover: Option<String>,
    /// An id whose secret name Secrets Manager still holds (a deleted secret
    /// being purged, or scheduled for deletion): a new token takes another.
    held: Option<String>,
    /// How many attempts came before this one: writers racing from one
    /// version in one attempt claim one version id (see `swap::claim`).
    pub(super) number: u32,
}

/// The prefix of the pooled staging labels of the compare-and-swap on token
/// secrets: each put moves one of them to its new version, and none is ever
/// removed (a call saved on every write).
const SAVE_LABEL: &str = "zts-save";

impl SecretsManagerStore {
    /// One attempt at a save: `Ok(None)` when a concurrent writer changed what
    /// it decided on and it should be tried again.
    pub(super) async fn try_save(
        &self,
        token: &OAuthToken,
        attempts: &mut Attempts,
    ) -> Result<Option<OAuthToken>, StoreError> {
        let decision = self.decide(token, attempts).await?;
        let written = match &decision.target {
            // Another save is under way on it (or stopped half-way): settle
            // that one first, so that this one merges onto what it left.
            Some(target) if target.intent => {
                self.settle(&decision.id, attempts.number).await?;
                None
            }
            Some(target) if target.token == decision.updated => {
                self.confirms_unchanged(&decision.id, &decision.updated)
                    .await?
            }
            Some(target) => {
                self.update(&decision, target, token, attempts.number)
                    .await?
            }
            None => self.create_new(&decision, token, attempts).await?,
        };
        let Some(version) = written else {
            attempts.takeover = None;
            return Ok(None);
        };
        self.remember(&decision, version);
        Ok(Some(decision.updated))
    }

    /// Which stored token `token` updates, if any, and what the save stores.
    async fn decide(
        &self,
        token: &OAuthToken,
        attempts: &mut Attempts,
    ) -> Result<Decision, StoreError> {
        let mut derived = None;
        let target = match (&token.id, attempts.takeover.as_ref()) {
            (Some(id), _) => self.get(id).await?,
            (None, Some(_)) => None,
            (None, None) => match LookupKey::of(token) {
                None => None,
                // A user name missing from the cached index is not read
                // again here: if another instance has just claimed it, the
                // index commit's compare-and-swap on the user's leaf fails,
                // and the next attempt finds that token.
                Some(key) => {
                    let recheck = !matches!(key, LookupKey::UserName(_));
                    match Box::pin(self.resolve(&key, recheck)).await? {
                        Resolved::Found(stored) => Some(stored),
                        // A reservation on a name still held cannot be
                        // taken over: a new id instead.
                        Resolved::Reserved(id) if attempts.held.as_ref() == Some(&id) => None,
                        Resolved::Reserved(id) => {
                            // Read past the cache first: a save racing for
                            // the id may have created its secret since.
                            match self.fetch(&id).await? {
                                Some(loaded) if key.matches(&loaded.token) => {
                                    Some(Cached::read_now(loaded))
                                }
                                _ => {
                                    attempts.takeover = Some(id);
                                    None
                                }
                            }
                        }
                        Resolved::Missing { free_user_id } => {
                            // A new token: under its user's derived id
                            // when no secret has it (and its name is not
                            // held), so that a cold lookup by user name
                            // finds it in one call.
                            derived = free_user_id.filter(|id| attempts.held.as_ref() != Some(id));
                            None
                        }
                    }
                }
            },
        };
        let mut request = token.clone();
        if request.id.is_none() {
            request.id = attempts.takeover.clone().or(derived);
        }
        let (id, updated) = prepare_save(&request, target.as_ref().map(|t| &t.token))?;
        let json = encode_token(&updated)?;
        Ok(Decision {
            target,
            id,
            updated,
            json,
        })
    }

    /// A save that changes nothing writes nothing (a version saved is a
    /// version of the secret's daily quota kept), once the secret itself
    /// confirms it, since the copy compared may be a cached one that
    /// another instance has since changed or deleted. `Ok(None)`: decide
    /// again; else the version that holds it.
    async fn confirms_unchanged(
        &self,
        id: &str,
        updated: &OAuthToken,
    ) -> Result<Option<Option<String>>, StoreError> {
        match self.fetch(id).await? {
            Some(loaded) if !loaded.intent && &loaded.token == updated => Ok(Some(loaded.version)),
            _ => {
                self.inner.cache.invalidate(id);
                Ok(None)
            }
        }
    }

    /// Writes an update of a stored token over the version it read.
    /// `Ok(None)` when that version is no longer current (another writer
    /// got there first, or the token was deleted): decide again.
    ///
    /// With the same lookup keys, one compare-and-swap. With new ones (a
    /// rename, a new refresh or grant token), three steps that no single
    /// failure leaves disagreeing (see `record.rs`): the secret with the
    /// save's intent, the index, the secret with the token alone.
    async fn update(
        &self,
        decision: &Decision,
        target: &Cached,
        token: &OAuthToken,
        attempt: u32,
    ) -> Result<Option<Option<String>>, StoreError> {
        let Decision {
            id, updated, json, ..
        } = decision;
        let Some(read) = target.version.as_deref() else {
            // Read without a version (never from Secrets Manager itself):
            // read it again.
            self.inner.cache.invalidate(id);
            return Ok(None);
        };
        let entry = Entry::of(id, updated);
        if Entry::of(id, &target.token).same_keys(&entry) {
            return Ok(self.swap_token(id, json, read, attempt).await?.map(Some));
        }
        // A new user name that another token holds is settled before any
        // intent is staged: an intent left by a save that stops here would
        // otherwise be committed by whoever settles it once that token is
        // gone, long after the save was refused.
        if let Some(user) = updated.user_name.as_deref().filter(|u| !u.is_empty())
            && target.token.user_name.as_deref() != Some(user)
        {
            let (path, _) = self.inner.index.for_user(user, true).await?;
            if let Some(holder) = path.user_holder(user).filter(|h| *h != id) {
                self.user_taken(holder.to_owned(), token, updated).await?;
                return Ok(None);
            }
        }
        let staged = encode_with_intent(id, &target.token, updated)?;
        let Some(staged_version) = self.swap_token(id, &staged, read, attempt).await? else {
            return Ok(None);
        };
        match self.index_entry(entry, token, updated).await {
            Ok(true) => {}
            refused => {
                // Not committed (another token holds the user name): take
                // the intent back. When that fails, the intent stays, and
                // the index (which does not have it) says it did not happen.
                let before = encode_token(&target.token)?;
                if let Err(error) = self.swap_token(id, &before, &staged_version, attempt).await {
                    tracing::debug!(%error, "taking back a save's intent failed");
                }
                return refused.map(|_| None);
            }
        }
        // Committed. A failure from here leaves the intent, which readers
        // now take for the token, and the next writer settles.
        Ok(self
            .swap_token(id, json, &staged_version, attempt)
            .await?
            .map(Some))
    }

    /// A new token: indexed first (which reserves its user name), then
    /// created. `Ok(None)` when another token holds the user name or the
    /// id, or the id's name is still held: decide again.
    async fn create_new(
        &self,
        decision: &Decision,
        token: &OAuthToken,
        attempts: &mut Attempts,
    ) -> Result<Option<Option<String>>, StoreError> {
        let Decision {
            id, updated, json, ..
        } = decision;
        // The entry must really be in the index, whatever the cached index
        // says (another instance may have removed it).
        if !self
            .index_entry(Entry::of(id, updated), token, updated)
            .await?
        {
            return Ok(None);
        }
        let name = self.inner.layout.token(id);
        let request_token = uuid::Uuid::new_v4().to_string();
        let created = match self.inner.api.create(&name, json, &request_token).await? {
            Created::Yes(version) => {
                // Another save that raced for the id (and lost, or failed)
                // may have written its own keys over this one's entry since,
                // or taken the entry out as a stale reservation (this save
                // looked stopped): the secret's creator makes the index say
                // what it holds, unless another token has the user name by
                // now, when this one must not be a second.
                match self.inner.index.ensure(Entry::of(id, updated)).await {
                    Ok(()) => Some(Some(version)),
                    Err(UpdateError::Store(error)) => return Err(error),
                    Err(UpdateError::UserTaken(holder)) => {
                        self.inner.api.delete(&name).await?;
                        if token.id.is_some() {
                            check_unique_user(updated, Some(&holder))?;
                        }
                        None
                    }
                }
            }
            Created::Exists => self
                .overwrite_tombstone(id, json, attempts.number)
                .await?
                .map(Some),
            // The name of a deleted secret, still held by Secrets Manager.
            // An id the caller chose must be that one: wait for it. An id
            // this store chose is given up for another, at once.
            Created::Deleted if token.id.is_some() => {
                self.restore_and_put(&name, json).await?.then_some(None)
            }
            Created::Deleted => {
                attempts.held = Some(id.clone());
                self.inner.index.remove(std::slice::from_ref(id)).await?;
                None
            }
        };
        if created.is_none() {
            self.inner.cache.invalidate(id);
        }
        Ok(created)
    }

    /// Writes `json` over token `id`'s secret if it holds a tombstone (a
    /// re-save that restored a deleted secret, then failed): the version
    /// written, or `None` when the secret holds something else.
    async fn overwrite_tombstone(
        &self,
        id: &str,
        json: &str,
        attempt: u32,
    ) -> Result<Option<String>, StoreError> {
        let name = self.inner.layout.token(id);
        match self.inner.api.get(&name).await? {
            Fetched::Value {
                string: Some(value),
                version_id: Some(version),
            } if is_tombstone(&value) => self.swap_token(id, json, &version, attempt).await,
            _ => Ok(None),
        }
    }

    /// Replaces version `read` of token `id`'s secret by `json`, if it is
    /// still current, in attempt `attempt` of its writer: the new version,
    /// or `None` (and the cached copy forgotten) when another writer got
    /// there first or the secret is gone.
    pub(super) async fn swap_token(
        &self,
        id: &str,
        json: &str,
        read: &str,
        attempt: u32,
    ) -> Result<Option<String>, StoreError> {
        let name = self.inner.layout.token(id);
        let (request_token, slot) = claim(&name, read, attempt);
        let staging = Staging::Pooled {
            prefix: SAVE_LABEL,
            slot,
        };
        let swapped = self
            .inner
            .api
            .swap(&name, json, &request_token, read, staging)
            .await;
        match swapped {
            Ok(Swap::Won(version)) => Ok(Some(version)),
            Ok(Swap::Lost { .. } | Swap::Gone { .. }) => {
                self.inner.cache.invalidate(id);
                Ok(None)
            }
            Err(error) => {
                self.inner.cache.invalidate(id);
                Err(error)
            }
        }
    }

    /// Settles a save's intent left in token `id`'s secret (one under way
    /// in another instance, or stopped half-way): commits its index entry
    /// (unless another token holds its user name), then writes the secret
    /// to match, so that the next writer merges onto a settled token.
    pub(super) async fn settle(&self, id: &str, attempt: u32) -> Result<(), StoreError> {
        self.inner.cache.invalidate(id);
        let name = self.inner.layout.token(id);
        let (json, version) = match self.inner.api.get(&name).await? {
            Fetched::Value {
                string: Some(json),
                version_id: Some(version),
            } => (json, version),
            _ => return Ok(()),
        };
        let Some(TokenRecord {
            token,
            intent: Some(intent),
        }) = TokenRecord::decode_live(id, &json)?
        else {
            return Ok(());
        };
        let settled = match self.inner.index.ensure(Entry::of(id, &intent)).await {
            Ok(()) => intent,
            Err(UpdateError::UserTaken(_)) => token,
            Err(UpdateError::Store(error)) => return Err(error),
        };
        self.swap_token(id, &encode_token(&settled)?, &version, attempt)
            .await?;
        Ok(())
    }

    /// Caches what a save stored, and which id its user name now has.
    fn remember(&self, decision: &Decision, version: Option<String>) {
        let inner = &self.inner;
        let Decision {
            target,
            id,
            updated,
            ..
        } = decision;
        inner.cache.put(id, updated.clone(), version);
        if let Some(user) = target.as_ref().and_then(|t| t.token.user_name.as_deref())
            && updated.user_name.as_deref() != Some(user)
        {
            inner.users.forget(user);
        }
        if let Some(user) = updated.user_name.as_deref().filter(|u| !u.is_empty()) {
            inner.users.put(user, id);
        }
    }

    /// Puts `entry` in the index for a save of `token` that stores
    /// `updated`, checked against a fresh read where the cached index seems
    /// to have it already (see [`Index::ensure`]): for a new token and for
    /// a save's intent, this write is the commit point. `Ok(false)` when
    /// another token holds the user name and the save should decide again.
    async fn index_entry(
        &self,
        entry: Entry,
        token: &OAuthToken,
        updated: &OAuthToken,
    ) -> Result<bool, StoreError> {
        match self.inner.index.ensure(entry).await {
            Ok(()) => Ok(true),
            Err(UpdateError::Store(error)) => Err(error),
            Err(UpdateError::UserTaken(holder)) => {
                self.user_taken(holder, token, updated).await?;
                Ok(false)
            }
        }
    }

    /// What a save of `token` (storing `updated`) does when the index gives
    /// its user name to `holder`: `Ok(())` to decide again, or the refusal.
    async fn user_taken(
        &self,
        holder: String,
        token: &OAuthToken,
        updated: &OAuthToken,
    ) -> Result<(), StoreError> {
        let index = &self.inner.index;
        // A holder with no secret is a reservation: a first save under way,
        // or one that stopped half-way (or a delete that failed after its
        // secret went). It holds no token: take its entry out and decide
        // again. A save under way finds its entry gone when it indexes what
        // it created, and backs off; one that got in first is put back.
        if self.fetch(&holder).await?.is_none() {
            index.remove(std::slice::from_ref(&holder)).await?;
            self.inner.cache.invalidate(&holder);
            if let Some(created) = self.fetch(&holder).await? {
                match index.ensure(Entry::of(&holder, &created.token)).await {
                    Ok(()) | Err(UpdateError::UserTaken(_)) => {}
                    Err(UpdateError::Store(error)) => return Err(error),
                }
            }
            return Ok(());
        }
        // An explicit id may not take another token's user name.
        if token.id.is_some() {
            check_unique_user(updated, Some(&holder))?;
        }
        // Else this instance's index was stale (a refusal is only decided on
        // a fresh read of the user's leaf, which is now cached): the next
        // attempt finds the holder.
        Ok(())
    }

    /// Writes a secret that is scheduled for deletion: restores it (recovery
    /// window), or waits out an immediate delete still in flight and creates it.
    pub(super) async fn restore_and_put(&self, name: &str, json: &str) -> Result<bool, StoreError> {
        let api = &self.inner.api;
        for attempt in 0..20u32 {
            if api.restore(name).await? {
                let request_token = uuid::Uuid::new_v4().to_string();
                if let Put::Yes(_) = api.put(name, json, &request_token, None).await? {
                    return Ok(true);
                }
            }
            let request_token = uuid::Uuid::new_v4().to_string();
            match api.create(name, json, &request_token).await? {
                Created::Yes(_) => return Ok(true),
                Created::Exists => return Ok(false),
                Created::Deleted => {
                    let wait = 50 * u64::from(attempt + 1);
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
            }
        }
        Err(StoreError::Conflict {
            operation: format!("re-creating {name} while its deletion is in flight"),
            attempts: 20,
        })
    }
}
