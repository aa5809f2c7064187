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
    Step { nodes: Vec<NodeKey>, complete: bool },
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
        let replaced = self
            .body(key)
            .map_or(0, |b| b.entries.iter().filter(|e| e.id == entry.id).map(Entry::encoded_len).sum());
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
            let blocked: Vec<NodeKey> = nodes.iter().copied().filter(|&k| !self.can_write(k)).collect();
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
/// A change to verify that `snapshot` shows as made already is left for
/// later unless `snapshot` is `fresh` (read by this commit).
pub(crate) fn plan(
    snapshot: &Snapshot,
    open: Vec<Pending>,
    fresh: bool,
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
            Outcome::Step { nodes, .. } if nodes.is_empty() && pending.verify && !fresh && !pending.stepped => {
                blocked.extend(pending.op.ids().map(str::to_owned));
                round.later.push(pending);
            }
            Outcome::Step { nodes, complete } => round.stepped.push((pending, nodes, complete)),
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
mod tests {
    use super::*;
    use crate::secrets_manager::index::snapshot::Node;
    use crate::secrets_manager::index::snapshot::tests::{entry, node};
    use std::sync::Arc;

    const LIMITS: Limits = Limits {
        seal_bytes: 48 * 1024,
        max_recent_writes: 60,
        now: 1_000_000,
    };

    fn snapshot_of(entries: Vec<Entry>) -> Snapshot {
        let mut nodes = HashMap::new();
        nodes.insert(NodeKey::ROOT, node(1, None, entries));
        Snapshot::new(nodes, 0)
    }

    fn pending(seq: u64, op: Op) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            seq,
            op,
            verify: false,
            stepped: false,
            reply,
        }
    }

    fn seqs<'a>(batch: impl IntoIterator<Item = &'a Pending>) -> Vec<u64> {
        batch.into_iter().map(|p| p.seq).collect()
    }

    fn no_loss() -> HashMap<NodeKey, u32> {
        HashMap::new()
    }

    #[test]
    fn a_group_commit_takes_every_new_entry_in_one_write() {
        let snapshot = snapshot_of(vec![entry("a", "ua")]);
        let batch = (0..20)
            .map(|n| pending(n, Op::Upsert(entry(&format!("n{n}"), &format!("u{n}")))))
            .collect();
        let round = plan(&snapshot, batch, false, LIMITS, &no_loss());
        assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), (0..20).collect::<Vec<_>>());
        assert!(round.later.is_empty() && round.taken.is_empty() && round.splits.is_empty());
        assert_eq!(round.writes.len(), 1);
        assert_eq!(round.writes[0].1.entries.len(), 21);
    }

    #[test]
    fn a_user_name_goes_to_the_first_change_that_claims_it() {
        let snapshot = snapshot_of(vec![entry("a", "taken")]);
        let batch = vec![
            pending(0, Op::Upsert(entry("x", "taken"))),
            pending(1, Op::Upsert(entry("y", "new"))),
            pending(2, Op::Upsert(entry("z", "new"))),
        ];
        let round = plan(&snapshot, batch, false, LIMITS, &no_loss());
        assert_eq!(round.taken.len(), 1);
        assert_eq!(round.taken[0].0.seq, 0);
        assert_eq!(round.taken[0].1, "a");
        assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![1]);
        assert_eq!(seqs(&round.later), vec![2]);

        let (key, body) = round.writes.into_iter().next().unwrap();
        let next = snapshot.with_nodes([(key, Node { version: Some("v2".into()), body: Arc::new(body) })]);
        let round = plan(&next, round.later, false, LIMITS, &no_loss());
        assert_eq!(round.taken.len(), 1);
        assert_eq!(round.taken[0].1, "y");
        assert!(round.writes.is_empty());
    }

    #[test]
    fn changes_to_one_id_apply_in_order() {
        let snapshot = snapshot_of(vec![entry("a", "ua")]);
        let batch = vec![
            pending(0, Op::Upsert(entry("b", "ub"))),
            pending(1, Op::Remove(["b".to_owned()].into())),
            pending(2, Op::Upsert(entry("a", "ua"))),
            pending(3, Op::Remove(["a".to_owned()].into())),
            pending(4, Op::Upsert(entry("a", "ua"))),
        ];
        let round = plan(&snapshot, batch, false, LIMITS, &no_loss());
        assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![0, 1, 2, 3, 4]);
        assert_eq!(round.writes[0].1.entries, vec![entry("a", "ua")]);
    }

    #[test]
    fn nothing_to_write_when_the_index_has_it_all() {
        let snapshot = snapshot_of(vec![entry("a", "ua")]);
        let batch = vec![
            pending(0, Op::Upsert(entry("a", "ua"))),
            pending(1, Op::Remove(["gone".to_owned()].into())),
        ];
        let round = plan(&snapshot, batch, false, LIMITS, &no_loss());
        assert!(round.writes.is_empty());
        assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![0, 1]);
    }

    #[test]
    fn changes_to_verify_that_a_cached_index_shows_made_wait_for_a_fresh_read() {
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
        let round = plan(&snapshot, batch(), false, LIMITS, &no_loss());
        assert_eq!(seqs(&round.later), vec![0, 1, 3]);
        assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![2]);
        let round = plan(&snapshot, batch(), true, LIMITS, &no_loss());
        assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_full_leaf_takes_what_fits_then_is_split() {
        let mut entries = Vec::new();
        let mut n = 0;
        while snapshot_of(entries.clone()).node(NodeKey::ROOT).unwrap().body.encode().len()
            < LIMITS.seal_bytes - 300
        {
            entries.push(entry(&format!("id{n:05}"), &format!("user{n:05}@example.com")));
            n += 1;
        }
        let snapshot = snapshot_of(entries);
        let batch: Vec<Pending> = (0..10)
            .map(|k| {
                let user = format!("someone.new.{k}@example.com");
                pending(k, Op::Upsert(entry(&format!("new-token-{k:02}"), &user)))
            })
            .collect();
        let round = plan(&snapshot, batch, false, LIMITS, &no_loss());
        // What fit is written; the rest waits.
        assert!(!round.stepped.is_empty() && !round.later.is_empty());
        assert_eq!(round.stepped.len() + round.later.len(), 10);
        let (_, body) = &round.writes[0];
        assert!(body.encode().len() <= LIMITS.seal_bytes);
        // Once written, the full leaf is split before it takes more.
        let next = snapshot.with_nodes([(
            NodeKey::ROOT,
            Node { version: Some("v2".into()), body: Arc::new(round.writes[0].1.clone()) },
        )]);
        let round = plan(&next, round.later, false, LIMITS, &no_loss());
        assert_eq!(round.splits, vec![NodeKey::ROOT]);
        assert!(round.writes.is_empty());
    }

    #[test]
    fn a_leaf_out_of_versions_is_split_before_it_is_written() {
        let mut nodes = HashMap::new();
        let mut body = NodeBody::empty();
        body.writes = vec![LIMITS.now - 10; 59];
        body.entries = vec![entry("a", "ua")];
        nodes.insert(NodeKey::ROOT, Node { version: Some("v".into()), body: Arc::new(body) });
        let snapshot = Snapshot::new(nodes, 0);
        let add = || vec![pending(0, Op::Upsert(entry("b", "ub")))];
        // 59 recent versions: one more write fits.
        let round = plan(&snapshot, add(), false, LIMITS, &no_loss());
        assert_eq!(round.writes.len(), 1);
        // A lost attempt of this writer made the 60th: split first.
        let lost = HashMap::from([(NodeKey::ROOT, 1)]);
        let round = plan(&snapshot, add(), false, LIMITS, &lost);
        assert_eq!(round.splits, vec![NodeKey::ROOT]);
        // Versions older than a day do not count.
        let later = Limits { now: LIMITS.now + 24 * 3600, ..LIMITS };
        let round = plan(&snapshot, add(), false, later, &lost);
        assert_eq!(round.writes.len(), 1);
    }

    #[test]
    fn a_new_user_name_moves_the_entry_in_two_steps() {
        let snapshot = snapshot_of(vec![entry("a", "old")]);
        let round = plan(&snapshot, vec![pending(0, Op::Upsert(entry("a", "new")))], false, LIMITS, &no_loss());
        // One leaf: in place.
        assert_eq!(round.writes.len(), 1);
        assert_eq!(round.writes[0].1.entries, vec![entry("a", "new")]);

        // Two leaves: the user names route to different children.
        let (old_user, new_user) = (0..)
            .map(|n| (format!("o{n}"), format!("n{n}")))
            .find(|(o, n)| {
                (super::super::node::route_of_user(o) >> 63) != (super::super::node::route_of_user(n) >> 63)
            })
            .unwrap();
        let r0 = NodeKey::ROOT.child(0);
        let r1 = NodeKey::ROOT.child(1);
        let old_side = if r0.covers(super::super::node::route_of_user(&old_user)) { r0 } else { r1 };
        let new_side = if old_side == r0 { r1 } else { r0 };
        let mut nodes = HashMap::new();
        nodes.insert(NodeKey::ROOT, node(2, Some([1, 1]), vec![]));
        nodes.insert(old_side, node(1, None, vec![entry("a", &old_user)]));
        nodes.insert(new_side, node(1, None, vec![]));
        let snapshot = Snapshot::new(nodes, 0);
        let round = plan(&snapshot, vec![pending(0, Op::Upsert(entry("a", &new_user)))], false, LIMITS, &no_loss());
        assert_eq!(round.writes.len(), 1);
        assert_eq!(round.writes[0].0, new_side);
        assert_eq!(round.writes[0].1.entries[0].moves, 1);
        assert!(!round.stepped[0].2, "the old copy is left for the next round");
        let next = snapshot.with_nodes([(
            new_side,
            Node { version: Some("v2".into()), body: Arc::new(round.writes[0].1.clone()) },
        )]);
        assert_eq!(next.user_holder(&old_user), None);
        assert_eq!(next.user_holder(&new_user), Some("a"));
        let (pending, _, _) = round.stepped.into_iter().next().unwrap();
        let round = plan(&next, vec![pending], false, LIMITS, &no_loss());
        assert_eq!(round.writes.len(), 1);
        assert_eq!(round.writes[0].0, old_side);
        assert!(round.writes[0].1.entries.is_empty());
        assert!(round.stepped[0].2);
    }

    #[test]
    fn split_entries_follow_their_routes() {
        let body = NodeBody {
            entries: (0..50).map(|n| entry(&format!("i{n}"), &format!("u{n}"))).collect(),
            ..NodeBody::empty()
        };
        let [left, right] = split_entries(NodeKey::ROOT, &body);
        assert_eq!(left.len() + right.len(), 50);
        assert!(left.iter().all(|e| NodeKey::ROOT.child(0).covers(e.route())));
        assert!(right.iter().all(|e| NodeKey::ROOT.child(1).covers(e.route())));
    }
}
