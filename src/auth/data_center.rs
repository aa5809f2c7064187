//! [`DataCenter`]: Zoho's data centers, their accounts servers and API domains.

use std::str::FromStr;

use super::error::AuthError;

/// A Zoho data center: where a Zoho account lives, which decides the
/// accounts server its tokens are refreshed at.
///
/// A token's secrets (client secret, refresh token, grant token) are sent
/// only to the accounts server of a data center (or to the accounts URL the
/// [`ZohoAuthBuilder`](super::ZohoAuthBuilder) is given), never to a host
/// read from a stored `api_domain`.
///
/// | data center | accounts server | API domain |
/// |---|---|---|
/// | `Us` | `https://accounts.zoho.com` | `https://www.zohoapis.com` |
/// | `Eu` | `https://accounts.zoho.eu` | `https://www.zohoapis.eu` |
/// | `In` | `https://accounts.zoho.in` | `https://www.zohoapis.in` |
/// | `Cn` | `https://accounts.zoho.com.cn` | `https://www.zohoapis.com.cn` |
/// | `Jp` | `https://accounts.zoho.jp` | `https://www.zohoapis.jp` |
/// | `Au` | `https://accounts.zoho.com.au` | `https://www.zohoapis.com.au` |
/// | `Ca` | `https://accounts.zohocloud.ca` | `https://www.zohoapis.ca` |
/// | `Sa` | `https://accounts.zoho.sa` | `https://www.zohoapis.sa` |
///
/// ```
/// use zoho_token_store::auth::DataCenter;
///
/// assert_eq!(DataCenter::from_api_domain("https://www.zohoapis.eu"), Some(DataCenter::Eu));
/// assert_eq!(DataCenter::from_api_domain("https://sandbox.zohoapis.com"), Some(DataCenter::Us));
/// assert_eq!(DataCenter::from_api_domain("https://zohoapis.eu.example.com"), None);
/// assert_eq!(DataCenter::Eu.accounts_url(), "https://accounts.zoho.eu");
/// assert_eq!(DataCenter::Eu.api_domain(), "https://www.zohoapis.eu");
/// assert_eq!("EU".parse::<DataCenter>().unwrap(), DataCenter::Eu);
/// assert!("mars".parse::<DataCenter>().is_err());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DataCenter {
    /// United States (`.com`), the default.
    #[default]
    Us,
    /// Europe (`.eu`).
    Eu,
    /// India (`.in`).
    In,
    /// China (`.com.cn`).
    Cn,
    /// Japan (`.jp`).
    Jp,
    /// Australia (`.com.au`).
    Au,
    /// Canada (`zohocloud.ca`).
    Ca,
    /// Saudi Arabia (`.sa`).
    Sa,
}

impl DataCenter {
    /// Every data center.
    pub const ALL: [Self; 8] = [
        Self::Us,
        Self::Eu,
        Self::In,
        Self::Cn,
        Self::Jp,
        Self::Au,
        Self::Ca,
        Self::Sa,
    ];

    /// The accounts server of this data center, where its tokens are
    /// refreshed (`POST {accounts_url}/oauth/v2/token`).
    pub fn accounts_url(&self) -> &'static str {
        match self {
            Self::Us => "https://accounts.zoho.com",
            Self::Eu => "https://accounts.zoho.eu",
            Self::In => "https://accounts.zoho.in",
            Self::Cn => "https://accounts.zoho.com.cn",
            Self::Jp => "https://accounts.zoho.jp",
            Self::Au => "https://accounts.zoho.com.au",
            Self::Ca => "https://accounts.zohocloud.ca",
            Self::Sa => "https://accounts.zoho.sa",
        }
    }

    /// This data center's API domain, where the CRM API is called, e.g.
    /// `https://www.zohoapis.eu`.
    pub fn api_domain(&self) -> &'static str {
        match self {
            Self::Us => "https://www.zohoapis.com",
            Self::Eu => "https://www.zohoapis.eu",
            Self::In => "https://www.zohoapis.in",
            Self::Cn => "https://www.zohoapis.com.cn",
            Self::Jp => "https://www.zohoapis.jp",
            Self::Au => "https://www.zohoapis.com.au",
            Self::Ca => "https://www.zohoapis.ca",
            Self::Sa => "https://www.zohoapis.sa",
        }
    }

    /// The short name of this data center, as [`FromStr`] reads it: `us`,
    /// `eu`, `in`, `cn`, `jp`, `au`, `ca` or `sa`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
            Self::In => "in",
            Self::Cn => "cn",
            Self::Jp => "jp",
            Self::Au => "au",
            Self::Ca => "ca",
            Self::Sa => "sa",
        }
    }

    /// The host of this data center's API domain, without `www.`.
    fn api_host(&self) -> &'static str {
        match self {
            Self::Us => "zohoapis.com",
            Self::Eu => "zohoapis.eu",
            Self::In => "zohoapis.in",
            Self::Cn => "zohoapis.com.cn",
            Self::Jp => "zohoapis.jp",
            Self::Au => "zohoapis.com.au",
            Self::Ca => "zohoapis.ca",
            Self::Sa => "zohoapis.sa",
        }
    }

    /// The data center whose API domain `api_domain` is (as Zoho returns it
    /// with a token, e.g. `https://www.zohoapis.eu`): the host must be the
    /// data center's API host itself or its `www.`, `sandbox.` or
    /// `developer.` subdomain. Any other host, e.g. one that merely ends
    /// with a Zoho name, is `None`.
    pub fn from_api_domain(api_domain: &str) -> Option<Self> {
        let host = host_of(api_domain)?.to_ascii_lowercase();
        let bare = ["www.", "sandbox.", "developer."]
            .iter()
            .find_map(|sub| host.strip_prefix(sub))
            .unwrap_or(&host);
        Self::ALL.into_iter().find(|dc| dc.api_host() == bare)
    }
}

/// Reads a data center's short name ([`DataCenter::name`]), in any case,
/// e.g. from a setting such as `ZOHO_DATA_CENTER=eu`.
impl FromStr for DataCenter {
    type Err = AuthError;

    fn from_str(name: &str) -> Result<Self, AuthError> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|dc| dc.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                AuthError::invalid_input(format!(
                    "unknown Zoho data center {name:?} (one of us, eu, in, cn, jp, au, ca, sa)"
                ))
            })
    }
}

/// The host of a URL (`scheme://[user@]host[:port][/…]`), or of a bare host.
fn host_of(url: &str) -> Option<&str> {
    let url = url.trim();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?.trim_end_matches('.');
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_api_domains_round_trip() {
        for dc in DataCenter::ALL {
            assert_eq!(dc.name().parse::<DataCenter>().unwrap(), dc);
            assert_eq!(DataCenter::from_api_domain(dc.api_domain()), Some(dc));
        }
    }

    #[test]
    fn api_domains_map_to_their_data_center() {
        for (domain, dc) in [
            ("https://www.zohoapis.com", DataCenter::Us),
            ("https://www.zohoapis.eu", DataCenter::Eu),
            ("https://www.zohoapis.in", DataCenter::In),
            ("https://www.zohoapis.com.cn", DataCenter::Cn),
            ("https://www.zohoapis.jp", DataCenter::Jp),
            ("https://www.zohoapis.com.au", DataCenter::Au),
            ("https://www.zohoapis.ca", DataCenter::Ca),
            ("https://www.zohoapis.sa", DataCenter::Sa),
            ("https://sandbox.zohoapis.eu", DataCenter::Eu),
            ("https://developer.zohoapis.com.au/", DataCenter::Au),
            ("HTTPS://WWW.ZOHOAPIS.IN:443/crm", DataCenter::In),
            ("zohoapis.jp", DataCenter::Jp),
        ] {
            assert_eq!(DataCenter::from_api_domain(domain), Some(dc), "{domain}");
        }
    }

    #[test]
    fn other_hosts_are_no_data_center() {
        for domain in [
            "https://evil.example.com",
            "https://zohoapis.eu.evil.com",
            "https://evilzohoapis.com",
            "https://www.zohoapis.eu@evil.com",
            "https://x.www.zohoapis.com",
            "http://127.0.0.1:9999",
            "",
            "https://",
        ] {
            assert_eq!(DataCenter::from_api_domain(domain), None, "{domain}");
        }
    }

    #[test]
    fn accounts_urls() {
        let urls: Vec<_> = DataCenter::ALL
            .iter()
            .map(DataCenter::accounts_url)
            .collect();
        assert_eq!(
            urls,
            [
                "https://accounts.zoho.com",
                "https://accounts.zoho.eu",
                "https://accounts.zoho.in",
                "https://accounts.zoho.com.cn",
                "https://accounts.zoho.jp",
                "https://accounts.zoho.com.au",
                "https://accounts.zohocloud.ca",
                "https://accounts.zoho.sa",
            ]
        );
    }
}
