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
//! instance's concurrent changes are applied together (group commit, one
//! write per node per round, see [`planner`]).

mod cas;
mod node;
mod planner;
mod snapshot;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::sync::oneshot;

pub(crate) use node::{Entry, NodeKey, route_of_user};
pub(crate) use snapshot::Snapshot;

use super::api::Api;
use super::layout::Layout;
use crate::error::StoreError;
use cas::Cas;
use node::{MAX_DEPTH, NodeBody};
use planner::{Fresh, Limits, Op, Pending, plan};
use snapshot::Node;

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
        // The depth of the cached tree, however old, saves re-reads.
        let depth = self
            .cached()
            .and_then(|s| s.leaf_for(route))
            .map_or(0, NodeKey::depth);
        let read = self.reads.fetch_add(1, Ordering::SeqCst);
        let nodes = self.read_route(route, depth).await?;
        Ok((Arc::new(Snapshot::new(nodes, read)), false))
    }

    /// Token `id`'s entry on the path of `route`, read now (not cached):
    /// whether the index has committed a save's intent, whose entry routes
    /// there.
    pub(crate) async fn entry_on(&self, id: &str, route: u64) -> Result<Option<Entry>, StoreError> {
        let depth = self
            .cached()
            .and_then(|s| s.leaf_for(route))
            .map_or(0, NodeKey::depth);
        let read = self.reads.fetch_add(1, Ordering::SeqCst);
        let nodes = self.read_route(route, depth).await?;
        Ok(Snapshot::new(nodes, read).entry(id).cloned())
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

    /// Queues `ops` and waits for them to be applied (group commit); one
    /// outcome per op, in order.
    ///
    /// The first caller to get the write lock applies every queued change,
    /// from this instance's concurrent operations, in as few node writes as
    /// it can, then answers each caller. Serialising them instead would make
    /// N concurrent saves N rounds of the CAS protocol.
    ///
    /// With `verify`, a change that the cached index shows as made already
    /// is checked against a fresh read before it counts as done.
    async fn submit(&self, ops: Vec<Op>, verify: bool) -> Vec<Result<(), UpdateError>> {
        let mut outcomes: Vec<Option<Result<(), UpdateError>>> = ops.iter().map(|_| None).collect();
        let mut waiting: Vec<usize> = (0..ops.len()).collect();
        while !waiting.is_empty() {
            let mut answers = Vec::with_capacity(waiting.len());
            {
                let mut queue = self.queue();
                for &i in &waiting {
                    let (reply, answer) = oneshot::channel();
                    queue.push(Pending {
                        seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
                        op: ops[i].clone(),
                        verify,
                        stepped: false,
                        reply,
                    });
                    answers.push((i, answer));
                }
            }
            let _writing = self.write_lock.lock().await;
            waiting.clear();
            // A leader that held the lock before may have answered them all.
            let mut unanswered = Vec::new();
            for (i, mut answer) in answers {
                match answer.try_recv() {
                    Ok(result) => outcomes[i] = Some(result),
                    Err(oneshot::error::TryRecvError::Empty) => unanswered.push((i, answer)),
                    // Its leader was cancelled mid-way: queue it again.
                    Err(oneshot::error::TryRecvError::Closed) => waiting.push(i),
                }
            }
            if unanswered.is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut *self.queue());
            // Boxed: the commit's future is deep, and every save awaits it.
            Box::pin(self.apply(batch)).await;
            for (i, mut answer) in unanswered {
                match answer.try_recv() {
                    Ok(result) => outcomes[i] = Some(result),
                    Err(_) => waiting.push(i),
                }
            }
        }
        outcomes.into_iter().map(|o| o.unwrap_or(Ok(()))).collect()
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn limits(&self) -> Limits {
        Limits {
            seal_bytes: SEAL_BYTES,
            max_recent_writes: MAX_RECENT_WRITES,
            now: self.now_secs(),
        }
    }

    /// Applies `batch` (in order, as if one after the other) and answers
    /// each of its callers. Runs under the write lock.
    ///
    /// Each round plans what is open against the snapshot, then either
    /// splits full leaves, or confirms changes the index seems to have
    /// already, or writes the planned nodes by compare-and-swap; what a
    /// round leaves open goes to the next.
    async fn apply(&self, batch: Vec<Pending>) {
        let mut open = batch;
        let mut state = match self.current().await {
            Ok((snapshot, cached)) => Applying {
                snapshot,
                fresh: if cached { Fresh::none() } else { Fresh::All },
                lost: HashMap::new(),
                failures: 0,
            },
            Err(error) => return fail_all(open, &error),
        };
        while !open.is_empty() {
            let limits = self.limits();
            let round = plan(&state.snapshot, open, &state.fresh, limits, &state.lost);
            for (pending, holder) in round.taken {
                let _ = pending.reply.send(Err(UpdateError::UserTaken(holder)));
            }
            let next = if !round.splits.is_empty() {
                self.split_round(&mut state, round.splits, round.later, limits.now)
                    .await
            } else if round.writes.is_empty() {
                self.confirm_round(&mut state, round.stepped, round.later)
                    .await
            } else {
                let writes = (round.writes, round.stepped, round.later);
                self.write_round(&mut state, writes, limits.now).await
            };
            match next {
                Ok(next) => open = next,
                Err((pending, error)) => return fail_all(pending, &error),
            }
        }
    }

    /// A round that splits `splits` (full leaves, or out of versions for the
    /// day); `later` waits for the next round, on the split leaves as they
    /// are now.
    async fn split_round(
        &self,
        state: &mut Applying,
        splits: Vec<NodeKey>,
        later: Vec<Pending>,
        now: u64,
    ) -> RoundResult {
        let mut committed = true;
        for &key in &splits {
            let seen = state
                .snapshot
                .node(key)
                .cloned()
                .unwrap_or_else(Node::absent);
            match self.split(key, &seen, now, &mut state.lost).await {
                Ok(true) => {}
                Ok(false) => committed = false,
                Err(error) => return Err((later, error)),
            }
        }
        if !committed && let Err(error) = state.lost_a_swap().await {
            return Err((later, error));
        }
        // The split leaves (and their new children), as they are now.
        match self
            .refreshed(&state.snapshot, splits, &mut state.fresh)
            .await
        {
            Ok(snapshot) => state.snapshot = snapshot,
            Err(error) => return Err((later, error)),
        }
        Ok(later)
    }

    /// A round with nothing to write: every stepped change is in already,
    /// and so is every `later` one as far as the cached index says. Their
    /// leaves are read again to make sure (they may be cached, even when
    /// other leaves were read again after a lost swap).
    async fn confirm_round(
        &self,
        state: &mut Applying,
        stepped: Vec<(Pending, Vec<NodeKey>, bool)>,
        later: Vec<Pending>,
    ) -> RoundResult {
        for (pending, _, _) in stepped {
            let _ = pending.reply.send(Ok(()));
        }
        if later.is_empty() {
            return Ok(later);
        }
        let leaves = planner::leaves_of(&state.snapshot, &later);
        if state.fresh.covers(leaves.as_deref()) {
            let failures = state.failures;
            return Err((later, conflict(failures)));
        }
        let reread = match leaves {
            Some(leaves) => {
                self.refreshed(&state.snapshot, leaves, &mut state.fresh)
                    .await
            }
            None => {
                state.fresh = Fresh::All;
                self.load().await
            }
        };
        match reread {
            Ok(snapshot) => state.snapshot = snapshot,
            Err(error) => return Err((later, error)),
        }
        Ok(later)
    }

    /// A round that writes the planned nodes by compare-and-swap, answers
    /// the changes all of whose nodes it won, and leaves the rest (on the
    /// lost nodes as they are now) to the next round.
    async fn write_round(
        &self,
        state: &mut Applying,
        (writes, stepped, later): PlannedWrites,
        now: u64,
    ) -> RoundResult {
        let outcomes = self.write_nodes(state, writes, now).await;
        let mut won: HashMap<NodeKey, Node> = HashMap::new();
        let mut lost_nodes: Vec<NodeKey> = Vec::new();
        let mut error = None;
        for (key, body, outcome) in outcomes {
            match outcome {
                Ok(Cas::Won(version)) => {
                    state.lost.remove(&key);
                    let body = Arc::new(body);
                    won.insert(
                        key,
                        Node {
                            version: Some(version),
                            body,
                        },
                    );
                }
                Ok(Cas::Lost { versioned }) => {
                    lost_nodes.push(key);
                    *state.lost.entry(key).or_default() += u32::from(versioned);
                }
                Err(e) => error = Some(e),
            }
        }
        if !won.is_empty() {
            let written = won.iter().map(|(k, n)| (*k, n.clone()));
            state.snapshot = Arc::new(state.snapshot.with_nodes(written));
            self.set_cached(Arc::clone(&state.snapshot));
            // Known exactly: this call just made their current versions.
            state.fresh.add(won.keys().copied());
        }
        let mut next: Vec<Pending> = Vec::new();
        for (mut pending, nodes, complete) in stepped {
            if nodes.iter().all(|key| won.contains_key(key)) {
                if complete {
                    let _ = pending.reply.send(Ok(()));
                    continue;
                }
                pending.stepped = true;
            }
            next.push(pending);
        }
        next.extend(later);
        next.sort_by_key(|p| p.seq);
        if let Some(error) = error {
            return Err((next, error));
        }
        if !lost_nodes.is_empty() {
            // Lost to another writer: plan what is left on those nodes as
            // they are now (not the whole tree again).
            if let Err(error) = state.lost_a_swap().await {
                return Err((next, error));
            }
            match self
                .refreshed(&state.snapshot, lost_nodes, &mut state.fresh)
                .await
            {
                Ok(snapshot) => state.snapshot = snapshot,
                Err(error) => return Err((next, error)),
            }
        }
        Ok(next)
    }

    /// Writes `writes` by compare-and-swap, [`CONCURRENCY`] at a time: each
    /// node, the body written, and the outcome.
    async fn write_nodes(
        &self,
        state: &Applying,
        writes: Vec<(NodeKey, NodeBody)>,
        now: u64,
    ) -> Vec<(NodeKey, NodeBody, Result<Cas, StoreError>)> {
        // A node version cached a while ago may have moved: checking it
        // costs a read, losing the swap would cost a version.
        let stale = state.snapshot.loaded_at.elapsed() > PRECHECK_AFTER;
        futures::stream::iter(writes)
            .map(|(key, body)| {
                let precheck = stale && !state.fresh.covers(Some(&[key]));
                let previous = state
                    .snapshot
                    .node(key)
                    .cloned()
                    .unwrap_or_else(Node::absent);
                let versions = 1 + state.lost.get(&key).copied().unwrap_or(0);
                let body = body.stamped(&previous.body, now, versions);
                async move {
                    let outcome = self
                        .cas_node(key, previous.version.as_deref(), &body, precheck)
                        .await;
                    (key, body, outcome)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
    }

    /// Replaces the whole index with `entries` (used by `repair`): a tree
    /// just deep enough for them, written leaves first, root last, each node
    /// overwriting whatever is there (even a corrupt value). Nodes of the old
    /// tree below the new leaves are no longer reachable. The number of
    /// leaves written.
    pub(crate) async fn rewrite(&self, entries: Vec<Entry>) -> Result<usize, StoreError> {
        let _writing = self.write_lock.lock().await;
        let now = self.now_secs();
        let mut plan: Vec<(NodeKey, Vec<Entry>, bool)> = Vec::new();
        layout_subtree(NodeKey::ROOT, entries, &mut plan);
        let leaves = plan.iter().filter(|(_, _, split)| !split).count();
        let deepest = plan
            .iter()
            .map(|(key, _, _)| key.depth())
            .max()
            .unwrap_or(0);
        let mut seqs: HashMap<NodeKey, u64> = HashMap::new();
        for depth in (0..=deepest).rev() {
            for (key, entries, split) in plan.iter().filter(|(k, _, _)| k.depth() == depth) {
                let mut failures = 0;
                loop {
                    // Read raw: a corrupt node is overwritten, not decoded.
                    let name = self.layout.index_node(&key.suffix());
                    let (previous, body) = match self.api.get(&name).await? {
                        super::api::Fetched::Value { version_id, string } => {
                            let body = string
                                .and_then(|json| serde_json::from_str::<NodeBody>(&json).ok())
                                .unwrap_or_else(NodeBody::empty);
                            (version_id, body)
                        }
                        _ => (None, NodeBody::empty()),
                    };
                    let new = NodeBody {
                        split: split.then(|| [seqs[&key.child(0)], seqs[&key.child(1)]]),
                        entries: entries.clone(),
                        ..NodeBody::empty()
                    }
                    .stamped(&body, now, 1);
                    if let Cas::Won(_) = self
                        .cas_node(*key, previous.as_deref(), &new, false)
                        .await?
                    {
                        seqs.insert(*key, new.seq);
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
        }
        self.load().await?;
        Ok(leaves)
    }
}

/// The nodes of a tree just deep enough for `entries` under `key`:
/// (node, its entries, whether it is split), parents before children.
fn layout_subtree(key: NodeKey, entries: Vec<Entry>, out: &mut Vec<(NodeKey, Vec<Entry>, bool)>) {
    let size: usize = entries.iter().map(Entry::encoded_len).sum::<usize>() + 64;
    if size <= SEAL_BYTES || key.depth() >= MAX_DEPTH {
        out.push((key, entries, false));
        return;
    }
    out.push((key, Vec::new(), true));
    let body = NodeBody {
        entries,
        ..NodeBody::empty()
    };
    let [left, right] = planner::split_entries(key, &body);
    layout_subtree(key.child(0), left, out);
    layout_subtree(key.child(1), right, out);
}

/// The state of one [`Index::apply`] call across its rounds.
struct Applying {
    snapshot: Arc<Snapshot>,
    /// The nodes of `snapshot` read (or written) by this call, as opposed
    /// to cached before it: only they can confirm a change to verify.
    fresh: Fresh,
    /// Versions of this writer's lost attempts, per node, to record with
    /// its next write there.
    lost: HashMap<NodeKey, u32>,
    /// Rounds lost to other writers.
    failures: u32,
}

impl Applying {
    /// Counts a round lost to another writer and backs off; the conflict
    /// error once there were [`MAX_ATTEMPTS`].
    async fn lost_a_swap(&mut self) -> Result<(), StoreError> {
        self.failures += 1;
        if self.failures >= MAX_ATTEMPTS {
            return Err(conflict(self.failures));
        }
        backoff(self.failures).await;
        Ok(())
    }
}

/// A round's planned node writes, the changes stepped by them, and those
/// waiting for a later round.
type PlannedWrites = (
    Vec<(NodeKey, NodeBody)>,
    Vec<(Pending, Vec<NodeKey>, bool)>,
    Vec<Pending>,
);

/// What a round of [`Index::apply`] leaves open, or the error to answer
/// those changes with.
type RoundResult = Result<Vec<Pending>, (Vec<Pending>, StoreError)>;

fn conflict(attempts: u32) -> StoreError {
    StoreError::Conflict {
        operation: "index update".into(),
        attempts,
    }
}

/// Answers every change of `batch` with `error`.
fn fail_all(batch: Vec<Pending>, error: &StoreError) {
    for pending in batch {
        let _ = pending
            .reply
            .send(Err(UpdateError::Store(duplicate(error))));
    }
}

/// A copy of `error` for each caller of a failed group commit.
fn duplicate(error: &StoreError) -> StoreError {
    error.clone()
}

/// Jittered exponential backoff after the `failures`-th lost race.
async fn backoff(failures: u32) {
    let ceiling = 10u64 * 2u64.pow(failures.min(6));
    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=ceiling))).await;
}
