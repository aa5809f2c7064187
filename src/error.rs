//! [`StoreError`], the one error type of every store.

use std::error::Error as StdError;
use std::sync::Arc;

/// A source error, as [`StoreError::backend`] takes it.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The shared source error of a [`StoreError::Backend`]: shared, so that one
/// failure can be reported to every caller it affects (clones are cheap).
pub type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// What went wrong in a [`TokenStore`](crate::TokenStore) operation.
///
/// Messages name the operation and the token id involved, never a token's
/// secret values. Match variants as `StoreError::InvalidInput { .. }`: more
/// variants may be added.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The caller's input was rejected; nothing was written.
    ///
    /// A malformed id, a query token with nothing to match on, a new token
    /// without refresh, grant or access token, a second token for one user,
    /// a token too large to store.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong with the input.
        reason: String,
    },

    /// A stored value could not be decoded. The store did not overwrite it.
    #[error("stored token {id} is corrupt: {reason}")]
    Corrupt {
        /// The id of the token (or the name of the index shard) that is corrupt.
        id: String,
        /// What is wrong with it, never its contents.
        reason: String,
    },

    /// The storage service failed or could not be reached.
    #[error("{operation} failed: {source}")]
    Backend {
        /// The operation that failed, e.g. `GetSecretValue tokens/abc`.
        operation: String,
        /// The underlying error.
        #[source]
        source: SharedError,
    },

    /// A write kept losing to concurrent writers and gave up.
    #[error("{operation} gave up after {attempts} attempts lost to concurrent writers")]
    Conflict {
        /// The operation that gave up.
        operation: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

impl StoreError {
    /// An [`StoreError::InvalidInput`] with this reason.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }

    /// A [`StoreError::Backend`] for `operation`, caused by `source`.
    pub fn backend(operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            operation: operation.into(),
            source: Arc::from(source.into()),
        }
    }
}
