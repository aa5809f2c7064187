//! Lease failure marks and the errors they stand for, each way once: the
//! holder whose refresh or grant exchange failed marks the lease with why
//! ([`cause_of`] its error), and the other callers report the error the mark
//! stands for ([`error_of`]) instead of calling Zoho.

use super::AuthError;
use super::zoho::{self, Request};
use crate::lease::FailureCause;

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

/// The error a mark with `cause`, left by another process's `request` of
/// token `id`, stands for.
pub(super) fn error_of(id: &str, request: Request, cause: &FailureCause) -> AuthError {
    match cause {
        FailureCause::Rejected { code } => zoho::zoho_error(id, request, code, None),
        FailureCause::Throttled => zoho::throttled(id, request),
        FailureCause::Transport => AuthError::Transport {
            url: "(another process)".into(),
            reason: format!("another process's {} of this token failed", request.name()),
            timeout: false,
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
            let back = error_of("a", Request::Refresh, &cause_of(&error));
            assert_eq!(back.to_string(), error.to_string());
        }
        let transport = AuthError::Transport {
            url: "https://accounts.zoho.com".into(),
            reason: "connection refused".into(),
            timeout: false,
        };
        assert_eq!(cause_of(&transport), FailureCause::Transport);
    }
}
