//! `save_tokens` in bulk: one index commit for the whole batch, so that an
//! import of thousands of tokens writes each index secret a few times, not
//! once per token (Secrets Manager keeps every version for a day and a
//! secret holds about 100).

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::StreamExt;

use super::api::Created;
use super::index::{Entry, UpdateError};
use super::layout::user_token_id;
use super::{CONCURRENCY, Resolved, SecretsManagerStore};
use crate::error::StoreError;
use crate::id::validate_id;
use crate::store::{LookupKey, TokenStore, check_user_name, prepare_save};
use crate::token::{OAuthToken, encode_token};

/// A token of the batch, decided against one fresh index read.
struct Decided {
    /// Its place in the batch.
    at: usize,
    id: String,
    /// What will be stored.
    updated: OAuthToken,
    /// What is stored now; `None` for a new token.
    target: Option<OAuthToken>,
    /// The version of `target` read, which the write replaces.
    read: Option<String>,
}

impl SecretsManagerStore {
    /// [`TokenStore::save_tokens`](crate::TokenStore::save_tokens) in bulk.
    ///
    /// Every token is checked before anything is written. Tokens are decided
    /// against one fresh index read; their index entries are committed
    /// together (new ones, and changed user names or refresh tokens); then
    /// their secrets are written, `CONCURRENCY` at a time. A token that shares
    /// an id or lookup key with an earlier one of the batch, or whose bulk
    /// step meets a concurrent writer, is saved by `save_token` afterwards,
    /// so the outcome is that of saving the tokens one after the other.
    pub(super) async fn save_many(&self, tokens: &mut [OAuthToken]) -> Result<(), StoreError> {
        for token in tokens.iter() {
            if let Some(id) = &token.id {
                validate_id(id)?;
            }
            check_user_name(token)?;
            encode_token(token)?;
        }
        // Tokens left to `save_token`, by their place in the batch.
        let (bulk, mut one_by_one) = partition(tokens);
        let decided = self.decide_all(tokens, bulk, &mut one_by_one).await?;
        let mut refused = self.index_all(&decided).await?;

        // Unchanged tokens write nothing (no version spent) once their
        // secrets confirm it: the copies compared may be cached ones.
        let unchanged: Vec<usize> = (0..decided.len())
            .filter(|n| {
                !refused.contains(n) && decided[*n].target.as_ref() == Some(&decided[*n].updated)
            })
            .collect();
        let confirmed = self.confirm_unchanged(&decided, &unchanged).await?;
        for &n in &unchanged {
            if !confirmed.contains(&decided[n].id) {
                refused.insert(n);
            }
        }
        let to_write: Vec<usize> = (0..decided.len())
            .filter(|n| !refused.contains(n) && !unchanged.contains(n))
            .collect();
        let written = self.write_all(&decided, to_write).await?;
        for (n, d) in decided.into_iter().enumerate() {
            // The version each saved token now has; `None`: not saved here.
            let version = if refused.contains(&n) {
                None
            } else if unchanged.contains(&n) {
                Some(d.read.clone())
            } else {
                written.get(&d.at).cloned()
            };
            match version {
                None => {
                    one_by_one.insert(d.at);
                }
                Some(version) => {
                    self.inner.cache.put(&d.id, d.updated.clone(), version);
                    if let Some(user) = d.updated.user_name.as_deref().filter(|u| !u.is_empty()) {
                        self.inner.users.put(user, &d.id);
                    }
                    tokens[d.at] = d.updated;
                }
            }
        }

        // In batch order, as saving them one after the other would.
        for at in one_by_one {
            self.save_token(&mut tokens[at]).await?;
        }
        Ok(())
    }

    /// Decides the tokens at `bulk` against one fresh index read; those that
    /// need the single save's takeover of a user name go to `one_by_one`.
    async fn decide_all(
        &self,
        tokens: &[OAuthToken],
        bulk: Vec<usize>,
        one_by_one: &mut BTreeSet<usize>,
    ) -> Result<Vec<Decided>, StoreError> {
        let snapshot = self.inner.index.load().await?;
        let decisions = futures::stream::iter(bulk)
            .map(|at| {
                let token = &tokens[at];
                let snapshot = &snapshot;
                async move {
                    let mut derived = None;
                    let target = match (&token.id, LookupKey::of(token)) {
                        (Some(id), _) => self.get(id).await?,
                        (None, Some(key)) => match self.resolve_in(snapshot, &key).await? {
                            Resolved::Found(stored) => Some(stored),
                            // A user name whose token is gone: the single
                            // save knows how to take it over.
                            Resolved::Reserved(_) => return Ok(Err(at)),
                            Resolved::Missing { .. } => {
                                // A new token takes its user's derived id
                                // unless the (fresh, whole) index lists it.
                                derived = token
                                    .user_name
                                    .as_deref()
                                    .filter(|u| !u.is_empty())
                                    .map(user_token_id)
                                    .filter(|id| snapshot.entry(id).is_none());
                                None
                            }
                        },
                        (None, None) => None,
                    };
                    let request = derived.map(|id| OAuthToken {
                        id: Some(id),
                        ..token.clone()
                    });
                    let (id, updated) = prepare_save(
                        request.as_ref().unwrap_or(token),
                        target.as_ref().map(|t| &t.token),
                    )?;
                    // An update that changes lookup keys, or meets another
                    // save's intent, takes the single save's steps.
                    if let Some(t) = &target
                        && (t.intent
                            || !Entry::of(&id, &t.token).same_keys(&Entry::of(&id, &updated)))
                    {
                        return Ok(Err(at));
                    }
                    Ok::<_, StoreError>(Ok(Decided {
                        at,
                        id,
                        updated,
                        read: target.as_ref().and_then(|t| t.version.clone()),
                        target: target.map(|t| t.token.clone()),
                    }))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut decided = Vec::new();
        for decision in decisions {
            match decision? {
                Ok(d) => decided.push(d),
                Err(at) => {
                    one_by_one.insert(at);
                }
            }
        }
        Ok(decided)
    }

    /// Commits the index entries of the decided tokens whose keys are new or
    /// changed, all at once; the decisions (by place in `decided`) refused
    /// because another token holds the user name.
    async fn index_all(&self, decided: &[Decided]) -> Result<HashSet<usize>, StoreError> {
        // Index first, all at once: it reserves the new user names.
        let changed: Vec<usize> = (0..decided.len())
            .filter(|&n| {
                let d = &decided[n];
                let entry = Entry::of(&d.id, &d.updated);
                d.target
                    .as_ref()
                    .is_none_or(|t| !Entry::of(&d.id, t).same_keys(&entry))
            })
            .collect();
        let entries = changed
            .iter()
            .map(|&n| Entry::of(&decided[n].id, &decided[n].updated))
            .collect();
        let outcomes = self.inner.index.ensure_all(entries).await;
        let mut refused = HashSet::new();
        for (&n, outcome) in changed.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                // Another token holds the user name: decide again, alone.
                Err(UpdateError::UserTaken(_)) => {
                    refused.insert(n);
                }
                Err(UpdateError::Store(error)) => return Err(error),
            }
        }
        Ok(refused)
    }

    /// Writes the secrets of `decided[to_write]`: the versions written, by
    /// batch place. A place missing was not what the decision assumed.
    async fn write_all(
        &self,
        decided: &[Decided],
        to_write: Vec<usize>,
    ) -> Result<HashMap<usize, Option<String>>, StoreError> {
        let writes = futures::stream::iter(to_write)
            .map(|n| async move {
                let d = &decided[n];
                Ok::<_, StoreError>((d.at, self.write_decided(d).await?))
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut written = HashMap::new();
        for write in writes {
            if let (at, Some(version)) = write? {
                written.insert(at, version);
            }
        }
        Ok(written)
    }

    /// The ids among `decided[unchanged]` whose secrets hold exactly what
    /// would be written (read 20 to a call).
    async fn confirm_unchanged(
        &self,
        decided: &[Decided],
        unchanged: &[usize],
    ) -> Result<HashSet<String>, StoreError> {
        let layout = &self.inner.layout;
        let names: Vec<String> = unchanged
            .iter()
            .map(|&n| layout.token(&decided[n].id))
            .collect();
        let batches = futures::stream::iter(names.chunks(super::BATCH).map(<[String]>::to_vec))
            .map(|batch| self.inner.api.batch_get(batch))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let wanted: std::collections::HashMap<&str, &OAuthToken> = unchanged
            .iter()
            .map(|&n| (decided[n].id.as_str(), &decided[n].updated))
            .collect();
        let mut confirmed = HashSet::new();
        for batch in batches {
            for (name, value) in batch? {
                let Some(id) = layout.id_of(&name) else {
                    continue;
                };
                let same = value
                    .and_then(|json| crate::token::decode_token(id, &json).ok())
                    .is_some_and(|stored| wanted.get(id) == Some(&&stored));
                if same {
                    confirmed.insert(id.to_owned());
                }
            }
        }
        Ok(confirmed)
    }

    /// Writes one decided token's secret: an update by compare-and-swap
    /// over the version read, or a new secret. `Ok(None)` when what is there
    /// is not what the decision assumed (left to `save_token`); else the
    /// version written.
    async fn write_decided(&self, d: &Decided) -> Result<Option<Option<String>>, StoreError> {
        let inner = &self.inner;
        let json = encode_token(&d.updated)?;
        inner.cache.invalidate(&d.id);
        if d.target.is_some() {
            let Some(read) = &d.read else {
                return Ok(None);
            };
            return Ok(self.swap_token(&d.id, &json, read, 0).await?.map(Some));
        }
        let name = inner.layout.token(&d.id);
        let request_token = uuid::Uuid::new_v4().to_string();
        Ok(
            match inner.api.create(&name, &json, &request_token).await? {
                Created::Yes(version) => Some(Some(version)),
                // Taken, or a deleted secret's name still held: `save_token`
                // decides again (and takes another id for a held one).
                Created::Exists | Created::Deleted => None,
            },
        )
    }
}

/// Splits a batch: the places of tokens saved in bulk, and of those left to
/// `save_token` (access-token lookups, which scan, and tokens that share an
/// id or lookup key with an earlier one of the batch).
fn partition(tokens: &[OAuthToken]) -> (Vec<usize>, BTreeSet<usize>) {
    let mut one_by_one: BTreeSet<usize> = BTreeSet::new();
    let mut bulk: Vec<usize> = Vec::new();
    let mut claimed: HashSet<String> = HashSet::new();
    for (at, token) in tokens.iter().enumerate() {
        let mut names = Vec::new();
        if let Some(id) = &token.id {
            names.push(format!("i:{id}"));
        }
        match LookupKey::of(token) {
            // Access tokens are not indexed: such saves scan, one by one.
            Some(LookupKey::AccessToken(_)) => {
                one_by_one.insert(at);
                continue;
            }
            Some(key) => names.push(format!("{}:{}", key.field_name(), key_value(&key))),
            None => {}
        }
        if names.iter().any(|n| claimed.contains(n)) {
            one_by_one.insert(at);
        } else {
            claimed.extend(names);
            bulk.push(at);
        }
    }
    (bulk, one_by_one)
}

/// The value a lookup key matches on (to spot two tokens of one batch that
/// match each other).
fn key_value<'a>(key: &LookupKey<'a>) -> &'a str {
    match *key {
        LookupKey::UserName(v)
        | LookupKey::AccessToken(v)
        | LookupKey::GrantToken(v)
        | LookupKey::RefreshToken(v) => v,
    }
}
