//! [`AuthError`], the error of every `ZohoAuth` operation.

use std::time::Duration;

use crate::error::StoreError;

/// What went wrong getting an access token or exchanging a grant token.
///
/// No variant carries a secret value (client secret, refresh, access or
/// grant token), in `Display` or `Debug`: Zoho's answers are reduced to
/// their error code, and transport errors to their cause without the
/// request. Match variants as `AuthError::Rejected { .. }`: more may be added.
///
/// | variant | when | retry? |
/// |---|---|---|
/// | `NotFound` | no stored token matches the query | no |
/// | `Rejected` | Zoho refused the refresh token or grant (`invalid_code`, `invalid_client`, …) | no: re-authorize |
/// | `Throttled` | Zoho's rate limit (`Access Denied`, too many requests) | after minutes |
/// | `Store` | the token store failed | see [`StoreError::is_retryable`] |
/// | `Transport` | the accounts server could not be reached or timed out | yes |
/// | `UnexpectedResponse` | an answer that is neither a token nor a Zoho error | yes |
/// | `FailedElsewhere` | another process's refresh or exchange of the token failed in transport, and it asked the fleet to hold off | after `retry_after` |
/// | `LeaseWaitTimedOut` | another process held the token's lease for longer than this caller waits | yes |
/// | `InvalidInput` | bad builder settings, a grant token without client credentials | no |
/// | `ClientSetup` | the HTTPS client for Zoho could not be set up (TLS settings) | no |
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No stored token matches the query.
    #[error("no stored token matches {key}")]
    NotFound {
        /// What the query matched on (the user name, or which token field).
        key: String,
    },

    /// Zoho refused the refresh token, grant token or client credentials.
    /// Not retryable: the stored token is unchanged, and a new grant is
    /// needed if the refresh token was revoked.
    #[error("Zoho rejected the {request} for token {id}: {error}")]
    Rejected {
        /// The token's id (`(new)` for a grant exchange).
        id: String,
        /// `refresh` or `grant exchange`.
        request: &'static str,
        /// Zoho's error code, e.g. `invalid_code` or `invalid_client`.
        error: String,
    },

    /// Zoho's rate limit: 10 access tokens per refresh token in 10 minutes.
    /// Zoho blocks further requests for the rest of the 10 minutes.
    #[error("Zoho throttled the {request} for token {id}: too many requests")]
    Throttled {
        /// The token's id (`(new)` for a grant exchange).
        id: String,
        /// `refresh` or `grant exchange`.
        request: &'static str,
    },

    /// The token store failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The accounts server could not be reached, or did not answer in time.
    #[error("token request to {url} failed: {reason}")]
    Transport {
        /// The accounts server (scheme, host and port).
        url: String,
        /// What failed.
        reason: String,
        /// Whether it timed out.
        timeout: bool,
    },

    /// The accounts server answered with neither a token nor a Zoho error.
    #[error("unexpected answer from {url} (HTTP {status}): {reason}")]
    UnexpectedResponse {
        /// The accounts server (scheme, host and port).
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it (never the body).
        reason: String,
    },

    /// Another process sharing the store refreshed (or exchanged the grant
    /// of) this token, failed in transport or with an odd answer, and marked
    /// the store's lease so that nobody calls Zoho for it before
    /// `retry_after`. This process did not call Zoho.
    #[error(
        "another process's {request} of token {id} failed (the accounts server could not be \
         reached or answered oddly); nobody retries it before {retry_after} (Unix ms)"
    )]
    FailedElsewhere {
        /// The token's id.
        id: String,
        /// `refresh` or `grant exchange`.
        request: &'static str,
        /// When the other process's mark ends, Unix epoch milliseconds.
        retry_after: i64,
    },

    /// Another process held the token's refresh lease (refreshing it or
    /// exchanging its grant) for longer than this caller waits, three lease
    /// periods, without saving a new token or letting the lease end. Another
    /// call may find the lease ended.
    #[error(
        "gave up after {secs} s waiting for another process's {request} of token {id}: \
         it neither saved a new token nor let its lease end",
        secs = .waited.as_secs()
    )]
    LeaseWaitTimedOut {
        /// The token's id.
        id: String,
        /// `refresh` or `grant exchange`.
        request: &'static str,
        /// How long this caller waited.
        waited: Duration,
    },

    /// The HTTPS client for Zoho's accounts server could not be set up
    /// (its TLS settings, or the HTTP client itself); nothing was sent.
    #[error("could not set up the HTTPS client for Zoho's accounts server ({part}): {reason}")]
    ClientSetup {
        /// What could not be set up: `TLS settings` or `HTTP client`.
        part: &'static str,
        /// Why.
        reason: String,
    },

    /// The caller's input or settings were rejected; nothing was sent.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
}

impl AuthError {
    /// Whether the same call, made again later, may succeed: yes for
    /// [`Throttled`](Self::Throttled) (after Zoho's block ends),
    /// [`Transport`](Self::Transport), [`UnexpectedResponse`](Self::UnexpectedResponse),
    /// [`FailedElsewhere`](Self::FailedElsewhere) (after its `retry_after`),
    /// [`LeaseWaitTimedOut`](Self::LeaseWaitTimedOut) and retryable
    /// [`Store`](Self::Store) errors; no for the others.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. }
            | Self::Transport { .. }
            | Self::UnexpectedResponse { .. }
            | Self::FailedElsewhere { .. }
            | Self::LeaseWaitTimedOut { .. } => true,
            Self::Store(error) => error.is_retryable(),
            Self::NotFound { .. }
            | Self::Rejected { .. }
            | Self::InvalidInput { .. }
            | Self::ClientSetup { .. } => false,
        }
    }

    pub(crate) fn invalid_input(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_other_processes_say_what_happened() {
        let elsewhere = AuthError::FailedElsewhere {
            id: "abc".into(),
            request: "refresh",
            retry_after: 1_900_000_000_000,
        };
        assert_eq!(
            elsewhere.to_string(),
            "another process's refresh of token abc failed (the accounts server could not be \
             reached or answered oddly); nobody retries it before 1900000000000 (Unix ms)"
        );
        assert!(elsewhere.is_retryable());
        let wait = AuthError::LeaseWaitTimedOut {
            id: "abc".into(),
            request: "grant exchange",
            waited: Duration::from_secs(60),
        };
        assert_eq!(
            wait.to_string(),
            "gave up after 60 s waiting for another process's grant exchange of token abc: \
             it neither saved a new token nor let its lease end"
        );
        assert!(wait.is_retryable());
        let setup = AuthError::ClientSetup {
            part: "TLS settings",
            reason: "no protocol versions".into(),
        };
        assert_eq!(
            setup.to_string(),
            "could not set up the HTTPS client for Zoho's accounts server (TLS settings): \
             no protocol versions"
        );
        assert!(!setup.is_retryable());
    }
}
