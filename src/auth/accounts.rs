//! Where a token's secrets are sent: the token endpoint of its accounts
//! server, chosen by one rule (see [`AccountsFallback`]).

use super::data_center::DataCenter;
use super::error::AuthError;
use super::state::Inner;
use crate::token::OAuthToken;

/// Where a token's secrets go when its `api_domain` names no Zoho data
/// center (or it has none), for the calls that take one
/// ([`managed_find_token`](super::ZohoAuth::managed_find_token),
/// [`managed_find_token_by_id`](super::ZohoAuth::managed_find_token_by_id)).
///
/// The full rule, first that applies: the builder's
/// [`accounts_url`](super::ZohoAuthBuilder::accounts_url) (an override, for
/// a proxy or a test server); else the [`DataCenter`](super::DataCenter)
/// of the token's `api_domain` when it is a Zoho API domain; else this
/// fallback. A host is never taken from an `api_domain` that is not Zoho's.
///
/// ```
/// use zoho_token_store::auth::AccountsFallback;
///
/// // The accounts URL of the environment a Zoho SDK was initialized with
/// // (its full token URL), as the SDK itself would use it.
/// let sdk = AccountsFallback::TokenUrl("https://accounts.zoho.eu/oauth/v2/token".into());
/// assert_ne!(sdk, AccountsFallback::Refuse);
/// assert_eq!(AccountsFallback::default(), AccountsFallback::DataCenter);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountsFallback {
    /// The builder's [`data_center`](super::ZohoAuthBuilder::data_center),
    /// as [`ZohoAuth::access_token`](super::ZohoAuth::access_token) does.
    #[default]
    DataCenter,
    /// This token endpoint: a full token URL (`…/oauth/v2/token`, as the
    /// Zoho SDKs' environments hold it, taken as it is) or an accounts
    /// server's base URL (`/oauth/v2/token` is appended). It must be an
    /// `http`/`https` URL with a host and no query or user info, else the
    /// refresh fails with [`AuthError::InvalidInput`] and nothing is sent.
    TokenUrl(String),
    /// None: a token that needs a refresh fails with
    /// [`AuthError::InvalidInput`] (it is still served while it has at
    /// least [`MIN_VALIDITY`](super::MIN_VALIDITY) left), and nothing is sent.
    Refuse,
}

impl AccountsFallback {
    /// [`TokenUrl`](Self::TokenUrl) of `url` if it is usable (an `http` or
    /// `https` URL with a host, without a query or user info; a full token
    /// URL or an accounts server's base URL), else
    /// [`AuthError::InvalidInput`]: for a binding that checks its settings
    /// when it is built rather than at the first refresh.
    ///
    /// ```
    /// use zoho_token_store::auth::AccountsFallback;
    ///
    /// assert!(AccountsFallback::token_url("https://accounts.zoho.com/oauth/v2/token").is_ok());
    /// assert!(AccountsFallback::token_url("http://127.0.0.1:9090").is_ok());
    /// assert!(AccountsFallback::token_url("ftp://accounts.zoho.com").is_err());
    /// ```
    pub fn token_url(url: impl Into<String>) -> Result<Self, AuthError> {
        let url = url.into();
        if token_url(&url).is_none() {
            return Err(AuthError::invalid_input(
                "the accounts URL must be an http or https URL with a host, \
                 without a query or user info",
            ));
        }
        Ok(Self::TokenUrl(url))
    }
}

/// The token endpoint under accounts server `base`, if it is a usable URL.
pub(super) fn endpoint(base: &str) -> Option<reqwest::Url> {
    let url = reqwest::Url::parse(base.trim_end_matches('/')).ok()?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.query().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !usable {
        return None;
    }
    let path = url.path().trim_end_matches('/');
    let mut url = url.clone();
    url.set_path(&format!("{path}/oauth/v2/token"));
    Some(url)
}

/// The token endpoint a caller names: a full token URL (ending in
/// `/oauth/v2/token`, as the Zoho SDKs' environments give it) is taken as
/// it is, an accounts server's base URL gets the path appended.
pub(super) fn token_url(url: &str) -> Option<reqwest::Url> {
    let base = url.trim().trim_end_matches('/');
    endpoint(base.strip_suffix(TOKEN_PATH).unwrap_or(base))
}

/// The token endpoint's path under an accounts server.
const TOKEN_PATH: &str = "/oauth/v2/token";

impl Inner {
    /// The token endpoint for `token`: the builder's accounts URL, else the
    /// data center of its `api_domain` if that is Zoho's, else `fallback`
    /// (the builder's data center, a caller's token URL, or none at all).
    pub(super) fn endpoint_for(
        &self,
        token: &OAuthToken,
        fallback: &AccountsFallback,
    ) -> Result<reqwest::Url, AuthError> {
        if let Some(url) = &self.accounts_url {
            return Ok(url.clone());
        }
        let of = |dc: DataCenter| {
            endpoint(dc.accounts_url()).expect("the data centers' accounts URLs are valid")
        };
        if let Some(dc) = token
            .api_domain
            .as_deref()
            .and_then(DataCenter::from_api_domain)
        {
            return Ok(of(dc));
        }
        match fallback {
            AccountsFallback::DataCenter => Ok(of(self.data_center)),
            AccountsFallback::TokenUrl(url) => token_url(url).ok_or_else(|| {
                AuthError::invalid_input(
                    "the fallback accounts URL must be an http or https URL with a host, \
                     without a query or user info",
                )
            }),
            AccountsFallback::Refuse => Err(AuthError::invalid_input(format!(
                "no accounts server for token {}: its api_domain is not a Zoho data center's, \
                 and no accounts URL was given",
                token.id.as_deref().unwrap_or("(new)")
            ))),
        }
    }
}
