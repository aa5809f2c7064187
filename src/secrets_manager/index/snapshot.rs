//! [`Snapshot`]: the index tree as read at one time, with its lookup maps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::node::{Entry, NodeBody, NodeKey, route_of_user};
use crate::store::LookupKey;

/// One node as read: the version holding `AWSCURRENT` (`None` when the
/// secret does not exist yet) and its value.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) version: Option<String>,
    pub(crate) body: Arc<NodeBody>,
}

impl Node {
    /// A node whose secret does not exist: an empty leaf.
    pub(crate) fn absent() -> Self {
        Self {
            version: None,
            body: Arc::new(NodeBody::empty()),
        }
    }
}

/// The children of split nodes that `nodes` lacks, or holds older than the
/// split: what a reader must (re-)read for a consistent tree. `nodes` should
/// hold the root; nodes unreachable from it are ignored.
pub(crate) fn unresolved(nodes: &HashMap<NodeKey, Node>, route: Option<u64>) -> Vec<NodeKey> {
    let mut wanted = Vec::new();
    let mut stack = vec![NodeKey::ROOT];
    while let Some(key) = stack.pop() {
        let Some(node) = nodes.get(&key) else {
            wanted.push(key);
            continue;
        };
        let Some(seqs) = node.body.split else {
            continue;
        };
        for bit in 0..2 {
            let child = key.child(bit);
            if route.is_some_and(|r| !child.covers(r)) {
                continue;
            }
            match nodes.get(&child) {
                Some(c) if c.version.is_some() && c.body.seq >= seqs[bit as usize] => {
                    stack.push(child);
                }
                _ => wanted.push(child),
            }
        }
    }
    wanted
}

/// The index tree (or the part of it on one route) as read at one time.
#[derive(Debug)]
pub(crate) struct Snapshot {
    nodes: HashMap<NodeKey, Node>,
    /// The leaf holding each id's live entry.
    by_id: HashMap<String, NodeKey>,
    /// The id of each user name's live entry.
    by_user: HashMap<String, String>,
    /// Leaves holding an outdated copy of an id's entry (left by a move
    /// interrupted between its two writes).
    stale: HashMap<String, Vec<NodeKey>>,
    pub(crate) loaded_at: Instant,
    /// The ticket of the read this view is as new as: a snapshot derived
    /// from a write keeps the one of the read it started from.
    pub(crate) read: u64,
}

impl Snapshot {
    /// The snapshot of `nodes` (a consistent read from the root).
    pub(crate) fn new(nodes: HashMap<NodeKey, Node>, read: u64) -> Self {
        let mut by_id: HashMap<String, (NodeKey, u32)> = HashMap::new();
        let mut stale: HashMap<String, Vec<NodeKey>> = HashMap::new();
        let mut leaves: Vec<(&NodeKey, &Node)> = reachable_leaves(&nodes);
        // A deterministic order, so that ties between copies break alike everywhere.
        leaves.sort_by_key(|(key, _)| **key);
        for (key, node) in &leaves {
            for entry in &node.body.entries {
                match by_id.get(&entry.id) {
                    Some(&(_, moves)) if moves >= entry.moves => {
                        stale.entry(entry.id.clone()).or_default().push(**key);
                    }
                    Some(&(previous, _)) => {
                        stale.entry(entry.id.clone()).or_default().push(previous);
                        by_id.insert(entry.id.clone(), (**key, entry.moves));
                    }
                    None => {
                        by_id.insert(entry.id.clone(), (**key, entry.moves));
                    }
                }
            }
        }
        let mut by_user = HashMap::new();
        for (key, node) in &leaves {
            for entry in &node.body.entries {
                if let Some(user) = &entry.user
                    && by_id.get(&entry.id).map(|(k, _)| k) == Some(key)
                {
                    by_user.insert(user.clone(), entry.id.clone());
                }
            }
        }
        Self {
            by_id: by_id.into_iter().map(|(id, (key, _))| (id, key)).collect(),
            by_user,
            stale,
            nodes,
            loaded_at: Instant::now(),
            read,
        }
    }

    /// The nodes this snapshot was built from.
    pub(crate) fn nodes(&self) -> &HashMap<NodeKey, Node> {
        &self.nodes
    }

    /// This snapshot with `written` nodes replaced (after writes that won).
    pub(crate) fn with_nodes(&self, written: impl IntoIterator<Item = (NodeKey, Node)>) -> Self {
        let mut nodes = self.nodes.clone();
        nodes.extend(written);
        Self::new(nodes, self.read)
    }

    /// Every indexed token id.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.by_id.keys().cloned().collect()
    }

    /// The nodes this snapshot holds that exist as secrets.
    pub(crate) fn node_keys(&self) -> Vec<NodeKey> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.version.is_some())
            .map(|(k, _)| *k)
            .collect()
    }

    /// How many tokens are indexed.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// How many index secrets the tree has (split nodes included).
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.values().filter(|n| n.version.is_some()).count()
    }

    /// How many leaves hold entries.
    pub(crate) fn leaf_count(&self) -> usize {
        reachable_leaves(&self.nodes).len()
    }

    pub(crate) fn node(&self, key: NodeKey) -> Option<&Node> {
        self.nodes.get(&key)
    }

    /// The leaf that covers `route`, if this snapshot holds it.
    pub(crate) fn leaf_for(&self, route: u64) -> Option<NodeKey> {
        let mut key = NodeKey::ROOT;
        loop {
            let node = self.nodes.get(&key)?;
            if node.body.split.is_none() {
                return Some(key);
            }
            key = key.child_for(route);
        }
    }

    /// The live entry of token `id`.
    pub(crate) fn entry(&self, id: &str) -> Option<&Entry> {
        let key = self.by_id.get(id)?;
        self.nodes[key]
            .body
            .entries
            .iter()
            .filter(|e| e.id == id)
            .max_by_key(|e| e.moves)
    }

    /// The leaf of token `id`'s live entry.
    pub(crate) fn leaf_of(&self, id: &str) -> Option<NodeKey> {
        self.by_id.get(id).copied()
    }

    /// Leaves with outdated copies of `id`'s entry.
    pub(crate) fn stale_copies(&self, id: &str) -> &[NodeKey] {
        self.stale.get(id).map_or(&[], Vec::as_slice)
    }

    /// The id of the token whose live entry has user name `user`.
    pub(crate) fn user_holder(&self, user: &str) -> Option<&str> {
        self.by_user.get(user).map(String::as_str)
    }

    /// The token ids whose entries match `key` (access tokens are not indexed).
    pub(crate) fn candidates(&self, key: &LookupKey<'_>) -> Vec<String> {
        match *key {
            LookupKey::UserName(user) => {
                // Only the leaf the user name routes to can hold it.
                let Some(leaf) = self.leaf_for(route_of_user(user)) else {
                    return Vec::new();
                };
                self.nodes[&leaf]
                    .body
                    .entries
                    .iter()
                    .filter(|e| e.user.as_deref() == Some(user))
                    .filter(|e| self.by_id.get(&e.id) == Some(&leaf))
                    .map(|e| e.id.clone())
                    .collect()
            }
            LookupKey::AccessToken(_) => Vec::new(),
            LookupKey::RefreshToken(value) | LookupKey::GrantToken(value) => {
                let wanted = Some(super::node::hash(value));
                let grant = matches!(key, LookupKey::GrantToken(_));
                self.by_id
                    .keys()
                    .filter_map(|id| self.entry(id))
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
}

/// The leaves reachable from the root.
fn reachable_leaves(nodes: &HashMap<NodeKey, Node>) -> Vec<(&NodeKey, &Node)> {
    let mut leaves = Vec::new();
    let mut stack = vec![NodeKey::ROOT];
    while let Some(key) = stack.pop() {
        let Some((key, node)) = nodes.get_key_value(&key) else {
            continue;
        };
        if node.body.split.is_some() {
            stack.push(key.child(0));
            stack.push(key.child(1));
        } else {
            leaves.push((key, node));
        }
    }
    leaves
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(id: &str, user: &str) -> Entry {
        Entry {
            id: id.into(),
            user: Some(user.into()),
            refresh: None,
            grant: None,
            moves: 0,
        }
    }

    pub(crate) fn node(seq: u64, split: Option<[u64; 2]>, entries: Vec<Entry>) -> Node {
        Node {
            version: Some(format!("v{seq}")),
            body: Arc::new(NodeBody {
                seq,
                split,
                entries,
                ..NodeBody::empty()
            }),
        }
    }

    #[test]
    fn a_split_node_needs_both_children_at_least_as_new_as_the_split() {
        let r0 = NodeKey::ROOT.child(0);
        let r1 = NodeKey::ROOT.child(1);
        let mut nodes = HashMap::new();
        nodes.insert(NodeKey::ROOT, node(3, Some([2, 1]), vec![]));
        assert_eq!(unresolved(&nodes, None), vec![r0, r1]);
        nodes.insert(r0, node(1, None, vec![]));
        nodes.insert(r1, node(1, None, vec![]));
        // r0 is older than the split recorded.
        assert_eq!(unresolved(&nodes, None), vec![r0]);
        nodes.insert(r0, node(2, None, vec![]));
        assert!(unresolved(&nodes, None).is_empty());
        // Along one route, only that side matters.
        nodes.remove(&r1);
        assert!(unresolved(&nodes, Some(0)).is_empty());
        assert_eq!(unresolved(&nodes, Some(u64::MAX)), vec![r1]);
    }

    #[test]
    fn the_copy_that_moved_more_is_live() {
        let r0 = NodeKey::ROOT.child(0);
        let r1 = NodeKey::ROOT.child(1);
        let moved = Entry {
            moves: 1,
            ..entry("a", "new")
        };
        let mut nodes = HashMap::new();
        nodes.insert(NodeKey::ROOT, node(2, Some([1, 1]), vec![]));
        nodes.insert(r0, node(1, None, vec![entry("a", "old"), entry("b", "ub")]));
        nodes.insert(r1, node(1, None, vec![moved.clone()]));
        let snapshot = Snapshot::new(nodes, 0);
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot.entry("a"), Some(&moved));
        assert_eq!(snapshot.user_holder("new"), Some("a"));
        assert_eq!(snapshot.user_holder("old"), None);
        assert_eq!(snapshot.user_holder("ub"), Some("b"));
        assert_eq!(snapshot.stale_copies("a"), &[r0]);
        assert_eq!(snapshot.leaf_of("a"), Some(r1));
    }
}
