//! Lease failure marks and the errors they stand for, each way once: the
//! holder whose refresh or grant exchange failed marks the lease with why
//! ([`cause_of`] its error), and the other callers report the error the mark
//! stands for ([`error_of`]) instead of calling Zoho.

use super::error::AuthError;
use super::zoho::{self, Request};
use crate::lease::{FailureCause, LeaseFailure};

/// Why `error` failed, as a lease mark records it: Zoho's refusal with its
/// code, its rate limit, or anything else (which may pass).
pub(super) fn cause_of(error: &AuthError) -> FailureCause {
    match error {
        AuthError::Rejected { error, .. } => FailureCause::Rejected {
            code: error.clone(),
        },
        AuthError::Throttled { .. } => FailureCause::Throttled,
        _ => FailureCause::Transport,
    }
}

/// The error the mark `failure`, left by another process's `request` of
/// token `id`, stands for.
pub(super) fn error_of(id: &str, request: Request, failure: &LeaseFailure) -> AuthError {
    match &failure.cause() {
        FailureCause::Rejected { code } => zoho::zoho_error(id, request, code, None),
        FailureCause::Throttled => zoho::throttled(id, request),
        FailureCause::Transport => AuthError::FailedElsewhere {
            id: id.to_owned(),
            request: request.name(),
            retry_after: failure.retry_after().unwrap_or(i64::MAX),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_and_its_mark_map_both_ways() {
        for error in [
            zoho::zoho_error("a", Request::Refresh, "invalid_code", None),
            zoho::throttled("a", Request::Refresh),
        ] {
            let failure = LeaseFailure::refresh(cause_of(&error), 1);
            let back = error_of("a", Request::Refresh, &failure);
            assert_eq!(back.to_string(), error.to_string());
        }
        let transport = AuthError::Transport {
            url: "https://accounts.zoho.com".into(),
            reason: "connection refused".into(),
            timeout: false,
        };
        assert_eq!(cause_of(&transport), FailureCause::Transport);
        // Another process's transport failure is not this one's: it says so,
        // and when to try again, without the other process's URL or cause.
        let failure = LeaseFailure::GrantExchange {
            cause: FailureCause::Transport,
            retry_after: 77,
        };
        let error = error_of("a", Request::Grant, &failure);
        assert!(
            matches!(error, AuthError::FailedElsewhere { ref id, request: "grant exchange", retry_after: 77 } if id == "a"),
            "{error:?}"
        );
    }
}
