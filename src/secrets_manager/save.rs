//! `save_token`: one attempt at deciding and writing a token, and the
//! writes it is made of.

use super::api::{Created, Put};
use super::index::{Entry, UpdateError};
use super::{Resolved, SecretsManagerStore};
use crate::error::StoreError;
use crate::store::{LookupKey, check_unique_user, prepare_save};
use crate::token::{OAuthToken, encode_token};

impl SecretsManagerStore {
    /// One attempt at a save: `Ok(None)` when a concurrent writer changed what
    /// it decided on and it should be tried again.
    pub(super) async fn try_save(
        &self,
        token: &OAuthToken,
        takeover: &mut Option<String>,
    ) -> Result<Option<OAuthToken>, StoreError> {
        let inner = &self.inner;
        let mut derived = None;
        // The stored token this save updates, if any.
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
                    match Box::pin(self.resolve(&key, !matches!(key, LookupKey::UserName(_))))
                        .await?
                    {
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
        if target.as_ref() == Some(&updated) {
            // Nothing would change: write nothing (a version saved is a
            // version of the secret's daily quota kept), once the secret
            // itself confirms it, since the copy compared may be a cached
            // one that another instance has since changed or deleted.
            return match self.fetch(&id).await? {
                Some(stored) if stored == updated => {
                    inner.cache.put(&id, updated.clone());
                    Ok(Some(updated))
                }
                _ => {
                    inner.cache.invalidate(&id);
                    *takeover = None;
                    Ok(None)
                }
            };
        }

        // Index first: it reserves a new user name before anything is written.
        let entry = Entry::of(&id, &updated);
        let keys_unchanged = target
            .as_ref()
            .is_some_and(|t| Entry::of(&id, t).same_keys(&entry));
        if target.is_none() {
            // A new secret: the entry must really be in the index, whatever
            // the cached index says (another instance may have removed it).
            if !self
                .index_entry(entry.clone(), true, token, &updated)
                .await?
            {
                *takeover = None;
                return Ok(None);
            }
        } else if !keys_unchanged
            && !self
                .index_entry(entry.clone(), false, token, &updated)
                .await?
        {
            *takeover = None;
            return Ok(None);
        }

        let name = inner.layout.token(&id);
        let request_token = uuid::Uuid::new_v4().to_string();
        let written = if target.is_some() {
            match inner.api.put(&name, &json, &request_token, None).await? {
                Put::Yes(_) => true,
                // Deleted meanwhile, by another instance, which removed its
                // index entry too (this instance's cache did not know):
                // index it again, then create it anew.
                gone @ (Put::Absent | Put::Deleted) => {
                    inner.cache.invalidate(&id);
                    if !self.index_entry(entry, true, token, &updated).await? {
                        *takeover = None;
                        return Ok(None);
                    }
                    match gone {
                        Put::Deleted => self.restore_and_put(&name, &json).await?,
                        _ => self.create(&name, &json).await?,
                    }
                }
            }
        } else {
            self.create(&name, &json).await?
        };
        if !written {
            // Someone else created it first: decide again with what is there.
            inner.cache.invalidate(&id);
            *takeover = None;
            return Ok(None);
        }
        inner.cache.put(&id, updated.clone());
        if let Some(user) = target.as_ref().and_then(|t| t.user_name.as_deref())
            && updated.user_name.as_deref() != Some(user)
        {
            inner.users.forget(user);
        }
        if let Some(user) = updated.user_name.as_deref().filter(|u| !u.is_empty()) {
            inner.users.put(user, &id);
        }
        Ok(Some(updated))
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
