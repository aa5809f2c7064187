//! The model-based test: random histories of a fleet of store instances on
//! one prefix, with injected failures, checked against the reference model
//! of the store's guarantees in `tests/common/model.rs` (read its docs for
//! what is checked and how a failure reads).
//!
//! - `secrets_manager_fleet_keeps_the_guarantees`: three
//!   `SecretsManagerStore` instances over LocalStack, each behind a fault
//!   proxy of its own (so a failure hits one instance), all behind one more
//!   proxy that keeps a force-deleted name taken until the history's purge
//!   step, as AWS does while it purges (in half the histories). Faults that
//!   reach LocalStack (`ResetMidResponse`: the effect happens, the answer is
//!   lost) and faults that do not (`Http500`, `Throttle`), on a chosen call
//!   of an operation; a stop drops every call from a chosen one on (a killed
//!   Lambda) and a fresh instance takes over. A short cache TTL lets the
//!   checks wait it out.
//! - `secrets_manager_fleet_keeps_the_guarantees_long`: the same, thousands
//!   of longer histories (`#[ignore]`d).
//! - `storage_store_fleet_keeps_the_guarantees`: three `StorageStore`s on
//!   one `MemoryStorage`, each through a storage wrapper that fails its n-th
//!   call on command (after or before the call's effect).
//!
//! Replay one history with `MODEL_SEED=<seed>` (the failure prints the
//! command); `MODEL_HISTORIES`, `MODEL_STEPS`, `MODEL_KEEP_GOING=1` and
//! `MODEL_SHRINK_SECS` tune a run.

mod common;

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

#[path = "common/model.rs"]
mod model;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fault_proxy::{Fault, Proxy, Schedule, checking_client, client_for};
use model::{Config, Effect, Fleet, Injection, MakeFleet};
use zoho_token_store::{
    Expected, MemoryStorage, Record, SecretsManagerStore, Storage, StorageStore, StoreError,
    TokenStore, Version,
};

// ---------------------------------------------------------------------------
// SecretsManagerStore over LocalStack

/// How long the instances cache: short, so that a check waits it out quickly,
/// long enough that a few steps run on cached copies.
const SM_CACHE_TTL: Duration = Duration::from_millis(300);
/// Instances per fleet, as the issue asks.
const INSTANCES: usize = 3;

/// Three `SecretsManagerStore` instances on one fresh prefix.
struct SecretsManagerFleet {
    prefix: String,
    /// Between every instance's proxy and LocalStack: holds deleted names.
    purger: Proxy,
    /// One per instance: its faults.
    proxies: Vec<Proxy>,
    clients: Vec<aws_sdk_secretsmanager::Client>,
    stores: Mutex<Vec<SecretsManagerStore>>,
    /// Each proxy's count of injected faults when it was last armed.
    armed_at: Vec<AtomicU64>,
    /// Straight to LocalStack: diagnosis and cleanup.
    checker: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerFleet {
    async fn new() -> Self {
        let endpoint = common::localstack().await;
        let prefix = common::random_prefix();
        let purger = Proxy::start(endpoint, Duration::from_secs(1)).await;
        let mut proxies = Vec::new();
        let mut clients = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..INSTANCES {
            let proxy = Proxy::start(&purger.url(), Duration::from_secs(1)).await;
            // Each its own retry partition (client_for), short SDK backoff.
            let client = client_for(&proxy.url(), Duration::from_millis(10)).await;
            stores.push(sm_store(&client, &prefix));
            proxies.push(proxy);
            clients.push(client);
        }
        Self {
            prefix,
            purger,
            armed_at: (0..INSTANCES).map(|_| AtomicU64::new(0)).collect(),
            proxies,
            clients,
            stores: Mutex::new(stores),
            checker: checking_client().await,
        }
    }
}

/// A store instance with an empty cache. The timeouts are generous: a slow
/// emulator must not pass for an injected fault.
fn sm_store(client: &aws_sdk_secretsmanager::Client, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::builder()
        .client(client.clone())
        .prefix(prefix)
        .cache_ttl(SM_CACHE_TTL)
        .attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build()
        .expect("building a SecretsManagerStore")
}

#[async_trait]
impl Fleet for SecretsManagerFleet {
    fn len(&self) -> usize {
        INSTANCES
    }

    fn store(&self, i: usize) -> Arc<dyn TokenStore> {
        Arc::new(self.stores.lock().unwrap()[i].clone())
    }

    fn cache_ttl(&self) -> Duration {
        SM_CACHE_TTL
    }

    async fn arm(&self, i: usize, injection: Injection) {
        let proxy = &self.proxies[i];
        self.armed_at[i].store(proxy.injected(), Ordering::SeqCst);
        match injection {
            Injection::FailCall { call, effect } => {
                let fault = match effect {
                    Effect::Applied => Fault::ResetMidResponse,
                    Effect::Refused => Fault::Http500,
                    Effect::Throttled => Fault::Throttle,
                };
                proxy.fail_call_number(call, fault, false);
            }
            // Nothing reaches LocalStack from that call on.
            Injection::Stop { call } => proxy.fail_call_number(call, Fault::Drop, true),
        }
    }

    async fn disarm(&self, i: usize) -> u64 {
        let proxy = &self.proxies[i];
        proxy.clear_call_faults();
        proxy.injected() - self.armed_at[i].load(Ordering::SeqCst)
    }

    async fn replace(&self, i: usize) {
        // The dead instance's connections go; its successor starts cold.
        self.proxies[i].set(Schedule::Always(Fault::Refuse)).await;
        self.proxies[i].set(Schedule::PassThrough).await;
        self.stores.lock().unwrap()[i] = sm_store(&self.clients[i], &self.prefix);
    }

    fn can_hold_deleted_names(&self) -> bool {
        true
    }

    async fn hold_deleted_names(&self) {
        self.purger.hold_deleted_names();
    }

    async fn purge(&self) {
        self.purger.purge();
    }

    fn can_repair(&self) -> bool {
        true
    }

    async fn repair(&self, i: usize) -> Result<String, StoreError> {
        let store = self.stores.lock().unwrap()[i].clone();
        let r = store.repair().await?;
        Ok(format!(
            "indexed {:?} dropped {:?} duplicate users {:?} corrupt {:?} rebuilt {} tokens {}",
            r.indexed, r.dropped, r.duplicate_users, r.corrupt, r.index_rebuilt, r.tokens
        ))
    }

    async fn diagnose(&self, ids: Vec<(String, Option<String>)>) -> String {
        if ids.is_empty() {
            return String::new();
        }
        let names = common::secret_names_under(&self.checker, &format!("{}/", self.prefix)).await;
        let diagnosis =
            common::diagnose::explain_missing(&self.checker, &self.prefix, ids, None).await;
        format!(
            "what LocalStack holds, past every cache (the diagnosis reads each id as a \
             missing one would be read):\nsecrets: {names:?}\n{diagnosis}"
        )
    }

    async fn teardown(&self) {
        self.purger.purge();
        common::delete_prefix(&self.checker, &self.prefix).await;
    }
}

fn sm_fleets() -> MakeFleet {
    Arc::new(|| Box::pin(async { Box::new(SecretsManagerFleet::new().await) as Box<dyn Fleet> }))
}

/// The CI-sized run: about 200 short histories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_fleet_keeps_the_guarantees() {
    model::run(
        Config {
            test: "secrets_manager_fleet_keeps_the_guarantees",
            histories: 200,
            steps: 12,
            parallel: 2,
            ..Config::default()
        },
        sm_fleets(),
    )
    .await;
}

/// Thousands of longer histories: `cargo test --all-features --test model
/// -- --ignored` (about an hour on a 2-core machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "thousands of histories: run by hand"]
async fn secrets_manager_fleet_keeps_the_guarantees_long() {
    model::run(
        Config {
            test: "secrets_manager_fleet_keeps_the_guarantees_long",
            histories: 3000,
            steps: 30,
            parallel: 2,
            ..Config::default()
        },
        sm_fleets(),
    )
    .await;
}

// ---------------------------------------------------------------------------
// StorageStore over a storage that fails on command

/// One instance's view of the shared records: fails the armed call.
#[derive(Debug)]
struct FailingStorage {
    records: MemoryStorage,
    /// The armed injection and the calls made since it was armed.
    armed: Mutex<Option<(Injection, usize)>>,
    fired: AtomicU64,
}

/// What the armed injection does to one call.
enum Decision {
    Pass,
    /// Fails with no effect.
    FailBefore,
    /// Takes effect, then fails (the answer is lost).
    FailAfter,
}

impl FailingStorage {
    fn decide(&self) -> Decision {
        let mut armed = self.armed.lock().unwrap();
        let Some((injection, calls)) = armed.as_mut() else {
            return Decision::Pass;
        };
        *calls += 1;
        let decision = match *injection {
            Injection::FailCall { call, effect } if call == *calls => match effect {
                Effect::Applied => Decision::FailAfter,
                Effect::Refused | Effect::Throttled => Decision::FailBefore,
            },
            Injection::Stop { call } if *calls >= call => Decision::FailBefore,
            _ => Decision::Pass,
        };
        if !matches!(decision, Decision::Pass) {
            self.fired.fetch_add(1, Ordering::SeqCst);
        }
        decision
    }

    /// Runs `call` as decided.
    async fn run<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let fail = || StoreError::backend(what.to_owned(), "injected storage failure");
        match self.decide() {
            Decision::Pass => call.await,
            Decision::FailBefore => Err(fail()),
            Decision::FailAfter => {
                call.await?;
                Err(fail())
            }
        }
    }
}

#[async_trait]
impl Storage for FailingStorage {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        self.run("get", self.records.get(key)).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        expected: Expected<'_>,
    ) -> Result<Option<Version>, StoreError> {
        self.run("put", self.records.put(key, value, expected))
            .await
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.run("list", self.records.list()).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.run("delete", self.records.delete(key)).await
    }
}

/// Three `StorageStore`s on one `MemoryStorage`.
struct StorageFleet {
    records: MemoryStorage,
    storages: Mutex<Vec<Arc<FailingStorage>>>,
}

impl StorageFleet {
    fn new() -> Self {
        let records = MemoryStorage::new();
        let storages = (0..INSTANCES).map(|_| failing(&records)).collect();
        Self {
            records,
            storages: Mutex::new(storages),
        }
    }

    fn storage(&self, i: usize) -> Arc<FailingStorage> {
        Arc::clone(&self.storages.lock().unwrap()[i])
    }
}

fn failing(records: &MemoryStorage) -> Arc<FailingStorage> {
    Arc::new(FailingStorage {
        records: records.clone(),
        armed: Mutex::new(None),
        fired: AtomicU64::new(0),
    })
}

#[async_trait]
impl Fleet for StorageFleet {
    fn len(&self) -> usize {
        INSTANCES
    }

    fn store(&self, i: usize) -> Arc<dyn TokenStore> {
        Arc::new(StorageStore::new(self.storage(i)))
    }

    fn cache_ttl(&self) -> Duration {
        Duration::ZERO
    }

    /// No cache and one linearizable storage: every read answers the state
    /// during its call, nothing older.
    fn cache_slack(&self) -> Duration {
        Duration::ZERO
    }

    async fn arm(&self, i: usize, injection: Injection) {
        let storage = self.storage(i);
        storage.fired.store(0, Ordering::SeqCst);
        *storage.armed.lock().unwrap() = Some((injection, 0));
    }

    async fn disarm(&self, i: usize) -> u64 {
        let storage = self.storage(i);
        *storage.armed.lock().unwrap() = None;
        storage.fired.load(Ordering::SeqCst)
    }

    async fn replace(&self, i: usize) {
        self.storages.lock().unwrap()[i] = failing(&self.records);
    }

    async fn diagnose(&self, _ids: Vec<(String, Option<String>)>) -> String {
        let mut keys = self.records.list().await.unwrap_or_default();
        keys.sort();
        let mut out = String::from("records:");
        for key in keys {
            if let Ok(Some(record)) = self.records.get(&key).await {
                out.push_str(&format!("\n  {key} = {}", record.value));
            }
        }
        out
    }

    async fn teardown(&self) {}
}

fn storage_fleets() -> MakeFleet {
    Arc::new(|| Box::pin(async { Box::new(StorageFleet::new()) as Box<dyn Fleet> }))
}

/// `StorageStore` has no cache and runs in memory: many histories are cheap.
#[tokio::test]
async fn storage_store_fleet_keeps_the_guarantees() {
    model::run(
        Config {
            test: "storage_store_fleet_keeps_the_guarantees",
            histories: 2000,
            steps: 20,
            ..Config::default()
        },
        storage_fleets(),
    )
    .await;
}

// ---------------------------------------------------------------------------
// The harness's own check: a store that keeps every guarantee by
// construction (one map under a lock, each instance with a TTL cache) must
// pass, and the same store with a known flaw must fail on the property
// that flaw breaks. So a failure above is the store's, not the model's.

/// A flaw planted in [`CachingStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    None,
    /// A save by id merges onto the instance's cached copy.
    MergesOntoItsCache,
    /// Cached values never expire.
    CacheNeverExpires,
}

/// The records every [`CachingStore`] instance shares.
type SharedWorld = Arc<Mutex<model::World>>;

/// One instance: reads through a TTL cache, writes atomically on the shared
/// map with the model's rules ([`model::apply_save`]), its own writes
/// replacing what it cached. Each operation is one backend call.
struct CachingStore {
    shared: SharedWorld,
    cache: Mutex<
        std::collections::HashMap<String, (zoho_token_store::OAuthToken, std::time::Instant)>,
    >,
    ttl: Duration,
    flaw: Flaw,
    armed: Arc<Mutex<Option<Injection>>>,
    fired: Arc<AtomicU64>,
    ids: Arc<AtomicU64>,
}

type Token = zoho_token_store::OAuthToken;

impl CachingStore {
    /// Whether the armed injection fails this operation's one call, and
    /// whether the call takes effect first.
    fn fault(&self) -> Option<bool> {
        let decision = match *self.armed.lock().unwrap() {
            Some(Injection::FailCall { call: 1, effect }) => Some(effect == Effect::Applied),
            Some(Injection::Stop { call: 1 }) => Some(false),
            _ => None,
        };
        if decision.is_some() {
            self.fired.fetch_add(1, Ordering::SeqCst);
        }
        decision
    }

    fn fail() -> StoreError {
        StoreError::backend("call", "injected failure")
    }

    fn cached(&self, id: &str) -> Option<Token> {
        let cache = self.cache.lock().unwrap();
        let (token, at) = cache.get(id)?;
        (self.flaw == Flaw::CacheNeverExpires || at.elapsed() < self.ttl).then(|| token.clone())
    }

    /// Caches `token`, dropping other entries of its user (so a lookup by
    /// that user answers it).
    fn remember(&self, token: &Token) {
        let mut cache = self.cache.lock().unwrap();
        if let Some(user) = &token.user_name {
            cache.retain(|_, (t, _)| t.user_name.as_ref() != Some(user));
        }
        let id = token.id.clone().unwrap_or_default();
        cache.insert(id, (token.clone(), std::time::Instant::now()));
    }

    fn forget(&self, id: &str) {
        let mut cache = self.cache.lock().unwrap();
        if let Some((token, _)) = cache.remove(id)
            && let Some(user) = token.user_name
        {
            cache.retain(|_, (t, _)| t.user_name.as_ref() != Some(&user));
        }
    }

    /// Runs `write` on the shared map, as the armed fault says.
    fn write<T>(
        &self,
        write: impl FnOnce(&mut model::World) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let fault = self.fault();
        if fault == Some(false) {
            return Err(Self::fail());
        }
        let result = write(&mut self.shared.lock().unwrap());
        if fault == Some(true) {
            result?;
            return Err(Self::fail());
        }
        result
    }
}

#[async_trait]
impl TokenStore for CachingStore {
    async fn find_token(&self, token: &Token) -> Result<Option<Token>, StoreError> {
        let user = token.user_name.clone().unwrap_or_default();
        let hit = {
            let cache = self.cache.lock().unwrap();
            cache
                .values()
                .find(|(t, at)| {
                    t.user_name.as_deref() == Some(&user)
                        && (self.flaw == Flaw::CacheNeverExpires || at.elapsed() < self.ttl)
                })
                .map(|(t, _)| t.clone())
        };
        if let Some(found) = hit {
            return Ok(Some(found));
        }
        let found = self.write(|w| {
            Ok(w.values()
                .find(|t| t.user_name.as_deref() == Some(&user))
                .cloned())
        })?;
        if let Some(found) = &found {
            self.remember(found);
        }
        Ok(found)
    }

    async fn find_token_by_id(&self, id: &str) -> Result<Option<Token>, StoreError> {
        if let Some(token) = self.cached(id) {
            return Ok(Some(token));
        }
        let found = self.write(|w| Ok(w.get(id).cloned()))?;
        if let Some(found) = &found {
            self.remember(found);
        }
        Ok(found)
    }

    async fn save_token(&self, token: &mut Token) -> Result<(), StoreError> {
        let fresh = format!("g{}", self.ids.fetch_add(1, Ordering::SeqCst));
        let stale = match (&token.id, self.flaw) {
            (Some(id), Flaw::MergesOntoItsCache) => self.cached(id),
            _ => None,
        };
        let saved = self.write(|w| {
            let mut base = w.clone();
            if let Some(stale) = &stale {
                base.insert(stale.id.clone().unwrap_or_default(), stale.clone());
            }
            match model::apply_save(&base, token, &fresh) {
                model::Applied::Stored(_, stored) => {
                    w.insert(stored.id.clone().unwrap_or_default(), (*stored).clone());
                    Ok(*stored)
                }
                model::Applied::Refused(why) => Err(StoreError::invalid_input(why)),
            }
        })?;
        self.remember(&saved);
        *token = saved;
        Ok(())
    }

    async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        self.forget(id);
        self.write(|w| {
            w.remove(id);
            Ok(())
        })
    }

    async fn get_tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.write(|w| Ok(w.values().cloned().collect()))
    }

    async fn delete_tokens(&self) -> Result<(), StoreError> {
        self.write(|w| {
            w.clear();
            Ok(())
        })
    }
}

/// Three [`CachingStore`]s on one map.
struct CachingFleet {
    shared: SharedWorld,
    stores: Mutex<Vec<Arc<CachingStore>>>,
    flaw: Flaw,
    ids: Arc<AtomicU64>,
}

/// The reference store's TTL: short, the harness's own check is quick.
const REFERENCE_TTL: Duration = Duration::from_millis(40);

impl CachingFleet {
    fn new(flaw: Flaw) -> Self {
        let shared = SharedWorld::default();
        let ids = Arc::new(AtomicU64::new(0));
        let stores = (0..INSTANCES)
            .map(|_| caching_store(&shared, flaw, &ids))
            .collect();
        Self {
            shared,
            stores: Mutex::new(stores),
            flaw,
            ids,
        }
    }

    fn instance(&self, i: usize) -> Arc<CachingStore> {
        Arc::clone(&self.stores.lock().unwrap()[i])
    }
}

fn caching_store(shared: &SharedWorld, flaw: Flaw, ids: &Arc<AtomicU64>) -> Arc<CachingStore> {
    Arc::new(CachingStore {
        shared: Arc::clone(shared),
        cache: Mutex::default(),
        ttl: REFERENCE_TTL,
        flaw,
        armed: Arc::default(),
        fired: Arc::default(),
        ids: Arc::clone(ids),
    })
}

#[async_trait]
impl Fleet for CachingFleet {
    fn len(&self) -> usize {
        INSTANCES
    }

    fn store(&self, i: usize) -> Arc<dyn TokenStore> {
        self.instance(i)
    }

    fn cache_ttl(&self) -> Duration {
        REFERENCE_TTL
    }

    fn cache_slack(&self) -> Duration {
        Duration::from_millis(5)
    }

    async fn arm(&self, i: usize, injection: Injection) {
        let store = self.instance(i);
        store.fired.store(0, Ordering::SeqCst);
        *store.armed.lock().unwrap() = Some(injection);
    }

    async fn disarm(&self, i: usize) -> u64 {
        let store = self.instance(i);
        *store.armed.lock().unwrap() = None;
        store.fired.load(Ordering::SeqCst)
    }

    async fn replace(&self, i: usize) {
        self.stores.lock().unwrap()[i] = caching_store(&self.shared, self.flaw, &self.ids);
    }

    async fn teardown(&self) {}
}

fn caching_fleets(flaw: Flaw) -> MakeFleet {
    Arc::new(move || Box::pin(async move { Box::new(CachingFleet::new(flaw)) as Box<dyn Fleet> }))
}

fn reference_config(test: &'static str) -> Config {
    Config {
        test,
        histories: 300,
        steps: 16,
        parallel: 4,
        ..Config::default()
    }
}

/// No false alarm: a store that keeps every guarantee (stale reads only
/// within its TTL, reads of its own writes, all-or-nothing failures)
/// passes, faults, stops, placeholders and all.
#[tokio::test]
async fn the_model_passes_a_store_that_keeps_the_guarantees() {
    model::run(
        reference_config("the_model_passes_a_store_that_keeps_the_guarantees"),
        caching_fleets(Flaw::None),
    )
    .await;
}

/// The runner catches a lost update (a save by id merged onto a cached copy).
#[tokio::test]
async fn the_model_catches_a_save_merged_onto_a_cached_copy() {
    let config = reference_config("the_model_catches_a_save_merged_onto_a_cached_copy");
    let explored = model::explore(&config, &caching_fleets(Flaw::MergesOntoItsCache)).await;
    let (_, outcome) = explored
        .failures
        .first()
        .unwrap_or_else(|| panic!("no history caught the flaw: {}", explored.summary));
    let failure = outcome.failure.as_ref().unwrap();
    // A merge onto a stale copy loses a write, or (when the stale copy has
    // another user name) refuses or accepts a save the current state decides
    // otherwise.
    assert!(
        matches!(
            failure.property,
            model::Property::NoAcknowledgedWriteLost
                | model::Property::SavesFollowTheRules
                | model::Property::OneTokenPerUserName
        ),
        "{}",
        model::report(&config, outcome)
    );
}

/// The runner catches a cache that outlives its TTL.
#[tokio::test]
async fn the_model_catches_a_cache_that_never_expires() {
    let config = reference_config("the_model_catches_a_cache_that_never_expires");
    let explored = model::explore(&config, &caching_fleets(Flaw::CacheNeverExpires)).await;
    let (_, outcome) = explored
        .failures
        .first()
        .unwrap_or_else(|| panic!("no history caught the flaw: {}", explored.summary));
    let failure = outcome.failure.as_ref().unwrap();
    assert!(
        matches!(
            failure.property,
            model::Property::NoAcknowledgedWriteLost
                | model::Property::NoDeletedTokenServed
                | model::Property::InstancesAgreeAfterTheTtl
        ),
        "{}",
        model::report(&config, outcome)
    );
}
