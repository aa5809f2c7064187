//! The refresh failures this process remembers, by token id: a failed
//! refresh is not retried with the same credentials before its retry time
//! (or ever, when Zoho refused them), and the failures in a row set the
//! next backoff.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::error::AuthError;
use crate::token::OAuthToken;

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
struct Failure {
    until: Option<i64>,
    credentials: Credentials,
    error: AuthError,
    /// Failed refreshes in a row with these credentials.
    in_a_row: u32,
}

/// The failures remembered, by token id.
#[derive(Default)]
pub(super) struct Failures(Mutex<HashMap<String, Failure>>);

impl Failures {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Failure>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A failed refresh of token `id` with `token`'s credentials not to
    /// retry yet at `now` (Unix ms). A failure with other credentials is
    /// forgotten: a new token was saved.
    pub(super) fn recent(&self, id: &str, token: &OAuthToken, now: i64) -> Option<AuthError> {
        let mut failures = self.lock();
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
    pub(super) fn in_a_row(&self, id: &str, token: &OAuthToken) -> u32 {
        self.lock()
            .get(id)
            .filter(|f| f.credentials == Credentials::of(token))
            .map_or(0, |f| f.in_a_row)
    }

    /// Remembers `error` for `token`'s credentials until `until` (Unix ms;
    /// `None`: while the stored credentials stay the same).
    pub(super) fn remember(
        &self,
        id: &str,
        token: &OAuthToken,
        error: &AuthError,
        until: Option<i64>,
        in_a_row: u32,
    ) {
        self.lock().insert(
            id.to_owned(),
            Failure {
                until,
                credentials: Credentials::of(token),
                error: error.clone(),
                in_a_row,
            },
        );
    }

    /// Forgets token `id`'s failures: a new token was saved.
    pub(super) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}
