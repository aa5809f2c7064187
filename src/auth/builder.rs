//! [`ZohoAuthBuilder`]: the settings of a `ZohoAuth`, and the check of its
//! accounts URL.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::accounts::endpoint;
use super::client::ZohoAuth;
use super::data_center::DataCenter;
use super::error::AuthError;
use super::refresh::LEASE_MARGIN;
use super::state::{Clock, Inner};
use crate::store::TokenStore;

/// The default [`refresh_ahead`](ZohoAuthBuilder::refresh_ahead): 5 minutes.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// The default [`timeout`](ZohoAuthBuilder::timeout) of a call to Zoho.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl ZohoAuth {
    /// A builder over `store`: any [`TokenStore`], `Arc<dyn TokenStore>` included.
    pub fn builder(store: impl TokenStore + 'static) -> ZohoAuthBuilder {
        ZohoAuthBuilder::new(Arc::new(store))
    }
}

/// Builds a [`ZohoAuth`]; see [`ZohoAuth::builder`].
pub struct ZohoAuthBuilder {
    store: Arc<dyn TokenStore>,
    data_center: DataCenter,
    accounts_url: Option<String>,
    refresh_ahead: Duration,
    timeout: Duration,
    clock: Option<Clock>,
}

impl fmt::Debug for ZohoAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZohoAuthBuilder")
            .field("data_center", &self.data_center)
            .field("accounts_url", &self.accounts_url)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("timeout", &self.timeout)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish_non_exhaustive()
    }
}

impl ZohoAuthBuilder {
    /// A builder over `store` with the defaults; see [`ZohoAuth::builder`].
    fn new(store: Arc<dyn TokenStore>) -> Self {
        Self {
            store,
            data_center: DataCenter::default(),
            accounts_url: None,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            timeout: DEFAULT_TIMEOUT,
            clock: None,
        }
    }

    /// The data center of tokens whose `api_domain` is not a Zoho API
    /// domain (or is absent). Default [`DataCenter::Us`].
    pub fn data_center(mut self, data_center: DataCenter) -> Self {
        self.data_center = data_center;
        self
    }

    /// Sends every token-endpoint call to `url` (`{url}/oauth/v2/token`)
    /// whatever the token's data center: for a proxy, or a test server.
    pub fn accounts_url(mut self, url: impl Into<String>) -> Self {
        self.accounts_url = Some(url.into());
        self
    }

    /// Refresh a token when less than this is left of it. Default
    /// [`DEFAULT_REFRESH_AHEAD`] (300 s); at least
    /// [`MIN_VALIDITY`](super::MIN_VALIDITY) is used.
    pub fn refresh_ahead(mut self, refresh_ahead: Duration) -> Self {
        self.refresh_ahead = refresh_ahead;
        self
    }

    /// The timeout of one call to Zoho, connection included. Default
    /// [`DEFAULT_TIMEOUT`] (10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where this `ZohoAuth` reads the time of day (default: the system
    /// clock): to judge expiry times, to stamp new ones, and for the lease
    /// and retry times it asks the store for. For tests that simulate hours
    /// or days: give it the clock of the store
    /// ([`SecretsManagerStoreBuilder::clock`](crate::SecretsManagerStoreBuilder::clock)),
    /// which compares lease and retry times with its own. The waits while
    /// another process refreshes are real time whatever the clock.
    pub fn clock<F>(mut self, now: F) -> Self
    where
        F: Fn() -> SystemTime + Send + Sync + 'static,
    {
        self.clock = Some(Arc::new(now));
        self
    }

    /// The `ZohoAuth`. Makes no network call; fails with
    /// [`AuthError::InvalidInput`] for an accounts URL that is not an
    /// `http`/`https` URL, and with [`AuthError::ClientSetup`] if the HTTPS
    /// client cannot be set up.
    pub fn build(self) -> Result<ZohoAuth, AuthError> {
        let accounts_url = match &self.accounts_url {
            None => None,
            Some(url) => Some(endpoint(url).ok_or_else(|| {
                AuthError::invalid_input(
                    "accounts_url must be an http or https URL with a host, \
                     without a query or user info",
                )
            })?),
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| AuthError::ClientSetup {
                part: "HTTP client",
                reason: e.to_string(),
            })?;
        Ok(ZohoAuth {
            inner: Arc::new(Inner::new(
                self.store,
                http,
                self.data_center,
                accounts_url,
                self.refresh_ahead,
                self.timeout.saturating_add(LEASE_MARGIN),
                self.clock,
            )),
        })
    }
}

/// The TLS settings of the calls to Zoho: rustls with the aws-lc-rs crypto
/// provider, the TLS stack the AWS SDK's default HTTPS client is built on, so
/// that a binary links one TLS library and one crypto library, not two; the
/// root certificates are Mozilla's (webpki-roots), as the SDK's.
fn tls_config() -> Result<rustls::ClientConfig, AuthError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::ClientSetup {
            part: "TLS settings",
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::super::accounts::AccountsFallback;
    use super::*;
    use crate::MemoryStore;
    use crate::token::OAuthToken;

    fn auth(f: impl FnOnce(ZohoAuthBuilder) -> ZohoAuthBuilder) -> ZohoAuth {
        f(ZohoAuth::builder(MemoryStore::new())).build().unwrap()
    }

    fn with_domain(domain: &str) -> OAuthToken {
        OAuthToken {
            api_domain: Some(domain.into()),
            ..OAuthToken::default()
        }
    }

    #[test]
    fn accounts_url_rule() {
        let eu = auth(|b| b.data_center(DataCenter::Eu));
        let url = |a: &ZohoAuth, t: &OAuthToken| {
            a.inner
                .endpoint_for(t, &AccountsFallback::DataCenter)
                .unwrap()
                .to_string()
        };
        // The token's Zoho data center wins over the builder's.
        assert_eq!(
            url(&eu, &with_domain("https://www.zohoapis.com.au")),
            "https://accounts.zoho.com.au/oauth/v2/token"
        );
        // Not Zoho's, or none: the builder's data center.
        for token in [
            with_domain("http://127.0.0.1:9"),
            with_domain("https://evil.example.com"),
            OAuthToken::default(),
        ] {
            assert_eq!(url(&eu, &token), "https://accounts.zoho.eu/oauth/v2/token");
        }
        // The builder's accounts URL wins over everything.
        let fixed = auth(|b| b.accounts_url("http://127.0.0.1:9999/"));
        assert_eq!(
            url(&fixed, &with_domain("https://www.zohoapis.eu")),
            "http://127.0.0.1:9999/oauth/v2/token"
        );
        assert_eq!(
            url(
                &auth(|b| b.data_center(DataCenter::Ca)),
                &OAuthToken::default()
            ),
            "https://accounts.zohocloud.ca/oauth/v2/token"
        );
    }

    #[test]
    fn accounts_fallback_rule() {
        let url = |a: &ZohoAuth, t: &OAuthToken, f: AccountsFallback| {
            a.inner.endpoint_for(t, &f).map(|u| u.to_string())
        };
        let sdk = || AccountsFallback::TokenUrl("http://127.0.0.1:9/oauth/v2/token".into());
        let plain = auth(|b| b.data_center(DataCenter::Eu));
        // A Zoho api_domain wins over the fallback, whatever it is.
        for fallback in [
            sdk(),
            AccountsFallback::Refuse,
            AccountsFallback::DataCenter,
        ] {
            assert_eq!(
                url(&plain, &with_domain("https://www.zohoapis.jp"), fallback).unwrap(),
                "https://accounts.zoho.jp/oauth/v2/token"
            );
        }
        // Otherwise the fallback: a full token URL as it is, a base URL
        // with the path appended, or nothing.
        for token in [
            with_domain("https://evil.example.com"),
            OAuthToken::default(),
        ] {
            assert_eq!(
                url(&plain, &token, sdk()).unwrap(),
                "http://127.0.0.1:9/oauth/v2/token"
            );
            let base = AccountsFallback::TokenUrl("http://127.0.0.1:9/".into());
            assert_eq!(
                url(&plain, &token, base).unwrap(),
                "http://127.0.0.1:9/oauth/v2/token"
            );
            assert!(matches!(
                url(&plain, &token, AccountsFallback::Refuse),
                Err(AuthError::InvalidInput { .. })
            ));
            let bad = AccountsFallback::TokenUrl("http://u:p@127.0.0.1:9/oauth/v2/token".into());
            assert!(matches!(
                url(&plain, &token, bad),
                Err(AuthError::InvalidInput { .. })
            ));
        }
        // The builder's accounts URL overrides the fallback too.
        let fixed = auth(|b| b.accounts_url("http://127.0.0.1:9999"));
        assert_eq!(
            url(&fixed, &OAuthToken::default(), AccountsFallback::Refuse).unwrap(),
            "http://127.0.0.1:9999/oauth/v2/token"
        );
    }

    #[test]
    fn bad_accounts_urls_fail_the_build() {
        for bad in [
            "",
            "ftp://x",
            "not a url",
            "http://u:p@host",
            "http://h/?q=1",
        ] {
            let result = ZohoAuth::builder(MemoryStore::new())
                .accounts_url(bad)
                .build();
            assert!(
                matches!(result, Err(AuthError::InvalidInput { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn builder_takes_an_arc_dyn_store() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        ZohoAuth::builder(store).build().unwrap();
    }
}
