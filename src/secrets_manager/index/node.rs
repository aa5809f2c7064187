//! What index secrets hold: token entries, node bodies, and which node a
//! token's entry belongs to.
//!
//! The index is a binary tree of secrets over a 64-bit hash of each entry's
//! *route*: its user name when it has one (so that every writer introducing
//! a user name meets the others at one node's compare-and-swap, which keeps
//! user names unique), else its id. A node covers the hashes whose first
//! `depth` bits are its path. A leaf holds the entries routed to it; a split
//! node holds none and records that its two children took over.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::token::{OAuthToken, is_set};

/// Index format version written into every node.
pub(crate) const FORMAT: u32 = 2;
/// The deepest node: a leaf this deep is never split (2^40 leaves).
pub(crate) const MAX_DEPTH: u8 = 40;
/// One day in seconds: Secrets Manager keeps every version this long.
pub(crate) const DAY_SECS: u64 = 24 * 60 * 60;

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
    /// How many times the entry moved to another leaf (its route changed):
    /// of two copies of one id, the one that moved more is the live one.
    #[serde(rename = "m", default, skip_serializing_if = "is_zero")]
    pub(crate) moves: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
            moves: 0,
        }
    }

    /// Whether both entries say the same about their token (moves aside).
    pub(crate) fn same_keys(&self, other: &Self) -> bool {
        self.id == other.id
            && self.user == other.user
            && self.refresh == other.refresh
            && self.grant == other.grant
    }

    /// The hash that decides the entry's leaf.
    pub(crate) fn route(&self) -> u64 {
        match &self.user {
            Some(user) => route_of_user(user),
            None => route_hash(b"i\0", &self.id),
        }
    }

    /// The bytes this entry adds to its node's JSON (with its comma).
    pub(crate) fn encoded_len(&self) -> usize {
        serde_json::to_string(self).map_or(0, |json| json.len()) + 1
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

/// The route of a user name's entry.
pub(crate) fn route_of_user(user: &str) -> u64 {
    route_hash(b"u\0", user)
}

fn route_hash(kind: &[u8], value: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(kind)
        .chain_update(value.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A node of the tree: the first `depth` bits of `bits` are its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeKey {
    bits: u64,
    depth: u8,
}

impl NodeKey {
    /// The root, which covers every hash.
    pub(crate) const ROOT: Self = Self { bits: 0, depth: 0 };

    /// How many bits of path the node has.
    pub(crate) fn depth(self) -> u8 {
        self.depth
    }

    /// Whether hash `route` belongs under this node.
    pub(crate) fn covers(self, route: u64) -> bool {
        self.depth == 0 || (route ^ self.bits) >> (64 - u32::from(self.depth)) == 0
    }

    /// Child `bit` (0 or 1).
    pub(crate) fn child(self, bit: u64) -> Self {
        Self {
            bits: self.bits | ((bit & 1) << (63 - u32::from(self.depth))),
            depth: self.depth + 1,
        }
    }

    /// The child that covers `route`.
    pub(crate) fn child_for(self, route: u64) -> Self {
        self.child((route >> (63 - u32::from(self.depth))) & 1)
    }

    /// The nodes from the root down to the one of depth `depth` on `route`'s path.
    pub(crate) fn path(route: u64, depth: u8) -> Vec<Self> {
        let mut key = Self::ROOT;
        let mut path = vec![key];
        while key.depth < depth {
            key = key.child_for(route);
            path.push(key);
        }
        path
    }

    /// The node's name under `{prefix}/index/`: `r` then its path bits.
    pub(crate) fn suffix(self) -> String {
        let mut name = String::with_capacity(1 + usize::from(self.depth));
        name.push('r');
        for d in 0..u32::from(self.depth) {
            name.push(if (self.bits >> (63 - d)) & 1 == 1 {
                '1'
            } else {
                '0'
            });
        }
        name
    }

    /// The node a name suffix denotes (the inverse of [`NodeKey::suffix`]).
    #[cfg(test)]
    pub(crate) fn parse(suffix: &str) -> Option<Self> {
        let bits = suffix.strip_prefix('r')?;
        if bits.len() > usize::from(MAX_DEPTH) {
            return None;
        }
        let mut key = Self::ROOT;
        for c in bits.chars() {
            key = key.child(match c {
                '0' => 0,
                '1' => 1,
                _ => return None,
            });
        }
        Some(key)
    }
}

/// The JSON value of one index node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeBody {
    #[serde(rename = "v", default)]
    pub(crate) format: u32,
    /// Counts the node's writes: a reader can tell a child older than its
    /// parent's split from the one the split wrote.
    #[serde(rename = "s", default)]
    pub(crate) seq: u64,
    /// When this node's versions were made (Unix seconds), the last 24 hours
    /// of them: the writes Secrets Manager still counts against the node.
    #[serde(rename = "w", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) writes: Vec<u64>,
    /// Split: the `seq` each child had when the split was committed.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub(crate) split: Option<[u64; 2]>,
    #[serde(rename = "e", default)]
    pub(crate) entries: Vec<Entry>,
}

impl NodeBody {
    /// An empty leaf.
    pub(crate) fn empty() -> Self {
        Self {
            format: FORMAT,
            ..Self::default()
        }
    }

    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// How many of the node's versions are less than a day old at `now`.
    pub(crate) fn recent_writes(&self, now: u64) -> usize {
        self.writes
            .iter()
            .filter(|&&at| at.saturating_add(DAY_SECS) > now)
            .count()
    }

    /// This body as the next version of the node, which makes `versions`
    /// versions at `now` (the write, plus the versions of this writer's lost
    /// attempts on the node): the write stamps are kept for a day.
    pub(crate) fn stamped(mut self, previous: &Self, now: u64, versions: u32) -> Self {
        self.seq = previous.seq + 1;
        self.writes = previous
            .writes
            .iter()
            .copied()
            .filter(|&at| at.saturating_add(DAY_SECS) > now)
            .collect();
        self.writes
            .extend(std::iter::repeat_n(now, versions.max(1) as usize));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        let route = 0b1011u64 << 60;
        let path = NodeKey::path(route, 4);
        let names: Vec<String> = path.iter().map(|k| k.suffix()).collect();
        assert_eq!(names, ["r", "r1", "r10", "r101", "r1011"]);
        for key in path {
            assert_eq!(NodeKey::parse(&key.suffix()), Some(key));
            assert!(key.covers(route));
        }
        assert!(!NodeKey::parse("r0").unwrap().covers(route));
        assert_eq!(NodeKey::parse("x1"), None);
        assert_eq!(NodeKey::parse("r12"), None);
    }

    #[test]
    fn children_split_what_their_parent_covers() {
        let parent = NodeKey::parse("r01").unwrap();
        for route in [
            0x4000_0000_0000_0000u64,
            0x7fff_ffff_ffff_ffff,
            0x5555_0000_0000_0000,
        ] {
            assert!(parent.covers(route));
            let child = parent.child_for(route);
            assert!(child.covers(route));
            assert_eq!(child.depth(), 3);
            assert!(!parent.child(1 - ((route >> 61) & 1)).covers(route));
        }
    }

    #[test]
    fn stamps_keep_one_day() {
        let old = NodeBody {
            writes: vec![10, 20, DAY_SECS + 5],
            seq: 7,
            ..NodeBody::empty()
        };
        let now = DAY_SECS + 15;
        assert_eq!(old.recent_writes(now), 2);
        let next = NodeBody::empty().stamped(&old, now, 3);
        assert_eq!(next.seq, 8);
        assert_eq!(next.writes, vec![20, DAY_SECS + 5, now, now, now]);
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
        assert_eq!(entry.route(), route_of_user("u"));
    }
}
