//! Refresh leases: how processes that share one store agree on which of
//! them refreshes a token at Zoho (see [`TokenStore::refresh_lease`]).
//!
//! [`TokenStore::refresh_lease`]: crate::TokenStore::refresh_lease

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::token::OAuthToken;

/// Why a refresh (or a grant exchange) failed, as [`LeaseFailure`]
/// records it: what the error was, without when to retry.
///
/// [`LeaseFailure`] says how long a mark lasts; this says what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// Zoho refused the request: `code` is its error code, e.g.
    /// `invalid_code` or `invalid_client` (a short word: never a secret).
    Rejected {
        /// Zoho's error code.
        code: String,
    },
    /// Zoho's rate limit (`Access Denied`, too many requests).
    Throttled,
    /// The accounts server could not be reached, timed out, or answered
    /// neither a token nor a Zoho error: a failure that may pass.
    Transport,
}

/// The mark a lease holder leaves on a token's lease when its refresh or
/// grant exchange failed ([`TokenStore::fail_refresh_lease`]), so that the
/// other processes report the failure ([`RefreshLease::Failed`]) instead
/// of calling Zoho again at once.
///
/// Each variant says how long the mark lasts
/// ([`retry_after`](Self::retry_after)); a later save of the token ends
/// every mark.
///
/// [`TokenStore::fail_refresh_lease`]: crate::TokenStore::fail_refresh_lease
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseFailure {
    /// Zoho refused the refresh token or the client credentials (`code`,
    /// e.g. `invalid_code`): retrying cannot mend it, so the mark lasts
    /// until the token is saved again (a new refresh token or client).
    Rejected {
        /// Zoho's error code.
        code: String,
    },
    /// Zoho throttled the refresh: nobody asks again before `retry_after`.
    Throttled {
        /// Unix epoch milliseconds.
        retry_after: i64,
    },
    /// The refresh failed in transport (or with an odd answer): nobody
    /// asks again before `retry_after`.
    Transport {
        /// Unix epoch milliseconds.
        retry_after: i64,
    },
    /// A grant exchange for this token failed with `cause`: the exchange's
    /// waiters report it until `retry_after` (one lease period), then the
    /// token's refreshes go on as before. Not a refresh failure: a caller
    /// that refreshes waits it out as it would a lease.
    GrantExchange {
        /// Why the exchange failed.
        cause: FailureCause,
        /// Unix epoch milliseconds.
        retry_after: i64,
    },
}

impl LeaseFailure {
    /// When the mark ends, Unix epoch milliseconds; `None` when only a save
    /// of the token ends it ([`Rejected`](Self::Rejected)).
    pub fn retry_after(&self) -> Option<i64> {
        match self {
            Self::Rejected { .. } => None,
            Self::Throttled { retry_after }
            | Self::Transport { retry_after }
            | Self::GrantExchange { retry_after, .. } => Some(*retry_after),
        }
    }

    /// Why the refresh or grant exchange failed.
    pub fn cause(&self) -> FailureCause {
        match self {
            Self::Rejected { code } => FailureCause::Rejected { code: code.clone() },
            Self::Throttled { .. } => FailureCause::Throttled,
            Self::Transport { .. } => FailureCause::Transport,
            Self::GrantExchange { cause, .. } => cause.clone(),
        }
    }

    /// Whether a grant exchange failed (not a refresh).
    pub fn is_grant_exchange(&self) -> bool {
        matches!(self, Self::GrantExchange { .. })
    }

    /// The mark of a failed refresh with `cause`: retried after
    /// `retry_after` unless Zoho rejected it (then: after the next save).
    pub fn refresh(cause: FailureCause, retry_after: i64) -> Self {
        match cause {
            FailureCause::Rejected { code } => Self::Rejected { code },
            FailureCause::Throttled => Self::Throttled { retry_after },
            FailureCause::Transport => Self::Transport { retry_after },
        }
    }
}

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
    /// `fail_refresh_lease` with a [`LeaseFailure`] if the refresh failed. `token` is the stored
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
    /// Another holder has the lease until `until` (Unix ms), refreshing or
    /// exchanging a grant: wait and ask again.
    Held {
        /// When the lease ends, Unix epoch milliseconds.
        until: i64,
    },
    /// The last holder's refresh or grant exchange failed and it marked the
    /// lease: report the failure, call Zoho for nothing, until the mark ends
    /// ([`LeaseFailure::retry_after`], or the next save of the token).
    Failed(LeaseFailure),
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
    fn a_failure_mark_says_when_it_ends_and_why() {
        let rejected = LeaseFailure::refresh(
            FailureCause::Rejected {
                code: "invalid_code".into(),
            },
            5,
        );
        assert_eq!(rejected.retry_after(), None);
        assert!(!rejected.is_grant_exchange());
        let throttled = LeaseFailure::refresh(FailureCause::Throttled, 5);
        assert_eq!(throttled, LeaseFailure::Throttled { retry_after: 5 });
        assert_eq!(throttled.cause(), FailureCause::Throttled);
        let grant = LeaseFailure::GrantExchange {
            cause: FailureCause::Transport,
            retry_after: 7,
        };
        assert_eq!(
            (grant.retry_after(), grant.cause()),
            (Some(7), FailureCause::Transport)
        );
        assert!(grant.is_grant_exchange());
    }

    #[test]
    fn debug_hides_the_stale_access_token() {
        let request = LeaseRequest::new("h", Duration::ZERO, 0, Some("1000.canary".into()));
        let shown = format!("{request:?}");
        assert!(!shown.contains("canary"), "{shown}");
    }
}
