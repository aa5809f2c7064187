//! The version ledger: how many versions each secret got, and when.
//!
//! Secrets Manager keeps every version of a secret for 24 hours and a
//! secret holds about 100 of them; past that, writes fail with
//! `LimitExceededException`. LocalStack enforces none of it, so the tests
//! count: a [`VersionLedger`] on a client records every version a call
//! creates (each successful `CreateSecret` and `PutSecretValue`), stamped by
//! a [`SimClock`], and [`VersionLedger::assert_within_quota`] fails a test
//! whose writes would have hit the quota on AWS.
//!
//! It also records which of those calls were `CreateSecret`s, and every
//! successful `DeleteSecret`: LocalStack's `CreateSecret` is not atomic (two
//! concurrent creates of one name can both succeed, the later replacing the
//! earlier), and [`VersionLedger::created_twice`] tells when that happened.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::sdk_observer::{Observe, Observer, SecretWrite};

/// The most versions Secrets Manager lets a secret hold (about 100).
pub const VERSION_LIMIT: usize = 100;

/// How long Secrets Manager keeps a version that lost its staging labels.
pub const VERSION_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// A clock the tests control, shared by clones.
///
/// [`SimClock::new`] starts at the real time of its creation and moves only
/// when [`SimClock::advance`]d; [`SimClock::starting_at`] starts anywhere;
/// [`SimClock::wall`] follows the wall clock (plus what was advanced), for
/// ledgers that merge versions stamped by other processes.
#[derive(Debug, Clone)]
pub struct SimClock(Arc<ClockState>);

#[derive(Debug)]
struct ClockState {
    /// `None`: the wall clock.
    start: Option<SystemTime>,
    offset: Mutex<Duration>,
}

impl SimClock {
    /// A clock stopped at the real time now, moved only by [`advance`](Self::advance).
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A clock stopped at `start`, moved only by [`advance`](Self::advance).
    pub fn starting_at(start: SystemTime) -> Self {
        Self::with_start(Some(start))
    }

    /// The wall clock, plus whatever was [`advance`](Self::advance)d.
    pub fn wall() -> Self {
        Self::with_start(None)
    }

    fn with_start(start: Option<SystemTime>) -> Self {
        Self(Arc::new(ClockState {
            start,
            offset: Mutex::new(Duration::ZERO),
        }))
    }

    /// The time now, on this clock.
    pub fn now(&self) -> SystemTime {
        self.0.start.unwrap_or_else(SystemTime::now) + *self.offset()
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.offset() += by;
    }

    fn offset(&self) -> MutexGuard<'_, Duration> {
        self.0.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Records, per secret name, the time of every version created.
#[derive(Debug)]
pub struct VersionLedger {
    clock: SimClock,
    versions: Mutex<BTreeMap<String, Vec<SystemTime>>>,
    /// Per secret, its successful creates and deletes, in the order recorded.
    lifecycle: Mutex<BTreeMap<String, Vec<(SystemTime, Lifecycle)>>>,
}

/// A call that starts or ends a secret, as [`VersionLedger`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// A successful `CreateSecret`.
    Create,
    /// A successful `DeleteSecret`.
    Delete,
}

impl Lifecycle {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Delete => "delete",
        }
    }
}

/// The versions of the secrets of one kind under one store prefix
/// (`<prefix>/tokens/*`, `<prefix>/index*`), from [`VersionLedger::summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// `<prefix>/tokens/*`, `<prefix>/index*`, or `<parent>/*` for other names.
    pub group: String,
    /// Secrets of the group written.
    pub secrets: usize,
    /// Versions created in all of them.
    pub versions: usize,
    /// The most versions any one of them got in a [`VERSION_WINDOW`].
    pub max_in_window: usize,
    /// The secret that got them.
    pub busiest: String,
}

impl VersionLedger {
    /// An empty ledger stamping versions with `clock`.
    pub fn new(clock: SimClock) -> Arc<Self> {
        Arc::new(Self {
            clock,
            versions: Mutex::new(BTreeMap::new()),
            lifecycle: Mutex::new(BTreeMap::new()),
        })
    }

    /// An empty ledger on the wall clock (what a LocalStack test wants).
    pub fn on_wall_clock() -> Arc<Self> {
        Self::new(SimClock::wall())
    }

    /// The clock that stamps the versions.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// The SDK interceptor that feeds this ledger: a version for each
    /// `CreateSecret` and `PutSecretValue` that succeeded, and the creates
    /// and deletes of each secret.
    pub fn interceptor(self: &Arc<Self>) -> Observer {
        Observer::new("VersionLedger", Arc::clone(self) as Arc<dyn Observe>)
    }

    /// Records one version of `secret`, now on the ledger's clock.
    pub fn record(&self, secret: &str) {
        let now = self.clock.now();
        self.record_at(secret, now);
    }

    /// Records one version of `secret` made at `at`.
    pub fn record_at(&self, secret: &str, at: SystemTime) {
        self.lock().entry(secret.to_owned()).or_default().push(at);
    }

    /// Records a successful `CreateSecret` or `DeleteSecret` of `secret`,
    /// now on the ledger's clock (a create's version is recorded apart,
    /// with [`record`](Self::record)).
    pub fn record_lifecycle(&self, secret: &str, event: Lifecycle) {
        let now = self.clock.now();
        self.lifecycle_lock()
            .entry(secret.to_owned())
            .or_default()
            .push((now, event));
    }

    /// Successful `CreateSecret`s of `secret`, at any time.
    pub fn creates(&self, secret: &str) -> usize {
        self.lifecycle_lock().get(secret).map_or(0, |events| {
            events
                .iter()
                .filter(|(_, e)| *e == Lifecycle::Create)
                .count()
        })
    }

    /// Whether `secret` was created twice with no delete between (in time
    /// order): on LocalStack, two concurrent creates that both succeeded,
    /// the later replacing the earlier's value.
    pub fn created_twice(&self, secret: &str) -> bool {
        let Some(events) = self.lifecycle_lock().get(secret).cloned() else {
            return false;
        };
        let mut events = events;
        events.sort_by_key(|(at, _)| *at);
        events
            .windows(2)
            .any(|pair| pair[0].1 == Lifecycle::Create && pair[1].1 == Lifecycle::Create)
    }

    /// Versions recorded for `secret`, at any time.
    pub fn versions(&self, secret: &str) -> usize {
        self.lock().get(secret).map_or(0, Vec::len)
    }

    /// Versions recorded for every secret, at any time.
    pub fn total(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Secrets with at least one version recorded.
    pub fn secrets(&self) -> usize {
        self.lock().len()
    }

    /// The secret that got the most versions in any `window` (sliding),
    /// and how many; `("", 0)` for an empty ledger. Ties go to the first
    /// name in order.
    pub fn max_in_window(&self, window: Duration) -> (String, usize) {
        let mut best = (String::new(), 0);
        for (secret, times) in self.lock().iter() {
            let n = max_in_window(times, window);
            if n > best.1 {
                best = (secret.clone(), n);
            }
        }
        best
    }

    /// Every secret whose versions in some `window` pass `limit`, with its
    /// count, busiest first.
    pub fn over(&self, limit: usize, window: Duration) -> Vec<(String, usize)> {
        let mut over: Vec<(String, usize)> = self
            .lock()
            .iter()
            .map(|(secret, times)| (secret.clone(), max_in_window(times, window)))
            .filter(|(_, n)| *n > limit)
            .collect();
        over.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        over
    }

    /// The versions by group of secrets (see [`GroupSummary`]), in group order.
    pub fn summary(&self) -> Vec<GroupSummary> {
        let mut groups: BTreeMap<String, GroupSummary> = BTreeMap::new();
        for (secret, times) in self.lock().iter() {
            let name = group_of(secret);
            let group = groups.entry(name.clone()).or_insert(GroupSummary {
                group: name,
                secrets: 0,
                versions: 0,
                max_in_window: 0,
                busiest: String::new(),
            });
            group.secrets += 1;
            group.versions += times.len();
            let n = max_in_window(times, VERSION_WINDOW);
            if n > group.max_in_window {
                group.max_in_window = n;
                group.busiest = secret.clone();
            }
        }
        groups.into_values().collect()
    }

    /// The figures to copy into BENCHMARKS.md: the most versions a secret
    /// got in 24 hours and which, the secrets written, and each group.
    pub fn report(&self) -> String {
        let (busiest, max) = self.max_in_window(VERSION_WINDOW);
        let mut out = format!(
            "version ledger: {} versions in {} secrets; most in {:?}: {max} (limit {VERSION_LIMIT}) in {busiest}",
            self.total(),
            self.secrets(),
            VERSION_WINDOW,
        );
        for g in self.summary() {
            let _ = write!(
                out,
                "\n  {}: {} secrets, {} versions, most {} in {}",
                g.group, g.secrets, g.versions, g.max_in_window, g.busiest
            );
        }
        out
    }

    /// Panics, with every secret over the limit and the [`report`](Self::report),
    /// if any secret got more than [`VERSION_LIMIT`] versions in any
    /// [`VERSION_WINDOW`] of the ledger's clock: on AWS, its writes would have
    /// failed with `LimitExceededException`.
    pub fn assert_within_quota(&self) {
        let over = self.over(VERSION_LIMIT, VERSION_WINDOW);
        if over.is_empty() {
            return;
        }
        let list: Vec<String> = over
            .iter()
            .map(|(secret, n)| format!("  {secret}: {n} versions"))
            .collect();
        panic!(
            "{} secret(s) passed Secrets Manager's version quota ({VERSION_LIMIT} versions in {:?}):\n{}\n{}",
            over.len(),
            VERSION_WINDOW,
            list.join("\n"),
            self.report()
        );
    }

    /// The ledger as JSON, for a process to hand its ledger to its parent:
    /// `{"versions": {"<secret>": [<Unix time in ms>, …], …}, "lifecycle":
    /// {"<secret>": [[<ms>, "create" | "delete"], …], …}}`.
    pub fn to_json(&self) -> String {
        let versions = self.lock();
        let millis: BTreeMap<&String, Vec<u64>> = versions
            .iter()
            .map(|(secret, times)| (secret, times.iter().map(|t| unix_millis(*t)).collect()))
            .collect();
        let lifecycle = self.lifecycle_lock();
        let events: BTreeMap<&String, Vec<(u64, &str)>> = lifecycle
            .iter()
            .map(|(secret, events)| {
                let events = events
                    .iter()
                    .map(|(at, e)| (unix_millis(*at), e.as_str()))
                    .collect();
                (secret, events)
            })
            .collect();
        serde_json::json!({ "versions": millis, "lifecycle": events }).to_string()
    }

    /// Writes [`to_json`](Self::to_json) to `path`.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_json())
    }

    /// Adds the versions (and creates and deletes) of a
    /// [`to_json`](Self::to_json) ledger to this one. Also takes the bare
    /// `{"<secret>": [<ms>, …]}` of versions that the CLI's `--api-report` writes.
    pub fn merge_json(&self, json: &str) -> Result<(), serde_json::Error> {
        let mut value: serde_json::Value = serde_json::from_str(json)?;
        let full = value.get("versions").is_some_and(|v| v.is_object());
        let (versions, lifecycle) = if full {
            (value["versions"].take(), value["lifecycle"].take())
        } else {
            (value, serde_json::Value::Null)
        };
        let other: BTreeMap<String, Vec<u64>> = serde_json::from_value(versions)?;
        let events: BTreeMap<String, Vec<(u64, String)>> = if lifecycle.is_null() {
            BTreeMap::new()
        } else {
            serde_json::from_value(lifecycle)?
        };
        {
            let mut mine = self.lifecycle_lock();
            for (secret, events) in events {
                mine.entry(secret)
                    .or_default()
                    .extend(events.into_iter().map(|(ms, e)| {
                        let event = if e == "delete" {
                            Lifecycle::Delete
                        } else {
                            Lifecycle::Create
                        };
                        (UNIX_EPOCH + Duration::from_millis(ms), event)
                    }));
            }
        }
        let mut versions = self.lock();
        for (secret, times) in other {
            versions.entry(secret).or_default().extend(
                times
                    .into_iter()
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            );
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<SystemTime>>> {
        // A panicking test must not hide the ledger from the others.
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lifecycle_lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<(SystemTime, Lifecycle)>>> {
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The most of `times` (in any order) that fall in one `window` (sliding).
fn max_in_window(times: &[SystemTime], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut start = 0;
    let mut best = 0;
    for end in 0..sorted.len() {
        // Versions made `window` or more before this one have expired.
        while sorted[end]
            .duration_since(sorted[start])
            .is_ok_and(|d| d >= window)
        {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

/// The group of a secret name (see [`GroupSummary::group`]).
fn group_of(secret: &str) -> String {
    if let Some((prefix, _)) = secret.split_once("/tokens/") {
        return format!("{prefix}/tokens/*");
    }
    if let Some(at) = secret.rfind("/index") {
        return format!("{}*", &secret[..at + "/index".len()]);
    }
    match secret.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/*"),
        None => secret.to_owned(),
    }
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Observe for VersionLedger {
    fn secret_written(&self, secret: &str, write: SecretWrite) {
        // A put that later lost its compare-and-swap still made a version:
        // what counts is that this call succeeded.
        if write.adds_version() {
            self.record(secret);
        }
        match write {
            SecretWrite::Create => self.record_lifecycle(secret, Lifecycle::Create),
            SecretWrite::Delete => self.record_lifecycle(secret, Lifecycle::Delete),
            SecretWrite::Put => {}
        }
    }
}
