//! One flight per key: callers that ask for the same key at the same time
//! share one run of the work and all get its result, so that a burst of
//! requests makes one lookup, one refresh or one grant exchange, not one each.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// The runs in flight, by key. A run's entry goes when it ends, so a call
/// after that runs the work again (nothing is cached here).
pub(super) struct SingleFlight<K, T> {
    flights: Mutex<HashMap<K, Arc<OnceCell<T>>>>,
}

impl<K, T> SingleFlight<K, T>
where
    K: Eq + Hash + Clone + Send + Sync,
    T: Clone + Send + Sync,
{
    pub(super) fn new() -> Self {
        Self {
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The result of the run of `key` in flight, or of `work` run now when
    /// there is none. If the caller running the work is cancelled, a caller
    /// still waiting runs it (the cell is left empty).
    pub(super) async fn run<F, Fut>(&self, key: K, work: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T> + Send,
    {
        let flight = Arc::clone(self.lock().entry(key.clone()).or_default());
        let result = flight.get_or_init(work).await.clone();
        let mut flights = self.lock();
        // Only this run's entry: a later run may have replaced it.
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<T>>>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_of_one_key_share_one_run() {
        let flights = SingleFlight::<String, u32>::new();
        let runs = AtomicU32::new(0);
        let (go, wait) = tokio::sync::watch::channel(false);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            let mut wait = wait.clone();
            wait.wait_for(|go| *go).await.unwrap();
            7
        };
        let first = flights.run("a".into(), work);
        let second = flights.run("a".into(), work);
        let other = flights.run("b".into(), work);
        let release = async {
            tokio::task::yield_now().await;
            go.send(true).unwrap();
        };
        let (first, second, other, ()) = tokio::join!(first, second, other, release);
        assert_eq!((first, second, other), (7, 7, 7));
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one run per key");
        // The run ended: the next call runs again.
        assert_eq!(flights.run("a".into(), || async { 8 }).await, 8);
        assert!(flights.lock().is_empty());
    }
}
