//! `save_token`: one attempt at deciding and writing a token, and the
//! writes it is made of.

use super::api::{Created, Put};
use super::index::{Entry, UpdateError};
use super::{Resolved, SecretsManagerStore};
use crate::error::StoreError;
use crate::store::{LookupKey, check_unique_user, prepare_save};
use crate::token::{OAuthToken, encode_token};

/// What one save attempt decided to store.
struct Decision {
    /// The stored token it updates; `None` for a new token.
    target: Option<OAuthToken>,
    /// The id it is stored under.
    id: String,
    /// What will be stored.
    updated: OAuthToken,
    /// `updated`, encoded.
    json: String,
}

impl SecretsManagerStore {
    /// One attempt at a save: `Ok(None)` when a concurrent writer changed what
    /// it decided on and it should be tried again.
    pub(super) async fn try_save(
        &self,
        token: &OAuthToken,
        takeover: &mut Option<String>,
    ) -> Result<Option<OAuthToken>, StoreError> {
        let decision = self.decide(token, takeover).await?;
        let done = if decision.target.as_ref() == Some(&decision.updated) {
            self.confirms_unchanged(&decision.id, &decision.updated)
                .await?
        } else {
            // Index first: it reserves a new user name before anything is written.
            self.index_keys(&decision, token).await? && self.write_token(&decision, token).await?
        };
        if !done {
            *takeover = None;
            return Ok(None);
        }
        self.remember(&decision);
        Ok(Some(decision.updated))
    }

    /// Which stored token `token` updates, if any, and what the save stores.
    async fn decide(
        &self,
        token: &OAuthToken,
        takeover: &mut Option<String>,
    ) -> Result<Decision, StoreError> {
        let mut derived = None;
        let target = match (&token.id, takeover.as_ref()) {
            (Some(id), _) => self.get(id).await?.map(|c| c.token.clone()),
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
                        Resolved::Found(stored) => Some(*stored),
                        Resolved::Reserved(id) => {
                            *takeover = Some(id);
                            None
                        }
                        Resolved::Missing { free_user_id } => {
                            // A new token: under its user's derived id
                            // when no secret has it, so that a cold
                            // lookup by user name finds it in one call.
                            derived = free_user_id;
                            None
                        }
                    }
                }
            },
        };
        let mut request = token.clone();
        if request.id.is_none() {
            request.id = takeover.clone().or(derived);
        }
        let (id, updated) = prepare_save(&request, target.as_ref())?;
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
    /// another instance has since changed or deleted. `Ok(false)`: decide again.
    async fn confirms_unchanged(&self, id: &str, updated: &OAuthToken) -> Result<bool, StoreError> {
        let same = self.fetch(id).await?.is_some_and(|s| &s == updated);
        if !same {
            self.inner.cache.invalidate(id);
        }
        Ok(same)
    }

    /// Indexes the save's lookup keys when they are new or changed.
    /// `Ok(false)` when another token holds the user name: decide again.
    async fn index_keys(
        &self,
        decision: &Decision,
        token: &OAuthToken,
    ) -> Result<bool, StoreError> {
        let Decision {
            target,
            id,
            updated,
            ..
        } = decision;
        let entry = Entry::of(id, updated);
        match target {
            // A new secret: the entry must really be in the index, whatever
            // the cached index says (another instance may have removed it).
            None => self.index_entry(entry, true, token, updated).await,
            Some(t) if Entry::of(id, t).same_keys(&entry) => Ok(true),
            Some(_) => self.index_entry(entry, false, token, updated).await,
        }
    }

    /// Writes the token's secret: a new version of an existing one, or a
    /// new secret. `Ok(false)` when what is there is not what the save
    /// decided on (someone else created it first, or deleted it and the
    /// user name went to another token): decide again.
    async fn write_token(
        &self,
        decision: &Decision,
        token: &OAuthToken,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let Decision {
            target,
            id,
            updated,
            json,
        } = decision;
        let name = inner.layout.token(id);
        let written = if target.is_some() {
            let request_token = uuid::Uuid::new_v4().to_string();
            match inner.api.put(&name, json, &request_token, None).await? {
                Put::Yes(_) => true,
                // Deleted meanwhile, by another instance, which removed its
                // index entry too (this instance's cache did not know):
                // index it again, then create it anew.
                gone @ (Put::Absent | Put::Deleted) => {
                    inner.cache.invalidate(id);
                    let entry = Entry::of(id, updated);
                    if !self.index_entry(entry, true, token, updated).await? {
                        return Ok(false);
                    }
                    match gone {
                        Put::Deleted => self.restore_and_put(&name, json).await?,
                        _ => self.create(&name, json).await?,
                    }
                }
            }
        } else {
            self.create(&name, json).await?
        };
        if !written {
            inner.cache.invalidate(id);
        }
        Ok(written)
    }

    /// Caches what a save stored, and which id its user name now has.
    fn remember(&self, decision: &Decision) {
        let inner = &self.inner;
        let Decision {
            target,
            id,
            updated,
            ..
        } = decision;
        inner.cache.put(id, updated.clone());
        if let Some(user) = target.as_ref().and_then(|t| t.user_name.as_deref())
            && updated.user_name.as_deref() != Some(user)
        {
            inner.users.forget(user);
        }
        if let Some(user) = updated.user_name.as_deref().filter(|u| !u.is_empty()) {
            inner.users.put(user, id);
        }
    }

    /// Puts `entry` in the index (`verify`: see [`Index::ensure`]) for a
    /// save of `token` that stores `updated`. `Ok(false)` when another token
    /// holds the user name and the save should decide again.
    async fn index_entry(
        &self,
        entry: Entry,
        verify: bool,
        token: &OAuthToken,
        updated: &OAuthToken,
    ) -> Result<bool, StoreError> {
        let index = &self.inner.index;
        let result = if verify {
            index.ensure(entry).await
        } else {
            index.upsert(entry).await
        };
        match result {
            Ok(()) => Ok(true),
            Err(UpdateError::Store(error)) => Err(error),
            Err(UpdateError::UserTaken(holder)) => {
                // An explicit id may not take another token's user name.
                if token.id.is_some() {
                    check_unique_user(updated, Some(&holder))?;
                }
                // Else this instance's index was stale: the index now names
                // the holder, and the next attempt updates it.
                Ok(false)
            }
        }
    }

    /// Creates a token secret; `Ok(false)` when one with the name exists.
    async fn create(&self, name: &str, json: &str) -> Result<bool, StoreError> {
        let request_token = uuid::Uuid::new_v4().to_string();
        match self.inner.api.create(name, json, &request_token).await? {
            Created::Yes(_) => Ok(true),
            Created::Exists => Ok(false),
            Created::Deleted => self.restore_and_put(name, json).await,
        }
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
