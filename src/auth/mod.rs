//! Zoho OAuth on the store: a valid access token for a stored token,
//! refreshed at Zoho's accounts server when needed and saved back, with one
//! refresh per token for a whole fleet of processes (feature `auth`, on by
//! default).
//!
//! ```no_run
//! use std::time::Duration;
//! use zoho_token_store::auth::{AuthError, DataCenter, ZohoAuth};
//! use zoho_token_store::{OAuthToken, SecretsManagerStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SecretsManagerStore::from_env("zoho/crm").await?;
//! let auth = ZohoAuth::builder(store)
//!     .data_center(DataCenter::Eu)
//!     .refresh_ahead(Duration::from_secs(300))
//!     .build()?;
//!
//! // First use: exchange a grant token from the Zoho API console.
//! let saved = auth
//!     .exchange_grant_token(
//!         OAuthToken::from_grant_token("1000.CLIENT", "client-secret", "1000.grant")
//!             .with_user_name("me@example.com"),
//!     )
//!     .await?;
//!
//! // Every request: a valid access token, refreshed only when needed.
//! let token = auth.access_token(&OAuthToken::for_user("me@example.com")).await?;
//! let header = format!("Zoho-oauthtoken {}", token.as_str());
//! # let _ = (saved, header);
//!
//! // The CRM API answered 401 INVALID_TOKEN: the next call gets another one.
//! auth.invalidate(&token).await;
//! # Ok(()) }
//! ```
//!
//! # What `access_token` does
//!
//! 1. It finds the stored token with the store's `find_token` (the store's
//!    matching rules; a cached store answers from its cache).
//! 2. If the access token has more than
//!    [`refresh_ahead`](ZohoAuthBuilder::refresh_ahead) left (default 300 s),
//!    it is served: no call to Zoho or the store's backend, and the bearer
//!    string is shared ([`AccessToken`] holds an `Arc<str>`), not copied.
//! 3. Otherwise (less left, none, or [invalidated](ZohoAuth::invalidate)) it
//!    is refreshed: `POST {accounts}/oauth/v2/token` with
//!    `grant_type=refresh_token`, `client_id`, `client_secret` and
//!    `refresh_token`, form-encoded. The new access token, its expiry
//!    (Unix ms, from Zoho's `expires_in` seconds, or `expires_in_sec` in
//!    older answers) and `api_domain` are saved with `save_token`; the
//!    refresh token and id are unchanged.
//! 4. A token with less than 5 seconds left is never served.
//!
//! A query that sets only a user name (as [`OAuthToken::for_user`] makes)
//! is answered from this `ZohoAuth`'s own map of the access tokens it
//! served by user name (a read lock and a hash lookup: no store call, no
//! copy of the token), for at most [`WARM_RECHECK`] (1 s) before it asks
//! the store again, so a token deleted or replaced in the store stops being
//! served within that second; the store's cache makes that check cheap.
//!
//! # One refresh for many callers
//!
//! Zoho issues at most 10 access tokens per refresh token in 10 minutes and
//! keeps 15 alive: the 16th invalidates the oldest, which the callers still
//! holding it then see rejected. So refreshes are shared:
//!
//! - **In one process**, concurrent callers of one `ZohoAuth` (or its
//!   clones) that need the same token refreshed share one refresh, with any
//!   store.
//! - **Across processes**, callers share one refresh when the store
//!   implements [`TokenStore::refresh_lease`]: the first to ask takes a
//!   lease (with an end time, so that a holder that freezes or crashes does
//!   not block the others), refreshes and saves; the others, meanwhile,
//!   serve the current token if it still has 5 seconds left, or else re-read
//!   the store until the new token lands or the lease ends (then one of them
//!   takes it). `SecretsManagerStore` implements it on the token's own secret.
//!   A store that does not (the trait's provided method) gets the in-process
//!   sharing only: each process refreshes on its own.
//!
//! # When a refresh fails
//!
//! - If the current access token still has 5 seconds left, it is served
//!   instead of the error.
//! - `Rejected` (Zoho's `invalid_code`, `invalid_client`, …: a revoked
//!   refresh token or wrong client credentials) leaves the stored token
//!   unchanged and is never retried: retrying cannot help until someone
//!   saves a new token. The lease holder marks the lease failed with no end
//!   ([`LeaseFailure::Rejected`](crate::LeaseFailure::Rejected)); until the token is saved again
//!   (a save writes the token without the mark) every caller, in every
//!   process sharing the store, gets `Rejected` from the mark with no call to
//!   Zoho and no write, and this `ZohoAuth` asks the store no more while the
//!   stored refresh token and client credentials stay the same. A revoked
//!   token therefore costs one call to Zoho and 2 versions of its secret
//!   (the lease and the mark), however long requests keep coming.
//! - Transient failures (`Throttled`, `Transport`, `UnexpectedResponse`)
//!   are retried after a backoff that grows ×4 with each failure in a row,
//!   counted fleet-wide in the lease mark (a save resets it), up to
//!   [`MAX_BACKOFF`] (2 h): 2 s, 8 s, 32 s, 128 s, 512 s, 2048 s, then every
//!   2 h (`Throttled`: 1, 4, 16, 64 minutes, then every 2 h). Each attempt
//!   writes at most 2 versions (lease and mark), so a day of continuous
//!   failures makes at most 18 attempts and 36 versions of the token's
//!   secret, and 12 attempts, 24 versions, each later day: well under
//!   Secrets Manager's ~100 versions a secret may make in 24 hours.
//! - Zoho answers errors in the JSON body, often with HTTP 200: they are
//!   read from the body whatever the status.
//!
//! # Where secrets are sent
//!
//! The client secret, refresh token and grant token go only to the accounts
//! server chosen as follows: the builder's
//! [`accounts_url`](ZohoAuthBuilder::accounts_url) if set (an override:
//! every call goes there); else the [`DataCenter`] of the token's
//! `api_domain`, if it is a Zoho API domain ([`DataCenter::from_api_domain`]);
//! else the builder's [`data_center`](ZohoAuthBuilder::data_center), or,
//! for the calls that take one, the caller's [`AccountsFallback`] (a Zoho
//! SDK environment's accounts URL, or none at all). Never to a host taken
//! from an `api_domain` that is not Zoho's.
//!
//! # For the Zoho SDKs' own token flow
//!
//! [`ZohoAuth::managed_find_token`] and [`ZohoAuth::managed_find_token_by_id`]
//! are what a `TokenStore` drop-in for an official Zoho SDK answers the SDK
//! (this repository's Python and Node packages do): the stored token with
//! an access token refreshed first, through everything above, when less
//! than `refresh_ahead` is left of it, and a first-time grant exchanged once
//! for the fleet. The SDK, which refreshes by itself only when less than
//! 5 s is left, then never calls Zoho on its own, and SDK and Rust instances
//! sharing a store make one refresh between them.
//!
//! # After a 401
//!
//! When the CRM API rejects an access token (`401 INVALID_TOKEN`: Zoho
//! invalidated it, e.g. as the 16th live token of its refresh token),
//! [`ZohoAuth::invalidate`] it. The next `access_token` reads the store
//! past its cache: a newer access token saved by another process is served
//! with no call to Zoho; only if the store still holds the invalidated one
//! is it refreshed.

mod access_token;
mod builder;
mod data_center;
mod error;
mod grant;
mod managed;
mod mark;
mod refresh;
mod zoho;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use access_token::AccessToken;
pub use builder::ZohoAuthBuilder;
pub use data_center::DataCenter;
pub use error::AuthError;
pub use managed::AccountsFallback;

use crate::error::StoreError;
use crate::store::{LookupKey, TokenStore};
use crate::token::OAuthToken;
use builder::{endpoint, token_url};
use grant::GrantFlight;
use refresh::{Failure, Flight};

/// The default [`refresh_ahead`](ZohoAuthBuilder::refresh_ahead): 5 minutes.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// The default [`timeout`](ZohoAuthBuilder::timeout) of a call to Zoho.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A token with less than this left is never served.
pub const MIN_VALIDITY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts to refresh a token that keeps
/// failing transiently: with at most 2 secret versions per attempt (the
/// lease and the failure mark), at most 18 attempts and 36 versions of the
/// token's secret in any 24 hours (see the module docs).
pub const MAX_BACKOFF: Duration = Duration::from_secs(2 * 60 * 60);

/// How long an access token served by user name is served again from this
/// `ZohoAuth`'s own map before the next call asks the store (a cache hit
/// there): a token deleted or replaced in the store stops being served
/// within this long.
pub const WARM_RECHECK: Duration = Duration::from_secs(1);
/// At most this many user names are kept in that map (it is emptied when
/// full: the next calls ask the store again).
const WARM_CAPACITY: usize = 10_000;

/// Where a `ZohoAuth` reads the time of day.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Zoho OAuth on a [`TokenStore`]: valid access tokens, refreshed once per
/// token for all callers (see the [module docs](self)).
///
/// Clones share everything. Build one per process (in a Lambda, once per
/// cold start) with [`ZohoAuth::builder`].
#[derive(Clone)]
pub struct ZohoAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for ZohoAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZohoAuth")
            .field("data_center", &self.inner.data_center)
            .field(
                "accounts_url",
                &self.inner.accounts_url.as_ref().map(zoho::origin),
            )
            .field("refresh_ahead_ms", &self.inner.refresh_ahead)
            .finish_non_exhaustive()
    }
}

/// What this process knows of one token id.
#[derive(Default)]
struct Slot {
    /// The access token last served: shared by the next callers.
    served: Option<AccessToken>,
    /// An access token the CRM API rejected: never served again.
    invalidated: Option<Arc<str>>,
}

/// An access token served by user name, servable again until `until`
/// (Unix ms): the earlier of its refresh time and the next store check.
struct Warm {
    token: AccessToken,
    until: i64,
}

/// The hasher of the warm map: foldhash, seeded at random per map.
type WarmHash = foldhash::fast::RandomState;

struct Inner {
    store: Arc<dyn TokenStore>,
    http: reqwest::Client,
    data_center: DataCenter,
    /// The token endpoint of the builder's accounts URL.
    accounts_url: Option<reqwest::Url>,
    /// Milliseconds.
    refresh_ahead: i64,
    lease: Duration,
    /// This `ZohoAuth`'s lease holder id.
    holder: String,
    clock: Clock,
    slots: RwLock<HashMap<String, Slot>>,
    /// The hot path: access tokens served by user name.
    warm: RwLock<HashMap<Box<str>, Warm, WarmHash>>,
    flights: Mutex<HashMap<String, Flight>>,
    /// Lookups by user name in flight (past the warm map).
    lookups: Mutex<HashMap<Box<str>, Flight>>,
    /// Grant exchanges in flight, by a digest of the grant.
    grant_flights: Mutex<HashMap<String, GrantFlight>>,
    failures: Mutex<HashMap<String, Failure>>,
}

impl ZohoAuth {
    /// A builder over `store`: any [`TokenStore`], `Arc<dyn TokenStore>` included.
    pub fn builder(store: impl TokenStore + 'static) -> ZohoAuthBuilder {
        ZohoAuthBuilder::new(Arc::new(store))
    }

    /// A valid access token for the stored token `query` matches (the
    /// store's matching rules, e.g. [`OAuthToken::for_user`]), refreshed
    /// and saved if less than `refresh_ahead` is left of it (see the
    /// [module docs](self)).
    pub async fn access_token(&self, query: &OAuthToken) -> Result<AccessToken, AuthError> {
        let user = user_only(query);
        if let Some(user) = user
            && let Some(token) = self.inner.warm_hit(user)
        {
            return Ok(token);
        }
        let Some(user) = user else {
            return self.access_token_from_store(query).await;
        };
        // Concurrent cold callers for one user share one lookup (and one
        // refresh): a burst of requests reads the index once, not once each.
        let flight: Flight = {
            let mut lookups = self.inner.lookups.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(lookups.entry(user.into()).or_default())
        };
        let result = flight
            .get_or_init(|| async {
                let token = self.access_token_from_store(query).await?;
                self.inner.warm_insert(user, &token);
                Ok(token)
            })
            .await
            .clone();
        let mut lookups = self.inner.lookups.lock().unwrap_or_else(|p| p.into_inner());
        if lookups.get(user).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            lookups.remove(user);
        }
        result
    }

    /// [`access_token`](Self::access_token) past the warm map: the store's
    /// `find_token`, then a refresh if needed.
    async fn access_token_from_store(&self, query: &OAuthToken) -> Result<AccessToken, AuthError> {
        let inner = &self.inner;
        let key = LookupKey::require(query)?;
        let found = inner
            .store
            .find_token(query)
            .await?
            .ok_or_else(|| not_found(&key))?;
        let id = found
            .id
            .clone()
            .ok_or_else(|| StoreError::invalid_input("the store answered a token without an id"))?;
        // `find_token` overlays the query's fields: a query that sets token
        // values must not decide what is served.
        let stored = if query.access_token.is_some() || query.expiry_time.is_some() {
            inner
                .store
                .find_token_by_id(&id)
                .await?
                .ok_or_else(|| not_found(&key))?
        } else {
            found
        };
        if let Some(token) = inner.servable(&id, &stored, inner.now_millis() + inner.refresh_ahead)
        {
            return Ok(token);
        }
        self.refresh_shared(&id, &AccountsFallback::DataCenter)
            .await
    }

    /// Marks `token` as rejected by the CRM API (`401 INVALID_TOKEN`): it is
    /// never served again, and the next [`access_token`](Self::access_token)
    /// for its token re-reads the store (past a cache, when the store
    /// supports [leases](TokenStore::refresh_lease)) and serves a newer
    /// access token stored by another process, or refreshes.
    pub async fn invalidate(&self, token: &AccessToken) {
        self.inner
            .warm
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, warm| warm.token.0.bearer != token.0.bearer);
        let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(token.0.id.to_string()).or_default();
        slot.invalidated = Some(Arc::clone(&token.0.bearer));
        if slot
            .served
            .as_ref()
            .is_some_and(|s| s.0.bearer == token.0.bearer)
        {
            slot.served = None;
        }
    }

    /// The first-time flow: exchanges `token`'s grant token (from the Zoho
    /// API console, with its `client_id`, `client_secret` and, if the grant
    /// was made for one, `redirect_url`) for a refresh and an access token
    /// (`grant_type=authorization_code`), and saves the token with them
    /// (`save_token`: a token with `token`'s user name is updated). Returns
    /// the token as saved.
    ///
    /// A grant token is single-use: exchanging it again is
    /// [`AuthError::Rejected`] (`invalid_code`), and nothing is saved. Callers
    /// that exchange one grant at the same time make one call to Zoho: in
    /// one process they share one exchange; across processes, with a store
    /// that implements [`TokenStore::refresh_lease`], the first takes the
    /// lease of the token being authorized (the stored token the query
    /// matches, else a new one saved with the grant first, under an id
    /// derived from the grant when it has no user name) and the others wait
    /// for its save and answer the token it saved (or its error).
    pub async fn exchange_grant_token(&self, token: OAuthToken) -> Result<OAuthToken, AuthError> {
        self.exchange_shared(token, &AccountsFallback::DataCenter)
            .await
    }
}

/// The user name of a query that sets nothing else (the common
/// `OAuthToken::for_user`): the queries the warm map answers.
fn user_only(query: &OAuthToken) -> Option<&str> {
    let OAuthToken {
        id,
        user_name,
        client_id,
        client_secret,
        refresh_token,
        access_token,
        grant_token,
        expiry_time,
        redirect_url,
        api_domain,
        ..
    } = query;
    let others_unset = id.is_none()
        && client_id.is_none()
        && client_secret.is_none()
        && refresh_token.is_none()
        && access_token.is_none()
        && grant_token.is_none()
        && expiry_time.is_none()
        && redirect_url.is_none()
        && api_domain.is_none();
    user_name
        .as_deref()
        .filter(|u| others_unset && !u.is_empty())
}

fn not_found(key: &LookupKey<'_>) -> AuthError {
    AuthError::NotFound {
        key: match key {
            LookupKey::UserName(user) => format!("user_name {user:?}"),
            other => format!("the query's {}", other.field_name()),
        },
    }
}

impl Inner {
    /// The access token served for `user` if it is still servable without
    /// asking the store.
    #[inline]
    fn warm_hit(&self, user: &str) -> Option<AccessToken> {
        let now = self.now_millis();
        let warm = self.warm.read().unwrap_or_else(|p| p.into_inner());
        warm.get(user)
            .filter(|w| w.until > now)
            .map(|w| w.token.clone())
    }

    /// Remembers `token` as served for `user`, until its refresh time or
    /// the next store check, whichever comes first.
    fn warm_insert(&self, user: &str, token: &AccessToken) {
        let now = self.now_millis();
        let until = token
            .expiry_time()
            .saturating_sub(self.refresh_ahead)
            .min(now.saturating_add(millis(WARM_RECHECK)));
        if until <= now {
            return;
        }
        let mut warm = self.warm.write().unwrap_or_else(|p| p.into_inner());
        if warm.len() >= WARM_CAPACITY && !warm.contains_key(user) {
            warm.clear();
        }
        warm.insert(
            user.into(),
            Warm {
                token: token.clone(),
                until,
            },
        );
    }

    /// Now, Unix ms, by this `ZohoAuth`'s clock.
    fn now_millis(&self) -> i64 {
        (self.clock)().duration_since(UNIX_EPOCH).map_or(0, millis)
    }

    /// The token endpoint for `token`: the builder's accounts URL, else the
    /// data center of its `api_domain` if that is Zoho's, else `fallback`
    /// (the builder's data center, a caller's token URL, or none at all).
    fn endpoint_for(
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

    /// `token` as an [`AccessToken`] if its access token expires after
    /// `until` (Unix ms) and was not invalidated; the one already served
    /// when it is the same.
    fn servable(&self, id: &str, token: &OAuthToken, until: i64) -> Option<AccessToken> {
        let access = token.access_token.as_deref().filter(|a| !a.is_empty())?;
        let expiry = token.expiry_time.filter(|e| *e > until)?;
        {
            let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = slots.get(id) {
                if slot.invalidated.as_deref() == Some(access) {
                    return None;
                }
                if let Some(served) = &slot.served
                    && &*served.0.bearer == access
                    && served.0.expiry_time == expiry
                {
                    return Some(served.clone());
                }
            }
        }
        let fresh = AccessToken(Arc::new(access_token::Parts {
            bearer: Arc::from(access),
            expiry_time: expiry,
            id: Arc::from(id),
            api_domain: token.api_domain.as_deref().map(Arc::from),
        }));
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(id.to_owned()).or_default();
        if slot.invalidated.as_deref() == Some(access) {
            return None;
        }
        slot.served = Some(fresh.clone());
        Some(fresh)
    }

    /// `token` if it has at least [`MIN_VALIDITY`] left, else `error`.
    fn or_current(
        &self,
        id: &str,
        token: &OAuthToken,
        error: AuthError,
    ) -> Result<AccessToken, AuthError> {
        match self.servable(id, token, self.now_millis() + millis(MIN_VALIDITY)) {
            Some(current) => {
                tracing::debug!(id, %error, "refresh failed; serving the current token");
                Ok(current)
            }
            None => Err(error),
        }
    }
}
