//! A model-based test of the store's guarantees: a reference model of what a
//! fleet of store instances on one backing storage may answer, and a runner
//! of random histories against any such fleet
//! (`#[path = "common/model.rs"] mod model;`).
//!
//! A history is a planned sequence of steps, each one operation on one
//! instance of a [`Fleet`] (saves with and without an id, renames, hourly
//! refreshes, new grants, the Zoho SDK's re-authorisation, deletes, lookups,
//! `get_tokens`, `repair`), some with an [`Injection`]: the operation's n-th
//! backend call fails, with or without its effect, or the instance dies there
//! and a fresh one replaces it. Steps run one after another (no two
//! operations overlap), so the model is exact about order and only unsure
//! about the outcome of failed calls.
//!
//! # The model
//!
//! The model keeps, after every step, the set of stores ("worlds": id →
//! token) the backend may hold. An acknowledged write maps every world
//! through the Zoho rules ([`apply_save`]) and keeps the worlds whose result
//! equals the store's answer; a failed write (a fault fired) keeps each
//! world both as it was and as the write would leave it, since its effect may
//! or may not have happened: the write is in doubt until a later answer
//! settles it. A failed write is all or nothing: a state half-way between
//! (an index that moved while its secret did not) that a caller can see is a
//! violation. Token ids a store generates are unknown to the model until an
//! answer shows them (placeholders `?n` until then).
//!
//! The sets are kept per *epoch* (between two writes) with the time span in
//! which that epoch may have been current, because a read on an instance may
//! be served from that instance's cache: it may answer any state that was
//! possibly current since the start of the oldest operation of that instance
//! that ended within the cache TTL, but never one older than that
//! instance's own acknowledged write of the token or user it reads (read
//! your writes). Once the TTL has passed with no write, every instance must
//! answer the current state: the [`Op::Check`] step waits for that, reads
//! everything on every instance, and requires one world to explain all of
//! it (which then settles what was in doubt).
//!
//! # Properties checked ([`Property`])
//!
//! - no acknowledged write lost: a read or a save answers the last
//!   acknowledged value of what it reads (or a later one in doubt, or an
//!   older one still within the cache TTL); a save merges onto the current
//!   value, never onto a stale copy;
//! - no deleted token served after its delete was acknowledged (and the
//!   instance's cache TTL passed for others), unless a later save re-created it;
//! - at most one token per user name, in `get_tokens` and in what the saves
//!   accept;
//! - a valid save is not refused, an invalid one (a second token for a user
//!   name, a new token with no credential) is;
//! - an operation during which no fault fired succeeds (a name AWS still
//!   holds after a delete is not a fault: AWS documents it);
//! - every instance agrees with one state of the model once its cache TTL
//!   has passed.
//!
//! A failing history prints its seed (replay it with `MODEL_SEED`), the
//! numbered steps (instance, operation, injection, answer), the property
//! violated and the states the model allowed; the runner then shrinks the
//! history (drops steps while the same property still fails) and prints the
//! shortest one found.
//!
//! Environment: `MODEL_SEED` (replay one history), `MODEL_HISTORIES` (how
//! many), `MODEL_STEPS` (steps per history), `MODEL_KEEP_GOING=1` (run every
//! history and report every failure, not the first only),
//! `MODEL_SHRINK_SECS` (time for shrinking, default 120; 0: none),
//! `MODEL_HOLD_PERCENT` (histories that hold deleted names; 0 to look past
//! that finding).
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use zoho_token_store::{OAuthToken, StoreError, TokenStore};

// ---------------------------------------------------------------------------
// The fleet under test

/// What a failed backend call did before it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The call reached the storage and took effect; its answer was lost
    /// (a connection reset mid-response, a timeout after the write).
    Applied,
    /// The storage refused it before any effect (an HTTP 500).
    Refused,
    /// The storage throttled it before any effect.
    Throttled,
}

/// A failure the runner injects into one instance's next operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injection {
    /// The operation's `call`-th backend call (1-based; a call and its SDK
    /// retries count once) fails past every retry, with `effect`. With
    /// `call` 1 it is the operation's first call; with a later one, a call
    /// after others succeeded. An operation that makes fewer calls sees no
    /// fault, and must succeed.
    FailCall { call: usize, effect: Effect },
    /// The instance dies at its `call`-th backend call of the operation (a
    /// killed Lambda): that call and every later one fail with no effect.
    /// The runner then replaces the instance with a fresh one.
    Stop { call: usize },
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FailCall { call, effect } => {
                let effect = match effect {
                    Effect::Applied => "applied, answer lost",
                    Effect::Refused => "refused, no effect",
                    Effect::Throttled => "throttled, no effect",
                };
                write!(f, "call #{call} fails ({effect})")
            }
            Self::Stop { call } => write!(f, "instance dies at call #{call}"),
        }
    }
}

/// N store instances on one backing storage (one prefix), each its own
/// store object with its own cache, and the hooks that fail one of them.
///
/// Implemented by the test files: `SecretsManagerStore` over LocalStack
/// through a fault proxy per instance, `StorageStore` over a storage that
/// fails on command.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// How many instances (at least 1).
    fn len(&self) -> usize;
    /// Instance `i`, as it is now (a replaced instance is a new object).
    fn store(&self, i: usize) -> Arc<dyn TokenStore>;
    /// How long an instance may serve a value from its cache (zero: none).
    fn cache_ttl(&self) -> Duration;
    /// How much longer than the TTL a cached value may live, for the
    /// difference between the store's clock reads and the runner's.
    fn cache_slack(&self) -> Duration {
        Duration::from_millis(60)
    }
    /// Arms `injection` for instance `i`'s next operation.
    async fn arm(&self, i: usize, injection: Injection);
    /// Disarms instance `i`; answers how many faults fired since it was
    /// armed (0: the operation saw no fault).
    async fn disarm(&self, i: usize) -> u64;
    /// Replaces instance `i` with a fresh one (empty cache) after a stop.
    async fn replace(&self, i: usize);
    /// Whether the storage can keep a deleted name taken for a while, as
    /// AWS does while it purges a force-deleted secret.
    fn can_hold_deleted_names(&self) -> bool {
        false
    }
    /// From now on, deleted names stay taken until [`Fleet::purge`].
    async fn hold_deleted_names(&self) {}
    /// Frees the names held since the last purge.
    async fn purge(&self) {}
    /// Whether [`Fleet::repair`] does anything.
    fn can_repair(&self) -> bool {
        false
    }
    /// Runs the store's repair on instance `i`; the report as text.
    async fn repair(&self, _i: usize) -> Result<String, StoreError> {
        Ok(String::new())
    }
    /// What the storage itself holds for these ids (id, user name if
    /// known), past every cache, for a failure's report: whether the
    /// emulator hid or lagged something. Empty when there is nothing to say.
    async fn diagnose(&self, _ids: Vec<(String, Option<String>)>) -> String {
        String::new()
    }
    /// Deletes everything the history stored.
    async fn teardown(&self);
}

/// A fleet for one history, made fresh for each (its own prefix).
pub type MakeFleet =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Box<dyn Fleet>> + Send>> + Send + Sync>;

// ---------------------------------------------------------------------------
// Plans

/// Which token id an operation names, resolved when the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRef {
    /// One of a few fixed ids (`m0`, `m1`, …), for saves under an id.
    Fixed(usize),
    /// The n-th (modulo their number) id the model knows of.
    Known(usize),
    /// The id that holds this pool user in some state the model allows,
    /// else a known one.
    HolderOf(usize),
}

/// One operation of a history. Users are indexes into the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `save_token` without an id, every field set: a first grant, or the
    /// second half of a re-authorisation.
    SaveNew { user: usize },
    /// `save_token` with an id and every field set.
    SaveWithId { id: IdRef, user: usize },
    /// `save_token` by id with only a new user name.
    Rename { id: IdRef, user: usize },
    /// `save_token` by id with a new access token and expiry only: what
    /// every hourly refresh saves.
    Refresh { id: IdRef },
    /// `save_token` by id with a new refresh token (a new grant), access
    /// token and expiry.
    NewGrant { id: IdRef },
    /// `delete_token`.
    Delete { id: IdRef },
    /// `find_token` by user name.
    FindUser { user: usize },
    /// `find_token_by_id`.
    FindId { id: IdRef },
    /// `get_tokens`.
    GetTokens,
    /// The store's repair (when the fleet has one).
    Repair,
    /// The held deleted names are purged (AWS's background purge ends).
    Purge,
    /// Nothing happens for this many thousandths of the cache TTL: caches age.
    Wait { per_mille_of_ttl: u32 },
    /// Waits out the cache TTL, then reads everything on every instance
    /// and requires one state of the model to explain it all.
    Check,
}

/// A planned step.
#[derive(Clone, Debug)]
pub struct Step {
    pub instance: usize,
    pub op: Op,
    pub inject: Option<Injection>,
    /// What the step is part of (e.g. the re-authorisation).
    pub note: Option<&'static str>,
}

/// A planned history: what the seed gives, before it runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    /// Whether deleted names stay taken until a purge step.
    pub hold_names: bool,
    pub steps: Vec<Step>,
}

/// What a run of histories is made of.
#[derive(Clone, Debug)]
pub struct Config {
    /// The test's name, for the replay line.
    pub test: &'static str,
    /// Histories to run (`MODEL_HISTORIES` overrides).
    pub histories: usize,
    /// Steps per history before the final check (`MODEL_STEPS` overrides).
    pub steps: usize,
    /// Histories run at once (each on its own fleet and prefix).
    pub parallel: usize,
    /// Size of the user name pool (small, so that saves collide).
    pub users: usize,
    /// Percent of steps with a failed call injected.
    pub fault_percent: u32,
    /// Percent of steps whose instance dies mid-operation.
    pub stop_percent: u32,
    /// Percent of histories in which deleted names are held (when the
    /// fleet can).
    pub hold_percent: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            test: "model",
            histories: 200,
            steps: 16,
            parallel: 1,
            users: 4,
            fault_percent: 20,
            stop_percent: 5,
            hold_percent: 50,
        }
    }
}

/// What the fleet supports, for planning.
#[derive(Clone, Copy, Debug)]
pub struct Abilities {
    pub instances: usize,
    pub repair: bool,
    pub hold_names: bool,
}

/// The plan of history `seed`: a pure function of the seed, the config and
/// the fleet's abilities.
pub fn plan(seed: u64, config: &Config, abilities: Abilities) -> Plan {
    let mut rng = fastrand::Rng::with_seed(seed);
    let users = config.users.max(1);
    let hold_names = abilities.hold_names && rng.u32(0..100) < config.hold_percent;
    let mut steps = Vec::new();
    let id_ref = |rng: &mut fastrand::Rng| match rng.u32(0..10) {
        0..=1 => IdRef::Fixed(rng.usize(0..3)),
        2..=5 => IdRef::Known(rng.usize(0..1000)),
        _ => IdRef::HolderOf(rng.usize(0..users)),
    };
    while steps.len() < config.steps {
        let instance = rng.usize(0..abilities.instances);
        let user = rng.usize(0..users);
        let roll = rng.u32(0..100);
        let inject = {
            let r = rng.u32(0..100);
            if r < config.stop_percent {
                Some(Injection::Stop {
                    call: rng.usize(1..=5),
                })
            } else if r < config.stop_percent + config.fault_percent {
                let effect = match rng.u32(0..4) {
                    0 | 1 => Effect::Applied,
                    2 => Effect::Refused,
                    _ => Effect::Throttled,
                };
                // Half the time the first call, else one after others succeeded.
                let call = if rng.bool() { 1 } else { rng.usize(2..=6) };
                Some(Injection::FailCall { call, effect })
            } else {
                None
            }
        };
        let step = |op, inject| Step {
            instance,
            op,
            inject,
            note: None,
        };
        match roll {
            0..=13 => steps.push(step(Op::SaveNew { user }, inject)),
            14..=21 => steps.push(step(
                Op::SaveWithId {
                    id: id_ref(&mut rng),
                    user,
                },
                inject,
            )),
            22..=29 => steps.push(step(
                Op::Rename {
                    id: id_ref(&mut rng),
                    user,
                },
                inject,
            )),
            30..=43 => steps.push(step(
                Op::Refresh {
                    id: id_ref(&mut rng),
                },
                inject,
            )),
            44..=48 => steps.push(step(
                Op::NewGrant {
                    id: id_ref(&mut rng),
                },
                inject,
            )),
            49..=54 => {
                // The Zoho SDK's re-authorisation: delete the revoked token,
                // save the new grant's token for the same user at once.
                let note = Some("re-authorisation");
                steps.push(Step {
                    note,
                    ..step(
                        Op::Delete {
                            id: IdRef::HolderOf(user),
                        },
                        inject,
                    )
                });
                steps.push(Step {
                    note,
                    ..step(Op::SaveNew { user }, None)
                });
            }
            55..=59 => steps.push(step(
                Op::Delete {
                    id: id_ref(&mut rng),
                },
                inject,
            )),
            60..=71 => steps.push(step(Op::FindUser { user }, inject)),
            72..=81 => steps.push(step(
                Op::FindId {
                    id: id_ref(&mut rng),
                },
                inject,
            )),
            82..=87 => steps.push(step(Op::GetTokens, inject)),
            88..=89 if abilities.repair => steps.push(step(Op::Repair, inject)),
            90..=92 if hold_names => steps.push(step(Op::Purge, None)),
            93..=96 => steps.push(step(
                Op::Wait {
                    per_mille_of_ttl: rng.u32(0..1500),
                },
                None,
            )),
            97..=99 => steps.push(step(Op::Check, None)),
            _ => {}
        }
    }
    steps.push(Step {
        instance: 0,
        op: Op::Check,
        inject: None,
        note: Some("final"),
    });
    Plan {
        seed,
        hold_names,
        steps,
    }
}

// ---------------------------------------------------------------------------
// The reference model

/// One possible content of the store: token id → token (its `id` set).
/// Ids starting with `?` are placeholders for ids a store generated that no
/// answer has shown yet.
pub type World = BTreeMap<String, OAuthToken>;

fn is_placeholder(id: &str) -> bool {
    id.starts_with('?')
}

/// Whether `a` and `b` are equal but for their ids.
fn same_content(a: &OAuthToken, b: &OAuthToken) -> bool {
    OAuthToken {
        id: None,
        ..a.clone()
    } == OAuthToken {
        id: None,
        ..b.clone()
    }
}

/// The token holding `user` in `world`.
fn holder<'a>(world: &'a World, user: &str) -> Option<&'a OAuthToken> {
    world
        .values()
        .find(|t| t.user_name.as_deref() == Some(user))
}

/// What a save does to a world, by the Zoho rules: the stored result, or a
/// refusal (`InvalidInput`).
#[derive(Debug, Clone)]
pub enum Applied {
    Stored(World, Box<OAuthToken>),
    Refused(&'static str),
}

/// `save_token(token)` on `world`; a new token without an id gets `fresh`.
///
/// A given id decides alone (that token is updated, or a new one is stored
/// under the id); else the user name finds the token to update; an update
/// merges the saved fields over the stored ones. A new token needs a
/// refresh, grant or access token, and no save may give a user name to a
/// second token.
pub fn apply_save(world: &World, token: &OAuthToken, fresh: &str) -> Applied {
    let target = match (&token.id, token.user_name.as_deref()) {
        (Some(id), _) => world.get(id),
        (None, Some(user)) if !user.is_empty() => holder(world, user),
        (None, _) => return Applied::Refused("nothing to match on"),
    };
    let stored = match target {
        Some(current) => OAuthToken {
            id: current.id.clone(),
            ..token.merged_over(current)
        },
        None if !token.has_credential() => {
            return Applied::Refused("a new token needs a credential");
        }
        None => OAuthToken {
            id: Some(token.id.clone().unwrap_or_else(|| fresh.to_owned())),
            ..token.clone()
        },
    };
    let id = stored.id.clone().unwrap_or_default();
    if let Some(user) = stored.user_name.as_deref().filter(|u| !u.is_empty())
        && world
            .iter()
            .any(|(other, t)| *other != id && t.user_name.as_deref() == Some(user))
    {
        return Applied::Refused("a second token for one user name");
    }
    let mut after = world.clone();
    after.insert(id, stored.clone());
    Applied::Stored(after, Box::new(stored))
}

/// The worlds between two writes, and when they may have been current.
#[derive(Debug, Clone)]
struct Epoch {
    /// The start of the write that made them (its effect may be that early).
    begin: Instant,
    /// The end of the write that replaced them (`None`: still current).
    finish: Option<Instant>,
    worlds: Vec<World>,
    /// The step that made this epoch (0: the empty start).
    step: usize,
}

/// More possible states than this and the history stops being conclusive.
const MAX_WORLDS: usize = 512;

/// The reference model of one history.
#[derive(Debug)]
pub struct Model {
    epochs: Vec<Epoch>,
    ttl: Duration,
    /// Allowed beyond `ttl` (see [`Fleet::cache_slack`]).
    slack: Duration,
    placeholders: u64,
    /// Per instance (its current incarnation): the span of every operation.
    spans: Vec<Vec<(Instant, Instant)>>,
    /// (instance, id) → the epoch its last acknowledged write of that token made.
    own_token: BTreeMap<(usize, String), usize>,
    /// (instance, user) → the epoch its last acknowledged save that gave a
    /// token that user name made.
    own_user: BTreeMap<(usize, String), usize>,
    /// Every real id the model has seen.
    seen_ids: BTreeSet<String>,
    /// Whether the fleet holds deleted names until a purge step.
    pub holds_names: bool,
    /// Ids deleted (or perhaps deleted) since the last purge step: their
    /// secret names are still held when [`Model::holds_names`].
    pub held_ids: BTreeSet<String>,
}

/// A read's answer the model does not allow.
#[derive(Debug, Clone)]
pub struct Breach {
    pub property: Property,
    pub detail: String,
    /// Ids (and users) the storage should be asked about.
    pub ids: Vec<(String, Option<String>)>,
}

/// The guarantees the model checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Property {
    /// A read answered a value older than the last acknowledged write (past
    /// the TTL, or on the instance that wrote), or a token whose save was
    /// acknowledged is missing, or a save merged onto a stale copy.
    NoAcknowledgedWriteLost,
    /// A token was served after its delete was acknowledged.
    NoDeletedTokenServed,
    /// Two tokens with one user name.
    OneTokenPerUserName,
    /// An answer that no state of the model explains: a half-applied write,
    /// a value never written.
    AnswersExplainedByTheModel,
    /// A save the rules accept was refused, or one they refuse was accepted.
    SavesFollowTheRules,
    /// An operation during which no fault fired failed.
    UnfaultedOperationsSucceed,
    /// After the TTL, the instances' answers fit no single state.
    InstancesAgreeAfterTheTtl,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoAcknowledgedWriteLost => "no acknowledged write lost",
            Self::NoDeletedTokenServed => "no deleted token served after its delete",
            Self::OneTokenPerUserName => "at most one token per user name",
            Self::AnswersExplainedByTheModel => "every answer is a state the model allows",
            Self::SavesFollowTheRules => "saves are accepted or refused by the Zoho rules",
            Self::UnfaultedOperationsSucceed => "an operation with no fault fired succeeds",
            Self::InstancesAgreeAfterTheTtl => {
                "every instance agrees with the model once its cache TTL has passed"
            }
        })
    }
}

impl Model {
    /// An empty store, `instances` instances whose caches live `ttl`
    /// (give or take `slack`).
    pub fn new(instances: usize, ttl: Duration, slack: Duration, start: Instant) -> Self {
        Self {
            epochs: vec![Epoch {
                begin: start,
                finish: None,
                worlds: vec![World::new()],
                step: 0,
            }],
            ttl,
            slack,
            placeholders: 0,
            spans: vec![Vec::new(); instances],
            own_token: BTreeMap::new(),
            own_user: BTreeMap::new(),
            seen_ids: BTreeSet::new(),
            holds_names: false,
            held_ids: BTreeSet::new(),
        }
    }

    fn current(&self) -> &Epoch {
        self.epochs.last().expect("an epoch")
    }

    /// How many states the model allows now.
    pub fn possible(&self) -> usize {
        self.current().worlds.len()
    }

    /// Whether the model lost precision (too many states).
    pub fn overwhelmed(&self) -> bool {
        self.possible() > MAX_WORLDS
    }

    fn fresh_placeholder(&mut self) -> String {
        self.placeholders += 1;
        format!("?{}", self.placeholders)
    }

    /// Records an operation's span on `instance` (for its cache window).
    pub fn span(&mut self, instance: usize, start: Instant, end: Instant) {
        self.spans[instance].push((start, end));
    }

    /// A fresh instance replaced `instance`: its cache is empty.
    pub fn replaced(&mut self, instance: usize) {
        self.spans[instance].clear();
    }

    /// Every real id the model knows, in order.
    pub fn known_ids(&self) -> Vec<String> {
        let mut ids = self.seen_ids.clone();
        for world in &self.current().worlds {
            ids.extend(world.keys().filter(|id| !is_placeholder(id)).cloned());
        }
        ids.into_iter().collect()
    }

    /// The id `id` names now.
    pub fn resolve(&self, id: IdRef, users: &[String]) -> String {
        let known = self.known_ids();
        match id {
            IdRef::Fixed(n) => format!("m{n}"),
            IdRef::HolderOf(user) => {
                let user = &users[user % users.len()];
                self.current()
                    .worlds
                    .iter()
                    .filter_map(|w| holder(w, user))
                    .filter_map(|t| t.id.clone())
                    .find(|id| !is_placeholder(id))
                    .or_else(|| known.first().cloned())
                    .unwrap_or_else(|| "m0".to_owned())
            }
            IdRef::Known(n) if known.is_empty() => format!("m{}", n % 3),
            IdRef::Known(n) => known[n % known.len()].clone(),
        }
    }

    /// Starts a new epoch made by `step`, spanning the write `start..end`.
    fn push_epoch(&mut self, worlds: Vec<World>, step: usize, start: Instant, end: Instant) {
        let last = self.epochs.last_mut().expect("an epoch");
        last.finish = Some(end);
        self.epochs.push(Epoch {
            begin: start,
            finish: None,
            worlds: dedup(worlds),
            step,
        });
    }

    fn note_ids(&mut self, token: &OAuthToken) {
        if let Some(id) = token.id.as_deref().filter(|id| !is_placeholder(id)) {
            self.seen_ids.insert(id.to_owned());
        }
    }

    /// The users `id` has in any current world.
    fn users_of(&self, id: &str) -> BTreeSet<String> {
        self.current()
            .worlds
            .iter()
            .filter_map(|w| w.get(id)?.user_name.clone())
            .collect()
    }

    /// A save's outcome. `answer`: the store's answer (`Ok(stored)`,
    /// `Err(refused)` for `InvalidInput`, or `None` for a failure with a
    /// fault fired: in doubt).
    pub fn saved(
        &mut self,
        step: usize,
        instance: usize,
        token: &OAuthToken,
        answer: Option<Result<&OAuthToken, &StoreError>>,
        (start, end): (Instant, Instant),
    ) -> Result<(), Breach> {
        let fresh = self.fresh_placeholder();
        let before = self.current().worlds.clone();
        let results: Vec<(World, Applied)> = before
            .iter()
            .map(|w| (w.clone(), apply_save(w, token, &fresh)))
            .collect();
        match answer {
            None => {
                // In doubt: as it was, or as the write leaves it.
                let mut worlds = before.clone();
                worlds.extend(results.into_iter().filter_map(|(_, a)| match a {
                    Applied::Stored(after, _) => Some(after),
                    Applied::Refused(_) => None,
                }));
                self.push_epoch(worlds, step, start, end);
                Ok(())
            }
            Some(Err(error)) => {
                // Refused: nothing changed, and only worlds that refuse it
                // remain; when the refusal names the user's holder, only
                // worlds where that token holds the user (a placeholder
                // there is that token).
                let named = named_holder(error);
                let user = token.user_name.as_deref().or_else(|| {
                    let id = token.id.as_deref()?;
                    before.iter().find_map(|w| w.get(id)?.user_name.as_deref())
                });
                let refusing: Vec<World> = results
                    .iter()
                    .filter(|(_, a)| matches!(a, Applied::Refused(_)))
                    .filter_map(|(w, _)| match (&named, user) {
                        (Some(named), Some(user)) => {
                            let holder = holder(w, user)?.id.clone()?;
                            if holder == *named {
                                Some(w.clone())
                            } else if is_placeholder(&holder) && !w.contains_key(named) {
                                Some(bind(w, &holder, named))
                            } else {
                                None
                            }
                        }
                        _ => Some(w.clone()),
                    })
                    .collect();
                if refusing.is_empty() && named.is_some() {
                    return Err(Breach {
                        property: Property::SavesFollowTheRules,
                        detail: format!(
                            "the save was refused ({error}), but in no state the model allows \
                             does token {} hold that user name: the refusal was decided on a \
                             stale copy (a cached index) or a leftover claim",
                            named.as_deref().unwrap_or_default()
                        ),
                        ids: self.ids_of(token),
                    });
                }
                if refusing.is_empty() {
                    let expected = results
                        .iter()
                        .filter_map(|(_, a)| match a {
                            Applied::Stored(_, t) => Some(show(t)),
                            Applied::Refused(_) => None,
                        })
                        .collect::<Vec<_>>();
                    return Err(Breach {
                        property: Property::SavesFollowTheRules,
                        detail: format!(
                            "the save was refused ({error}), but every state the model allows \
                             accepts it, storing one of: {}",
                            expected.join(" | ")
                        ),
                        ids: self.ids_of(token),
                    });
                }
                self.epochs.last_mut().expect("an epoch").worlds = refusing;
                Ok(())
            }
            Some(Ok(stored)) => {
                self.note_ids(stored);
                let mut before_kept = Vec::new();
                let mut after = Vec::new();
                for (world, applied) in &results {
                    let Applied::Stored(result, expected) = applied else {
                        continue;
                    };
                    let same_id = expected.id == stored.id;
                    let bound = expected.id.as_deref().is_some_and(is_placeholder)
                        && stored
                            .id
                            .as_deref()
                            .is_some_and(|id| !world.contains_key(id));
                    if (same_id || bound) && same_content(expected, stored) {
                        let mut result = result.clone();
                        if bound {
                            let placeholder = expected.id.clone().unwrap_or_default();
                            result = bind(&result, &placeholder, stored.id.as_deref().unwrap());
                        }
                        before_kept.push(world.clone());
                        after.push(result);
                    }
                }
                if after.is_empty() {
                    return Err(self.unexplained_save(token, stored, &results));
                }
                // The save merged onto one of these: the others were never the state.
                self.epochs.last_mut().expect("an epoch").worlds = dedup(before_kept);
                self.push_epoch(after, step, start, end);
                let epoch = self.epochs.len() - 1;
                if let Some(id) = stored.id.clone() {
                    self.own_token.insert((instance, id), epoch);
                }
                // Read your writes by user: the user this save gave the
                // token. (A user it took away is covered by the token's own
                // floor: the instance must not serve the token's old value;
                // another token's stale copy is within the TTL rule.)
                if let Some(user) = stored.user_name.clone() {
                    self.own_user.insert((instance, user), epoch);
                }
                Ok(())
            }
        }
    }

    fn ids_of(&self, token: &OAuthToken) -> Vec<(String, Option<String>)> {
        let mut ids = Vec::new();
        if let Some(id) = &token.id {
            ids.push((id.clone(), token.user_name.clone()));
        }
        if let Some(user) = &token.user_name {
            for world in &self.current().worlds {
                if let Some(t) = holder(world, user).and_then(|t| t.id.clone())
                    && !is_placeholder(&t)
                {
                    ids.push((t, Some(user.clone())));
                }
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// Why an acknowledged save's answer fits no state.
    fn unexplained_save(
        &self,
        token: &OAuthToken,
        stored: &OAuthToken,
        results: &[(World, Applied)],
    ) -> Breach {
        let expected: Vec<String> = results
            .iter()
            .map(|(_, a)| match a {
                Applied::Stored(_, t) => show(t),
                Applied::Refused(why) => format!("refused ({why})"),
            })
            .collect();
        let all_refuse = results
            .iter()
            .all(|(_, a)| matches!(a, Applied::Refused(_)));
        let id = stored.id.clone().unwrap_or_default();
        // Merged onto an older value of the token: a lost update.
        let stale = self.epochs.iter().rev().skip(1).any(|e| {
            e.worlds.iter().any(|w| {
                w.get(&id).is_some_and(|old| {
                    let merged = OAuthToken {
                        id: old.id.clone(),
                        ..token.merged_over(old)
                    };
                    same_content(&merged, stored)
                })
            })
        }) || !self
            .overwritten_fields(&id, stored, &[self.epochs.len() - 1])
            .is_empty();
        let second_user = results
            .iter()
            .any(|(_, a)| matches!(a, Applied::Refused(why) if why.contains("second token")));
        let property = if all_refuse && second_user {
            Property::OneTokenPerUserName
        } else if all_refuse {
            Property::SavesFollowTheRules
        } else if stale {
            Property::NoAcknowledgedWriteLost
        } else {
            Property::AnswersExplainedByTheModel
        };
        let how = if stale {
            "it merged the save onto an older value of the token (a stale copy): the writes \
             acknowledged since are lost"
        } else if all_refuse {
            "every state the model allows refuses it"
        } else {
            "no state the model allows gives it"
        };
        Breach {
            property,
            detail: format!(
                "the save was acknowledged as {}: {how}; the model expected: {}",
                show(stored),
                expected.join(" | ")
            ),
            ids: self.ids_of(token),
        }
    }

    /// A delete's outcome: `acknowledged`, or in doubt.
    /// An operation that changed nothing.
    pub fn unchanged(&mut self, step: usize, (start, end): (Instant, Instant)) {
        let worlds = self.current().worlds.clone();
        self.push_epoch(worlds, step, start, end);
    }

    pub fn deleted(
        &mut self,
        step: usize,
        instance: usize,
        id: &str,
        acknowledged: bool,
        (start, end): (Instant, Instant),
    ) {
        let before = self.current().worlds.clone();
        let mut worlds: Vec<World> = before
            .iter()
            .map(|w| {
                let mut w = w.clone();
                w.remove(id);
                w
            })
            .collect();
        if !acknowledged {
            worlds.extend(before);
        }
        self.push_epoch(worlds, step, start, end);
        if acknowledged {
            let epoch = self.epochs.len() - 1;
            self.own_token.insert((instance, id.to_owned()), epoch);
        }
    }

    /// The epochs a read on `instance` during `start..end` may answer from
    /// its cache, no older than `floor`.
    fn window(
        &self,
        instance: usize,
        (start, end): (Instant, Instant),
        floor: usize,
    ) -> Vec<usize> {
        let horizon = self.ttl + self.slack;
        let oldest = self.spans[instance]
            .iter()
            .filter(|(_, e)| *e + horizon > start)
            .map(|(s, _)| *s)
            .min()
            .map_or(start, |s| s.min(start));
        (floor..self.epochs.len())
            .filter(|&k| {
                let e = &self.epochs[k];
                e.begin <= end && e.finish.is_none_or(|f| f >= oldest)
            })
            .collect()
    }

    fn floor_token(&self, instance: usize, id: &str) -> usize {
        self.own_token
            .get(&(instance, id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn floor_user(&self, instance: usize, user: &str) -> usize {
        self.own_user
            .get(&(instance, user.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Whether some world of `epochs` has token `id` as `answer`.
    fn token_fits(&self, epochs: &[usize], id: &str, answer: Option<&OAuthToken>) -> bool {
        epochs.iter().any(|&k| {
            self.epochs[k].worlds.iter().any(|w| match answer {
                None => !w.contains_key(id),
                Some(v) => {
                    w.get(id) == Some(v)
                        || (!w.contains_key(id)
                            && w.iter()
                                .any(|(p, t)| is_placeholder(p) && same_content(t, v)))
                }
            })
        })
    }

    /// Why `answer` for token `id` does not fit `epochs`.
    fn token_breach(
        &self,
        what: &str,
        epochs: &[usize],
        id: &str,
        answer: Option<&OAuthToken>,
        user: Option<&str>,
    ) -> Breach {
        let allowed: BTreeSet<String> = epochs
            .iter()
            .flat_map(|&k| self.epochs[k].worlds.iter())
            .map(|w| w.get(id).map_or_else(|| "absent".to_owned(), show))
            .collect();
        let earliest = epochs.first().copied().unwrap_or(0);
        let older = |v: &OAuthToken| {
            self.epochs[..earliest]
                .iter()
                .any(|e| e.worlds.iter().any(|w| w.get(id) == Some(v)))
        };
        let (property, how) = match answer {
            None => (
                Property::NoAcknowledgedWriteLost,
                "the token is missing, though every state the model allows has it".to_owned(),
            ),
            Some(_) if allowed.iter().all(|a| a == "absent") && self.existed(id) => (
                Property::NoDeletedTokenServed,
                "the token was served after its delete was acknowledged".to_owned(),
            ),
            Some(_) if allowed.iter().all(|a| a == "absent") => (
                Property::AnswersExplainedByTheModel,
                "no state the model allows has the token: a write applied after its \
                 operation failed and was settled as not applied (or one never made)"
                    .to_owned(),
            ),
            Some(v) if older(v) => (
                Property::NoAcknowledgedWriteLost,
                "an older value of the token: the writes acknowledged since are lost (or a \
                 stale copy was served past the TTL or after this instance's own write)"
                    .to_owned(),
            ),
            Some(v) => match self.overwritten_fields(id, v, epochs) {
                fields if !fields.is_empty() => (
                    Property::NoAcknowledgedWriteLost,
                    format!(
                        "it carries {} of an older value of the token, which later \
                         acknowledged writes replaced: a save merged onto a stale copy and \
                         undid them",
                        fields.join(", ")
                    ),
                ),
                _ => (
                    Property::AnswersExplainedByTheModel,
                    "a value no state the model allows has (a half-applied write?)".to_owned(),
                ),
            },
        };
        Breach {
            property,
            detail: format!(
                "{what} answered {}: {how}; the model allows: {}",
                answer.map_or_else(|| "nothing".to_owned(), show),
                allowed.into_iter().collect::<Vec<_>>().join(" | ")
            ),
            ids: vec![(id.to_owned(), user.map(str::to_owned))],
        }
    }

    /// The fields (`r=…`, `a=…`, `e=…`: unique to one write) in which `v`
    /// has a value of an older version of token `id` that no value allowed
    /// in `epochs` has: the mark of a write merged onto a stale copy.
    fn overwritten_fields(&self, id: &str, v: &OAuthToken, epochs: &[usize]) -> Vec<String> {
        let allowed: Vec<&OAuthToken> = epochs
            .iter()
            .flat_map(|&k| self.epochs[k].worlds.iter())
            .filter_map(|w| w.get(id))
            .collect();
        let older: Vec<&OAuthToken> = self
            .epochs
            .iter()
            .flat_map(|e| e.worlds.iter())
            .filter_map(|w| w.get(id))
            .collect();
        let mut fields = Vec::new();
        let fields_of = |t: &OAuthToken| {
            [
                t.refresh_token.clone().map(|r| format!("r={r}")),
                t.access_token.clone().map(|a| format!("a={a}")),
                t.expiry_time.map(|e| format!("e={}", e % 1_000_000)),
            ]
        };
        for (n, field) in fields_of(v).into_iter().enumerate() {
            let Some(field) = field else { continue };
            let now = allowed
                .iter()
                .any(|t| fields_of(t)[n].as_ref() == Some(&field));
            let before = older
                .iter()
                .any(|t| fields_of(t)[n].as_ref() == Some(&field));
            if before && !now {
                fields.push(field);
            }
        }
        fields
    }

    fn existed(&self, id: &str) -> bool {
        self.epochs
            .iter()
            .any(|e| e.worlds.iter().any(|w| w.contains_key(id)))
    }

    /// Checks a `find_token_by_id(id)` answer.
    pub fn found_by_id(
        &self,
        instance: usize,
        id: &str,
        answer: Option<&OAuthToken>,
        span: (Instant, Instant),
    ) -> Result<(), Breach> {
        let epochs = self.window(instance, span, self.floor_token(instance, id));
        if answer.is_some_and(|t| t.id.as_deref() != Some(id)) {
            return Err(Breach {
                property: Property::AnswersExplainedByTheModel,
                detail: format!(
                    "find_token_by_id({id}) answered another id: {}",
                    show_opt(answer)
                ),
                ids: vec![(id.to_owned(), None)],
            });
        }
        if self.token_fits(&epochs, id, answer) {
            return Ok(());
        }
        Err(self.token_breach(
            &format!("find_token_by_id({id})"),
            &epochs,
            id,
            answer,
            None,
        ))
    }

    /// Checks a `find_token(user)` answer.
    pub fn found_by_user(
        &self,
        instance: usize,
        user: &str,
        answer: Option<&OAuthToken>,
        span: (Instant, Instant),
    ) -> Result<(), Breach> {
        let floor_user = self.floor_user(instance, user);
        match answer {
            None => {
                let epochs = self.window(instance, span, floor_user);
                let fits = epochs.iter().any(|&k| {
                    self.epochs[k]
                        .worlds
                        .iter()
                        .any(|w| holder(w, user).is_none())
                });
                if fits {
                    return Ok(());
                }
                let holders: BTreeSet<String> = epochs
                    .iter()
                    .flat_map(|&k| self.epochs[k].worlds.iter())
                    .filter_map(|w| holder(w, user).map(show))
                    .collect();
                Err(Breach {
                    property: Property::NoAcknowledgedWriteLost,
                    detail: format!(
                        "find_token({user}) found nothing, though every state the model allows \
                         has a token for the user: {}",
                        holders.into_iter().collect::<Vec<_>>().join(" | ")
                    ),
                    ids: holders_ids(&self.epochs, &epochs, user),
                })
            }
            Some(token) => {
                if token.user_name.as_deref() != Some(user) {
                    return Err(Breach {
                        property: Property::AnswersExplainedByTheModel,
                        detail: format!(
                            "find_token({user}) answered another user's token: {}",
                            show(token)
                        ),
                        ids: vec![(token.id.clone().unwrap_or_default(), Some(user.to_owned()))],
                    });
                }
                let id = token.id.clone().unwrap_or_default();
                let floor = floor_user.max(self.floor_token(instance, &id));
                let epochs = self.window(instance, span, floor);
                if self.token_fits(&epochs, &id, Some(token)) {
                    return Ok(());
                }
                let mut breach = self.token_breach(
                    &format!("find_token({user})"),
                    &epochs,
                    &id,
                    Some(token),
                    Some(user),
                );
                breach.ids.extend(holders_ids(&self.epochs, &epochs, user));
                Err(breach)
            }
        }
    }

    /// Checks a `get_tokens` answer.
    pub fn listed(
        &self,
        instance: usize,
        tokens: &[OAuthToken],
        span: (Instant, Instant),
    ) -> Result<(), Breach> {
        let mut users = BTreeMap::new();
        for token in tokens {
            if let Some(user) = token.user_name.as_deref()
                && let Some(other) = users.insert(user, token)
            {
                return Err(Breach {
                    property: Property::OneTokenPerUserName,
                    detail: format!(
                        "get_tokens listed two tokens for {user}: {} and {}",
                        show(other),
                        show(token)
                    ),
                    ids: vec![
                        (other.id.clone().unwrap_or_default(), Some(user.to_owned())),
                        (token.id.clone().unwrap_or_default(), Some(user.to_owned())),
                    ],
                });
            }
        }
        let mut ids = BTreeSet::new();
        for token in tokens {
            let id = token.id.clone().unwrap_or_default();
            let epochs = self.window(instance, span, self.floor_token(instance, &id));
            if !self.token_fits(&epochs, &id, Some(token)) {
                return Err(self.token_breach("get_tokens", &epochs, &id, Some(token), None));
            }
            ids.insert(id);
        }
        // Every token some state has must be listed unless a state lacks it.
        let all: BTreeSet<String> = self.known_ids().into_iter().collect();
        for id in all.difference(&ids) {
            let epochs = self.window(instance, span, self.floor_token(instance, id));
            if !self.token_fits(&epochs, id, None) {
                return Err(self.token_breach("get_tokens", &epochs, id, None, None));
            }
        }
        Ok(())
    }

    /// The check after the TTL: one world must explain every instance's
    /// answers; the model keeps the worlds that do (settling what was in
    /// doubt).
    pub fn settle(&mut self, observed: &[Observation]) -> Result<(), Breach> {
        let current = self.current().worlds.clone();
        let mut fitting = Vec::new();
        for world in &current {
            if let Some(bound) = explains(world, observed) {
                fitting.push(bound);
            }
        }
        if fitting.is_empty() {
            let mut detail = String::from(
                "no single state the model allows explains what the instances answer:\n",
            );
            for (i, o) in observed.iter().enumerate() {
                let _ = writeln!(detail, "    instance {i}: {o}");
            }
            let _ = write!(detail, "  the model allows:");
            for world in current.iter().take(8) {
                let _ = write!(detail, "\n    {}", show_world(world));
            }
            if current.len() > 8 {
                let _ = write!(detail, "\n    … {} more", current.len() - 8);
            }
            let mut ids: Vec<(String, Option<String>)> = current
                .iter()
                .flat_map(|w| w.values())
                .filter(|t| !t.id.as_deref().is_some_and(is_placeholder))
                .map(|t| (t.id.clone().unwrap_or_default(), t.user_name.clone()))
                .collect();
            for o in observed {
                ids.extend(
                    o.listed
                        .iter()
                        .map(|t| (t.id.clone().unwrap_or_default(), t.user_name.clone())),
                );
            }
            ids.sort();
            ids.dedup();
            return Err(Breach {
                property: Property::InstancesAgreeAfterTheTtl,
                detail,
                ids,
            });
        }
        for world in &fitting {
            for token in world.values() {
                self.note_ids(token);
            }
        }
        self.epochs.last_mut().expect("an epoch").worlds = dedup(fitting);
        Ok(())
    }

    /// The states the model allows now, for a report.
    pub fn describe(&self) -> String {
        let worlds = &self.current().worlds;
        let mut out = format!("{} state(s):", worlds.len());
        for world in worlds.iter().take(8) {
            let _ = write!(out, "\n    {}", show_world(world));
        }
        if worlds.len() > 8 {
            let _ = write!(out, "\n    … {} more", worlds.len() - 8);
        }
        out
    }
}

/// The holder a refusal names: the stores' "user … already has stored
/// token <id>; …" (`check_unique_user`'s words).
fn named_holder(error: &StoreError) -> Option<String> {
    let text = error.to_string();
    let rest = text.split("already has stored token ").nth(1)?;
    let id = rest.split(';').next()?.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

fn holders_ids(all: &[Epoch], epochs: &[usize], user: &str) -> Vec<(String, Option<String>)> {
    let mut ids: Vec<(String, Option<String>)> = epochs
        .iter()
        .flat_map(|&k| all[k].worlds.iter())
        .filter_map(|w| holder(w, user)?.id.clone())
        .filter(|id| !is_placeholder(id))
        .map(|id| (id, Some(user.to_owned())))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `world` with placeholder `placeholder` renamed to `id`.
fn bind(world: &World, placeholder: &str, id: &str) -> World {
    world
        .iter()
        .map(|(k, t)| {
            if k == placeholder {
                (
                    id.to_owned(),
                    OAuthToken {
                        id: Some(id.to_owned()),
                        ..t.clone()
                    },
                )
            } else {
                (k.clone(), t.clone())
            }
        })
        .collect()
}

fn dedup(worlds: Vec<World>) -> Vec<World> {
    let mut out: Vec<World> = Vec::with_capacity(worlds.len());
    for world in worlds {
        if !out.contains(&world) {
            out.push(world);
        }
    }
    out
}

/// What one instance answered in a [`Op::Check`].
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub listed: Vec<OAuthToken>,
    pub by_id: BTreeMap<String, Option<OAuthToken>>,
    pub by_user: BTreeMap<String, Option<OAuthToken>>,
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut listed: Vec<String> = self.listed.iter().map(show).collect();
        listed.sort();
        write!(f, "get_tokens [{}]", listed.join(", "))?;
        let by_id: Vec<String> = self
            .by_id
            .iter()
            .map(|(id, t)| format!("{id}→{}", t.as_ref().map_or("-".into(), show)))
            .collect();
        write!(f, "; by id {{{}}}", by_id.join(", "))?;
        let by_user: Vec<String> = self
            .by_user
            .iter()
            .map(|(u, t)| {
                format!(
                    "{}→{}",
                    short_user(u),
                    t.as_ref().and_then(|t| t.id.clone()).unwrap_or("-".into())
                )
            })
            .collect();
        write!(f, "; by user {{{}}}", by_user.join(", "))
    }
}

/// `world`, with its placeholders bound to the ids the answers show, if it
/// explains every observation exactly.
fn explains(world: &World, observed: &[Observation]) -> Option<World> {
    let mut world = world.clone();
    // Bind placeholders to unknown ids whose tokens have their content.
    let shown: Vec<&OAuthToken> = observed
        .iter()
        .flat_map(|o| {
            o.listed
                .iter()
                .chain(o.by_id.values().flatten())
                .chain(o.by_user.values().flatten())
        })
        .collect();
    let placeholders: Vec<String> = world
        .keys()
        .filter(|k| is_placeholder(k))
        .cloned()
        .collect();
    for placeholder in placeholders {
        let content = world[&placeholder].clone();
        if let Some(id) = shown
            .iter()
            .filter(|t| same_content(t, &content))
            .filter_map(|t| t.id.clone())
            .find(|id| !world.contains_key(id))
        {
            world = bind(&world, &placeholder, &id);
        }
    }
    for o in observed {
        let mut listed: Vec<&OAuthToken> = o.listed.iter().collect();
        listed.sort_by_key(|t| t.id.clone());
        let mut stored: Vec<&OAuthToken> = world.values().collect();
        stored.sort_by_key(|t| t.id.clone());
        if listed != stored {
            return None;
        }
        if o.by_id.iter().any(|(id, t)| world.get(id) != t.as_ref()) {
            return None;
        }
        if o.by_user
            .iter()
            .any(|(user, t)| holder(&world, user) != t.as_ref())
        {
            return None;
        }
    }
    Some(world)
}

// ---------------------------------------------------------------------------
// Showing tokens (test values only: nothing here is a real secret)

fn short_user(user: &str) -> &str {
    user.split('@').next().unwrap_or(user)
}

/// A token as `id{user r=… a=… e=…}`: the fields the histories vary.
pub fn show(t: &OAuthToken) -> String {
    let mut out = format!("{}{{", t.id.as_deref().unwrap_or("(no id)"));
    let mut parts = Vec::new();
    if let Some(user) = &t.user_name {
        parts.push(short_user(user).to_owned());
    }
    if let Some(r) = &t.refresh_token {
        parts.push(format!("r={r}"));
    }
    if let Some(a) = &t.access_token {
        parts.push(format!("a={a}"));
    }
    if let Some(e) = t.expiry_time {
        parts.push(format!("e={}", e % 1_000_000));
    }
    if t.client_id.is_none() {
        parts.push("no client".to_owned());
    }
    out.push_str(&parts.join(" "));
    out.push('}');
    out
}

fn show_opt(t: Option<&OAuthToken>) -> String {
    t.map_or_else(|| "nothing".to_owned(), show)
}

fn show_world(world: &World) -> String {
    if world.is_empty() {
        return "{}".to_owned();
    }
    world.values().map(show).collect::<Vec<_>>().join(", ")
}

/// An error with its chain of sources, on one line.
pub fn error_text(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// Words of LocalStack's own failures (moto scanning its secrets while
/// another request changes them), which Secrets Manager does not answer.
const EMULATOR_WORDS: [&str; 2] = ["dictionary changed size during iteration", "InternalError"];

// ---------------------------------------------------------------------------
// Running a history

/// The tokens a history saves: fixed test values and a counter, so that
/// every write is told apart.
struct Values {
    users: Vec<String>,
    counter: u64,
    base_expiry: i64,
}

impl Values {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn expiry(&self, n: u64) -> i64 {
        // Hours ahead, so that no cache drops a token for its expiry; the
        // counter makes each expiry distinct.
        self.base_expiry + n as i64
    }

    fn full(&mut self, id: Option<String>, user: usize) -> OAuthToken {
        let n = self.next();
        OAuthToken {
            id,
            user_name: Some(self.users[user].clone()),
            client_id: Some("1000.MODELCLIENT".into()),
            client_secret: Some("model-secret".into()),
            refresh_token: Some(format!("r{n}")),
            access_token: Some(format!("a{n}")),
            grant_token: None,
            expiry_time: Some(self.expiry(n)),
            redirect_url: None,
            api_domain: Some("https://www.zohoapis.com".into()),
        }
    }
}

/// What happened in one history.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub log: Vec<String>,
    pub failure: Option<Failure>,
    /// Steps whose injected fault fired.
    pub faults: usize,
    pub elapsed: Duration,
}

/// A violated property, where, and what the storage holds.
#[derive(Debug, Clone)]
pub struct Failure {
    /// 1-based step number.
    pub step: usize,
    pub property: Property,
    pub detail: String,
    pub diagnosis: String,
    /// Whether what was seen is known emulator behaviour, not the store's.
    pub emulator_note: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "VIOLATED at step {}: {}", self.step, self.property)?;
        writeln!(f, "  {}", self.detail)?;
        if let Some(note) = &self.emulator_note {
            writeln!(f, "  EMULATOR ARTIFACT? {note}")?;
        }
        if !self.diagnosis.trim().is_empty() {
            for line in self.diagnosis.lines() {
                writeln!(f, "  | {line}")?;
            }
        }
        Ok(())
    }
}

/// Runs `plan` on `fleet` against the model.
pub async fn run_plan(fleet: &dyn Fleet, plan: &Plan, users: usize) -> Outcome {
    let started = Instant::now();
    let mut values = Values {
        users: (0..users.max(1))
            .map(|n| format!("user{n}@model.example"))
            .collect(),
        counter: 0,
        base_expiry: now_millis() + 6 * 3_600_000,
    };
    let mut model = Model::new(
        fleet.len(),
        fleet.cache_ttl(),
        fleet.cache_slack(),
        Instant::now(),
    );
    model.holds_names = plan.hold_names;
    let mut log = Vec::new();
    let mut faults = 0;
    if plan.hold_names {
        fleet.hold_deleted_names().await;
        log.push("    (deleted names stay taken until a purge step, as on AWS)".to_owned());
    }
    let mut failure = None;
    for (n, step) in plan.steps.iter().enumerate() {
        let number = n + 1;
        let outcome = run_step(fleet, &mut model, &mut values, step, number).await;
        if outcome.fired {
            faults += 1;
        }
        log.push(outcome.line);
        log.extend(outcome.extra);
        if let Some(mut breach) = outcome.breach {
            breach.ids.sort();
            breach.ids.dedup();
            let diagnosis = fleet.diagnose(breach.ids.clone()).await;
            let emulator_note = emulator_note(&breach.detail, &diagnosis);
            failure = Some(Failure {
                step: number,
                property: breach.property,
                detail: format!("{}\n  model now: {}", breach.detail, model.describe()),
                diagnosis,
                emulator_note,
            });
            break;
        }
        if model.overwhelmed() {
            log.push(format!(
                "    (stopped: {} possible states, past what the model tracks)",
                model.possible()
            ));
            break;
        }
    }
    fleet.purge().await;
    Outcome {
        seed: plan.seed,
        log,
        failure,
        faults,
        elapsed: started.elapsed(),
    }
}

fn emulator_note(detail: &str, diagnosis: &str) -> Option<String> {
    if EMULATOR_WORDS.iter().any(|w| detail.contains(w)) {
        return Some(
            "the failure carries LocalStack's InternalError (the emulator failing under \
             load, not the store); Secrets Manager does not answer so"
                .to_owned(),
        );
    }
    if diagnosis.contains("HIDDEN") || diagnosis.contains("DOUBLY CREATED") {
        return Some(
            "the diagnosis shows the emulator's lagging batch read or its non-atomic \
             CreateSecret (see the diagnosis): what a batch read answered may be LocalStack's, \
             not the store's"
                .to_owned(),
        );
    }
    None
}

/// One step's result.
struct StepOutcome {
    line: String,
    extra: Vec<String>,
    breach: Option<Breach>,
    fired: bool,
}

/// A store call's result, in doubt or not.
enum Answer<T> {
    Ok(T),
    /// Failed with a fault fired: its effect is in doubt.
    InDoubt(StoreError),
    /// Failed with no fault fired.
    Unfaulted(StoreError),
}

#[allow(clippy::too_many_lines)]
async fn run_step(
    fleet: &dyn Fleet,
    model: &mut Model,
    values: &mut Values,
    step: &Step,
    number: usize,
) -> StepOutcome {
    let i = step.instance % fleet.len();
    let users = values.users.clone();
    let note = step.note.map_or(String::new(), |n| format!(" ({n})"));
    let inject = step
        .inject
        .filter(|_| !matches!(step.op, Op::Check | Op::Wait { .. } | Op::Purge));
    let injected = inject.map_or(String::new(), |j| format!(" [{j}]"));
    // "op -> answer" becomes "op (note) [injection] -> answer".
    let head = |line: String| match line.split_once(" -> ") {
        Some((op, answer)) => format!("{number:>3}. [{i}] {op}{note}{injected} -> {answer}"),
        None => format!("{number:>3}. [{i}] {line}{note}{injected}"),
    };
    let mut extra = Vec::new();

    // Steps that are not one store operation.
    match step.op {
        Op::Wait { per_mille_of_ttl } => {
            // Only caches age: with none, there is nothing to wait for.
            let pause = fleet.cache_ttl() * per_mille_of_ttl / 1000;
            tokio::time::sleep(pause).await;
            return StepOutcome {
                line: head(format!("wait {} ms", pause.as_millis())),
                extra,
                breach: None,
                fired: false,
            };
        }
        Op::Purge => {
            fleet.purge().await;
            model.held_ids.clear();
            return StepOutcome {
                line: head("purge: AWS finishes purging the deleted names".into()),
                extra,
                breach: None,
                fired: false,
            };
        }
        Op::Check => {
            let (breach, lines) = check(fleet, model, &users).await;
            extra.extend(lines);
            return StepOutcome {
                line: head("check: wait out the cache TTL, read everything everywhere".into()),
                extra,
                breach,
                fired: false,
            };
        }
        _ => {}
    }

    let store = fleet.store(i);
    if let Some(injection) = inject {
        fleet.arm(i, injection).await;
    }
    let start = Instant::now();
    let (line, breach, fired);
    macro_rules! call {
        ($future:expr) => {{
            let result = $future.await;
            let fired = if inject.is_some() {
                fleet.disarm(i).await > 0
            } else {
                false
            };
            let answer = match result {
                Ok(v) => Answer::Ok(v),
                Err(e) if fired => Answer::InDoubt(e),
                Err(e) => Answer::Unfaulted(e),
            };
            (answer, fired)
        }};
    }
    match step.op {
        Op::SaveNew { .. }
        | Op::SaveWithId { .. }
        | Op::Rename { .. }
        | Op::Refresh { .. }
        | Op::NewGrant { .. } => {
            let token = match step.op {
                Op::SaveNew { user } => values.full(None, user % users.len()),
                Op::SaveWithId { id, user } => {
                    values.full(Some(model.resolve(id, &users)), user % users.len())
                }
                Op::Rename { id, user } => OAuthToken {
                    id: Some(model.resolve(id, &users)),
                    user_name: Some(users[user % users.len()].clone()),
                    ..OAuthToken::default()
                },
                Op::Refresh { id } => {
                    let n = values.next();
                    OAuthToken {
                        id: Some(model.resolve(id, &users)),
                        access_token: Some(format!("a{n}")),
                        expiry_time: Some(values.expiry(n)),
                        ..OAuthToken::default()
                    }
                }
                Op::NewGrant { id } => {
                    let n = values.next();
                    OAuthToken {
                        id: Some(model.resolve(id, &users)),
                        refresh_token: Some(format!("r{n}")),
                        access_token: Some(format!("a{n}")),
                        expiry_time: Some(values.expiry(n)),
                        ..OAuthToken::default()
                    }
                }
                _ => unreachable!(),
            };
            let kind = match step.op {
                Op::SaveNew { .. } => "save (no id)",
                Op::SaveWithId { .. } => "save with id",
                Op::Rename { .. } => "rename",
                Op::Refresh { .. } => "refresh",
                _ => "new grant",
            };
            let mut saved = token.clone();
            let (answer, f) = call!(store.save_token(&mut saved));
            fired = f;
            let end = Instant::now();
            model.span(i, start, end);
            let (shown, result) = match answer {
                Answer::Ok(()) => (
                    format!("ok {}", show(&saved)),
                    model.saved(number, i, &token, Some(Ok(&saved)), (start, end)),
                ),
                Answer::Unfaulted(StoreError::InvalidInput { reason })
                | Answer::InDoubt(StoreError::InvalidInput { reason }) => {
                    let error = StoreError::invalid_input(reason);
                    let text = format!("refused: {}", error_text(&error));
                    let result = model.saved(number, i, &token, Some(Err(&error)), (start, end));
                    (text, result)
                }
                Answer::InDoubt(e) => (
                    format!("failed (in doubt): {}", error_text(&e)),
                    model.saved(number, i, &token, None, (start, end)),
                ),
                // A token the caller names by id must live under that id's
                // secret name: while AWS still holds the name of the deleted
                // secret, the save waits for the purge a while, then gives up
                // with nothing stored (the store's documented answer).
                Answer::Unfaulted(StoreError::Conflict { operation, .. })
                    if model.holds_names
                        && operation.contains("deletion is in flight")
                        && token
                            .id
                            .as_ref()
                            .is_some_and(|id| model.held_ids.contains(id)) =>
                {
                    model.unchanged(number, (start, end));
                    (
                        format!("refused while AWS holds the deleted name: {operation}"),
                        Ok(()),
                    )
                }
                Answer::Unfaulted(e) => {
                    let text = error_text(&e);
                    // Record it in doubt too, for the report's model state.
                    let _ = model.saved(number, i, &token, None, (start, end));
                    (
                        format!("FAILED with no fault: {text}"),
                        Err(Breach {
                            property: Property::UnfaultedOperationsSucceed,
                            detail: format!(
                                "{kind} of {} failed with no fault fired: {text}",
                                show(&token)
                            ),
                            ids: model.ids_of(&token),
                        }),
                    )
                }
            };
            line = head(format!("{kind} {} -> {shown}", show(&token)));
            breach = result.err();
        }
        Op::Delete { id } => {
            let id = model.resolve(id, &users);
            let (answer, f) = call!(store.delete_token(&id));
            fired = f;
            model.held_ids.insert(id.clone());
            let end = Instant::now();
            model.span(i, start, end);
            let users_before: Vec<(String, Option<String>)> = model
                .users_of(&id)
                .into_iter()
                .map(|u| (id.clone(), Some(u)))
                .collect();
            let (shown, result) = match answer {
                Answer::Ok(()) => {
                    model.deleted(number, i, &id, true, (start, end));
                    ("ok".to_owned(), Ok(()))
                }
                Answer::InDoubt(e) => {
                    model.deleted(number, i, &id, false, (start, end));
                    (format!("failed (in doubt): {}", error_text(&e)), Ok(()))
                }
                Answer::Unfaulted(e) => {
                    model.deleted(number, i, &id, false, (start, end));
                    let text = error_text(&e);
                    (
                        format!("FAILED with no fault: {text}"),
                        Err(Breach {
                            property: Property::UnfaultedOperationsSucceed,
                            detail: format!(
                                "delete_token({id}) failed with no fault fired: {text}"
                            ),
                            ids: users_before,
                        }),
                    )
                }
            };
            line = head(format!("delete {id} -> {shown}"));
            breach = result.err();
        }
        Op::FindUser { user } => {
            let user = users[user % users.len()].clone();
            let (answer, f) = call!(store.find_token(&OAuthToken::for_user(user.clone())));
            fired = f;
            let end = Instant::now();
            model.span(i, start, end);
            let (shown, result) = read_result(
                answer,
                &format!("find_token({user})"),
                |found| model.found_by_user(i, &user, found.as_ref(), (start, end)),
                |found| show_opt(found.as_ref()),
            );
            line = head(format!("find user {} -> {shown}", short_user(&user)));
            breach = result.err();
        }
        Op::FindId { id } => {
            let id = model.resolve(id, &users);
            let (answer, f) = call!(store.find_token_by_id(&id));
            fired = f;
            let end = Instant::now();
            model.span(i, start, end);
            let (shown, result) = read_result(
                answer,
                &format!("find_token_by_id({id})"),
                |found| model.found_by_id(i, &id, found.as_ref(), (start, end)),
                |found| show_opt(found.as_ref()),
            );
            line = head(format!("find id {id} -> {shown}"));
            breach = result.err();
        }
        Op::GetTokens => {
            let (answer, f) = call!(store.get_tokens());
            fired = f;
            let end = Instant::now();
            model.span(i, start, end);
            let (shown, result) = read_result(
                answer,
                "get_tokens",
                |tokens| model.listed(i, tokens, (start, end)),
                |tokens: &Vec<OAuthToken>| {
                    let mut shown: Vec<String> = tokens.iter().map(show).collect();
                    shown.sort();
                    format!("[{}]", shown.join(", "))
                },
            );
            line = head(format!("get_tokens -> {shown}"));
            breach = result.err();
        }
        Op::Repair => {
            let (answer, f) = call!(fleet.repair(i));
            fired = f;
            let end = Instant::now();
            model.span(i, start, end);
            let (shown, result) = match answer {
                Answer::Ok(report) => (format!("ok {report}"), Ok(())),
                Answer::InDoubt(e) => (format!("failed (fault): {}", error_text(&e)), Ok(())),
                Answer::Unfaulted(e) => {
                    let text = error_text(&e);
                    (
                        format!("FAILED with no fault: {text}"),
                        Err(Breach {
                            property: Property::UnfaultedOperationsSucceed,
                            detail: format!("repair failed with no fault fired: {text}"),
                            ids: Vec::new(),
                        }),
                    )
                }
            };
            line = head(format!("repair -> {shown}"));
            breach = result.err();
        }
        Op::Wait { .. } | Op::Purge | Op::Check => unreachable!(),
    }
    if matches!(inject, Some(Injection::Stop { .. })) {
        fleet.replace(i).await;
        model.replaced(i);
        extra.push(format!("     [{i}] replaced by a fresh instance"));
    }
    StepOutcome {
        line,
        extra,
        breach,
        fired,
    }
}

/// A read's line and check: in doubt reads check nothing (a failed read
/// changes nothing), unfaulted failures are a breach.
fn read_result<T>(
    answer: Answer<T>,
    what: &str,
    check: impl FnOnce(&T) -> Result<(), Breach>,
    shown: impl FnOnce(&T) -> String,
) -> (String, Result<(), Breach>) {
    match answer {
        Answer::Ok(v) => (shown(&v), check(&v)),
        Answer::InDoubt(e) => (format!("failed (fault): {}", error_text(&e)), Ok(())),
        Answer::Unfaulted(e) => {
            let text = error_text(&e);
            (
                format!("FAILED with no fault: {text}"),
                Err(Breach {
                    property: Property::UnfaultedOperationsSucceed,
                    detail: format!("{what} failed with no fault fired: {text}"),
                    ids: Vec::new(),
                }),
            )
        }
    }
}

/// [`Op::Check`]: waits until the cache TTL has passed since the last
/// operation, then reads every id the model knows, every pool user and
/// `get_tokens` on every instance; each answer is checked on its own, then
/// all together against one state.
async fn check(
    fleet: &dyn Fleet,
    model: &mut Model,
    users: &[String],
) -> (Option<Breach>, Vec<String>) {
    let ttl = fleet.cache_ttl();
    if !ttl.is_zero() {
        // Every instance's last operation, whatever it was, fills caches.
        tokio::time::sleep(ttl + 2 * fleet.cache_slack()).await;
    }
    let ids = model.known_ids();
    let mut observed = Vec::new();
    let mut lines = Vec::new();
    for i in 0..fleet.len() {
        let store = fleet.store(i);
        let mut o = Observation::default();
        let start = Instant::now();
        let listed = store.get_tokens().await;
        let span = (start, Instant::now());
        model.span(i, span.0, span.1);
        match listed {
            Ok(tokens) => {
                if let Err(b) = model.listed(i, &tokens, span) {
                    return (Some(after_ttl(b)), lines);
                }
                o.listed = tokens;
            }
            Err(e) => return (Some(unfaulted("get_tokens", &e)), lines),
        }
        for id in &ids {
            let start = Instant::now();
            let found = store.find_token_by_id(id).await;
            let span = (start, Instant::now());
            model.span(i, span.0, span.1);
            match found {
                Ok(found) => {
                    if let Err(b) = model.found_by_id(i, id, found.as_ref(), span) {
                        return (Some(after_ttl(b)), lines);
                    }
                    o.by_id.insert(id.clone(), found);
                }
                Err(e) => {
                    return (
                        Some(unfaulted(&format!("find_token_by_id({id})"), &e)),
                        lines,
                    );
                }
            }
        }
        for user in users {
            let start = Instant::now();
            let found = store.find_token(&OAuthToken::for_user(user.clone())).await;
            let span = (start, Instant::now());
            model.span(i, span.0, span.1);
            match found {
                Ok(found) => {
                    if let Err(b) = model.found_by_user(i, user, found.as_ref(), span) {
                        return (Some(after_ttl(b)), lines);
                    }
                    o.by_user.insert(user.clone(), found);
                }
                Err(e) => return (Some(unfaulted(&format!("find_token({user})"), &e)), lines),
            }
        }
        lines.push(format!("       [{i}] {o}"));
        observed.push(o);
    }
    match model.settle(&observed) {
        Ok(()) => {
            lines.push(format!("       settled: {}", model.describe()));
            (None, lines)
        }
        Err(b) => (Some(b), lines),
    }
}

fn after_ttl(mut breach: Breach) -> Breach {
    breach.detail = format!("after the cache TTL passed, {}", breach.detail);
    breach
}

fn unfaulted(what: &str, e: &StoreError) -> Breach {
    Breach {
        property: Property::UnfaultedOperationsSucceed,
        detail: format!("{what} failed with no fault fired: {}", error_text(e)),
        ids: Vec::new(),
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------
// Running many histories

/// The report of a failing history: seed, replay line, steps, property.
pub fn report(config: &Config, outcome: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history seed {} ({} steps run, {} with a fault fired, {:.1} s); replay: \
         MODEL_SEED={} cargo test --all-features --test model -- --exact {} --include-ignored",
        outcome.seed,
        outcome.log.iter().filter(|l| l.contains(". [")).count(),
        outcome.faults,
        outcome.elapsed.as_secs_f64(),
        outcome.seed,
        config.test
    );
    for line in &outcome.log {
        let _ = writeln!(out, "{line}");
    }
    if let Some(failure) = &outcome.failure {
        let _ = write!(out, "{failure}");
    }
    out
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// What [`explore`] found.
#[derive(Debug)]
pub struct Explored {
    /// Failing histories, in the order they ran.
    pub failures: Vec<(Plan, Outcome)>,
    /// One line: histories, faults, failures, time.
    pub summary: String,
}

/// Runs the histories of `config` (or the one of `MODEL_SEED`) on fleets
/// from `make`, `config.parallel` at a time, until the first failure (or all
/// of them with `MODEL_KEEP_GOING=1`).
pub async fn explore(config: &Config, make: &MakeFleet) -> Explored {
    let abilities = {
        let fleet = make().await;
        let abilities = Abilities {
            instances: fleet.len(),
            repair: fleet.can_repair(),
            hold_names: fleet.can_hold_deleted_names(),
        };
        fleet.teardown().await;
        abilities
    };
    let mut config = config.clone();
    if let Some(steps) = env_number("MODEL_STEPS") {
        config.steps = steps as usize;
    }
    if let Some(percent) = env_number("MODEL_HOLD_PERCENT") {
        config.hold_percent = percent as u32;
    }
    let seeds: Vec<u64> = match env_number("MODEL_SEED") {
        Some(seed) => vec![seed],
        None => {
            let count = env_number("MODEL_HISTORIES").map_or(config.histories, |n| n as usize);
            let base = fastrand::u64(..) >> 16;
            (0..count as u64).map(|n| base + n).collect()
        }
    };
    let keep_going = std::env::var("MODEL_KEEP_GOING").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let mut failures: Vec<(Plan, Outcome)> = Vec::new();
    let mut ran = 0;
    let mut faults = 0;
    let mut longest = Duration::ZERO;
    let mut passing_time = Duration::ZERO;
    let mut passing = 0u32;
    // Once a history fails (and not keep_going), no new one starts; those
    // running finish, so that each tears its fleet down.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runs = futures::stream::iter(seeds)
        .map(|seed| {
            let plan = plan(seed, &config, abilities);
            let make = Arc::clone(make);
            let users = config.users;
            let stop = Arc::clone(&stop);
            async move {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                let fleet = make().await;
                let outcome = run_plan(fleet.as_ref(), &plan, users).await;
                fleet.teardown().await;
                if outcome.failure.is_some() && !keep_going {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Some((plan, outcome))
            }
        })
        .buffer_unordered(config.parallel.max(1));
    futures::pin_mut!(runs);
    while let Some(run) = runs.next().await {
        let Some((plan, outcome)) = run else { continue };
        ran += 1;
        faults += outcome.faults;
        longest = longest.max(outcome.elapsed);
        if outcome.failure.is_some() {
            failures.push((plan, outcome));
        } else {
            passing += 1;
            passing_time += outcome.elapsed;
        }
    }
    let mean = passing_time.checked_div(passing).unwrap_or_default();
    let summary = format!(
        "model test {}: {ran} histories ({} steps each), {faults} steps with a fault fired, \
         {} failing, {:.1} s ({} at a time; longest history {:.1} s, a passing one {:.2} s \
         on average)",
        config.test,
        config.steps,
        failures.len(),
        started.elapsed().as_secs_f64(),
        config.parallel.max(1),
        longest.as_secs_f64(),
        mean.as_secs_f64()
    );
    Explored { failures, summary }
}

/// [`explore`], then shrinks the first failure of each property and panics
/// with the report of every failing history. Prints the summary either way.
pub async fn run(config: Config, make: MakeFleet) {
    let Explored { failures, summary } = explore(&config, &make).await;
    eprintln!("{summary}");
    if failures.is_empty() {
        return;
    }
    let mut text = format!("{summary}\n");
    let shrink_budget = Duration::from_secs(env_number("MODEL_SHRINK_SECS").unwrap_or(120));
    for (k, (plan, outcome)) in failures.iter().enumerate() {
        let _ = writeln!(text, "\n=== failing {}", report(&config, outcome));
        // Shrink the first failure of each property only: time is bounded.
        let property = outcome.failure.as_ref().map(|f| f.property);
        let first_of_kind = failures[..k]
            .iter()
            .all(|(_, o)| o.failure.as_ref().map(|f| f.property) != property);
        if first_of_kind
            && !shrink_budget.is_zero()
            && let Some(shorter) = shrink(&make, plan, outcome, config.users, shrink_budget).await
        {
            let _ = writeln!(
                text,
                "--- shrunk to {} steps (same property; seed {} with steps dropped, so replaying \
                 the seed runs the unshrunk history):\n{}",
                shorter.1.log.iter().filter(|l| l.contains(". [")).count(),
                plan.seed,
                report(&config, &shorter.1)
            );
        }
    }
    let mut by_property: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, o) in &failures {
        if let Some(f) = &o.failure {
            by_property
                .entry(f.property.to_string())
                .or_default()
                .push(o.seed);
        }
    }
    let _ = writeln!(text, "\nfailing seeds by property:");
    for (property, seeds) in by_property {
        let _ = writeln!(text, "  {property}: {seeds:?}");
    }
    panic!("{text}");
}

/// Drops steps of a failing plan while the same property still fails:
/// first the steps after the failing one, then chunks, halving their size.
async fn shrink(
    make: &MakeFleet,
    plan: &Plan,
    outcome: &Outcome,
    users: usize,
    budget: Duration,
) -> Option<(Plan, Outcome)> {
    let failure = outcome.failure.as_ref()?;
    let property = failure.property;
    let deadline = Instant::now() + budget;
    let mut best = plan.clone();
    best.steps.truncate(failure.step);
    let mut best_outcome = None;
    let try_plan = |candidate: Plan| async move {
        let fleet = make().await;
        let outcome = run_plan(fleet.as_ref(), &candidate, users).await;
        fleet.teardown().await;
        let same = outcome.failure.as_ref().map(|f| f.property) == Some(property);
        (candidate, outcome, same)
    };
    let (candidate, o, same) = try_plan(best.clone()).await;
    if same {
        best = candidate;
        best_outcome = Some(o);
    } else {
        best = plan.clone();
    }
    let mut chunk = best.steps.len() / 2;
    while chunk >= 1 && Instant::now() < deadline {
        let mut start = 0;
        let mut progressed = false;
        while start + 1 < best.steps.len() && Instant::now() < deadline {
            // Keep the last step: it is where the property fails.
            let end = (start + chunk).min(best.steps.len() - 1);
            if end <= start {
                break;
            }
            let mut candidate = best.clone();
            candidate.steps.drain(start..end);
            let (candidate, o, same) = try_plan(candidate).await;
            if same {
                let failing = o.failure.as_ref().map_or(candidate.steps.len(), |f| f.step);
                best = candidate;
                best.steps.truncate(failing);
                best_outcome = Some(o);
                progressed = true;
            } else {
                start += chunk;
            }
        }
        if !progressed {
            chunk /= 2;
        }
    }
    best_outcome.map(|o| (best, o))
}
