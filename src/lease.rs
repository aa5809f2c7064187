//! Refresh leases: how processes that share one store agree on which of
//! them refreshes a token at Zoho (see [`TokenStore::refresh_lease`]).
//!
//! [`TokenStore::refresh_lease`]: crate::TokenStore::refresh_lease

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::token::OAuthToken;

/// The `retry_after` of [`TokenStore::fail_refresh_lease`] (`i64::MAX`) for a
/// failure that retrying cannot mend (Zoho refused the refresh token or the
/// client): the mark lasts until the token is saved again, and until then
/// every [`TokenStore::refresh_lease`] answers [`RefreshLease::Held`] with it,
/// writing nothing.
///
/// [`TokenStore::fail_refresh_lease`]: crate::TokenStore::fail_refresh_lease
/// [`TokenStore::refresh_lease`]: crate::TokenStore::refresh_lease
pub const UNTIL_SAVED: i64 = i64::MAX;

/// What a caller asks of [`TokenStore::refresh_lease`]: who it is, for how
/// long it wants the lease, and which stored token would make a refresh
/// unnecessary.
///
/// A stored token counts as *already refreshed* when its access token is
/// set, differs from [`stale_access_token`](Self::stale_access_token), and
/// its `expiry_time` is after [`fresh_until`](Self::fresh_until).
///
/// `Debug` does not show the stale access token.
///
/// [`TokenStore::refresh_lease`]: crate::TokenStore::refresh_lease
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseRequest {
    /// Who asks: an opaque id, the same for every request of one caller
    /// (one `ZohoAuth`), different between callers.
    pub holder: String,
    /// How long a lease taken now lasts, unless the holder saves a token or
    /// gives it up first.
    pub duration: Duration,
    /// Unix epoch milliseconds: a stored access token that expires after
    /// this (and is not the stale one) is served instead of refreshing.
    pub fresh_until: i64,
    /// The access token the caller has and wants replaced, if any.
    pub stale_access_token: Option<Arc<str>>,
}

impl LeaseRequest {
    /// A request by `holder` for a lease of `duration`, satisfied by a stored
    /// access token that expires after `fresh_until` (Unix ms) and is not
    /// `stale_access_token`.
    pub fn new(
        holder: impl Into<String>,
        duration: Duration,
        fresh_until: i64,
        stale_access_token: Option<Arc<str>>,
    ) -> Self {
        Self {
            holder: holder.into(),
            duration,
            fresh_until,
            stale_access_token,
        }
    }

    /// Whether `stored` already has an access token this request accepts.
    pub fn is_refreshed(&self, stored: &OAuthToken) -> bool {
        let Some(access) = stored.access_token.as_deref().filter(|a| !a.is_empty()) else {
            return false;
        };
        self.stale_access_token.as_deref() != Some(access)
            && stored.expiry_time.is_some_and(|e| e > self.fresh_until)
    }
}

impl fmt::Debug for LeaseRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseRequest")
            .field("holder", &self.holder)
            .field("duration", &self.duration)
            .field("fresh_until", &self.fresh_until)
            .field(
                "stale_access_token",
                &self.stale_access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The answer of [`TokenStore::refresh_lease`].
///
/// [`TokenStore::refresh_lease`]: crate::TokenStore::refresh_lease
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshLease {
    /// The store cannot coordinate processes (the trait's provided method):
    /// the caller refreshes on its own.
    Unsupported,
    /// The caller holds the lease until `until` (Unix ms): it refreshes, then
    /// saves the new token with `save_token`, which ends the lease; or calls
    /// `fail_refresh_lease` if the refresh failed. `token` is the stored
    /// token as read when the lease was taken.
    Acquired {
        /// The stored token, read with the lease.
        token: Box<OAuthToken>,
        /// When the lease ends, Unix epoch milliseconds.
        until: i64,
        /// How many refreshes of this token failed in a row before this
        /// lease (failure marks since the last save), for the caller's
        /// backoff should this one fail too; 0 for a store that does not count.
        failures: u32,
    },
    /// The stored token already has an access token the request accepts
    /// (another process refreshed it): serve it, refresh nothing.
    Refreshed(Box<OAuthToken>),
    /// Another holder has the lease until `until` (Unix ms): wait and ask
    /// again. `failed` is set when that holder's refresh failed and it marked
    /// the lease so that nobody retries before `until`: Zoho's error code,
    /// e.g. `invalid_code`, or `Access Denied` when it throttled.
    Held {
        /// When the lease ends, Unix epoch milliseconds.
        until: i64,
        /// The failed refresh's error code, if the holder gave up.
        failed: Option<String>,
    },
    /// No token is stored under the id.
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshed_means_another_access_token_that_lasts() {
        let request = LeaseRequest::new("h", Duration::from_secs(20), 1_000, Some("old".into()));
        let token = |access: Option<&str>, expiry: Option<i64>| OAuthToken {
            access_token: access.map(str::to_owned),
            expiry_time: expiry,
            ..OAuthToken::default()
        };
        assert!(request.is_refreshed(&token(Some("new"), Some(1_001))));
        assert!(!request.is_refreshed(&token(Some("old"), Some(9_999))));
        assert!(!request.is_refreshed(&token(Some("new"), Some(1_000))));
        assert!(!request.is_refreshed(&token(Some("new"), None)));
        assert!(!request.is_refreshed(&token(Some(""), Some(9_999))));
        assert!(!request.is_refreshed(&token(None, Some(9_999))));
    }

    #[test]
    fn debug_hides_the_stale_access_token() {
        let request = LeaseRequest::new("h", Duration::ZERO, 0, Some("1000.canary".into()));
        let shown = format!("{request:?}");
        assert!(!shown.contains("canary"), "{shown}");
    }
}
