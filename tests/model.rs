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
