//! What refresh and grant exchange share about the store's refresh lease:
//! how a caller asks for it, and how it waits for another holder's save.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::AuthError;
use super::state::{Inner, MIN_VALIDITY, millis};
use crate::error::StoreError;
use crate::lease::{LeaseRequest, RefreshLease};

/// The first and the longest wait between reads of a leased token.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(1);

/// The wait of a caller for another process's lease to end in a save: reads
/// 100 ms apart, doubling to 1 s, for at most three lease periods.
pub(super) struct LeaseWait {
    poll: Duration,
    give_up: Instant,
}

impl LeaseWait {
    pub(super) fn new(lease: Duration) -> Self {
        Self {
            poll: POLL_FIRST,
            give_up: Instant::now() + lease * 3,
        }
    }

    /// Sleeps before the next read, or fails with a conflict on `what`
    /// (e.g. "refresh token abc") once the wait is over.
    pub(super) async fn next(&mut self, what: impl FnOnce() -> String) -> Result<(), AuthError> {
        if Instant::now() > self.give_up {
            return Err(AuthError::Store(StoreError::Conflict {
                operation: format!("waiting for another process to {}", what()),
                attempts: 0,
            }));
        }
        tokio::time::sleep(self.poll).await;
        self.poll = (self.poll * 2).min(POLL_MAX);
        Ok(())
    }
}

impl Inner {
    /// Asks the store for this holder's lease on token `id`, to replace
    /// `stale` (the access token the caller has, if any) with one that
    /// lasts at least [`MIN_VALIDITY`].
    pub(super) async fn ask_lease(
        &self,
        id: &str,
        stale: Option<&Arc<str>>,
    ) -> Result<RefreshLease, StoreError> {
        let request = LeaseRequest::new(
            self.holder.clone(),
            self.lease,
            self.now_millis() + millis(MIN_VALIDITY),
            stale.cloned(),
        );
        self.store.refresh_lease(id, &request).await
    }
}
