//! The index secrets: which token ids exist and their lookup keys, sharded
//! under the 64 KiB value limit and updated by compare-and-swap.
//!
//! Shards are `{prefix}/index/0`, `/1`, …; shard 0 also records how many
//! shards there are. New entries (and entries whose user name changes) go to
//! the last shard only, so every writer that introduces a user name meets
//! every other one at that shard's compare-and-swap: this is what keeps user
//! names unique across processes. A full last shard is sealed and a new one
//! started; sealed shards still take updates and removals in place.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::api::{Api, Created, Fetched, Put};
use super::layout::Layout;
use crate::error::StoreError;
use crate::store::LookupKey;
use crate::token::{MAX_TOKEN_BYTES, OAuthToken, is_set};

/// A shard stops taking new entries past this size, leaving room for in-place updates.
const SEAL_BYTES: usize = 48 * 1024;
/// Compare-and-swap attempts before giving up with [`StoreError::Conflict`].
const MAX_ATTEMPTS: u32 = 40;
/// Steps one change may take within one group-commit round (a new entry
/// takes at most three on one shard: seal it, announce the next, append).
const MAX_STEPS_PER_ROUND: usize = 4;
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

/// Where an entry is in a snapshot: shard and position in that shard.
type Slot = (u32, u32);

/// The whole index as read at one time, with lookup maps.
#[derive(Debug)]
pub(crate) struct Snapshot {
    shards: Vec<Shard>,
    /// Where each id's entry is. Slots, not copies: with 10,000 tokens a
    /// copy of every entry would cost megabytes.
    by_id: HashMap<String, Slot>,
    /// Where the entry of each user name is.
    by_user: HashMap<String, Slot>,
    loaded_at: Instant,
    /// The [`Index::reads`] ticket of the read this view is as new as: a
    /// snapshot derived from a write keeps the one of the read it started from.
    read: u64,
}

impl Snapshot {
    fn new(shards: Vec<Shard>, read: u64) -> Self {
        let mut by_id: HashMap<String, Slot> = HashMap::new();
        let mut by_user: HashMap<String, Slot> = HashMap::new();
        // A later shard wins: an entry being moved to the last shard is
        // briefly in two.
        for (s, shard) in shards.iter().enumerate() {
            for (p, entry) in shard.body.entries.iter().enumerate() {
                let slot = (s as u32, p as u32);
                if let Some(previous) = by_id.insert(entry.id.clone(), slot)
                    && let Some(user) =
                        &shards[previous.0 as usize].body.entries[previous.1 as usize].user
                    && by_user.get(user) == Some(&previous)
                {
                    by_user.remove(user);
                }
                if let Some(user) = &entry.user {
                    by_user.insert(user.clone(), slot);
                }
            }
        }
        Self {
            shards,
            by_id,
            by_user,
            loaded_at: Instant::now(),
            read,
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

    fn at(&self, (shard, position): Slot) -> &Entry {
        &self.shards[shard as usize].body.entries[position as usize]
    }

    /// The entry of token `id`.
    pub(crate) fn entry(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id).map(|&slot| self.at(slot))
    }

    /// The id of the token whose entry has user name `user`.
    fn user_holder(&self, user: &str) -> Option<&str> {
        self.by_user
            .get(user)
            .map(|&slot| self.at(slot).id.as_str())
    }

    /// The token ids whose entries match `key` (access tokens are not indexed).
    pub(crate) fn candidates(&self, key: &LookupKey<'_>) -> Vec<String> {
        match *key {
            LookupKey::UserName(user) => self
                .user_holder(user)
                .map(str::to_owned)
                .into_iter()
                .collect(),
            LookupKey::AccessToken(_) => Vec::new(),
            LookupKey::RefreshToken(value) | LookupKey::GrantToken(value) => {
                let wanted = Some(hash(value));
                let grant = matches!(key, LookupKey::GrantToken(_));
                self.by_id
                    .values()
                    .map(|&slot| self.at(slot))
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

    /// This snapshot with shard `at` replaced by `body` (same version id).
    /// Shard 0 may announce a new shard: it is added, empty.
    fn with_shard(&self, at: usize, body: ShardBody) -> Self {
        let mut shards = self.shards.clone();
        shards[at].body = body;
        extend_to_count(&mut shards);
        Self::new(shards, self.read)
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
    /// One index read at a time: concurrent loads share one (see [`Index::load`]).
    load_lock: tokio::sync::Mutex<()>,
    /// Tickets of index reads, numbered as they start.
    reads: AtomicU64,
    /// One index write at a time from this instance: they would only collide.
    /// Its holder applies the queued changes of the others too.
    write_lock: tokio::sync::Mutex<()>,
    /// Changes waiting for the next holder of the write lock.
    queue: Mutex<Vec<Pending>>,
    /// Numbers queued changes, to keep their order through retries.
    next_seq: AtomicU64,
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
            reads: AtomicU64::new(0),
            write_lock: tokio::sync::Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(0),
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
        Ok((self.read_all_shards().await?, false))
    }

    /// The index as read after this call began, cached for later calls.
    ///
    /// Concurrent calls share reads: a caller that finds a read started
    /// after it asked (by another caller, while this one waited its turn)
    /// takes that read's result. So a burst of N calls costs at most two
    /// reads of every shard, not N, and each still sees every index write
    /// that completed before it was called.
    pub(crate) async fn load(&self) -> Result<Arc<Snapshot>, StoreError> {
        let asked = self.reads.load(Ordering::SeqCst);
        let _loading = self.load_lock.lock().await;
        if let Some(snapshot) = self.cached().filter(|s| s.read >= asked) {
            return Ok(snapshot);
        }
        self.read_all_shards().await
    }

    /// Reads every shard now and caches the result. Under `load_lock`.
    async fn read_all_shards(&self) -> Result<Arc<Snapshot>, StoreError> {
        let read = self.reads.fetch_add(1, Ordering::SeqCst);
        let first = self.read_shard(0).await?;
        let count = first.body.shard_count.unwrap_or(1).max(1);
        let rest = futures::future::try_join_all((1..count).map(|n| self.read_shard(n))).await?;
        let shards = std::iter::once(first).chain(rest).collect();
        let snapshot = Arc::new(Snapshot::new(shards, read));
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
        self.submit(Op::Upsert(entry), false).await
    }

    /// [`Index::upsert`] that does not trust the cached index to have the
    /// entry already: if that is all it finds, it checks a fresh read. For a
    /// save about to create the token's secret, whose entry another instance
    /// may have removed since this instance cached the index (an acknowledged
    /// save that is not indexed would be lost to every listing).
    pub(crate) async fn ensure(&self, entry: Entry) -> Result<(), UpdateError> {
        self.submit(Op::Upsert(entry), true).await
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

    /// Removes the entries of `ids`; absent ids are ignored. Ids that the
    /// cached index does not list are checked in a fresh read, as another
    /// instance may have indexed them since.
    pub(crate) async fn remove(&self, ids: &[String]) -> Result<(), StoreError> {
        match self
            .submit(Op::Remove(ids.iter().cloned().collect()), true)
            .await
        {
            Ok(()) => Ok(()),
            Err(UpdateError::Store(error)) => Err(error),
            // A removal frees user names, it never takes one.
            Err(UpdateError::UserTaken(_)) => Ok(()),
        }
    }

    /// Queues `op` and waits for it to be applied (group commit).
    ///
    /// The first caller to get the write lock applies every queued change,
    /// from this instance's concurrent operations, in as few shard
    /// compare-and-swaps as it can, then answers each caller. Serialising
    /// them instead would make N concurrent saves N rounds of the CAS
    /// protocol, each racing the other processes for the same last shard.
    ///
    /// With `verify`, a change that the cached index shows as made already
    /// is checked against a fresh read before it counts as done.
    async fn submit(&self, op: Op, verify: bool) -> Result<(), UpdateError> {
        loop {
            let (reply, mut answer) = oneshot::channel();
            self.queue().push(Pending {
                seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
                op: op.clone(),
                verify,
                reply,
            });
            let _writing = self.write_lock.lock().await;
            // A leader that held the lock before answers before releasing it.
            match answer.try_recv() {
                Ok(result) => return result,
                // Its leader was cancelled mid-way: queue it again.
                Err(oneshot::error::TryRecvError::Closed) => continue,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = std::mem::take(&mut *self.queue());
            self.apply(batch).await;
            if let Ok(result) = answer.try_recv() {
                return result;
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `batch` (in order, as if one after the other) and answers
    /// each of its callers. Runs under the write lock.
    async fn apply(&self, batch: Vec<Pending>) {
        let mut open = batch;
        // Whether `snapshot` was read by this call (not cached before it).
        let (mut snapshot, mut fresh) = match self.current().await {
            Ok((snapshot, from_cache)) => (snapshot, !from_cache),
            Err(error) => return fail_all(open, error),
        };
        let mut failures = 0;
        loop {
            let round = self.plan(&snapshot, open, fresh);
            for (pending, holder) in round.taken {
                let _ = pending.reply.send(Err(UpdateError::UserTaken(holder)));
            }
            let Some((number, body)) = round.write else {
                // Nothing to write: every remaining change is in already...
                for pending in round.done {
                    let _ = pending.reply.send(Ok(()));
                }
                if round.later.is_empty() {
                    return;
                }
                // ...as far as the cached index says: read it to make sure.
                // (Only unverified changes wait without a write.)
                debug_assert!(!fresh);
                if fresh {
                    return fail_all(round.later, conflict(failures));
                }
                snapshot = match self.load().await {
                    Ok(snapshot) => snapshot,
                    Err(error) => return fail_all(round.later, error),
                };
                fresh = true;
                open = round.later;
                continue;
            };
            match self.write_shard(&snapshot, number, body).await {
                Ok(Some(next)) => {
                    for pending in round.done {
                        let _ = pending.reply.send(Ok(()));
                    }
                    snapshot = next;
                    open = round.later;
                }
                Ok(None) => {
                    // Lost to another writer: plan everything again on a
                    // fresh read, in the original order.
                    let mut again: Vec<Pending> =
                        round.done.into_iter().chain(round.later).collect();
                    again.sort_by_key(|p| p.seq);
                    failures += 1;
                    if failures >= MAX_ATTEMPTS {
                        return fail_all(again, conflict(failures));
                    }
                    backoff(failures).await;
                    snapshot = match self.load().await {
                        Ok(snapshot) => snapshot,
                        Err(error) => return fail_all(again, error),
                    };
                    fresh = true;
                    open = again;
                }
                Err(error) => {
                    let all = round.done.into_iter().chain(round.later).collect();
                    return fail_all(all, error);
                }
            }
            if open.is_empty() {
                return;
            }
        }
    }

    /// One round of a group commit: the single shard write that takes as
    /// many of the `open` changes as far as it can, applied in order on a
    /// working copy of `snapshot`.
    ///
    /// A change is `done` when the write completes it, `later` when it needs
    /// another shard (or waits on an earlier change to the same id), and
    /// `taken` when `snapshot` gives its user name to another id. A change
    /// to verify that `snapshot` shows as made already is `later` too,
    /// unless `snapshot` is `fresh`.
    fn plan(&self, snapshot: &Snapshot, open: Vec<Pending>, fresh: bool) -> Round {
        let mut round = Round::default();
        let mut view: Option<Snapshot> = None;
        // Ids with a change left for later: their later changes wait too,
        // so that the changes to one id keep their order.
        let mut blocked: HashSet<String> = HashSet::new();
        for pending in open {
            let outcome = if pending.op.ids().any(|id| blocked.contains(id)) {
                Outcome::Later
            } else {
                self.advance(snapshot, &mut view, &mut round.write, &pending.op)
            };
            match outcome {
                Outcome::Done { stepped: false } if pending.verify && !fresh => {
                    blocked.extend(pending.op.ids().map(str::to_owned));
                    round.later.push(pending);
                }
                Outcome::Done { .. } => round.done.push(pending),
                Outcome::Taken(holder) => round.taken.push((pending, holder)),
                Outcome::Later => {
                    blocked.extend(pending.op.ids().map(str::to_owned));
                    round.later.push(pending);
                }
            }
        }
        round
    }

    /// Takes `op` as far as the round's one shard write allows, on the
    /// working copy `view` of `snapshot` (`None`: unchanged yet).
    fn advance(
        &self,
        snapshot: &Snapshot,
        view: &mut Option<Snapshot>,
        write: &mut Option<(usize, ShardBody)>,
        op: &Op,
    ) -> Outcome {
        for steps in 0..MAX_STEPS_PER_ROUND {
            let current = view.as_ref().unwrap_or(snapshot);
            if let Op::Upsert(entry) = op
                && let Some(user) = &entry.user
                && let Some(holder) = current.user_holder(user)
                && holder != entry.id
            {
                // Taken for good only if the committed index says so; if a
                // change earlier in this round took it, decide next round.
                return if snapshot.user_holder(user) == Some(holder) {
                    Outcome::Taken(holder.to_owned())
                } else {
                    Outcome::Later
                };
            }
            let step = match op {
                Op::Upsert(entry) => self.upsert_step(current, entry),
                Op::Remove(ids) => remove_step(current, ids),
            };
            let Some((number, body)) = step else {
                return Outcome::Done { stepped: steps > 0 };
            };
            if write.as_ref().is_some_and(|(at, _)| *at != number) {
                return Outcome::Later;
            }
            let next = current.with_shard(number, body.clone());
            *view = Some(next);
            *write = Some((number, body));
        }
        Outcome::Later
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
        extend_to_count(&mut shards);
        let next = Arc::new(Snapshot::new(shards, snapshot.read));
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

/// Shard 0 may announce shards not read yet: adds them, empty.
fn extend_to_count(shards: &mut Vec<Shard>) {
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
}

/// The next shard write towards removing `ids`, or `None` when none is indexed.
fn remove_step(snapshot: &Snapshot, ids: &HashSet<String>) -> Option<(usize, ShardBody)> {
    let at = snapshot
        .shards
        .iter()
        .position(|s| s.body.entries.iter().any(|e| ids.contains(&e.id)))?;
    let mut body = snapshot.shards[at].body.clone();
    body.entries.retain(|e| !ids.contains(&e.id));
    Some((at, body))
}

/// A change to the index, queued for a group commit.
#[derive(Debug, Clone)]
enum Op {
    /// Add or replace this entry.
    Upsert(Entry),
    /// Remove the entries of these ids.
    Remove(HashSet<String>),
}

impl Op {
    fn ids(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Self::Upsert(entry) => Box::new(std::iter::once(entry.id.as_str())),
            Self::Remove(ids) => Box::new(ids.iter().map(String::as_str)),
        }
    }
}

/// A queued change and where to send its outcome.
#[derive(Debug)]
struct Pending {
    seq: u64,
    op: Op,
    /// Done only on a fresh read (see [`Index::ensure`]).
    verify: bool,
    reply: oneshot::Sender<Result<(), UpdateError>>,
}

/// What one group-commit round does with the open changes.
#[derive(Debug, Default)]
struct Round {
    /// The one shard write of the round, if any change needs one.
    write: Option<(usize, ShardBody)>,
    /// Complete once `write` is (or already in the index, without it).
    done: Vec<Pending>,
    /// Left for a later round.
    later: Vec<Pending>,
    /// Refused: the user name belongs to this other id.
    taken: Vec<(Pending, String)>,
}

/// Where one change got to in a round.
enum Outcome {
    /// Complete; `stepped`: by the round's write, not before it.
    Done {
        stepped: bool,
    },
    Later,
    Taken(String),
}

fn conflict(attempts: u32) -> StoreError {
    StoreError::Conflict {
        operation: "index update".into(),
        attempts,
    }
}

/// Answers every change of `batch` with `error`.
fn fail_all(batch: Vec<Pending>, error: StoreError) {
    let shared = SharedError::new(error);
    for pending in batch {
        let _ = pending.reply.send(Err(UpdateError::Store(shared.copy())));
    }
}

/// One error delivered to every caller of a failed group commit.
struct SharedError(Arc<StoreError>);

impl SharedError {
    fn new(error: StoreError) -> Self {
        Self(Arc::new(error))
    }

    /// A copy of the error; a backend error keeps its source (shared).
    fn copy(&self) -> StoreError {
        match &*self.0 {
            StoreError::InvalidInput { reason } => StoreError::InvalidInput {
                reason: reason.clone(),
            },
            StoreError::Corrupt { id, reason } => StoreError::Corrupt {
                id: id.clone(),
                reason: reason.clone(),
            },
            StoreError::Conflict {
                operation,
                attempts,
            } => StoreError::Conflict {
                operation: operation.clone(),
                attempts: *attempts,
            },
            StoreError::Backend { operation, .. } => StoreError::Backend {
                operation: operation.clone(),
                source: Box::new(SharedSource(Arc::clone(&self.0))),
            },
        }
    }
}

/// The source of a shared backend error, shown as the original source.
struct SharedSource(Arc<StoreError>);

impl SharedSource {
    fn inner(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &*self.0 {
            StoreError::Backend { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl std::fmt::Debug for SharedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner() {
            Some(source) => std::fmt::Debug::fmt(source, f),
            None => f.write_str("(none)"),
        }
    }
}

impl std::fmt::Display for SharedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner() {
            Some(source) => std::fmt::Display::fmt(source, f),
            None => f.write_str("(none)"),
        }
    }
}

impl std::error::Error for SharedSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner().and_then(|source| source.source())
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

    /// An index that is never asked to make a call: for planning only.
    fn offline_index() -> Index {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .build();
        let api = Api {
            client: aws_sdk_secretsmanager::Client::from_conf(config),
            kms_key_id: None,
            tags: Vec::new(),
            recovery_window_days: None,
        };
        Index::new(api, Layout::new("t").unwrap(), Duration::from_secs(60))
    }

    fn snapshot_of(entries: Vec<Entry>) -> Snapshot {
        let body = ShardBody {
            format: FORMAT,
            shard_count: Some(1),
            entries,
            ..ShardBody::default()
        };
        let shard = Shard {
            number: 0,
            version_id: Some("v0".into()),
            body,
        };
        Snapshot::new(vec![shard], 0)
    }

    fn entry(id: &str, user: &str) -> Entry {
        Entry {
            id: id.into(),
            user: Some(user.into()),
            refresh: None,
            grant: None,
        }
    }

    fn pending(seq: u64, op: Op) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            seq,
            op,
            verify: false,
            reply,
        }
    }

    fn seqs(batch: &[Pending]) -> Vec<u64> {
        batch.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn a_group_commit_takes_every_new_entry_in_one_write() {
        let index = offline_index();
        let snapshot = snapshot_of(vec![entry("a", "ua")]);
        let batch = (0..20)
            .map(|n| pending(n, Op::Upsert(entry(&format!("n{n}"), &format!("u{n}")))))
            .collect();
        let round = index.plan(&snapshot, batch, false);
        assert_eq!(seqs(&round.done), (0..20).collect::<Vec<_>>());
        assert!(round.later.is_empty() && round.taken.is_empty());
        let (at, body) = round.write.expect("one write");
        assert_eq!(at, 0);
        assert_eq!(body.entries.len(), 21);
    }

    #[test]
    fn a_user_name_goes_to_the_first_change_that_claims_it() {
        let index = offline_index();
        let snapshot = snapshot_of(vec![entry("a", "taken")]);
        let batch = vec![
            pending(0, Op::Upsert(entry("x", "taken"))),
            pending(1, Op::Upsert(entry("y", "new"))),
            pending(2, Op::Upsert(entry("z", "new"))),
        ];
        let round = index.plan(&snapshot, batch, false);
        // Taken in the index: refused now. Taken by y in this round: decided
        // in the next round, against what was written.
        assert_eq!(round.taken.len(), 1);
        assert_eq!(round.taken[0].0.seq, 0);
        assert_eq!(round.taken[0].1, "a");
        assert_eq!(seqs(&round.done), vec![1]);
        assert_eq!(seqs(&round.later), vec![2]);

        let (at, body) = round.write.unwrap();
        let mut shards = snapshot.shards.clone();
        shards[at].body = body;
        let next = Snapshot::new(shards, 1);
        let round = index.plan(&next, round.later, false);
        assert_eq!(round.taken.len(), 1);
        assert_eq!(round.taken[0].1, "y");
        assert!(round.write.is_none());
    }

    #[test]
    fn changes_to_one_id_apply_in_order() {
        let index = offline_index();
        let snapshot = snapshot_of(vec![entry("a", "ua")]);
        let batch = vec![
            pending(0, Op::Upsert(entry("b", "ub"))),
            pending(1, Op::Remove(["b".to_owned()].into())),
            pending(2, Op::Upsert(entry("a", "ua2"))),
            pending(3, Op::Remove(["a".to_owned()].into())),
            pending(4, Op::Upsert(entry("a", "ua3"))),
        ];
        let round = index.plan(&snapshot, batch, false);
        assert_eq!(seqs(&round.done), vec![0, 1, 2, 3, 4]);
        let (_, body) = round.write.unwrap();
        assert_eq!(body.entries, vec![entry("a", "ua3")]);
    }

    #[test]
    fn nothing_to_write_when_the_index_has_it_all() {
        let index = offline_index();
        let snapshot = snapshot_of(vec![entry("a", "ua")]);
        let batch = vec![
            pending(0, Op::Upsert(entry("a", "ua"))),
            pending(1, Op::Remove(["gone".to_owned()].into())),
        ];
        let round = index.plan(&snapshot, batch, false);
        assert!(round.write.is_none());
        assert_eq!(seqs(&round.done), vec![0, 1]);
    }

    #[test]
    fn changes_to_verify_that_a_cached_index_shows_made_wait_for_a_fresh_read() {
        let index = offline_index();
        let snapshot = snapshot_of(vec![entry("a", "ua")]);
        let verified = |seq, op| Pending {
            verify: true,
            ..pending(seq, op)
        };
        let batch = || {
            vec![
                verified(0, Op::Upsert(entry("a", "ua"))),
                verified(1, Op::Remove(["gone".to_owned()].into())),
                verified(2, Op::Upsert(entry("b", "ub"))),
                pending(3, Op::Upsert(entry("a", "ua"))),
            ]
        };
        let round = index.plan(&snapshot, batch(), false);
        // 3 is not to verify, but waits behind 0, a change to the same id.
        assert_eq!(seqs(&round.later), vec![0, 1, 3]);
        assert_eq!(seqs(&round.done), vec![2]);
        assert!(round.write.is_some());
        let round = index.plan(&snapshot, batch(), true);
        assert_eq!(seqs(&round.done), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_full_shard_is_sealed_and_the_rest_waits_for_the_next() {
        let index = offline_index();
        // Shard 0 just under the seal size.
        let mut entries = Vec::new();
        let mut n = 0;
        while snapshot_of(entries.clone()).shards[0].body.encode().len() < SEAL_BYTES - 200 {
            entries.push(entry(
                &format!("id{n:05}"),
                &format!("user{n:05}@example.com"),
            ));
            n += 1;
        }
        let snapshot = snapshot_of(entries);
        let batch = (0..10)
            .map(|k| {
                pending(
                    k,
                    Op::Upsert(entry(&format!("new{k}"), &format!("new{k}@x"))),
                )
            })
            .collect();
        let round = index.plan(&snapshot, batch, false);
        let (at, body) = round.write.unwrap();
        assert_eq!(at, 0);
        // Sealed with what fit, shard 1 announced; the rest waits for shard 1.
        assert!(body.sealed);
        assert_eq!(body.shard_count, Some(2));
        assert!(!round.done.is_empty() && !round.later.is_empty());
        assert_eq!(round.done.len() + round.later.len(), 10);
        let written: usize = round
            .done
            .iter()
            .filter(|p| body.entries.iter().any(|e| p.op.ids().any(|id| id == e.id)))
            .count();
        assert_eq!(written, round.done.len());
    }

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
