//! The planner's rounds, on snapshots built by hand.
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
    let round = plan(&snapshot, batch, &Fresh::none(), LIMITS, &no_loss());
    assert_eq!(
        seqs(round.stepped.iter().map(|s| &s.0)),
        (0..20).collect::<Vec<_>>()
    );
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
    let round = plan(&snapshot, batch, &Fresh::All, LIMITS, &no_loss());
    assert_eq!(round.taken.len(), 1);
    assert_eq!(round.taken[0].0.seq, 0);
    assert_eq!(round.taken[0].1, "a");
    assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![1]);
    assert_eq!(seqs(&round.later), vec![2]);

    let (key, body) = round.writes.into_iter().next().unwrap();
    let next = snapshot.with_nodes([(
        key,
        Node {
            version: Some("v2".into()),
            body: Arc::new(body),
        },
    )]);
    let round = plan(&next, round.later, &Fresh::All, LIMITS, &no_loss());
    assert_eq!(round.taken.len(), 1);
    assert_eq!(round.taken[0].1, "y");
    assert!(round.writes.is_empty());
}

#[test]
fn a_user_name_is_refused_only_on_a_fresh_read() {
    // The cached index may name a holder another instance has renamed since:
    // the refusal waits for a read of the user's leaf.
    let snapshot = snapshot_of(vec![entry("a", "taken")]);
    let batch = vec![pending(0, Op::Upsert(entry("x", "taken")))];
    let round = plan(&snapshot, batch, &Fresh::none(), LIMITS, &no_loss());
    assert!(round.taken.is_empty() && round.writes.is_empty());
    assert_eq!(seqs(&round.later), vec![0]);

    let mut fresh = Fresh::none();
    fresh.add([NodeKey::ROOT]);
    let round = plan(&snapshot, round.later, &fresh, LIMITS, &no_loss());
    assert_eq!(round.taken.len(), 1);
    assert_eq!(round.taken[0].1, "a");
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
    let round = plan(&snapshot, batch, &Fresh::none(), LIMITS, &no_loss());
    assert_eq!(
        seqs(round.stepped.iter().map(|s| &s.0)),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(round.writes[0].1.entries, vec![entry("a", "ua")]);
}

#[test]
fn nothing_to_write_when_the_index_has_it_all() {
    let snapshot = snapshot_of(vec![entry("a", "ua")]);
    let batch = vec![
        pending(0, Op::Upsert(entry("a", "ua"))),
        pending(1, Op::Remove(["gone".to_owned()].into())),
    ];
    let round = plan(&snapshot, batch, &Fresh::none(), LIMITS, &no_loss());
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
    let round = plan(&snapshot, batch(), &Fresh::none(), LIMITS, &no_loss());
    assert_eq!(seqs(&round.later), vec![0, 1, 3]);
    assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![2]);
    let round = plan(&snapshot, batch(), &Fresh::All, LIMITS, &no_loss());
    assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![0, 1, 2, 3]);
}

#[test]
fn a_change_to_verify_waits_until_its_own_leaf_is_fresh_not_just_any_leaf() {
    // Two leaves; "a" is in the cached copy of its leaf. The commit has
    // read the other leaf again (after losing a swap there): that says
    // nothing about the leaf of "a", which another instance may have
    // changed since it was cached.
    let (user, other_user) = (0..)
        .map(|n| (format!("a{n}"), format!("b{n}")))
        .find(|(a, b)| {
            (super::super::node::route_of_user(a) >> 63)
                != (super::super::node::route_of_user(b) >> 63)
        })
        .unwrap();
    let r0 = NodeKey::ROOT.child(0);
    let r1 = NodeKey::ROOT.child(1);
    let own = if r0.covers(super::super::node::route_of_user(&user)) {
        r0
    } else {
        r1
    };
    let other = if own == r0 { r1 } else { r0 };
    let mut nodes = HashMap::new();
    nodes.insert(NodeKey::ROOT, node(2, Some([1, 1]), vec![]));
    nodes.insert(own, node(1, None, vec![entry("a", &user)]));
    nodes.insert(other, node(1, None, vec![entry("b", &other_user)]));
    let snapshot = Snapshot::new(nodes, 0);
    let batch = || {
        vec![Pending {
            verify: true,
            ..pending(0, Op::Upsert(entry("a", &user)))
        }]
    };
    let other_read = Fresh::Nodes([other].into());
    let round = plan(&snapshot, batch(), &other_read, LIMITS, &no_loss());
    assert_eq!(seqs(&round.later), vec![0], "answered from a cached leaf");
    assert_eq!(leaves_of(&snapshot, &round.later), Some(vec![own]));
    let own_read = Fresh::Nodes([own].into());
    let round = plan(&snapshot, batch(), &own_read, LIMITS, &no_loss());
    assert_eq!(seqs(round.stepped.iter().map(|s| &s.0)), vec![0]);
    assert!(round.writes.is_empty());
    // A removal of an id the snapshot does not list needs the whole index.
    let remove = vec![Pending {
        verify: true,
        ..pending(1, Op::Remove(["elsewhere".to_owned()].into()))
    }];
    let both = Fresh::Nodes([own, other, NodeKey::ROOT].into());
    assert_eq!(
        seqs(&plan(&snapshot, remove, &both, LIMITS, &no_loss()).later),
        vec![1]
    );
}

#[test]
fn a_full_leaf_takes_what_fits_then_is_split() {
    let mut entries = Vec::new();
    let mut n = 0;
    while snapshot_of(entries.clone())
        .node(NodeKey::ROOT)
        .unwrap()
        .body
        .encode()
        .len()
        < LIMITS.seal_bytes - 300
    {
        entries.push(entry(
            &format!("id{n:05}"),
            &format!("user{n:05}@example.com"),
        ));
        n += 1;
    }
    let snapshot = snapshot_of(entries);
    let batch: Vec<Pending> = (0..10)
        .map(|k| {
            let user = format!("someone.new.{k}@example.com");
            pending(k, Op::Upsert(entry(&format!("new-token-{k:02}"), &user)))
        })
        .collect();
    let round = plan(&snapshot, batch, &Fresh::none(), LIMITS, &no_loss());
    // What fit is written; the rest waits.
    assert!(!round.stepped.is_empty() && !round.later.is_empty());
    assert_eq!(round.stepped.len() + round.later.len(), 10);
    let (_, body) = &round.writes[0];
    assert!(body.encode().len() <= LIMITS.seal_bytes);
    // Once written, the full leaf is split before it takes more.
    let next = snapshot.with_nodes([(
        NodeKey::ROOT,
        Node {
            version: Some("v2".into()),
            body: Arc::new(round.writes[0].1.clone()),
        },
    )]);
    let round = plan(&next, round.later, &Fresh::none(), LIMITS, &no_loss());
    assert_eq!(round.splits, vec![NodeKey::ROOT]);
    assert!(round.writes.is_empty());
}

#[test]
fn a_leaf_out_of_versions_is_split_before_it_is_written() {
    let mut nodes = HashMap::new();
    let mut body = NodeBody::empty();
    body.writes = vec![LIMITS.now - 10; 59];
    body.entries = vec![entry("a", "ua")];
    nodes.insert(
        NodeKey::ROOT,
        Node {
            version: Some("v".into()),
            body: Arc::new(body),
        },
    );
    let snapshot = Snapshot::new(nodes, 0);
    let add = || vec![pending(0, Op::Upsert(entry("b", "ub")))];
    // 59 recent versions: one more write fits.
    let round = plan(&snapshot, add(), &Fresh::none(), LIMITS, &no_loss());
    assert_eq!(round.writes.len(), 1);
    // A lost attempt of this writer made the 60th: split first.
    let lost = HashMap::from([(NodeKey::ROOT, 1)]);
    let round = plan(&snapshot, add(), &Fresh::none(), LIMITS, &lost);
    assert_eq!(round.splits, vec![NodeKey::ROOT]);
    // Versions older than a day do not count.
    let later = Limits {
        now: LIMITS.now + 24 * 3600,
        ..LIMITS
    };
    let round = plan(&snapshot, add(), &Fresh::none(), later, &lost);
    assert_eq!(round.writes.len(), 1);
}

#[test]
fn a_new_user_name_moves_the_entry_in_two_steps() {
    let snapshot = snapshot_of(vec![entry("a", "old")]);
    let round = plan(
        &snapshot,
        vec![pending(0, Op::Upsert(entry("a", "new")))],
        &Fresh::none(),
        LIMITS,
        &no_loss(),
    );
    // One leaf: in place.
    assert_eq!(round.writes.len(), 1);
    assert_eq!(round.writes[0].1.entries, vec![entry("a", "new")]);

    // Two leaves: the user names route to different children.
    let (old_user, new_user) = (0..)
        .map(|n| (format!("o{n}"), format!("n{n}")))
        .find(|(o, n)| {
            (super::super::node::route_of_user(o) >> 63)
                != (super::super::node::route_of_user(n) >> 63)
        })
        .unwrap();
    let r0 = NodeKey::ROOT.child(0);
    let r1 = NodeKey::ROOT.child(1);
    let old_side = if r0.covers(super::super::node::route_of_user(&old_user)) {
        r0
    } else {
        r1
    };
    let new_side = if old_side == r0 { r1 } else { r0 };
    let mut nodes = HashMap::new();
    nodes.insert(NodeKey::ROOT, node(2, Some([1, 1]), vec![]));
    nodes.insert(old_side, node(1, None, vec![entry("a", &old_user)]));
    nodes.insert(new_side, node(1, None, vec![]));
    let snapshot = Snapshot::new(nodes, 0);
    let round = plan(
        &snapshot,
        vec![pending(0, Op::Upsert(entry("a", &new_user)))],
        &Fresh::none(),
        LIMITS,
        &no_loss(),
    );
    assert_eq!(round.writes.len(), 1);
    assert_eq!(round.writes[0].0, new_side);
    assert_eq!(round.writes[0].1.entries[0].moves, 1);
    assert!(
        !round.stepped[0].2,
        "the old copy is left for the next round"
    );
    let next = snapshot.with_nodes([(
        new_side,
        Node {
            version: Some("v2".into()),
            body: Arc::new(round.writes[0].1.clone()),
        },
    )]);
    assert_eq!(next.user_holder(&old_user), None);
    assert_eq!(next.user_holder(&new_user), Some("a"));
    let (pending, _, _) = round.stepped.into_iter().next().unwrap();
    let round = plan(&next, vec![pending], &Fresh::none(), LIMITS, &no_loss());
    assert_eq!(round.writes.len(), 1);
    assert_eq!(round.writes[0].0, old_side);
    assert!(round.writes[0].1.entries.is_empty());
    assert!(round.stepped[0].2);
}

#[test]
fn split_entries_follow_their_routes() {
    let body = NodeBody {
        entries: (0..50)
            .map(|n| entry(&format!("i{n}"), &format!("u{n}")))
            .collect(),
        ..NodeBody::empty()
    };
    let [left, right] = split_entries(NodeKey::ROOT, &body);
    assert_eq!(left.len() + right.len(), 50);
    assert!(
        left.iter()
            .all(|e| NodeKey::ROOT.child(0).covers(e.route()))
    );
    assert!(
        right
            .iter()
            .all(|e| NodeKey::ROOT.child(1).covers(e.route()))
    );
}
