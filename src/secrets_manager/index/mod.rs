//! The index secrets: which token ids exist and their lookup keys, so that
//! lookups and listing need no `ListSecrets` (which lags writes by minutes).
//!
//! # Layout
//!
//! A binary tree of secrets `{prefix}/index/r…` over a 64-bit hash of each
//! entry's route (its user name, else its id): `r` is the root, `r0` and
//! `r1` its children, and so on ([`node`]). New entries go to the leaf their
//! hash falls in, so writes spread over the leaves instead of piling onto
//! one secret, and a lookup by user name reads the one path to its leaf.
//!
//! # Living within Secrets Manager's version quota
//!
//! Every write of a secret makes a version, Secrets Manager keeps versions
//! for 24 hours, and a secret holds about 100: past that, writes to it fail.
//! Each node records when its versions were made (the last 24 hours of
//! them, including the versions of this writer's own lost compare-and-swap
//! attempts), and a leaf that has made [`MAX_RECENT_WRITES`] versions in a
//! day, or has grown to [`SEAL_BYTES`], is split into two fresh children
//! instead of being written again (the split marker is its last version).
//! So no index secret makes more than `MAX_RECENT_WRITES + 1` recorded
//! versions a day, however many tokens are written, which leaves room for
//! the attempts of writers that lost and then gave up.
//!
//! # Concurrency
//!
//! Each node is changed by compare-and-swap on version stages ([`cas`]); an
//! instance's concurrent changes are applied together ([`commit`]: one
//! write per node per round, as the [`planner`] plans it). `repair`
//! replaces the whole tree ([`rewrite`]).

mod cas;
mod commit;
mod node;
mod planner;
mod rewrite;
mod snapshot;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use node::{Entry, NodeKey, route_of_user};
pub(crate) use snapshot::Snapshot;

use super::api::Api;
use super::layout::Layout;
use crate::error::StoreError;
use planner::{Fresh, Op, Pending};

/// A leaf takes no more entries past this size, leaving room under the
/// 64 KiB value limit for in-place updates; it is split instead.
pub(crate) const SEAL_BYTES: usize = 48 * 1024;
/// Versions a node may make in 24 hours before it is split rather than
/// written again: well under Secrets Manager's ~100, so that attempts lost to
/// other writers (which make versions too) have room.
pub(crate) const MAX_RECENT_WRITES: usize = 60;
/// Compare-and-swap rounds lost before giving up with [`StoreError::Conflict`].
const MAX_ATTEMPTS: u32 = 40;
/// A write from a cached snapshot older than this first checks that the
/// node's version is still current.
const PRECHECK_AFTER: Duration = Duration::from_secs(1);
/// Concurrent node writes of one round.
const CONCURRENCY: usize = 8;

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

/// What the store uses for "now" (a test can simulate a day).
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The index of one store instance: a cached snapshot and the
/// compare-and-swap protocol that changes it.
pub(crate) struct Index {
    api: Api,
    layout: Layout,
    /// This instance's staging label for versions not yet made current.
    label: String,
    ttl: Duration,
    clock: Clock,
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

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("layout", &self.layout)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Index {
    pub(crate) fn new(api: Api, layout: Layout, ttl: Duration, clock: Clock) -> Self {
        Self {
            api,
            layout,
            label: format!("zts-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            ttl,
            clock,
            snapshot: Mutex::new(None),
            load_lock: tokio::sync::Mutex::new(()),
            reads: AtomicU64::new(0),
            write_lock: tokio::sync::Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(0),
        }
    }

    /// Now, in Unix milliseconds, by the store's clock (the lease times).
    pub(crate) fn now_millis(&self) -> i64 {
        (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Now, in Unix seconds, by the store's clock.
    fn now_secs(&self) -> u64 {
        (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
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

    /// The cached snapshot while it is younger than the TTL.
    pub(crate) fn young(&self) -> Option<Arc<Snapshot>> {
        self.cached().filter(|s| s.loaded_at.elapsed() < self.ttl)
    }

    /// The cached snapshot while it is younger than the TTL, else a fresh one.
    /// The flag says whether it came from the cache.
    pub(crate) async fn current(&self) -> Result<(Arc<Snapshot>, bool), StoreError> {
        if let Some(snapshot) = self.young() {
            return Ok((snapshot, true));
        }
        let _loading = self.load_lock.lock().await;
        // Another task may have loaded it while this one waited.
        if let Some(snapshot) = self.young() {
            return Ok((snapshot, true));
        }
        Ok((self.read_all().await?, false))
    }

    /// What the index says about user name `user`: the cached snapshot while
    /// it is young (flag `true`), else a fresh read of the one path from the
    /// root to the user's leaf (not cached: it is not the whole index).
    /// With `fresh`, always the path read.
    pub(crate) async fn for_user(
        &self,
        user: &str,
        fresh: bool,
    ) -> Result<(Arc<Snapshot>, bool), StoreError> {
        if !fresh && let Some(snapshot) = self.young() {
            return Ok((snapshot, true));
        }
        let route = route_of_user(user);
        Ok((Arc::new(self.path_now(route).await?), false))
    }

    /// Token `id`'s entry on the path of `route`, read now (not cached):
    /// whether the index has committed a save's intent, whose entry routes
    /// there.
    pub(crate) async fn entry_on(&self, id: &str, route: u64) -> Result<Option<Entry>, StoreError> {
        Ok(self.path_now(route).await?.entry(id).cloned())
    }

    /// The path from the root to the leaf of `route`, read now (not cached).
    async fn path_now(&self, route: u64) -> Result<Snapshot, StoreError> {
        // The depth of the cached tree, however old, saves re-reads.
        let depth = self
            .cached()
            .and_then(|s| s.leaf_for(route))
            .map_or(0, NodeKey::depth);
        let read = self.reads.fetch_add(1, Ordering::SeqCst);
        let nodes = self.read_route(route, depth).await?;
        Ok(Snapshot::new(nodes, read))
    }

    /// The index as read after this call began, cached for later calls.
    ///
    /// Concurrent calls share reads: a caller that finds a read started
    /// after it asked (by another caller, while this one waited its turn)
    /// takes that read's result. So a burst of N calls costs at most two
    /// reads of the tree, not N, and each still sees every index write that
    /// completed before it was called.
    pub(crate) async fn load(&self) -> Result<Arc<Snapshot>, StoreError> {
        let asked = self.reads.load(Ordering::SeqCst);
        let _loading = self.load_lock.lock().await;
        if let Some(snapshot) = self.cached().filter(|s| s.read >= asked) {
            return Ok(snapshot);
        }
        self.read_all().await
    }

    /// `snapshot` with `keys` read again exactly (and any subtree split since),
    /// cached: what a writer needs after losing a swap on them, or to be sure
    /// of them, without reading the whole tree. The nodes read are counted
    /// in `fresh`; the others are as the snapshot had them.
    async fn refreshed(
        &self,
        snapshot: &Snapshot,
        keys: Vec<NodeKey>,
        fresh: &mut Fresh,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let (nodes, read) = self.reread(snapshot.nodes().clone(), &keys).await?;
        fresh.add(read);
        let refreshed = Arc::new(Snapshot::new(nodes, snapshot.read));
        self.set_cached(Arc::clone(&refreshed));
        Ok(refreshed)
    }

    /// Reads the whole tree now and caches it. Under `load_lock`.
    async fn read_all(&self) -> Result<Arc<Snapshot>, StoreError> {
        let read = self.reads.fetch_add(1, Ordering::SeqCst);
        let known = self.cached().map(|s| s.node_keys()).unwrap_or_default();
        let nodes = self.read_tree(known).await?;
        let snapshot = Arc::new(Snapshot::new(nodes, read));
        self.set_cached(Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// Adds or replaces the entry of `entry.id`. Fails with
    /// [`UpdateError::UserTaken`] when another id holds the entry's user name.
    pub(crate) async fn upsert(&self, entry: Entry) -> Result<(), UpdateError> {
        self.submit(vec![Op::Upsert(entry)], false).await.remove(0)
    }

    /// [`Index::upsert`] that does not trust the cached index to have the
    /// entry already: if that is all it finds, it checks a fresh read. For a
    /// save about to create the token's secret, whose entry another instance
    /// may have removed since this instance cached the index (an acknowledged
    /// save that is not indexed would be lost to every listing).
    pub(crate) async fn ensure(&self, entry: Entry) -> Result<(), UpdateError> {
        self.submit(vec![Op::Upsert(entry)], true).await.remove(0)
    }

    /// [`Index::ensure`] for many entries at once: they are committed
    /// together, so each node is written a few times, not once per entry.
    pub(crate) async fn ensure_all(&self, entries: Vec<Entry>) -> Vec<Result<(), UpdateError>> {
        self.submit(entries.into_iter().map(Op::Upsert).collect(), true)
            .await
    }

    /// Removes the entries of `ids`; absent ids are ignored. Ids that the
    /// cached index does not list are checked in a fresh read, as another
    /// instance may have indexed them since.
    pub(crate) async fn remove(&self, ids: &[String]) -> Result<(), StoreError> {
        let op = Op::Remove(ids.iter().cloned().collect());
        match self.submit(vec![op], true).await.remove(0) {
            Ok(()) => Ok(()),
            Err(UpdateError::Store(error)) => Err(error),
            // A removal frees user names, it never takes one.
            Err(UpdateError::UserTaken(_)) => Ok(()),
        }
    }
}

/// Jittered exponential backoff after the `failures`-th lost race.
pub(super) async fn backoff(failures: u32) {
    let ceiling = 10u64 * 2u64.pow(failures.min(6));
    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=ceiling))).await;
}
