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
//!   ([`UNTIL_SAVED`](crate::UNTIL_SAVED)); until the token is saved again
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
//! [`accounts_url`](ZohoAuthBuilder::accounts_url) if set; else the
//! [`DataCenter`] of the token's `api_domain`, if it is a Zoho API domain
//! ([`DataCenter::from_api_domain`]); else the builder's
//! [`data_center`](ZohoAuthBuilder::data_center). Never to a host taken
//! from an `api_domain` that is not Zoho's.
//!
//! # After a 401
//!
//! When the CRM API rejects an access token (`401 INVALID_TOKEN`: Zoho
//! invalidated it, e.g. as the 16th live token of its refresh token),
//! [`ZohoAuth::invalidate`] it. The next `access_token` reads the store
//! past its cache: a newer access token saved by another process is served
//! with no call to Zoho; only if the store still holds the invalidated one
//! is it refreshed.

mod data_center;
mod error;
mod zoho;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;

pub use data_center::DataCenter;
pub use error::AuthError;

use crate::error::StoreError;
use crate::lease::{LeaseRequest, RefreshLease, UNTIL_SAVED};
use crate::store::{LookupKey, TokenStore};
use crate::token::OAuthToken;
use zoho::Request;

/// The default [`refresh_ahead`](ZohoAuthBuilder::refresh_ahead): 5 minutes.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// The default [`timeout`](ZohoAuthBuilder::timeout) of a call to Zoho.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A token with less than this left is never served.
pub const MIN_VALIDITY: Duration = Duration::from_secs(5);

/// How long a refresh lease lasts: a call to Zoho's timeout, the save, and
/// a margin.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// After Zoho throttled a refresh, how long before it is asked again (the
/// first time; ×4 for each further failure in a row, up to [`MAX_BACKOFF`]).
const THROTTLED_BACKOFF: Duration = Duration::from_secs(60);
/// After another failure (transport, an odd answer), likewise.
const OTHER_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait between two attempts to refresh a token that keeps
/// failing transiently: with at most 2 secret versions per attempt (the
/// lease and the failure mark), at most 18 attempts and 36 versions of the
/// token's secret in any 24 hours (see the module docs).
pub const MAX_BACKOFF: Duration = Duration::from_secs(2 * 60 * 60);
/// The first and the longest wait between reads of a leased token.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(1);

/// The `failed` code of a lease whose refresh failed other than by Zoho's
/// answer.
const TRANSPORT_FAILURE: &str = "transport";
const THROTTLE_CODE: &str = "Access Denied";

/// Where a `ZohoAuth` reads the time of day.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How long to wait after the `in_a_row`-th failure in a row (1 for the
/// first) of a transient kind whose first wait is `base`: `base × 4^(n-1)`,
/// at most [`MAX_BACKOFF`].
fn backoff(base: Duration, in_a_row: u32) -> Duration {
    let factor = 4u32.saturating_pow(in_a_row.saturating_sub(1).min(15));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A valid access token, as [`ZohoAuth::access_token`] serves it.
///
/// Cheap to clone: the bearer string is shared (`Arc<str>`). `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    bearer: Arc<str>,
    expiry_time: i64,
    id: Arc<str>,
    api_domain: Option<Arc<str>>,
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
    /// [`DEFAULT_REFRESH_AHEAD`] (300 s); at least [`MIN_VALIDITY`] is used.
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
    /// `http`/`https` URL.
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
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| AuthError::invalid_input(format!("HTTP client: {e}")))?;
        let refresh_ahead = self.refresh_ahead.max(MIN_VALIDITY);
        Ok(ZohoAuth {
            inner: Arc::new(Inner {
                store: self.store,
                http,
                data_center: self.data_center,
                accounts_url,
                refresh_ahead: millis(refresh_ahead),
                lease: self.timeout.saturating_add(LEASE_MARGIN),
                holder: uuid::Uuid::new_v4().simple().to_string(),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
                slots: RwLock::new(HashMap::new()),
                flights: Mutex::new(HashMap::new()),
                failures: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// The token endpoint under accounts server `base`, if it is a usable URL.
fn endpoint(base: &str) -> Option<reqwest::Url> {
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

type Flight = Arc<OnceCell<Result<AccessToken, AuthError>>>;

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
    flights: Mutex<HashMap<String, Flight>>,
    failures: Mutex<HashMap<String, Failure>>,
}

impl ZohoAuth {
    /// A builder over `store`: any [`TokenStore`], `Arc<dyn TokenStore>` included.
    pub fn builder(store: impl TokenStore + 'static) -> ZohoAuthBuilder {
        ZohoAuthBuilder {
            store: Arc::new(store),
            data_center: DataCenter::default(),
            accounts_url: None,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            timeout: DEFAULT_TIMEOUT,
            clock: None,
        }
    }

    /// A valid access token for the stored token `query` matches (the
    /// store's matching rules, e.g. [`OAuthToken::for_user`]), refreshed
    /// and saved if less than `refresh_ahead` is left of it (see the
    /// [module docs](self)).
    pub async fn access_token(&self, query: &OAuthToken) -> Result<AccessToken, AuthError> {
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
        self.refresh_shared(&id).await
    }

    /// Marks `token` as rejected by the CRM API (`401 INVALID_TOKEN`): it is
    /// never served again, and the next [`access_token`](Self::access_token)
    /// for its token re-reads the store (past a cache, when the store
    /// supports [leases](TokenStore::refresh_lease)) and serves a newer
    /// access token stored by another process, or refreshes.
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(token.id.to_string()).or_default();
        slot.invalidated = Some(Arc::clone(&token.bearer));
        if slot
            .served
            .as_ref()
            .is_some_and(|s| s.bearer == token.bearer)
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
    /// [`AuthError::Rejected`] (`invalid_code`), and nothing is saved.
    pub async fn exchange_grant_token(&self, token: OAuthToken) -> Result<OAuthToken, AuthError> {
        let inner = &self.inner;
        let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let (Some(client_id), Some(client_secret), Some(grant)) = (
            set(&token.client_id),
            set(&token.client_secret),
            set(&token.grant_token),
        ) else {
            return Err(AuthError::invalid_input(
                "a grant exchange needs client_id, client_secret and grant_token",
            ));
        };
        let endpoint = inner.endpoint_for(&token);
        let issued = zoho::exchange(
            &inner.http,
            &endpoint,
            &token,
            &client_id,
            &client_secret,
            &grant,
        )
        .await?;
        let Some(refresh_token) = issued.refresh_token.clone() else {
            return Err(AuthError::UnexpectedResponse {
                url: zoho::origin(&endpoint),
                status: 200,
                reason: "a grant exchange answer without a refresh_token".into(),
            });
        };
        let mut saved = OAuthToken {
            refresh_token: Some(refresh_token),
            access_token: Some(issued.access_token),
            expiry_time: Some(inner.now_millis().saturating_add(issued.lifetime_ms)),
            api_domain: issued.api_domain.or(token.api_domain.clone()),
            ..token
        };
        inner.store.save_token(&mut saved).await?;
        if let Some(id) = &saved.id {
            inner.failures().remove(id);
        }
        Ok(saved)
    }

    /// Refreshes token `id`, sharing one refresh among this process's callers.
    async fn refresh_shared(&self, id: &str) -> Result<AccessToken, AuthError> {
        let inner = &self.inner;
        let flight: Flight = {
            let mut flights = inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(flights.entry(id.to_owned()).or_default())
        };
        let result = flight.get_or_init(|| inner.refresh_once(id)).await.clone();
        let mut flights = inner.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights.get(id).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(id);
        }
        result
    }
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
    /// Now, Unix ms, by this `ZohoAuth`'s clock.
    fn now_millis(&self) -> i64 {
        (self.clock)().duration_since(UNIX_EPOCH).map_or(0, millis)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failure>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token endpoint for `token`: the builder's accounts URL, else the
    /// data center of its `api_domain` if that is Zoho's, else the builder's.
    fn endpoint_for(&self, token: &OAuthToken) -> reqwest::Url {
        if let Some(url) = &self.accounts_url {
            return url.clone();
        }
        let dc = token
            .api_domain
            .as_deref()
            .and_then(DataCenter::from_api_domain)
            .unwrap_or(self.data_center);
        endpoint(dc.accounts_url()).expect("the data centers' accounts URLs are valid")
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
                    && &*served.bearer == access
                    && served.expiry_time == expiry
                {
                    return Some(served.clone());
                }
            }
        }
        let fresh = AccessToken {
            bearer: Arc::from(access),
            expiry_time: expiry,
            id: Arc::from(id),
            api_domain: token.api_domain.as_deref().map(Arc::from),
        };
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

    /// A failed refresh with `token`'s credentials not to retry yet.
    fn recent_failure(&self, id: &str, token: &OAuthToken) -> Option<AuthError> {
        let now = self.now_millis();
        let mut failures = self.failures();
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
    fn failed_in_a_row(&self, id: &str, token: &OAuthToken) -> u32 {
        self.failures()
            .get(id)
            .filter(|f| f.credentials == Credentials::of(token))
            .map_or(0, |f| f.in_a_row)
    }

    /// Remembers `error` for `token`'s credentials until `until` (Unix ms;
    /// `None`: while the stored credentials stay the same).
    fn remember_failure(
        &self,
        id: &str,
        token: &OAuthToken,
        error: &AuthError,
        until: Option<i64>,
        in_a_row: u32,
    ) {
        self.failures().insert(
            id.to_owned(),
            Failure {
                until,
                credentials: Credentials::of(token),
                error: error.clone(),
                in_a_row,
            },
        );
    }

    /// One refresh of token `id`, shared by this process's callers.
    async fn refresh_once(&self, id: &str) -> Result<AccessToken, AuthError> {
        let not_found = || AuthError::NotFound {
            key: format!("token id {id}"),
        };
        // Another flight of this process may have just saved a new token.
        let current = self
            .store
            .find_token_by_id(id)
            .await?
            .ok_or_else(not_found)?;
        if let Some(token) = self.servable(id, &current, self.now_millis() + self.refresh_ahead) {
            return Ok(token);
        }
        if let Some(error) = self.recent_failure(id, &current) {
            return self.or_current(id, &current, error);
        }
        let stale = current.access_token.as_deref().map(Arc::from);
        let mut poll = POLL_FIRST;
        let give_up = Instant::now() + self.lease * 3;
        loop {
            let request = LeaseRequest::new(
                self.holder.clone(),
                self.lease,
                self.now_millis() + millis(MIN_VALIDITY),
                stale.clone(),
            );
            match self.store.refresh_lease(id, &request).await? {
                RefreshLease::Unsupported => {
                    let before = self.failed_in_a_row(id, &current);
                    return self.refresh_with(id, current, false, before).await;
                }
                RefreshLease::Acquired {
                    token, failures, ..
                } => {
                    return self.refresh_with(id, *token, true, failures).await;
                }
                RefreshLease::Refreshed(token) => {
                    return self.or_current(id, &token, not_found());
                }
                RefreshLease::Missing => return Err(not_found()),
                RefreshLease::Held {
                    until,
                    failed: Some(code),
                } => {
                    let error = match code.as_str() {
                        TRANSPORT_FAILURE => AuthError::Transport {
                            url: "(another process)".into(),
                            reason: "another process's refresh of this token failed".into(),
                            timeout: false,
                        },
                        code => zoho::zoho_error(id, Request::Refresh, code, None),
                    };
                    // Rejected: the mark stays until the token is saved again,
                    // so this process asks no more while the credentials stay.
                    let until = (!matches!(error, AuthError::Rejected { .. })).then_some(until);
                    self.remember_failure(id, &current, &error, until, 0);
                    return self.or_current(id, &current, error);
                }
                RefreshLease::Held { failed: None, .. } => {
                    // Another process is refreshing: the current token
                    // meanwhile, if it is still good for a while.
                    if let Some(token) =
                        self.servable(id, &current, self.now_millis() + millis(MIN_VALIDITY))
                    {
                        return Ok(token);
                    }
                    if Instant::now() > give_up {
                        return Err(AuthError::Store(StoreError::Conflict {
                            operation: format!("waiting for another process to refresh token {id}"),
                            attempts: 0,
                        }));
                    }
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(POLL_MAX);
                }
            }
        }
    }

    /// Refreshes `token` at Zoho and saves the new access token; `leased`:
    /// this holder has the token's lease; `before`: failed refreshes in a row
    /// before this one.
    async fn refresh_with(
        &self,
        id: &str,
        token: OAuthToken,
        leased: bool,
        before: u32,
    ) -> Result<AccessToken, AuthError> {
        let endpoint = self.endpoint_for(&token);
        match zoho::refresh(&self.http, &endpoint, id, &token).await {
            Ok(issued) => {
                let mut saved = OAuthToken {
                    id: Some(id.to_owned()),
                    access_token: Some(issued.access_token),
                    expiry_time: Some(self.now_millis().saturating_add(issued.lifetime_ms)),
                    api_domain: issued.api_domain,
                    ..OAuthToken::default()
                };
                self.store.save_token(&mut saved).await?;
                self.failures().remove(id);
                tracing::debug!(
                    id,
                    expiry_time = saved.expiry_time,
                    "access token refreshed"
                );
                self.servable(id, &saved, self.now_millis() + millis(MIN_VALIDITY))
                    .ok_or_else(|| AuthError::UnexpectedResponse {
                        url: zoho::origin(&endpoint),
                        status: 200,
                        reason: "the new access token expires within 5 seconds".into(),
                    })
            }
            Err(error) => {
                let in_a_row = before.saturating_add(1);
                let now = self.now_millis();
                // Rejected: retrying cannot help until a new token is saved,
                // so no retry time at all (nor a lease, nor a write, after
                // this one). Transient: a backoff that grows ×4 a failure.
                let (retry_after, code) = match &error {
                    AuthError::Rejected { error: code, .. } => (UNTIL_SAVED, code.as_str()),
                    AuthError::Throttled { .. } => (
                        now + millis(backoff(THROTTLED_BACKOFF, in_a_row)),
                        THROTTLE_CODE,
                    ),
                    _ => (
                        now + millis(backoff(OTHER_BACKOFF, in_a_row)),
                        TRANSPORT_FAILURE,
                    ),
                };
                tracing::debug!(id, %error, in_a_row, "refresh failed");
                let until = (retry_after != UNTIL_SAVED).then_some(retry_after);
                self.remember_failure(id, &token, &error, until, in_a_row);
                if leased
                    && let Err(e) = self
                        .store
                        .fail_refresh_lease(id, &self.holder, code, retry_after)
                        .await
                {
                    tracing::debug!(id, error = %e, "marking the lease failed did not work");
                }
                self.or_current(id, &token, error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

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
        let url = |a: &ZohoAuth, t: &OAuthToken| a.inner.endpoint_for(t).to_string();
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
