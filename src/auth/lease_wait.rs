//! What refresh and grant exchange share about the store's refresh lease:
//! how a caller asks for it, and how it waits for another holder's save.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::AuthError;
use super::state::{Inner, MIN_VALIDITY, millis};
use super::zoho::Request;
use crate::error::StoreError;
use crate::lease::{LeaseRequest, RefreshLease};

/// The first and the longest wait between reads of a leased token.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(1);

/// The wait of a caller for another process's lease to end in a save: reads
/// 100 ms apart, doubling to 1 s, for at most three lease periods.
pub(super) struct LeaseWait {
    poll: Duration,
    started: Instant,
    give_up: Instant,
}

impl LeaseWait {
    pub(super) fn new(lease: Duration) -> Self {
        let started = Instant::now();
        Self {
            poll: POLL_FIRST,
            started,
            give_up: started + lease * 3,
        }
    }

    /// Sleeps before the next read of token `id`, or fails with
    /// [`AuthError::LeaseWaitTimedOut`] (for another process's `request`)
    /// once the wait is over.
    pub(super) async fn next(&mut self, id: &str, request: Request) -> Result<(), AuthError> {
        if Instant::now() > self.give_up {
            return Err(AuthError::LeaseWaitTimedOut {
                id: id.to_owned(),
                request: request.name(),
                waited: self.started.elapsed(),
            });
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
