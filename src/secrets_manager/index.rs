//! The index secrets: which token ids exist and their lookup keys, sharded
//! under the 64 KiB value limit and updated by compare-and-swap.
//!
//! Shards are `{prefix}/index/0`, `/1`, …; shard 0 also records how many
//! shards there are. New entries (and entries whose user name changes) go to
//! the last shard only, so every writer that introduces a user name meets
//! every other one at that shard's compare-and-swap: this is what keeps user
//! names unique across processes. A full last shard is sealed and a new one
//! started; sealed shards still take updates and removals in place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::api::{Api, Created, Fetched, Put};
use super::layout::Layout;
use crate::error::StoreError;
use crate::store::LookupKey;
use crate::token::{MAX_TOKEN_BYTES, OAuthToken, is_set};

/// A shard stops taking new entries past this size, leaving room for in-place updates.
const SEAL_BYTES: usize = 48 * 1024;
/// Compare-and-swap attempts before giving up with [`StoreError::Conflict`].
const MAX_ATTEMPTS: u32 = 40;
/// Index format version written into every shard.
const FORMAT: u32 = 1;

/// One token's index entry: its id and lookup keys. Token values appear only
/// as truncated SHA-256 hashes, never in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    #[serde(rename = "i")]
    pub(crate) id: String,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh: Option<String>,
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub(crate) grant: Option<String>,
}

impl Entry {
    /// The entry for a stored token (whose id is `id`).
    pub(crate) fn of(id: &str, token: &OAuthToken) -> Self {
        let hashed = |field: &Option<String>| {
            is_set(field).then(|| hash(field.as_deref().unwrap_or_default()))
        };
        Self {
            id: id.to_owned(),
            user: token.user_name.clone().filter(|u| !u.is_empty()),
            refresh: hashed(&token.refresh_token),
            grant: hashed(&token.grant_token),
        }
    }
}

/// The index's hash of a token value: 96 bits of SHA-256, hex. Enough to pick
/// candidates; a candidate is always checked against the token itself.
pub(crate) fn hash(value: &str) -> String {
    Sha256::digest(value.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The JSON value of one shard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ShardBody {
    #[serde(rename = "v", default)]
    format: u32,
    /// Shard 0 only: how many shards there are.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    shard_count: Option<u32>,
    /// Takes no new entries.
    #[serde(rename = "s", default, skip_serializing_if = "std::ops::Not::not")]
    sealed: bool,
    #[serde(rename = "e", default)]
    entries: Vec<Entry>,
}

impl ShardBody {
    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A shard as read: its number, the version holding `AWSCURRENT` (`None` when
/// the secret does not exist yet) and its value.
#[derive(Debug, Clone)]
pub(crate) struct Shard {
    number: u32,
    version_id: Option<String>,
    body: ShardBody,
}

/// The whole index as read at one time, with lookup maps.
#[derive(Debug)]
pub(crate) struct Snapshot {
    shards: Vec<Shard>,
    by_id: HashMap<String, Entry>,
    by_user: HashMap<String, String>,
    loaded_at: Instant,
}

impl Snapshot {
    fn new(shards: Vec<Shard>) -> Self {
        let mut by_id = HashMap::new();
        let mut by_user = HashMap::new();
        // A later shard wins: an entry being moved to the last shard is
        // briefly in two.
        for entry in shards.iter().flat_map(|s| &s.body.entries) {
            if let Some(previous) = by_id.insert(entry.id.clone(), entry.clone())
                && let Some(user) = previous.user
                && by_user.get(&user) == Some(&entry.id)
            {
                by_user.remove(&user);
            }
            if let Some(user) = &entry.user {
                by_user.insert(user.clone(), entry.id.clone());
            }
        }
        Self {
            shards,
            by_id,
            by_user,
            loaded_at: Instant::now(),
        }
    }

    /// Every indexed token id.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.by_id.keys().cloned().collect()
    }

    /// How many tokens are indexed.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// How many shards the index has.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The entry of token `id`.
    pub(crate) fn entry(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id)
    }

    /// The token ids whose entries match `key` (access tokens are not indexed).
    pub(crate) fn candidates(&self, key: &LookupKey<'_>) -> Vec<String> {
        match *key {
            LookupKey::UserName(user) => self.by_user.get(user).cloned().into_iter().collect(),
            LookupKey::AccessToken(_) => Vec::new(),
            LookupKey::RefreshToken(value) | LookupKey::GrantToken(value) => {
                let wanted = Some(hash(value));
                let grant = matches!(key, LookupKey::GrantToken(_));
                self.by_id
                    .values()
                    .filter(|e| {
                        if grant {
                            e.grant == wanted
                        } else {
                            e.refresh == wanted
                        }
                    })
                    .map(|e| e.id.clone())
                    .collect()
            }
        }
    }

    fn last(&self) -> &Shard {
        self.shards.last().expect("a snapshot has at least shard 0")
    }

    fn locations(&self, id: &str) -> Vec<usize> {
        (0..self.shards.len())
            .filter(|&s| self.shards[s].body.entries.iter().any(|e| e.id == id))
            .collect()
    }
}

/// Why an index update did not happen.
#[derive(Debug)]
pub(crate) enum UpdateError {
    /// The user name belongs to another token id.
    UserTaken(String),
    /// The index could not be read or written.
    Store(StoreError),
}

impl From<StoreError> for UpdateError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// The index of one store instance: a cached snapshot and the
/// compare-and-swap protocol that changes it.
#[derive(Debug)]
pub(crate) struct Index {
    api: Api,
    layout: Layout,
    /// This instance's staging label for versions not yet made current.
    label: String,
    ttl: Duration,
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// Coalesces concurrent loads.
    load_lock: tokio::sync::Mutex<()>,
    /// One index write at a time from this instance: they would only collide.
    write_lock: tokio::sync::Mutex<()>,
}

impl Index {
    pub(crate) fn new(api: Api, layout: Layout, ttl: Duration) -> Self {
        Self {
            api,
            layout,
            label: format!("zts-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            ttl,
            snapshot: Mutex::new(None),
            load_lock: tokio::sync::Mutex::new(()),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_cached(&self, snapshot: Arc<Snapshot>) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
    }

    /// The cached snapshot while it is younger than the TTL, else a fresh one.
    /// The flag says whether it came from the cache.
    pub(crate) async fn current(&self) -> Result<(Arc<Snapshot>, bool), StoreError> {
        if let Some(snapshot) = self.cached().filter(|s| s.loaded_at.elapsed() < self.ttl) {
            return Ok((snapshot, true));
        }
        let _loading = self.load_lock.lock().await;
        // Another task may have loaded it while this one waited.
        if let Some(snapshot) = self.cached().filter(|s| s.loaded_at.elapsed() < self.ttl) {
            return Ok((snapshot, true));
        }
        Ok((self.load().await?, false))
    }

    /// Reads every shard now and caches the result.
    pub(crate) async fn load(&self) -> Result<Arc<Snapshot>, StoreError> {
        let first = self.read_shard(0).await?;
        let count = first.body.shard_count.unwrap_or(1).max(1);
        let rest = futures::future::try_join_all((1..count).map(|n| self.read_shard(n))).await?;
        let snapshot = Arc::new(Snapshot::new(std::iter::once(first).chain(rest).collect()));
        self.set_cached(Arc::clone(&snapshot));
        Ok(snapshot)
    }

    async fn read_shard(&self, number: u32) -> Result<Shard, StoreError> {
        let name = self.layout.shard(number);
        let corrupt = |reason: &str| StoreError::Corrupt {
            id: name.clone(),
            reason: format!("index shard {reason}; run repair() to rebuild the index"),
        };
        match self.api.get(&name).await? {
            Fetched::Value { string: None, .. } => Err(corrupt("is a binary secret")),
            Fetched::Value {
                string: Some(json),
                version_id,
            } => {
                let body: ShardBody =
                    serde_json::from_str(&json).map_err(|_| corrupt("is not valid index JSON"))?;
                if body.format != FORMAT {
                    return Err(corrupt("has an unknown format version"));
                }
                Ok(Shard {
                    number,
                    version_id,
                    body,
                })
            }
            // Not created yet (or a writer died before creating it): empty.
            Fetched::Absent | Fetched::Deleted => Ok(Shard {
                number,
                version_id: None,
                body: ShardBody {
                    format: FORMAT,
                    ..ShardBody::default()
                },
            }),
        }
    }

    /// Adds or replaces the entry of `entry.id`. Fails with
    /// [`UpdateError::UserTaken`] when another id holds the entry's user name.
    pub(crate) async fn upsert(&self, entry: Entry) -> Result<(), UpdateError> {
        let _writing = self.write_lock.lock().await;
        let mut snapshot = self.current().await?.0;
        let mut failures = 0;
        loop {
            if let Some(user) = &entry.user
                && let Some(holder) = snapshot.by_user.get(user)
                && *holder != entry.id
            {
                return Err(UpdateError::UserTaken(holder.clone()));
            }
            let step = self.upsert_step(&snapshot, &entry);
            let Some((number, body)) = step else {
                return Ok(());
            };
            match self.write_shard(&snapshot, number, body).await? {
                Some(next) => snapshot = next,
                None => {
                    failures += 1;
                    if failures >= MAX_ATTEMPTS {
                        return Err(UpdateError::Store(StoreError::Conflict {
                            operation: format!("index update for token {}", entry.id),
                            attempts: failures,
                        }));
                    }
                    backoff(failures).await;
                    snapshot = self.load().await?;
                }
            }
        }
    }

    /// The next shard write towards having `entry` indexed, or `None` when it is.
    fn upsert_step(&self, snapshot: &Snapshot, entry: &Entry) -> Option<(usize, ShardBody)> {
        let locations = snapshot.locations(&entry.id);
        let last = snapshot.shards.len() - 1;
        let current = snapshot.entry(&entry.id);
        if current == Some(entry) && locations.len() == 1 {
            return None;
        }
        // In place, unless the user name changes (a new user name must meet
        // other writers at the last shard) or the shard would overflow.
        if let (Some(current), [at]) = (current, locations.as_slice()) {
            let shard = &snapshot.shards[*at];
            let mut body = shard.body.clone();
            for e in body.entries.iter_mut().filter(|e| e.id == entry.id) {
                *e = entry.clone();
            }
            let fits = body.encode().len() <= MAX_TOKEN_BYTES;
            if fits && (current.user == entry.user || *at == last) {
                return Some((*at, body));
            }
        }
        // Moved already: drop the copies outside the last shard.
        if snapshot.shards[last].body.entries.contains(entry) {
            let at = *locations.iter().find(|&&s| s != last)?;
            let mut body = snapshot.shards[at].body.clone();
            body.entries.retain(|e| e.id != entry.id);
            return Some((at, body));
        }
        let shard = snapshot.last();
        if shard.body.sealed {
            // Start the next shard: record it in shard 0 first.
            let mut head = snapshot.shards[0].body.clone();
            head.shard_count = Some(snapshot.shards.len() as u32 + 1);
            return Some((0, head));
        }
        let mut body = shard.body.clone();
        body.entries.retain(|e| e.id != entry.id);
        body.entries.push(entry.clone());
        if body.encode().len() > SEAL_BYTES && !shard.body.entries.is_empty() {
            let mut sealed = shard.body.clone();
            sealed.sealed = true;
            return Some((last, sealed));
        }
        Some((last, body))
    }

    /// Removes the entries of `ids`; absent ids are ignored.
    pub(crate) async fn remove(&self, ids: &[String]) -> Result<(), StoreError> {
        let _writing = self.write_lock.lock().await;
        let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut snapshot = self.current().await?.0;
        let mut failures = 0;
        loop {
            let dirty = snapshot
                .shards
                .iter()
                .position(|s| s.body.entries.iter().any(|e| ids.contains(e.id.as_str())));
            let Some(number) = dirty else {
                return Ok(());
            };
            let mut body = snapshot.shards[number].body.clone();
            body.entries.retain(|e| !ids.contains(e.id.as_str()));
            match self.write_shard(&snapshot, number, body).await? {
                Some(next) => snapshot = next,
                None => {
                    failures += 1;
                    if failures >= MAX_ATTEMPTS {
                        return Err(StoreError::Conflict {
                            operation: "index removal".into(),
                            attempts: failures,
                        });
                    }
                    backoff(failures).await;
                    snapshot = self.load().await?;
                }
            }
        }
    }

    /// Replaces the whole index with `entries` (used by `repair`).
    /// `existing_shards` is how many shard secrets exist now: those past the
    /// new count are emptied so that a later growth cannot revive their entries.
    pub(crate) async fn rewrite(
        &self,
        entries: Vec<Entry>,
        existing_shards: u32,
    ) -> Result<usize, StoreError> {
        let _writing = self.write_lock.lock().await;
        let empty = || ShardBody {
            format: FORMAT,
            ..ShardBody::default()
        };
        // Pack entries into shards below the seal size.
        let mut bodies = vec![empty()];
        for entry in entries {
            let last = bodies.last_mut().expect("at least one shard");
            last.entries.push(entry);
            if last.encode().len() > SEAL_BYTES && last.entries.len() > 1 {
                let moved = last.entries.pop().expect("just pushed");
                last.sealed = true;
                bodies.push(ShardBody {
                    entries: vec![moved],
                    ..empty()
                });
            }
        }
        let count = bodies.len();
        bodies[0].shard_count = Some(count as u32);
        while bodies.len() < existing_shards as usize {
            bodies.push(empty());
        }
        // Last to first: shard 0, written last, makes the new shards visible.
        for (number, body) in bodies.into_iter().enumerate().rev() {
            let name = self.layout.shard(number as u32);
            let mut failures = 0;
            loop {
                // Overwrite whatever is there, even a corrupt value.
                let version_id = match self.api.get(&name).await? {
                    Fetched::Value { version_id, .. } => version_id,
                    Fetched::Absent | Fetched::Deleted => None,
                };
                let written = self
                    .cas_shard(number as u32, version_id.as_deref(), &body)
                    .await?;
                if written.is_some() {
                    break;
                }
                failures += 1;
                if failures >= MAX_ATTEMPTS {
                    return Err(StoreError::Conflict {
                        operation: format!("index rewrite of {name}"),
                        attempts: failures,
                    });
                }
                backoff(failures).await;
            }
        }
        self.load().await?;
        Ok(count)
    }

    /// Compare-and-swap of shard `at` of `snapshot` to `body`: the new snapshot
    /// on success, `None` when another writer changed the shard first.
    async fn write_shard(
        &self,
        snapshot: &Snapshot,
        at: usize,
        body: ShardBody,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let shard = &snapshot.shards[at];
        let written = self
            .cas_shard(shard.number, shard.version_id.as_deref(), &body)
            .await?;
        let Some(version) = written else {
            return Ok(None);
        };
        let mut shards = snapshot.shards.clone();
        shards[at] = Shard {
            number: shard.number,
            version_id: Some(version),
            body,
        };
        // Shard 0 may have announced a new shard: add it, empty, to the view.
        let count = shards[0].body.shard_count.unwrap_or(1).max(1) as usize;
        while shards.len() < count {
            shards.push(Shard {
                number: shards.len() as u32,
                version_id: None,
                body: ShardBody {
                    format: FORMAT,
                    ..ShardBody::default()
                },
            });
        }
        let next = Arc::new(Snapshot::new(shards));
        self.set_cached(Arc::clone(&next));
        Ok(Some(next))
    }

    /// Replaces shard `number` by `body` if its `AWSCURRENT` version is still
    /// `previous` (`None`: the shard secret does not exist yet). The new
    /// version id, or `None` when another writer got there first.
    ///
    /// The new version is staged under this instance's own label, then
    /// `AWSCURRENT` is moved to it from `previous`, which Secrets Manager
    /// refuses if `AWSCURRENT` has moved since: that is the compare-and-swap.
    async fn cas_shard(
        &self,
        number: u32,
        previous: Option<&str>,
        body: &ShardBody,
    ) -> Result<Option<String>, StoreError> {
        let name = self.layout.shard(number);
        let json = body.encode();
        if json.len() > MAX_TOKEN_BYTES {
            return Err(StoreError::backend(
                format!("index write {name}"),
                "index shard would exceed the 64 KiB secret size limit",
            ));
        }
        // Also the idempotency token: an SDK retry of the same request is a no-op.
        let request_token = uuid::Uuid::new_v4().to_string();
        let Some(previous) = previous else {
            return match self.api.create(&name, &json, &request_token).await? {
                Created::Yes(version) => Ok(Some(version)),
                Created::Exists => Ok(None),
                Created::Deleted => {
                    self.api.restore(&name).await?;
                    Ok(None)
                }
            };
        };
        let staged = self
            .api
            .put(&name, &json, &request_token, Some(&self.label))
            .await?;
        let version = match staged {
            Put::Yes(version) => version,
            Put::Absent => return Ok(None),
            Put::Deleted => {
                self.api.restore(&name).await?;
                return Ok(None);
            }
        };
        let won = self.api.move_current(&name, &version, previous).await;
        // Drop our label either way so that labels do not pile up on the
        // secret (there is a quota on them).
        self.api.remove_stage(&name, &self.label, &version).await;
        Ok(won?.then_some(version))
    }
}

/// Jittered exponential backoff after the `failures`-th lost race.
async fn backoff(failures: u32) {
    let ceiling = 10u64 * 2u64.pow(failures.min(6));
    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=ceiling))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_short_and_stable() {
        assert_eq!(hash("abc").len(), 24);
        assert_eq!(hash("abc"), hash("abc"));
        assert_ne!(hash("abc"), hash("abd"));
    }

    #[test]
    fn entries_hold_hashes_not_values() {
        let token = OAuthToken::from_refresh_token("c", "s", "refresh-value").with_user_name("u");
        let entry = Entry::of("id1", &token);
        let json = serde_json::to_string(&entry).unwrap();
        assert!(!json.contains("refresh-value"), "{json}");
        assert_eq!(entry.refresh, Some(hash("refresh-value")));
        assert_eq!(entry.grant, None);
    }

    #[test]
    fn ten_thousand_entries_fit_in_few_shards() {
        let entry = Entry {
            id: "0123456789abcdef0123456789abcdef".into(),
            user: Some("someone.with.a.long.name@example-company.com".into()),
            refresh: Some(hash("r")),
            grant: Some(hash("g")),
        };
        let bytes = serde_json::to_string(&entry).unwrap().len() + 1;
        let shards = (10_000 * bytes).div_ceil(SEAL_BYTES);
        assert!(shards <= 40, "{bytes} bytes an entry: {shards} shards");
    }
}
