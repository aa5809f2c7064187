//! [`AccessToken`]: the valid access token `ZohoAuth` serves.

use std::fmt;
use std::sync::Arc;

/// A valid access token, as [`ZohoAuth::access_token`](super::ZohoAuth::access_token) serves it.
///
/// Cheap to clone: the bearer string is shared (`Arc<str>`). `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub(super) bearer: Arc<str>,
    pub(super) expiry_time: i64,
    pub(super) id: Arc<str>,
    pub(super) api_domain: Option<Arc<str>>,
}

impl AccessToken {
    /// The bearer value, for the header `Authorization: Zoho-oauthtoken {value}`.
    pub fn as_str(&self) -> &str {
        &self.bearer
    }

    /// When it expires: Unix epoch milliseconds.
    pub fn expiry_time(&self) -> i64 {
        self.expiry_time
    }

    /// The store's id of the token it belongs to.
    pub fn token_id(&self) -> &str {
        &self.id
    }

    /// The API domain Zoho gave with the token, e.g. `https://www.zohoapis.eu`.
    pub fn api_domain(&self) -> Option<&str> {
        self.api_domain.as_deref()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token_id", &self.id)
            .field("bearer", &"<redacted>")
            .field("expiry_time", &self.expiry_time)
            .field("api_domain", &self.api_domain)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_debug_is_redacted() {
        let token = AccessToken {
            bearer: Arc::from("1000.canary-bearer"),
            expiry_time: 1,
            id: Arc::from("abc"),
            api_domain: None,
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("abc"), "{shown}");
    }
}
