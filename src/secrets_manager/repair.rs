//! `repair`: reconciles the index with the token secrets that really exist.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, TryStreamExt};

use super::index::{Entry, Snapshot, UpdateError};
use super::record::TokenRecord;
use super::{BATCH, CONCURRENCY, SecretsManagerStore};
use crate::error::StoreError;

/// What [`SecretsManagerStore::repair`] found and changed (or, from
/// [`SecretsManagerStore::repair_dry_run`], what it would change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Token ids whose secret existed without an index entry, now indexed.
    pub indexed: Vec<String>,
    /// Token ids whose index entry had no secret, now dropped.
    pub dropped: Vec<String>,
    /// Token ids whose secret cannot be decoded. They stay indexed (so that
    /// `get_tokens` keeps reporting them) until fixed or deleted.
    pub corrupt: Vec<String>,
    /// Token ids left out of the index because another token holds their
    /// user name: delete one of the two.
    pub duplicate_users: Vec<String>,
    /// Whether the index itself could not be read and was rebuilt.
    pub index_rebuilt: bool,
    /// How many tokens the index lists now.
    pub tokens: usize,
}

/// Reconciles the index with the token secrets; with `apply` false, only
/// reports what it would change and writes nothing.
pub(super) async fn repair(
    store: &SecretsManagerStore,
    apply: bool,
) -> Result<RepairReport, StoreError> {
    let inner = &store.inner;
    let mut report = RepairReport::default();
    let listed = inner
        .api
        .list_names(&format!("{}/", inner.layout.prefix()))
        .await?;
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .filter_map(|name| inner.layout.id_of(name))
        .map(str::to_owned)
        .collect();
    let snapshot = match inner.index.load().await {
        Ok(snapshot) => Some(snapshot),
        Err(StoreError::Corrupt { .. }) => None,
        Err(other) => return Err(other),
    };
    let indexed: BTreeSet<String> = snapshot
        .as_ref()
        .map(|s| s.ids().into_iter().collect())
        .unwrap_or_default();

    let entries = read_entries(store, listed_ids.union(&indexed), &mut report).await?;
    report.dropped = indexed
        .iter()
        .filter(|id| !entries.contains_key(*id))
        .cloned()
        .collect();
    report.indexed = entries
        .keys()
        .filter(|id| !indexed.contains(*id))
        .cloned()
        .collect();
    report.indexed.sort();
    report.corrupt.sort();

    match &snapshot {
        None => rebuild(store, entries, &mut report, apply).await?,
        Some(snapshot) if !apply => refused_upserts(snapshot, &entries, &mut report),
        Some(_) => upsert_and_drop(store, &entries, &mut report).await?,
    }
    report
        .indexed
        .retain(|id| !report.duplicate_users.contains(id));
    if apply {
        inner.cache.invalidate_all();
        report.tokens = inner.index.load().await?.len();
    } else if snapshot.is_some() {
        report.tokens = indexed.len() - report.dropped.len() + report.indexed.len();
    }
    Ok(report)
}

/// The index entry of every token secret among `ids` that exists (read,
/// since the listing lags: existence is what `BatchGetSecretValue`
/// returns, not what `ListSecrets` said). Corrupt ones are reported, and
/// get an entry with no keys.
async fn read_entries(
    store: &SecretsManagerStore,
    ids: impl Iterator<Item = &String>,
    report: &mut RepairReport,
) -> Result<HashMap<String, Entry>, StoreError> {
    let inner = &store.inner;
    let names: Vec<String> = ids.map(|id| inner.layout.token(id)).collect();
    let found = futures::stream::iter(names.chunks(BATCH).map(<[String]>::to_vec))
        .map(|batch| inner.api.batch_get(batch))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let mut entries: HashMap<String, Entry> = HashMap::new();
    for (name, value) in found.into_iter().flatten() {
        let Some(id) = inner.layout.id_of(&name) else {
            continue;
        };
        let decoded = value
            .ok_or(())
            .and_then(|json| TokenRecord::decode_live(id, &json).map_err(|_| ()));
        let entry = match decoded {
            // A tombstone: a deleted token whose re-save stopped half-way.
            Ok(None) => continue,
            Ok(Some(TokenRecord {
                token,
                intent: None,
            })) => Entry::of(id, &token),
            // A save's intent: what the index says it is.
            Ok(Some(TokenRecord {
                token,
                intent: Some(_),
            })) => match store.fetch(id).await {
                Ok(Some(loaded)) => Entry::of(id, &loaded.token),
                _ => Entry::of(id, &token),
            },
            Err(()) => {
                report.corrupt.push(id.to_owned());
                Entry::of(id, &crate::token::OAuthToken::default())
            }
        };
        entries.insert(id.to_owned(), entry);
    }
    Ok(entries)
}

/// The index is unreadable: rebuilds it whole from `entries` (with
/// `apply`), keeping one token per user name (the first by id).
async fn rebuild(
    store: &SecretsManagerStore,
    entries: HashMap<String, Entry>,
    report: &mut RepairReport,
    apply: bool,
) -> Result<(), StoreError> {
    report.index_rebuilt = true;
    let mut users = HashMap::new();
    let mut kept = Vec::new();
    let mut sorted: Vec<Entry> = entries.into_values().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for entry in sorted {
        if let Some(user) = &entry.user
            && users.insert(user.clone(), entry.id.clone()).is_some()
        {
            report.duplicate_users.push(entry.id.clone());
            continue;
        }
        kept.push(entry);
    }
    report.tokens = kept.len();
    if apply {
        store.inner.index.rewrite(kept).await?;
    }
    Ok(())
}

/// For a dry run: the orphans whose upsert would be refused, because the
/// index gives their user name to another id (or to an earlier orphan of
/// this repair), go to `duplicate_users`.
fn refused_upserts(
    snapshot: &Snapshot,
    entries: &HashMap<String, Entry>,
    report: &mut RepairReport,
) {
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    for id in &report.indexed {
        let Some(user) = entries[id].user.as_deref() else {
            continue;
        };
        let holder = snapshot
            .user_holder(user)
            .filter(|holder| !report.dropped.iter().any(|d| d == holder))
            .or_else(|| claimed.get(user).copied());
        match holder {
            Some(holder) if holder != id => report.duplicate_users.push(id.clone()),
            _ => {
                claimed.insert(user, id);
            }
        }
    }
}

/// Drops the entries without a secret, then indexes the orphans (those
/// whose user name another token holds go to `duplicate_users`).
async fn upsert_and_drop(
    store: &SecretsManagerStore,
    entries: &HashMap<String, Entry>,
    report: &mut RepairReport,
) -> Result<(), StoreError> {
    let index = &store.inner.index;
    if !report.dropped.is_empty() {
        index.remove(&report.dropped).await?;
    }
    for id in report.indexed.clone() {
        match index.upsert(entries[&id].clone()).await {
            Ok(()) => {}
            Err(UpdateError::UserTaken(_)) => report.duplicate_users.push(id),
            Err(UpdateError::Store(error)) => return Err(error),
        }
    }
    Ok(())
}
