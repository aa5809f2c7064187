//! The refresh of an access token: shared by this process's callers (one
//! flight per token), by the processes sharing the store (its refresh
//! lease), and held back after a failure (a backoff, or until a new token is
//! saved when Zoho rejected it).

use std::sync::Arc;
use std::time::Duration;

use super::access_token::AccessToken;
use super::accounts::AccountsFallback;
use super::error::AuthError;
use super::lease_wait::LeaseWait;
use super::mark;
use super::state::{Inner, MIN_VALIDITY, millis};
use super::zoho::{self, Issued, Request};
use crate::lease::{FailureCause, LeaseFailure, RefreshLease};
use crate::token::OAuthToken;

/// The longest wait between two attempts to refresh a token that keeps
/// failing transiently: with at most 2 secret versions per attempt (the
/// lease and the failure mark), at most 18 attempts and 36 versions of the
/// token's secret in any 24 hours (see the module docs).
pub const MAX_BACKOFF: Duration = Duration::from_secs(2 * 60 * 60);
/// How long a refresh lease lasts: a call to Zoho's timeout, the save, and
/// a margin.
pub(super) const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// After Zoho throttled a refresh, how long before it is asked again (the
/// first time; ×4 for each further failure in a row, up to [`MAX_BACKOFF`]).
const THROTTLED_BACKOFF: Duration = Duration::from_secs(60);
/// After another failure (transport, an odd answer), likewise.
const OTHER_BACKOFF: Duration = Duration::from_secs(2);

/// How long to wait after the `in_a_row`-th failure in a row (1 for the
/// first) of a transient kind whose first wait is `base`: `base × 4^(n-1)`,
/// at most [`MAX_BACKOFF`].
fn backoff(base: Duration, in_a_row: u32) -> Duration {
    let factor = 4u32.saturating_pow(in_a_row.saturating_sub(1).min(15));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Who refreshes a token that needs it.
enum Refresher {
    /// This caller, with the token read (`leased`: under the store's lease)
    /// and the failed refreshes in a row before this one.
    This {
        token: OAuthToken,
        leased: bool,
        before: u32,
    },
    /// Nobody: this is the answer (another process's token, or its failure).
    Done(Result<AccessToken, AuthError>),
}

impl Inner {
    /// Refreshes token `id`, sharing one refresh among this process's callers
    /// (the first caller's `fallback` decides where a token with no Zoho
    /// `api_domain` is refreshed: the callers of one process share one).
    pub(super) async fn refresh_shared(
        &self,
        id: &str,
        fallback: &AccountsFallback,
    ) -> Result<AccessToken, AuthError> {
        self.flights
            .run(id.to_owned(), || self.refresh_once(id, fallback))
            .await
    }

    /// One refresh of token `id`, shared by this process's callers.
    async fn refresh_once(
        &self,
        id: &str,
        fallback: &AccountsFallback,
    ) -> Result<AccessToken, AuthError> {
        // Another flight of this process may have just saved a new token.
        let current = self
            .store
            .find_token_by_id(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let Some(token) = self.servable(id, &current, self.now_millis() + self.refresh_ahead) {
            return Ok(token);
        }
        if let Some(error) = self.failures.recent(id, &current, self.now_millis()) {
            return self.or_current(id, &current, error);
        }
        // No accounts server for it: fail before taking the lease.
        if let Err(error) = self.endpoint_for(&current, fallback) {
            return self.or_current(id, &current, error);
        }
        match self.refresher(id, current).await? {
            Refresher::This {
                token,
                leased,
                before,
            } => self.refresh_with(id, token, leased, before, fallback).await,
            Refresher::Done(answer) => answer,
        }
    }

    /// Who refreshes token `id` (`current` as this process read it): this
    /// caller once it has the store's lease (or the store has none), else
    /// the answer another process's refresh left.
    async fn refresher(&self, id: &str, current: OAuthToken) -> Result<Refresher, AuthError> {
        let stale = current.access_token.as_deref().map(Arc::from);
        let mut wait = LeaseWait::new(self.lease);
        loop {
            match self.ask_lease(id, stale.as_ref()).await? {
                RefreshLease::Unsupported => {
                    let before = self.failures.in_a_row(id, &current);
                    return Ok(Refresher::This {
                        token: current,
                        leased: false,
                        before,
                    });
                }
                RefreshLease::Acquired {
                    token, failures, ..
                } => {
                    return Ok(Refresher::This {
                        token: *token,
                        leased: true,
                        before: failures,
                    });
                }
                RefreshLease::Refreshed(token) => {
                    return Ok(Refresher::Done(self.or_current(id, &token, not_found(id))));
                }
                RefreshLease::Missing => return Err(not_found(id)),
                RefreshLease::Failed(failure) if !failure.is_grant_exchange() => {
                    return Ok(Refresher::Done(
                        self.failed_elsewhere(id, &current, &failure),
                    ));
                }
                RefreshLease::Held { .. } | RefreshLease::Failed(_) => {
                    // Another process is refreshing (or exchanging a grant for
                    // this token): the current token meanwhile, if it is
                    // still good for a while.
                    if let Some(token) =
                        self.servable(id, &current, self.now_millis() + millis(MIN_VALIDITY))
                    {
                        return Ok(Refresher::Done(Ok(token)));
                    }
                    wait.next(id, Request::Refresh).await?;
                }
            }
        }
    }

    /// The answer for token `id` (`current`) when another process's refresh
    /// failed and marked the lease with `failure`: its error, remembered
    /// until the mark ends (a `Rejected` mark: while the credentials stay,
    /// as it lasts until the token is saved again), or the current token.
    fn failed_elsewhere(
        &self,
        id: &str,
        current: &OAuthToken,
        failure: &LeaseFailure,
    ) -> Result<AccessToken, AuthError> {
        let error = mark::error_of(id, Request::Refresh, failure);
        self.failures
            .remember(id, current, &error, failure.retry_after(), 0);
        self.or_current(id, current, error)
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
                let url = endpoint.as_ref().map(zoho::origin).unwrap_or_default();
                self.save_refreshed(id, issued, url).await
            }
            Err(error) => {
                self.refresh_failed(id, &token, &error, leased, before)
                    .await;
                self.or_current(id, &token, error)
            }
        }
    }

    /// Saves the access token Zoho `issued` (from accounts server `url`)
    /// for token `id`, and serves it.
    async fn save_refreshed(
        &self,
        id: &str,
        issued: Issued,
        url: String,
    ) -> Result<AccessToken, AuthError> {
        let mut saved = OAuthToken {
            id: Some(id.to_owned()),
            access_token: Some(issued.access_token),
            expiry_time: Some(self.now_millis().saturating_add(issued.lifetime_ms)),
            api_domain: issued.api_domain,
            ..OAuthToken::default()
        };
        self.store.save_token(&mut saved).await?;
        self.failures.forget(id);
        tracing::debug!(
            id,
            expiry_time = saved.expiry_time,
            "access token refreshed"
        );
        self.servable(id, &saved, self.now_millis() + millis(MIN_VALIDITY))
            .ok_or_else(|| AuthError::UnexpectedResponse {
                url,
                status: 200,
                reason: "the new access token expires within 5 seconds".into(),
            })
    }

    /// Remembers the failed refresh of `token` (`error`, after `before`
    /// failures in a row) and, when `leased`, marks the store's lease so the
    /// other processes report it instead of calling Zoho.
    async fn refresh_failed(
        &self,
        id: &str,
        token: &OAuthToken,
        error: &AuthError,
        leased: bool,
        before: u32,
    ) {
        let in_a_row = before.saturating_add(1);
        // Rejected: retrying cannot help until a new token is saved, so no
        // retry time at all (nor a lease, nor a write, after this one).
        // Transient: a backoff that grows ×4 a failure.
        let cause = mark::cause_of(error);
        let base = match cause {
            FailureCause::Throttled => THROTTLED_BACKOFF,
            _ => OTHER_BACKOFF,
        };
        let retry_after = self.now_millis() + millis(backoff(base, in_a_row));
        let failure = LeaseFailure::refresh(cause, retry_after);
        tracing::debug!(id, %error, in_a_row, "refresh failed");
        self.failures
            .remember(id, token, error, failure.retry_after(), in_a_row);
        if leased
            && let Err(e) = self
                .store
                .fail_refresh_lease(id, &self.holder, &failure)
                .await
        {
            tracing::debug!(id, error = %e, "marking the lease failed did not work");
        }
    }
}

fn not_found(id: &str) -> AuthError {
    AuthError::NotFound {
        key: format!("token id {id}"),
    }
}
