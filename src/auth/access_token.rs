//! [`AccessToken`]: the valid access token `ZohoAuth` serves.

use std::fmt;
use std::sync::Arc;

/// A valid access token, as [`ZohoAuth::access_token`](super::ZohoAuth::access_token) serves it.
///
/// Cheap to clone: one shared allocation (an `Arc`) holds the bearer string
/// and the rest, so serving it copies nothing. `Debug` never shows the
/// bearer.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(pub(super) Arc<Parts>);

/// What an [`AccessToken`] holds.
#[derive(PartialEq, Eq)]
pub(super) struct Parts {
    pub(super) bearer: Arc<str>,
    pub(super) expiry_time: i64,
    pub(super) id: Arc<str>,
    pub(super) api_domain: Option<Arc<str>>,
}

impl AccessToken {
    /// The bearer value, for the header `Authorization: Zoho-oauthtoken {value}`.
    pub fn as_str(&self) -> &str {
        &self.0.bearer
    }

    /// When it expires: Unix epoch milliseconds.
    pub fn expiry_time(&self) -> i64 {
        self.0.expiry_time
    }

    /// The store's id of the token it belongs to.
    pub fn token_id(&self) -> &str {
        &self.0.id
    }

    /// The API domain Zoho gave with the token, e.g. `https://www.zohoapis.eu`.
    pub fn api_domain(&self) -> Option<&str> {
        self.0.api_domain.as_deref()
    }
}

impl AccessToken {
    /// The same token in an allocation of its own, so that the threads that
    /// serve it each count references on their own copy.
    pub(super) fn private_copy(&self) -> Self {
        let parts = &self.0;
        Self(Arc::new(Parts {
            bearer: Arc::clone(&parts.bearer),
            expiry_time: parts.expiry_time,
            id: Arc::clone(&parts.id),
            api_domain: parts.api_domain.clone(),
        }))
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token_id", &self.0.id)
            .field("bearer", &"<redacted>")
            .field("expiry_time", &self.0.expiry_time)
            .field("api_domain", &self.0.api_domain)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_debug_is_redacted() {
        let token = AccessToken(Arc::new(Parts {
            bearer: Arc::from("1000.canary-bearer"),
            expiry_time: 1,
            id: Arc::from("abc"),
            api_domain: None,
        }));
        let shown = format!("{token:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("abc"), "{shown}");
    }
}
