//! The group-commit planner: which node writes (and splits) take the queued
//! index changes as far as they can go in one round. Pure: it reads a
//! [`Snapshot`] and makes no call, so its tests need no client.

use std::collections::{HashMap, HashSet};

use tokio::sync::oneshot;

use super::UpdateError;
use super::node::{Entry, MAX_DEPTH, NodeBody, NodeKey};
use super::snapshot::Snapshot;
use crate::token::MAX_TOKEN_BYTES;

/// A change to the index, queued for a group commit.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Add or replace this entry.
    Upsert(Entry),
    /// Remove the entries of these ids.
    Remove(HashSet<String>),
}

impl Op {
    pub(crate) fn ids(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Self::Upsert(entry) => Box::new(std::iter::once(entry.id.as_str())),
            Self::Remove(ids) => Box::new(ids.iter().map(String::as_str)),
        }
    }
}

/// A queued change and where to send its outcome.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) seq: u64,
    pub(crate) op: Op,
    /// Done only on a fresh read (see `Index::ensure`).
    pub(crate) verify: bool,
    /// A write of this change already succeeded (it is verified).
    pub(crate) stepped: bool,
    pub(crate) reply: oneshot::Sender<Result<(), UpdateError>>,
}

/// Which nodes of the snapshot a commit has read (or written) itself: a
/// change to verify that the snapshot shows as made counts as done only
/// when every node it depends on is among them. Reading some nodes again
/// (after losing a swap on them) says nothing of the others, which may come
/// from a cache that another instance has changed since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fresh {
    /// The whole tree was read by this commit.
    All,
    /// Only these nodes.
    Nodes(HashSet<NodeKey>),
}

impl Fresh {
    /// Nothing read yet (the snapshot came from the cache).
    pub(crate) fn none() -> Self {
        Self::Nodes(HashSet::new())
    }

    /// Whether every node of `keys` is fresh; `None` (the whole index is
    /// needed) only when all is.
    pub(crate) fn covers(&self, keys: Option<&[NodeKey]>) -> bool {
        match self {
            Self::All => true,
            Self::Nodes(fresh) => keys.is_some_and(|keys| keys.iter().all(|k| fresh.contains(k))),
        }
    }

    /// Counts `keys` as read by this commit.
    pub(crate) fn add(&mut self, keys: impl IntoIterator<Item = NodeKey>) {
        if let Self::Nodes(fresh) = self {
            fresh.extend(keys);
        }
    }
}

/// The bounds a round plans within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A leaf takes no more entries past this size; it is split instead.
    pub(crate) seal_bytes: usize,
    /// A node that has made this many versions in the last 24 hours is split
    /// rather than written again (the split adds one more).
    pub(crate) max_recent_writes: usize,
    /// Now, in Unix seconds.
    pub(crate) now: u64,
}

/// What one group-commit round does with the open changes.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Node writes, at most one per node: its new body (not stamped yet).
    pub(crate) writes: Vec<(NodeKey, NodeBody)>,
    /// Leaves to split before anything else: full, or out of versions.
    pub(crate) splits: Vec<NodeKey>,
    /// Changes that take a step once these nodes are written; `true`: the
    /// step completes them (no nodes: complete already).
    pub(crate) stepped: Vec<(Pending, Vec<NodeKey>, bool)>,
    /// Left for a later round.
    pub(crate) later: Vec<Pending>,
    /// Refused: the user name belongs to this other id.
    pub(crate) taken: Vec<(Pending, String)>,
}

/// Where one change got to in a round.
enum Outcome {
    /// One step, made by writing these nodes; `complete`: the last one.
    Step {
        nodes: Vec<NodeKey>,
        complete: bool,
    },
    Later,
    Split(Vec<NodeKey>),
    Taken(String),
}

/// The working copy of a snapshot a round's changes are applied to.
struct View<'a> {
    base: &'a Snapshot,
    limits: Limits,
    /// Versions this writer's lost attempts made on each node, not yet recorded.
    lost: &'a HashMap<NodeKey, u32>,
    bodies: HashMap<NodeKey, NodeBody>,
    sizes: HashMap<NodeKey, usize>,
    by_id: HashMap<String, Option<NodeKey>>,
    by_user: HashMap<String, Option<String>>,
}

impl View<'_> {
    fn leaf_of(&self, id: &str) -> Option<NodeKey> {
        match self.by_id.get(id) {
            Some(leaf) => *leaf,
            None => self.base.leaf_of(id),
        }
    }

    fn user_holder(&self, user: &str) -> Option<&str> {
        match self.by_user.get(user) {
            Some(holder) => holder.as_deref(),
            None => self.base.user_holder(user),
        }
    }

    fn body(&self, key: NodeKey) -> Option<&NodeBody> {
        match self.bodies.get(&key) {
            Some(body) => Some(body),
            None => self.base.node(key).map(|n| &*n.body),
        }
    }

    fn entry(&self, id: &str) -> Option<Entry> {
        let leaf = self.leaf_of(id)?;
        self.body(leaf)?
            .entries
            .iter()
            .filter(|e| e.id == id)
            .max_by_key(|e| e.moves)
            .cloned()
    }

    /// Leaves other than the live one that still hold a copy of `id`.
    fn stale_copies(&self, id: &str) -> Vec<NodeKey> {
        let live = self.leaf_of(id);
        self.base
            .stale_copies(id)
            .iter()
            .copied()
            .filter(|&key| Some(key) != live || self.copies_in(key, id) > 1)
            .filter(|&key| self.copies_in(key, id) > 0)
            .collect()
    }

    fn copies_in(&self, key: NodeKey, id: &str) -> usize {
        self.body(key)
            .map_or(0, |b| b.entries.iter().filter(|e| e.id == id).count())
    }

    /// Whether `key` can take a write this round: it has one already, or
    /// it has versions to spare.
    fn can_write(&self, key: NodeKey) -> bool {
        if self.bodies.contains_key(&key) || key.depth() >= MAX_DEPTH {
            return true;
        }
        let recent = self
            .base
            .node(key)
            .map_or(0, |n| n.body.recent_writes(self.limits.now));
        let lost = self.lost.get(&key).copied().unwrap_or(0) as usize;
        recent + lost < self.limits.max_recent_writes
    }

    fn body_mut(&mut self, key: NodeKey) -> &mut NodeBody {
        let base = self.base;
        self.bodies.entry(key).or_insert_with(|| {
            base.node(key)
                .map_or_else(NodeBody::empty, |n| (*n.body).clone())
        })
    }

    fn size(&mut self, key: NodeKey) -> usize {
        if let Some(size) = self.sizes.get(&key) {
            return *size;
        }
        let size = self.body(key).map_or(0, |b| b.encode().len());
        self.sizes.insert(key, size);
        size
    }

    /// Removes every copy of `id` from leaf `key`.
    fn remove_from(&mut self, key: NodeKey, id: &str) {
        let mut freed = 0;
        let body = self.body_mut(key);
        body.entries.retain(|e| {
            let keep = e.id != id;
            if !keep {
                freed += e.encoded_len();
            }
            keep
        });
        let size = self.size(key);
        self.sizes.insert(key, size.saturating_sub(freed));
    }

    /// Puts `entry` into leaf `key`, replacing what the leaf had of its id.
    fn put_into(&mut self, key: NodeKey, entry: Entry) {
        self.remove_from(key, &entry.id);
        let added = entry.encoded_len();
        self.body_mut(key).entries.push(entry);
        let size = self.size(key);
        self.sizes.insert(key, size + added);
    }

    /// Records in the maps that `entry` is live in `key` (and its previous
    /// user name, if another, is free).
    fn set_live(&mut self, key: NodeKey, entry: &Entry) {
        if let Some(old) = self.entry(&entry.id)
            && old.user != entry.user
            && let Some(user) = old.user
            && self.user_holder(&user) == Some(entry.id.as_str())
        {
            self.by_user.insert(user, None);
        }
        self.by_id.insert(entry.id.clone(), Some(key));
        if let Some(user) = &entry.user {
            self.by_user.insert(user.clone(), Some(entry.id.clone()));
        }
    }

    fn set_removed(&mut self, id: &str) {
        if let Some(old) = self.entry(id)
            && let Some(user) = old.user
            && self.user_holder(&user) == Some(id)
        {
            self.by_user.insert(user, None);
        }
        self.by_id.insert(id.to_owned(), None);
    }

    /// Whether `entry` fits into `key` this round: `Ok(false)`: not with the
    /// round's other changes there (later); `Err`: not at all (split it).
    fn fits(&mut self, key: NodeKey, entry: &Entry) -> Result<bool, ()> {
        let replaced = self.body(key).map_or(0, |b| {
            b.entries
                .iter()
                .filter(|e| e.id == entry.id)
                .map(Entry::encoded_len)
                .sum()
        });
        let size = self.size(key) + entry.encoded_len() - replaced;
        let limit = if key.depth() >= MAX_DEPTH {
            MAX_TOKEN_BYTES - 2048
        } else {
            self.limits.seal_bytes
        };
        if size <= limit {
            Ok(true)
        } else if self.bodies.contains_key(&key) {
            Ok(false)
        } else {
            Err(())
        }
    }

    fn upsert(&mut self, entry: &Entry) -> Outcome {
        let Some(target) = self.base.leaf_for(entry.route()) else {
            return Outcome::Later;
        };
        if let Some(user) = &entry.user {
            let committed = self.base.user_holder(user).filter(|h| *h != entry.id);
            let now = self.user_holder(user).filter(|h| *h != entry.id);
            match (committed, now) {
                // Taken for good only if the committed index says so.
                (Some(holder), Some(now)) if holder == now => {
                    return Outcome::Taken(holder.to_owned());
                }
                // Freed, or taken, by a change earlier in this round, maybe
                // in another leaf whose write may yet fail: decide next round.
                (Some(_), _) | (None, Some(_)) => return Outcome::Later,
                (None, None) => {}
            }
        }
        let current = self.entry(&entry.id);
        let live = self.leaf_of(&entry.id);
        let stale = self.stale_copies(&entry.id);
        if live == Some(target) || live.is_none() {
            let unchanged = current.as_ref().is_some_and(|c| c.same_keys(entry));
            let mut nodes = stale.clone();
            if !unchanged {
                nodes.push(target);
            }
            let blocked: Vec<NodeKey> = nodes
                .iter()
                .copied()
                .filter(|&k| !self.can_write(k))
                .collect();
            if !blocked.is_empty() {
                return Outcome::Split(blocked);
            }
            let mut updated = entry.clone();
            updated.moves = current.as_ref().map_or(0, |c| c.moves);
            if !unchanged {
                match self.fits(target, &updated) {
                    Ok(true) => {}
                    Ok(false) => return Outcome::Later,
                    Err(()) => return Outcome::Split(vec![target]),
                }
            }
            for &key in &stale {
                self.remove_from(key, &entry.id);
            }
            if !unchanged {
                self.set_live(target, &updated);
                self.put_into(target, updated);
            }
            return Outcome::Step {
                nodes,
                complete: true,
            };
        }
        // The route changed (a new user name): the entry moves. The copy in
        // the new leaf goes first, so that the new user name is claimed
        // before the old one is given up; the old copy, outdated by its
        // lower move count, is removed in the next round.
        if !self.can_write(target) {
            return Outcome::Split(vec![target]);
        }
        let moved = Entry {
            moves: current.as_ref().map_or(0, |c| c.moves) + 1,
            ..entry.clone()
        };
        match self.fits(target, &moved) {
            Ok(true) => {}
            Ok(false) => return Outcome::Later,
            Err(()) => return Outcome::Split(vec![target]),
        }
        self.set_live(target, &moved);
        self.put_into(target, moved);
        Outcome::Step {
            nodes: vec![target],
            complete: false,
        }
    }

    fn remove(&mut self, ids: &HashSet<String>) -> Outcome {
        let mut touched: Vec<(NodeKey, &str)> = Vec::new();
        for id in ids {
            let copies = self.leaf_of(id).into_iter().chain(self.stale_copies(id));
            touched.extend(copies.map(|key| (key, id.as_str())));
        }
        let mut blocked: Vec<NodeKey> = touched
            .iter()
            .map(|(key, _)| *key)
            .filter(|&key| !self.can_write(key))
            .collect();
        if !blocked.is_empty() {
            blocked.sort();
            blocked.dedup();
            return Outcome::Split(blocked);
        }
        for &(key, id) in &touched {
            self.set_removed(id);
            self.remove_from(key, id);
        }
        let mut nodes: Vec<NodeKey> = touched.into_iter().map(|(key, _)| key).collect();
        nodes.sort();
        nodes.dedup();
        Outcome::Step {
            nodes,
            complete: true,
        }
    }
}

/// One round of a group commit: the node writes that take as many of the
/// `open` changes as far as they can, applied in order on a working copy of
/// `snapshot`, or the splits that must come first.
///
/// A change to verify that `snapshot` shows as made already, and a change
/// whose user name `snapshot` gives another id, are left for later unless the
/// nodes they depend on are `fresh` (read by this commit): a cached index may
/// name a holder that has since been renamed or deleted, and a refusal (or a
/// creator deleting what it created) must not rest on that.
pub(crate) fn plan(
    snapshot: &Snapshot,
    open: Vec<Pending>,
    fresh: &Fresh,
    limits: Limits,
    lost: &HashMap<NodeKey, u32>,
) -> Round {
    let mut round = Round::default();
    let mut view = View {
        base: snapshot,
        limits,
        lost,
        bodies: HashMap::new(),
        sizes: HashMap::new(),
        by_id: HashMap::new(),
        by_user: HashMap::new(),
    };
    let mut splits: Vec<NodeKey> = Vec::new();
    // Ids with a change left for later: their later changes wait too, so
    // that the changes to one id keep their order.
    let mut blocked: HashSet<String> = HashSet::new();
    for pending in open {
        let outcome = if pending.op.ids().any(|id| blocked.contains(id)) {
            Outcome::Later
        } else {
            match &pending.op {
                Op::Upsert(entry) => view.upsert(entry),
                Op::Remove(ids) => view.remove(ids),
            }
        };
        match outcome {
            Outcome::Step { nodes, .. }
                if nodes.is_empty()
                    && pending.verify
                    && !pending.stepped
                    && !fresh.covers(leaves_of_op(snapshot, &pending.op).as_deref()) =>
            {
                blocked.extend(pending.op.ids().map(str::to_owned));
                round.later.push(pending);
            }
            Outcome::Step { nodes, complete } => round.stepped.push((pending, nodes, complete)),
            Outcome::Taken(_) if !fresh.covers(leaves_of_op(snapshot, &pending.op).as_deref()) => {
                blocked.extend(pending.op.ids().map(str::to_owned));
                round.later.push(pending);
            }
            Outcome::Taken(holder) => round.taken.push((pending, holder)),
            Outcome::Split(keys) => {
                splits.extend(keys);
                blocked.extend(pending.op.ids().map(str::to_owned));
                round.later.push(pending);
            }
            Outcome::Later => {
                blocked.extend(pending.op.ids().map(str::to_owned));
                round.later.push(pending);
            }
        }
    }
    if !splits.is_empty() {
        // Splits first: the round's writes wait for the tree they make.
        splits.sort();
        splits.dedup();
        round.splits = splits;
        let mut again: Vec<Pending> = round
            .stepped
            .drain(..)
            .map(|(p, _, _)| p)
            .chain(round.later.drain(..))
            .collect();
        again.sort_by_key(|p| p.seq);
        round.later = again;
        return round;
    }
    let mut writes: Vec<(NodeKey, NodeBody)> = view.bodies.into_iter().collect();
    writes.sort_by_key(|(key, _)| *key);
    round.writes = writes;
    round
}

/// The leaves that the changes of `open` read or write in `snapshot`: what
/// to read again to be sure of them. `None` when a removal names an id that
/// `snapshot` does not list: only the whole index can say where it is now.
pub(crate) fn leaves_of(snapshot: &Snapshot, open: &[Pending]) -> Option<Vec<NodeKey>> {
    let mut keys: Vec<NodeKey> = Vec::new();
    for pending in open {
        keys.extend(leaves_of_op(snapshot, &pending.op)?);
    }
    keys.sort();
    keys.dedup();
    Some(keys)
}

/// The leaves that change `op` reads or writes in `snapshot` (see [`leaves_of`]).
fn leaves_of_op(snapshot: &Snapshot, op: &Op) -> Option<Vec<NodeKey>> {
    let mut keys: Vec<NodeKey> = Vec::new();
    match op {
        Op::Upsert(entry) => keys.extend(snapshot.leaf_for(entry.route())),
        Op::Remove(ids) if ids.iter().any(|id| snapshot.leaf_of(id).is_none()) => {
            return None;
        }
        Op::Remove(_) => {}
    }
    for id in op.ids() {
        keys.extend(snapshot.leaf_of(id));
        keys.extend_from_slice(snapshot.stale_copies(id));
    }
    Some(keys)
}

/// The bodies of the two children of leaf `parent` (depth `depth`): its
/// entries, each under the child its route falls in.
pub(crate) fn split_entries(parent: NodeKey, body: &NodeBody) -> [Vec<Entry>; 2] {
    let mut children = [Vec::new(), Vec::new()];
    for entry in &body.entries {
        let side = usize::from(parent.child(1).covers(entry.route()));
        children[side].push(entry.clone());
    }
    children
}

#[cfg(test)]
mod tests;
