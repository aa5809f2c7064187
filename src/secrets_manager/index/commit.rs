//! The group commit: an instance's concurrent index changes, queued and
//! applied together by whichever caller holds the write lock, in rounds
//! that the [`planner`](super::planner) plans and the node
//! compare-and-swap ([`cas`](super::cas)) writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use tokio::sync::oneshot;

use super::cas::Cas;
use super::node::{NodeBody, NodeKey};
use super::planner::{self, Fresh, Limits, Op, Pending, plan};
use super::snapshot::{Node, Snapshot};
use super::{
    CONCURRENCY, Index, MAX_ATTEMPTS, MAX_RECENT_WRITES, PRECHECK_AFTER, SEAL_BYTES, UpdateError,
    backoff,
};
use crate::error::StoreError;

impl Index {
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
    pub(super) async fn submit(&self, ops: Vec<Op>, verify: bool) -> Vec<Result<(), UpdateError>> {
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
