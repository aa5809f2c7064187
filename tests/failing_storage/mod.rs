//! A `Storage` that fails on command, for tests of what a failed call may
//! leave: the `n`th call from now fails (without taking effect, or after
//! taking effect: a timeout that hides a write), or every call from the
//! `n`th on fails (the process stopped between two calls).

use std::sync::Mutex;

use async_trait::async_trait;
use zoho_token_store::{Expected, MemoryStorage, Record, Storage, StoreError, Version};

/// How a failing call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call answers an error and takes no effect.
    Before,
    /// The call takes effect, then answers an error.
    After,
}

/// Which calls fail, counted from when the plan is set (0: the next call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// None.
    Never,
    /// Call `n` fails with `fault`; the calls after it succeed.
    Fail { n: usize, fault: Fault },
    /// Calls `n` and after fail and take no effect: the process stopped.
    Stop { n: usize },
}

#[derive(Debug)]
struct State {
    plan: Plan,
    /// Calls since the plan was set.
    calls: usize,
    /// The calls that failed since the plan was set, described.
    failed: Vec<String>,
}

/// A [`MemoryStorage`] (shared with its clones, so several stores can sit
/// on one) whose calls fail as its [`Plan`] says.
#[derive(Debug)]
pub struct FailingStorage {
    inner: MemoryStorage,
    state: Mutex<State>,
}

impl FailingStorage {
    /// Calls go to `inner`; none fails until [`plan`](Self::plan) says so.
    pub fn new(inner: MemoryStorage) -> Self {
        Self {
            inner,
            state: Mutex::new(State {
                plan: Plan::Never,
                calls: 0,
                failed: Vec::new(),
            }),
        }
    }

    /// Fails calls as `plan` says, counting calls from now.
    pub fn plan(&self, plan: Plan) {
        let mut state = self.state.lock().unwrap();
        *state = State {
            plan,
            calls: 0,
            failed: Vec::new(),
        };
    }

    /// The calls that failed since the plan was set, e.g. `put token.a
    /// (after)`.
    pub fn failed(&self) -> Vec<String> {
        self.state.lock().unwrap().failed.clone()
    }

    /// How call `what`, the next one, is to fail, if it is; counts it.
    fn fault(&self, what: impl FnOnce() -> String) -> Option<Fault> {
        let mut state = self.state.lock().unwrap();
        let n = state.calls;
        state.calls += 1;
        let fault = match state.plan {
            Plan::Never => None,
            Plan::Fail { n: at, fault } => (n == at).then_some(fault),
            Plan::Stop { n: at } => (n >= at).then_some(Fault::Before),
        }?;
        let how = match fault {
            Fault::Before => "before",
            Fault::After => "after",
        };
        state.failed.push(format!("call {n}: {} ({how})", what()));
        Some(fault)
    }

    /// Runs `call` unless its fault says not to; the error its fault asks
    /// for, if any.
    async fn run<T>(
        &self,
        what: impl FnOnce() -> String,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let description = what();
        let fault = self.fault(|| description.clone());
        if fault == Some(Fault::Before) {
            return Err(StoreError::backend(description, "injected failure"));
        }
        let result = call.await?;
        if fault == Some(Fault::After) {
            return Err(StoreError::backend(description, "injected failure"));
        }
        Ok(result)
    }
}

#[async_trait]
impl Storage for FailingStorage {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        self.run(|| format!("get {key}"), self.inner.get(key)).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        expected: Expected<'_>,
    ) -> Result<Option<Version>, StoreError> {
        let call = self.inner.put(key, value, expected);
        self.run(|| format!("put {key}"), call).await
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        // Sorted, so that a history's calls (and so which one fails) do
        // not depend on the order of a hash map.
        let mut keys = self.run(|| "list".to_owned(), self.inner.list()).await?;
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.run(|| format!("delete {key}"), self.inner.delete(key))
            .await
    }
}
