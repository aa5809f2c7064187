//! What a run asks of Secrets Manager: the calls it makes (by operation),
//! the versions it writes (by secret), and the pace of its writes.
//!
//! Secrets Manager allows about 50 writes a second per account, and a
//! secret about 100 versions a day; an import is paced under the first
//! (`--rate`) and `--api-report` shows the second.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::sdk_observer::{Observe, Observer, SecretWrite};

/// The Secrets Manager calls of one run, shared with the client's interceptor.
#[derive(Debug, Clone)]
pub(crate) struct Meter(Arc<State>);

#[derive(Debug, Default)]
struct Tally {
    /// Calls by operation name (one per call, whatever the SDK's retries).
    calls: BTreeMap<String, u64>,
    /// Versions written, by secret: when each write succeeded (Unix ms).
    versions: BTreeMap<String, Vec<u64>>,
}

#[derive(Debug)]
struct State {
    tally: Mutex<Tally>,
    /// The least time between two write attempts, when paced.
    interval: Option<Duration>,
    /// When the next write attempt may start.
    next_write: Mutex<Instant>,
}

impl Meter {
    /// A meter that paces writes to `rate` per second (`None` or 0: unpaced).
    pub(crate) fn new(rate: Option<f64>) -> Self {
        let interval = rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        Self(Arc::new(State {
            tally: Mutex::new(Tally::default()),
            interval,
            next_write: Mutex::new(Instant::now()),
        }))
    }

    /// The SDK interceptor that feeds this meter: it counts each call once,
    /// paces every write attempt, and records a version for each
    /// `CreateSecret` and `PutSecretValue` that succeeded.
    pub(crate) fn interceptor(&self) -> Observer {
        Observer::new("Meter", Arc::new(self.clone()))
    }

    /// Writes the report of `--api-report`: `{"calls": {operation: count},
    /// "total_calls": n, "versions": {secret: [Unix ms, ...]}}`.
    pub(crate) fn write_report(&self, path: &Path) -> anyhow::Result<()> {
        let json = {
            let tally = self.lock();
            serde_json::json!({
                "calls": tally.calls,
                "total_calls": tally.calls.values().sum::<u64>(),
                "versions": tally.versions,
            })
        };
        std::fs::write(path, json.to_string())
            .with_context(|| format!("cannot write the API report to {}", path.display()))
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.0.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the next write slot, when writes are paced.
    fn pace(&self) {
        let wait = self.reserve(Instant::now());
        if wait.is_zero() {
            return;
        }
        // Interceptors are synchronous: sleep without stalling the other
        // tasks of the runtime's worker.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| std::thread::sleep(wait));
            }
            _ => std::thread::sleep(wait),
        }
    }

    /// Takes the next write slot for a write asked for at `now`; how long
    /// to wait for it (zero when unpaced or when the slot is free).
    fn reserve(&self, now: Instant) -> Duration {
        let Some(interval) = self.0.interval else {
            return Duration::ZERO;
        };
        let mut next = self.0.next_write.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*next).max(now);
        *next = start + interval;
        start - now
    }
}

/// Whether an operation writes (and so counts against the write rate).
fn is_write(operation: &str) -> bool {
    !["Get", "BatchGet", "List", "Describe"]
        .iter()
        .any(|read| operation.starts_with(read))
}

impl Observe for Meter {
    fn call(&self, operation: &str) {
        *self.lock().calls.entry(operation.to_owned()).or_insert(0) += 1;
    }

    fn attempt(&self, operation: &str) {
        if is_write(operation) {
            self.pace();
        }
    }

    fn secret_written(&self, secret: &str, write: SecretWrite) {
        if !write.adds_version() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.lock()
            .versions
            .entry(secret.to_owned())
            .or_default()
            .push(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_spaced_by_the_rate() {
        let meter = Meter::new(Some(10.0));
        let now = Instant::now() + Duration::from_secs(1);
        let waits: Vec<Duration> = (0..3).map(|_| meter.reserve(now)).collect();
        assert_eq!(waits, [0, 100, 200].map(Duration::from_millis));
        // A write asked for after the slots have passed waits for nothing.
        assert_eq!(meter.reserve(now + Duration::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn unpaced_meters_never_wait() {
        for rate in [None, Some(0.0), Some(f64::NAN)] {
            let meter = Meter::new(rate);
            let now = Instant::now();
            assert!((0..5).all(|_| meter.reserve(now).is_zero()));
        }
    }

    #[test]
    fn reads_are_not_writes() {
        for read in [
            "GetSecretValue",
            "BatchGetSecretValue",
            "ListSecrets",
            "DescribeSecret",
        ] {
            assert!(!is_write(read), "{read}");
        }
        for write in [
            "CreateSecret",
            "PutSecretValue",
            "UpdateSecretVersionStage",
            "DeleteSecret",
        ] {
            assert!(is_write(write), "{write}");
        }
    }
}
