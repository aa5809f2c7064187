//! [`AuthError`], the error of every `ZohoAuth` operation.

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
/// | `InvalidInput` | bad builder settings, a grant token without client credentials | no |
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
    /// [`Transport`](Self::Transport), [`UnexpectedResponse`](Self::UnexpectedResponse)
    /// and retryable [`Store`](Self::Store) errors; no for the others.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Transport { .. } | Self::UnexpectedResponse { .. } => {
                true
            }
            Self::Store(error) => error.is_retryable(),
            Self::NotFound { .. } | Self::Rejected { .. } | Self::InvalidInput { .. } => false,
        }
    }

    pub(crate) fn invalid_input(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }
}
