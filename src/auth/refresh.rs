//! The refresh of an access token: shared by this process's callers (one
//! flight per token), by the processes sharing the store (its refresh
//! lease), and held back after a failure (a backoff, or until a new token is
//! saved when Zoho rejected it).

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::mark;
use super::zoho::{self, Request};
use super::{
    AccessToken, AccountsFallback, AuthError, Inner, MAX_BACKOFF, MIN_VALIDITY, ZohoAuth, millis,
};
use crate::error::StoreError;
use crate::lease::{FailureCause, LeaseFailure, LeaseRequest, RefreshLease};
use crate::token::OAuthToken;

/// How long a refresh lease lasts: a call to Zoho's timeout, the save, and
/// a margin.
pub(super) const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// After Zoho throttled a refresh, how long before it is asked again (the
/// first time; ×4 for each further failure in a row, up to [`MAX_BACKOFF`]).
const THROTTLED_BACKOFF: Duration = Duration::from_secs(60);
/// After another failure (transport, an odd answer), likewise.
const OTHER_BACKOFF: Duration = Duration::from_secs(2);
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

/// How long to wait after the `in_a_row`-th failure in a row (1 for the
/// first) of a transient kind whose first wait is `base`: `base × 4^(n-1)`,
/// at most [`MAX_BACKOFF`].
fn backoff(base: Duration, in_a_row: u32) -> Duration {
    let factor = 4u32.saturating_pow(in_a_row.saturating_sub(1).min(15));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// What a refresh is made with: a failure is remembered for these.
#[derive(PartialEq, Eq)]
struct Credentials {
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl Credentials {
    fn of(token: &OAuthToken) -> Self {
        Self {
            refresh_token: token.refresh_token.clone(),
            client_id: token.client_id.clone(),
            client_secret: token.client_secret.clone(),
        }
    }
}

/// A refresh that failed: not retried with the same credentials before
/// `until` (Unix ms by the clock), or ever when `None` (Zoho refused them).
pub(super) struct Failure {
    until: Option<i64>,
    credentials: Credentials,
    error: AuthError,
    /// Failed refreshes in a row with these credentials.
    in_a_row: u32,
}

/// One refresh of a token in this process, awaited by all its callers.
pub(super) type Flight = Arc<OnceCell<Result<AccessToken, AuthError>>>;

impl ZohoAuth {
    /// Refreshes token `id`, sharing one refresh among this process's callers
    /// (the first caller's `fallback` decides where a token with no Zoho
    /// `api_domain` is refreshed: the callers of one process share one).
    pub(super) async fn refresh_shared(
        &self,
        id: &str,
        fallback: &AccountsFallback,
    ) -> Result<AccessToken, AuthError> {
        let inner = &self.inner;
        let flight: Flight = {
            let mut flights = inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(flights.entry(id.to_owned()).or_default())
        };
        let result = flight
            .get_or_init(|| inner.refresh_once(id, fallback))
            .await
            .clone();
        let mut flights = inner.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights.get(id).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(id);
        }
        result
    }
}

impl Inner {
    /// The failures remembered here, by token id.
    pub(super) fn failures(&self) -> MutexGuard<'_, HashMap<String, Failure>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A failed refresh with `token`'s credentials not to retry yet.
    fn recent_failure(&self, id: &str, token: &OAuthToken) -> Option<AuthError> {
        let now = self.now_millis();
        let mut failures = self.failures();
        let failure = failures.get(id)?;
        if failure.credentials != Credentials::of(token) {
            failures.remove(id);
            return None;
        }
        failure
            .until
            .is_none_or(|until| until > now)
            .then(|| failure.error.clone())
    }

    /// How many refreshes with `token`'s credentials failed in a row here.
    fn failed_in_a_row(&self, id: &str, token: &OAuthToken) -> u32 {
        self.failures()
            .get(id)
            .filter(|f| f.credentials == Credentials::of(token))
            .map_or(0, |f| f.in_a_row)
    }

    /// Remembers `error` for `token`'s credentials until `until` (Unix ms;
    /// `None`: while the stored credentials stay the same).
    fn remember_failure(
        &self,
        id: &str,
        token: &OAuthToken,
        error: &AuthError,
        until: Option<i64>,
        in_a_row: u32,
    ) {
        self.failures().insert(
            id.to_owned(),
            Failure {
                until,
                credentials: Credentials::of(token),
                error: error.clone(),
                in_a_row,
            },
        );
    }

    /// One refresh of token `id`, shared by this process's callers.
    async fn refresh_once(
        &self,
        id: &str,
        fallback: &AccountsFallback,
    ) -> Result<AccessToken, AuthError> {
        let not_found = || AuthError::NotFound {
            key: format!("token id {id}"),
        };
        // Another flight of this process may have just saved a new token.
        let current = self
            .store
            .find_token_by_id(id)
            .await?
            .ok_or_else(not_found)?;
        if let Some(token) = self.servable(id, &current, self.now_millis() + self.refresh_ahead) {
            return Ok(token);
        }
        if let Some(error) = self.recent_failure(id, &current) {
            return self.or_current(id, &current, error);
        }
        // No accounts server for it: fail before taking the lease.
        if let Err(error) = self.endpoint_for(&current, fallback) {
            return self.or_current(id, &current, error);
        }
        let stale = current.access_token.as_deref().map(Arc::from);
        let mut wait = LeaseWait::new(self.lease);
        loop {
            let request = LeaseRequest::new(
                self.holder.clone(),
                self.lease,
                self.now_millis() + millis(MIN_VALIDITY),
                stale.clone(),
            );
            match self.store.refresh_lease(id, &request).await? {
                RefreshLease::Unsupported => {
                    let before = self.failed_in_a_row(id, &current);
                    return self
                        .refresh_with(id, current, false, before, fallback)
                        .await;
                }
                RefreshLease::Acquired {
                    token, failures, ..
                } => {
                    return self
                        .refresh_with(id, *token, true, failures, fallback)
                        .await;
                }
                RefreshLease::Refreshed(token) => {
                    return self.or_current(id, &token, not_found());
                }
                RefreshLease::Missing => return Err(not_found()),
                RefreshLease::Failed(failure) if !failure.is_grant_exchange() => {
                    let error = mark::error_of(id, Request::Refresh, &failure.cause());
                    // Rejected: the mark stays until the token is saved again
                    // (no retry time), so this process asks no more while the
                    // credentials stay.
                    self.remember_failure(id, &current, &error, failure.retry_after(), 0);
                    return self.or_current(id, &current, error);
                }
                RefreshLease::Held { .. } | RefreshLease::Failed(_) => {
                    // Another process is refreshing (or exchanging a grant for
                    // this token): the current token meanwhile, if it is
                    // still good for a while.
                    if let Some(token) =
                        self.servable(id, &current, self.now_millis() + millis(MIN_VALIDITY))
                    {
                        return Ok(token);
                    }
                    wait.next(|| format!("refresh token {id}")).await?;
                }
            }
        }
    }

    /// Refreshes `token` at Zoho and saves the new access token; `leased`:
    /// this holder has the token's lease; `before`: failed refreshes in a row
    /// before this one.
    async fn refresh_with(
        &self,
        id: &str,
        token: OAuthToken,
        leased: bool,
        before: u32,
        fallback: &AccountsFallback,
    ) -> Result<AccessToken, AuthError> {
        let endpoint = self.endpoint_for(&token, fallback);
        let issued = match &endpoint {
            Ok(endpoint) => zoho::refresh(&self.http, endpoint, id, &token).await,
            Err(error) => Err(error.clone()),
        };
        match issued {
            Ok(issued) => {
                let mut saved = OAuthToken {
                    id: Some(id.to_owned()),
                    access_token: Some(issued.access_token),
                    expiry_time: Some(self.now_millis().saturating_add(issued.lifetime_ms)),
                    api_domain: issued.api_domain,
                    ..OAuthToken::default()
                };
                self.store.save_token(&mut saved).await?;
                self.failures().remove(id);
                tracing::debug!(
                    id,
                    expiry_time = saved.expiry_time,
                    "access token refreshed"
                );
                self.servable(id, &saved, self.now_millis() + millis(MIN_VALIDITY))
                    .ok_or_else(|| AuthError::UnexpectedResponse {
                        url: endpoint.as_ref().map(zoho::origin).unwrap_or_default(),
                        status: 200,
                        reason: "the new access token expires within 5 seconds".into(),
                    })
            }
            Err(error) => {
                let in_a_row = before.saturating_add(1);
                let now = self.now_millis();
                // Rejected: retrying cannot help until a new token is saved,
                // so no retry time at all (nor a lease, nor a write, after
                // this one). Transient: a backoff that grows ×4 a failure.
                let cause = mark::cause_of(&error);
                let base = match cause {
                    FailureCause::Throttled => THROTTLED_BACKOFF,
                    _ => OTHER_BACKOFF,
                };
                let failure = LeaseFailure::refresh(cause, now + millis(backoff(base, in_a_row)));
                tracing::debug!(id, %error, in_a_row, "refresh failed");
                self.remember_failure(id, &token, &error, failure.retry_after(), in_a_row);
                if leased
                    && let Err(e) = self
                        .store
                        .fail_refresh_lease(id, &self.holder, &failure)
                        .await
                {
                    tracing::debug!(id, error = %e, "marking the lease failed did not work");
                }
                self.or_current(id, &token, error)
            }
        }
    }
}
