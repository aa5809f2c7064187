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
/// variants may be added. [`is_retryable`](Self::is_retryable) says whether
/// running the operation again may succeed, and [`code`](Self::code) gives
/// the storage service's error code when it answered with one.
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
    ///
    /// Whether it is worth retrying, and the service's error code, are
    /// carried by the source: ask [`StoreError::is_retryable`] and
    /// [`StoreError::code`].
    #[error("{operation} failed: {source}")]
    Backend {
        /// The operation that failed, e.g. `GetSecretValue tokens/abc`.
        operation: String,
        /// The underlying error.
        #[source]
        source: SharedError,
    },

    /// Secrets Manager refused a write under one of its quotas, most often
    /// the ~100 versions one secret may make within 24 hours. Not retried:
    /// writes to that secret fail until its older versions age out.
    #[error("Secrets Manager refused a write to {secret}: {reason}")]
    QuotaExceeded {
        /// The secret whose write was refused.
        secret: String,
        /// Which quota, and what it means.
        reason: String,
    },

    /// A store broke the [`TokenStore`](crate::TokenStore) contract, e.g. it
    /// answered a token without an id: a bug in that store, not in the
    /// caller's input. Not retryable.
    #[error("the store broke the TokenStore contract in {operation}: {reason}")]
    BrokenContract {
        /// The store's operation that answered it, e.g. `find_token`.
        operation: String,
        /// What was wrong with the answer (never a token's values).
        reason: String,
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
    ///
    /// It has no [`code`](Self::code), and it is
    /// [retryable](Self::is_retryable) only when `source` (or an error in its
    /// `source()` chain) is a [`std::io::Error`] of a transient kind: timed
    /// out, interrupted, or a connection refused, reset or aborted.
    pub fn backend(operation: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            operation: operation.into(),
            source: Arc::from(source.into()),
        }
    }

    /// Whether the same operation, run again later, may succeed.
    ///
    /// - [`Conflict`](Self::Conflict): yes, the writers it lost to will be done.
    /// - [`Backend`](Self::Backend): yes for throttling, timeouts, server
    ///   errors (HTTP 5xx) and connections that failed or broke; no for the
    ///   service's other refusals (access denied, a quota, a bad request),
    ///   which fail again until something else changes.
    /// - [`InvalidInput`](Self::InvalidInput), [`Corrupt`](Self::Corrupt),
    ///   [`QuotaExceeded`](Self::QuotaExceeded),
    ///   [`BrokenContract`](Self::BrokenContract): no.
    ///
    /// Retry with a backoff: the AWS SDK has already retried transient
    /// failures within its own retry budget before a `Backend` error reaches
    /// the caller.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict { .. } => true,
            Self::Backend { source, .. } => match Failure::find(source.as_ref()) {
                Some(failure) => failure.retryable,
                None => chain(source.as_ref()).any(is_transient_io),
            },
            Self::InvalidInput { .. }
            | Self::Corrupt { .. }
            | Self::QuotaExceeded { .. }
            | Self::BrokenContract { .. } => false,
        }
    }

    /// The storage service's error code, e.g. `ThrottlingException` or
    /// `AccessDeniedException`, when a [`Backend`](Self::Backend) error is
    /// the service's answer (`LimitExceededException` for
    /// [`QuotaExceeded`](Self::QuotaExceeded)); `None` otherwise.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Backend { source, .. } => Failure::find(source.as_ref())?.code.as_deref(),
            Self::QuotaExceeded { .. } => Some("LimitExceededException"),
            _ => None,
        }
    }
}

/// The source of a [`StoreError::Backend`] that a store built knowing what
/// failed: its message (the whole cause chain, already rendered and free of
/// secret values), the service's error code and whether to retry.
///
/// Classified where the failure is seen (the SDK error kinds and codes are
/// known there), read back by [`StoreError::is_retryable`] and
/// [`StoreError::code`].
#[cfg_attr(not(feature = "secrets-manager"), allow(dead_code))]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: Option<String>,
    pub(crate) retryable: bool,
}

impl Failure {
    /// The `Failure` in `error` or its `source()` chain.
    fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Self> {
        chain(error).find_map(|e| e.downcast_ref::<Self>())
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The message alone, as `Display` shows it: errors are printed with
        // `{:?}` as often as with `{}`.
        f.write_str(&self.message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Failure {}

/// `error` and each of its sources.
fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

fn is_transient_io(error: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind::*;
    error.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            TimedOut | Interrupted | ConnectionRefused | ConnectionReset | ConnectionAborted
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: Option<&str>, retryable: bool) -> StoreError {
        StoreError::backend(
            "PutSecretValue x",
            Failure {
                message: "failed".into(),
                code: code.map(str::to_owned),
                retryable,
            },
        )
    }

    #[test]
    fn retryable_variants() {
        assert!(
            StoreError::Conflict {
                operation: "save_token".into(),
                attempts: 5
            }
            .is_retryable()
        );
        assert!(!StoreError::invalid_input("bad").is_retryable());
        let corrupt = StoreError::Corrupt {
            id: "a".into(),
            reason: "not JSON".into(),
        };
        assert!(!corrupt.is_retryable());
        assert_eq!(corrupt.code(), None);
    }

    #[test]
    fn a_broken_contract_names_the_operation_and_is_final() {
        let broken = StoreError::BrokenContract {
            operation: "find_token".into(),
            reason: "it answered a token without an id".into(),
        };
        assert_eq!(
            broken.to_string(),
            "the store broke the TokenStore contract in find_token: \
             it answered a token without an id"
        );
        assert!(!broken.is_retryable());
        assert_eq!(broken.code(), None);
    }

    #[test]
    fn backend_errors_carry_their_classification() {
        let throttled = failure(Some("ThrottlingException"), true);
        assert!(throttled.is_retryable());
        assert_eq!(throttled.code(), Some("ThrottlingException"));
        let denied = failure(Some("AccessDeniedException"), false);
        assert!(!denied.is_retryable());
        assert_eq!(denied.code(), Some("AccessDeniedException"));
        assert_eq!(denied.to_string(), "PutSecretValue x failed: failed");
    }

    #[test]
    fn plain_backend_errors_are_retryable_only_for_transient_io() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::backend("read", refused).is_retryable());
        let missing = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!StoreError::backend("read", missing).is_retryable());
        let other = StoreError::backend("read", "something broke");
        assert!(!other.is_retryable());
        assert_eq!(other.code(), None);
    }
}
