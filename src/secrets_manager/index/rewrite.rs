//! Replacing the whole index, for `repair`.

use std::collections::HashMap;

use super::cas::Cas;
use super::node::{Entry, MAX_DEPTH, NodeBody, NodeKey};
use super::{Index, MAX_ATTEMPTS, SEAL_BYTES, backoff, planner};
use crate::error::StoreError;
use crate::secrets_manager::api::Fetched;

impl Index {
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
                        Fetched::Value { version_id, string } => {
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
