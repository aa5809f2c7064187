//! The index's I/O: reading nodes (one at a time, along a route, or the whole
//! tree), compare-and-swap writes, and splits.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::Index;
use super::node::{FORMAT, MAX_DEPTH, NodeBody, NodeKey};
use super::planner::split_entries;
use super::snapshot::{Node, unresolved};
use crate::error::StoreError;
use crate::secrets_manager::api::{Created, Fetched};
use crate::secrets_manager::swap::{Staging, Swap};
use crate::token::MAX_TOKEN_BYTES;

/// The most names one `BatchGetSecretValue` takes.
const BATCH: usize = 20;
/// Concurrent batch reads of one tree read.
const CONCURRENCY: usize = 8;
/// Levels below the expected leaf that a route read asks for in its first call.
const ROUTE_LOOKAHEAD: u8 = 4;
/// Rounds of re-reading nodes a concurrent split changed before giving up.
const READ_ROUNDS: usize = 80;

/// How a compare-and-swap ended.
#[derive(Debug)]
pub(crate) enum Cas {
    /// Written: the new version.
    Won(String),
    /// Another writer got there first; `versioned`: this attempt still made
    /// a version (which Secrets Manager counts for a day).
    Lost { versioned: bool },
}

impl Index {
    /// The error for nodes that stay missing, or older than their parent's
    /// split, however often they are read.
    fn unresolvable(&self, wanted: &[NodeKey]) -> StoreError {
        StoreError::Corrupt {
            id: wanted
                .first()
                .map_or_else(String::new, |key| self.layout.index_node(&key.suffix())),
            reason: "index node is missing or older than its parent's split after repeated reads; \
                     run repair() to rebuild the index"
                .into(),
        }
    }

    fn decode(
        &self,
        key: NodeKey,
        value: Option<String>,
        version: Option<String>,
    ) -> Result<Node, StoreError> {
        let name = self.layout.index_node(&key.suffix());
        let corrupt = |reason: &str| StoreError::Corrupt {
            id: name.clone(),
            reason: format!("index node {reason}; run repair() to rebuild the index"),
        };
        let json = value.ok_or_else(|| corrupt("is a binary secret"))?;
        let body: NodeBody =
            serde_json::from_str(&json).map_err(|_| corrupt("is not valid index JSON"))?;
        if body.format != FORMAT {
            return Err(corrupt("has an unknown format version"));
        }
        Ok(Node {
            version,
            body: Arc::new(body),
        })
    }

    /// Reads `keys` (20 to a call, concurrently). A node whose secret does
    /// not exist (or is scheduled for deletion) reads as an absent leaf.
    pub(crate) async fn read_nodes(
        &self,
        keys: &[NodeKey],
    ) -> Result<HashMap<NodeKey, Node>, StoreError> {
        if keys.len() == 1 {
            // One node: GetSecretValue, which LocalStack and AWS answer fastest.
            return self.read_nodes_exact(keys).await;
        }
        let batches = futures::stream::iter(keys.chunks(BATCH).map(<[NodeKey]>::to_vec))
            .map(|chunk| async move {
                let names = chunk
                    .iter()
                    .map(|k| self.layout.index_node(&k.suffix()))
                    .collect();
                self.api.batch_get_or_exact(names).await
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        let mut by_name: HashMap<String, (Option<String>, Option<String>)> = batches
            .into_iter()
            .flatten()
            .map(|(name, value, version)| (name, (value, version)))
            .collect();
        let mut nodes = HashMap::with_capacity(keys.len());
        for &key in keys {
            let node = match by_name.remove(&self.layout.index_node(&key.suffix())) {
                Some((value, version)) => self.decode(key, value, version)?,
                None => Node::absent(),
            };
            nodes.insert(key, node);
        }
        Ok(nodes)
    }

    /// Reads `keys` one `GetSecretValue` each (8 in flight): the value and
    /// version that hold `AWSCURRENT`, for a writer about to compare and swap.
    ///
    /// `BatchGetSecretValue` is cheaper for reading many nodes, but LocalStack
    /// 4.13 can answer it with an older version of a secret whose version
    /// stages it updated under concurrent load (its "current version" field
    /// lags the `AWSCURRENT` label); a writer that swapped from that version
    /// would lose every attempt. `GetSecretValue` follows the label.
    pub(crate) async fn read_nodes_exact(
        &self,
        keys: &[NodeKey],
    ) -> Result<HashMap<NodeKey, Node>, StoreError> {
        futures::stream::iter(keys.iter().copied())
            .map(|key| async move {
                let name = self.layout.index_node(&key.suffix());
                let node = match self.api.get(&name).await? {
                    Fetched::Value { string, version_id } => {
                        self.decode(key, string, version_id)?
                    }
                    Fetched::Absent | Fetched::Deleted => Node::absent(),
                };
                Ok::<_, StoreError>((key, node))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// `nodes` with `keys` read again exactly (see [`Index::read_nodes_exact`]),
    /// and the children of any that were split since; and every node read.
    pub(crate) async fn reread(
        &self,
        mut nodes: HashMap<NodeKey, Node>,
        keys: &[NodeKey],
    ) -> Result<(HashMap<NodeKey, Node>, Vec<NodeKey>), StoreError> {
        let mut wanted = keys.to_vec();
        let mut read = Vec::new();
        for _ in 0..READ_ROUNDS {
            nodes.extend(Box::pin(self.read_nodes_exact(&wanted)).await?);
            read.append(&mut wanted);
            wanted = unresolved(&nodes, None);
            if wanted.is_empty() {
                return Ok((nodes, read));
            }
        }
        Err(self.unresolvable(&wanted))
    }

    /// Reads the whole tree: level by level from the root, re-reading any
    /// child older than its parent's split (a split committed mid-read).
    ///
    /// `known` are nodes a previous read found: read in the first round
    /// with the root, they save most trees a round trip per level.
    pub(crate) async fn read_tree(
        &self,
        known: Vec<NodeKey>,
    ) -> Result<HashMap<NodeKey, Node>, StoreError> {
        let mut first = known;
        if !first.contains(&NodeKey::ROOT) {
            first.push(NodeKey::ROOT);
        }
        self.read_consistent(first, None).await
    }

    /// Reads the nodes on `route`'s path: down to a few levels below
    /// `depth_hint` (the depth of the leaf when last seen) in one call, then
    /// deeper if the tree is. Most trees are a handful of levels deep, and a
    /// name that does not exist still costs the service a lookup.
    pub(crate) async fn read_route(
        &self,
        route: u64,
        depth_hint: u8,
    ) -> Result<HashMap<NodeKey, Node>, StoreError> {
        let depth = depth_hint
            .saturating_add(ROUTE_LOOKAHEAD)
            .min(BATCH as u8 - 1);
        let path = NodeKey::path(route, depth);
        self.read_consistent(path, Some(route)).await
    }

    async fn read_consistent(
        &self,
        first: Vec<NodeKey>,
        route: Option<u64>,
    ) -> Result<HashMap<NodeKey, Node>, StoreError> {
        let mut nodes = HashMap::new();
        let mut wanted = first;
        for _ in 0..READ_ROUNDS {
            // Boxed: tree reads sit deep inside every store operation's future.
            nodes.extend(Box::pin(self.read_nodes(&wanted)).await?);
            wanted = unresolved(&nodes, route);
            if wanted.is_empty() {
                return Ok(nodes);
            }
            if let (Some(route), [below]) = (route, wanted.as_slice()) {
                // Deeper than expected: the next few levels in one call.
                let from = below.depth();
                wanted = NodeKey::path(route, from.saturating_add(ROUTE_LOOKAHEAD).min(MAX_DEPTH))
                    .into_iter()
                    .filter(|k| k.depth() >= from)
                    .collect();
            }
        }
        Err(self.unresolvable(&wanted))
    }

    /// Replaces node `key` by `body` if its `AWSCURRENT` version is still
    /// `previous` (`None`: the secret does not exist yet).
    ///
    /// A node that does not exist yet is created; one that does is written
    /// by the store's compare-and-swap on version stages ([`Api::swap`]),
    /// under this instance's own label. With `precheck`, the current version
    /// is read first, so that a stale `previous` costs a read instead of a
    /// version.
    ///
    /// [`Api::swap`]: crate::secrets_manager::api::Api::swap
    pub(crate) async fn cas_node(
        &self,
        key: NodeKey,
        previous: Option<&str>,
        body: &NodeBody,
        precheck: bool,
    ) -> Result<Cas, StoreError> {
        let name = self.layout.index_node(&key.suffix());
        let json = body.encode();
        if json.len() > MAX_TOKEN_BYTES {
            return Err(StoreError::backend(
                format!("index write {name}"),
                "index node would exceed the 64 KiB secret size limit",
            ));
        }
        // Also the idempotency token: an SDK retry of the same request is a no-op.
        let request_token = uuid::Uuid::new_v4().to_string();
        let Some(previous) = previous else {
            return match self.api.create(&name, &json, &request_token).await? {
                Created::Yes(version) => Ok(Cas::Won(version)),
                Created::Exists => Ok(Cas::Lost { versioned: false }),
                Created::Deleted => {
                    self.api.restore(&name).await?;
                    Ok(Cas::Lost { versioned: false })
                }
            };
        };
        if precheck {
            let current = match self.api.get(&name).await? {
                Fetched::Value { version_id, .. } => version_id,
                Fetched::Absent | Fetched::Deleted => None,
            };
            if current.as_deref() != Some(previous) {
                return Ok(Cas::Lost { versioned: false });
            }
        }
        match self
            .api
            .swap(
                &name,
                &json,
                &request_token,
                previous,
                Staging::Own(&self.label),
            )
            .await?
        {
            Swap::Won(version) => Ok(Cas::Won(version)),
            Swap::Lost { versioned } => Ok(Cas::Lost { versioned }),
            Swap::Gone { scheduled: false } => Ok(Cas::Lost { versioned: false }),
            Swap::Gone { scheduled: true } => {
                self.api.restore(&name).await?;
                Ok(Cas::Lost { versioned: false })
            }
        }
    }

    /// Splits leaf `key`, as `seen` in a snapshot: its entries go to its two
    /// children, then the leaf is marked split. `Ok(true)` when this call
    /// committed the split; `Ok(false)` when the leaf changed first (read
    /// again and re-plan). `lost` counts versions of lost attempts per node.
    ///
    /// Safe against concurrent writers and splitters because the children
    /// are read *before* the leaf is re-read and written by compare-and-swap
    /// from the versions read: a child written by anyone after the split was
    /// committed fails this splitter's swap, and a child read after that
    /// write comes with a leaf re-read that shows the split. The split marker
    /// records each child's write count, so readers can tell a child older
    /// than the split.
    pub(crate) async fn split(
        &self,
        key: NodeKey,
        seen: &Node,
        now: u64,
        lost: &mut HashMap<NodeKey, u32>,
    ) -> Result<bool, StoreError> {
        let children = [key.child(0), key.child(1)];
        let before = self.read_nodes_exact(&children).await?;
        let leaf = self
            .read_nodes_exact(&[key])
            .await?
            .remove(&key)
            .unwrap_or_else(Node::absent);
        if leaf.version.is_none() || leaf.version != seen.version || leaf.body.split.is_some() {
            return Ok(false);
        }
        let parts = split_entries(key, &leaf.body);
        let mut seqs = [0u64; 2];
        let writes = children.iter().zip(parts).map(|(child, entries)| {
            let previous = before.get(child).cloned().unwrap_or_else(Node::absent);
            let versions = 1 + lost.get(child).copied().unwrap_or(0);
            let body = NodeBody {
                entries,
                ..NodeBody::empty()
            }
            .stamped(&previous.body, now, versions);
            async move {
                let outcome = self
                    .cas_node(*child, previous.version.as_deref(), &body, false)
                    .await?;
                Ok::<_, StoreError>((*child, body.seq, outcome))
            }
        });
        let mut committed = true;
        for (i, result) in futures::future::join_all(writes)
            .await
            .into_iter()
            .enumerate()
        {
            let (child, seq, outcome) = result?;
            match outcome {
                Cas::Won(_) => {
                    lost.remove(&child);
                    seqs[i] = seq;
                }
                Cas::Lost { versioned } => {
                    *lost.entry(child).or_default() += u32::from(versioned);
                    committed = false;
                }
            }
        }
        if !committed {
            return Ok(false);
        }
        let versions = 1 + lost.get(&key).copied().unwrap_or(0);
        let marker = NodeBody {
            split: Some(seqs),
            ..NodeBody::empty()
        }
        .stamped(&leaf.body, now, versions);
        match self
            .cas_node(key, leaf.version.as_deref(), &marker, false)
            .await?
        {
            Cas::Won(_) => {
                lost.remove(&key);
                Ok(true)
            }
            Cas::Lost { versioned } => {
                *lost.entry(key).or_default() += u32::from(versioned);
                Ok(false)
            }
        }
    }
}
