//! The state a `ZohoAuth` and its clones share, and what every layer above
//! asks of it: the time, which access token is servable, and the warm map of
//! access tokens served by user name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::access_token::{self, AccessToken};
use super::data_center::DataCenter;
use super::error::AuthError;
use super::failures::Failures;
use super::single_flight::SingleFlight;
use super::warm::{self, WarmMap};
use crate::error::StoreError;
use crate::store::TokenStore;
use crate::token::OAuthToken;

/// A token with less than this left is never served.
pub const MIN_VALIDITY: Duration = Duration::from_secs(5);
/// How long an access token served by user name is served again from this
/// `ZohoAuth`'s own map before the next call asks the store (a cache hit
/// there): a token deleted or replaced in the store stops being served
/// within this long.
pub const WARM_RECHECK: Duration = Duration::from_secs(1);

/// Where a `ZohoAuth` reads the time of day.
pub(super) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The id of `token`, which the store answered from `operation`: a token
/// without one breaks the store's contract.
pub(super) fn stored_id(token: &OAuthToken, operation: &str) -> Result<String, StoreError> {
    token.id.clone().ok_or_else(|| StoreError::BrokenContract {
        operation: operation.to_owned(),
        reason: "it answered a token without an id".into(),
    })
}

/// `duration` in milliseconds, saturating.
pub(super) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What this process knows of one token id.
#[derive(Default)]
struct Slot {
    /// The access token last served: shared by the next callers.
    served: Option<AccessToken>,
    /// An access token the CRM API rejected: never served again.
    invalidated: Option<Arc<str>>,
}

/// What a `ZohoAuth` and its clones share: the settings, and what this
/// process knows of its tokens.
pub(super) struct Inner {
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) http: reqwest::Client,
    pub(super) data_center: DataCenter,
    /// The token endpoint of the builder's accounts URL.
    pub(super) accounts_url: Option<reqwest::Url>,
    /// Milliseconds.
    pub(super) refresh_ahead: i64,
    pub(super) lease: Duration,
    /// This `ZohoAuth`'s lease holder id.
    pub(super) holder: String,
    pub(super) clock: Clock,
    /// The warm map's clock: the builder's clock if it has one, else the
    /// coarse clock (no system call on the hot path).
    warm_clock: Clock,
    slots: RwLock<HashMap<String, Slot>>,
    /// The hot path: access tokens served by user name.
    warm: WarmMap,
    /// Refreshes in flight, by token id.
    pub(super) flights: SingleFlight<String, Result<AccessToken, AuthError>>,
    /// Lookups by user name in flight (past the warm map), by user name and
    /// the warm epoch they started at: a caller after a forget never shares
    /// a lookup from before it.
    pub(super) lookups: SingleFlight<(Box<str>, u64), Result<AccessToken, AuthError>>,
    /// Grant exchanges in flight, by a digest of the grant.
    pub(super) grant_flights: SingleFlight<String, Result<OAuthToken, AuthError>>,
    pub(super) failures: Failures,
}

impl Inner {
    /// The state of a new `ZohoAuth` on `store`, its calls to Zoho made with
    /// `http`, leases of `lease` asked for as a new random holder, the time
    /// read from `clock` (default: the system's).
    pub(super) fn new(
        store: Arc<dyn TokenStore>,
        http: reqwest::Client,
        data_center: DataCenter,
        accounts_url: Option<reqwest::Url>,
        refresh_ahead: Duration,
        lease: Duration,
        clock: Option<Clock>,
    ) -> Self {
        let warm_clock = clock.clone().unwrap_or_else(|| Arc::new(warm::coarse_now));
        let clock = clock.unwrap_or_else(|| Arc::new(SystemTime::now));
        Self {
            store,
            http,
            data_center,
            accounts_url,
            refresh_ahead: millis(refresh_ahead.max(MIN_VALIDITY)),
            lease,
            holder: uuid::Uuid::new_v4().simple().to_string(),
            clock,
            warm_clock,
            slots: RwLock::new(HashMap::new()),
            warm: WarmMap::default(),
            flights: SingleFlight::new(),
            lookups: SingleFlight::new(),
            grant_flights: SingleFlight::new(),
            failures: Failures::default(),
        }
    }

    /// The access token served for `user` if it is still servable without
    /// asking the store.
    #[inline]
    pub(super) fn warm_hit(&self, user: &str) -> Option<AccessToken> {
        let now = (self.warm_clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, millis);
        self.warm.hit(user, now)
    }

    /// The warm map's epoch: read before a lookup, for
    /// [`warm_insert`](Self::warm_insert) of what it finds.
    #[inline]
    pub(super) fn warm_epoch(&self) -> u64 {
        self.warm.epoch()
    }

    /// Remembers `token` as served for `user`, until its refresh time or
    /// the next store check, whichever comes first (less the coarse clock's
    /// lag, so that the rules on expiry hold), unless the warm map was
    /// emptied since `epoch`, read before the lookup that found `token`.
    pub(super) fn warm_insert(&self, user: &str, token: &AccessToken, epoch: u64) {
        let now = self.now_millis();
        let until = token
            .expiry_time()
            .saturating_sub(self.refresh_ahead)
            .min(now.saturating_add(millis(WARM_RECHECK)))
            .saturating_sub(warm::COARSE_CLOCK_SLACK_MS);
        if until > now {
            self.warm.insert(user, token, until, epoch);
        }
    }

    /// Marks `token` as rejected by the CRM API: never served again, and
    /// no longer served from the warm map.
    pub(super) fn invalidate(&self, token: &AccessToken) {
        // The mark first, then the forget: a lookup that reads the new
        // epoch sees the mark, so none can find `token` servable and
        // insert it at that epoch.
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(token.0.id.to_string()).or_default();
        slot.invalidated = Some(Arc::clone(&token.0.bearer));
        if slot
            .served
            .as_ref()
            .is_some_and(|s| s.0.bearer == token.0.bearer)
        {
            slot.served = None;
        }
        drop(slots);
        self.warm.forget_all();
    }

    /// Empties the warm map (on every thread): a token's access token
    /// changed, so a query by user name must read the store again.
    pub(super) fn forget_warm(&self) {
        self.warm.forget_all();
    }

    /// Now, Unix ms, by this `ZohoAuth`'s clock.
    pub(super) fn now_millis(&self) -> i64 {
        (self.clock)().duration_since(UNIX_EPOCH).map_or(0, millis)
    }

    /// `token` as an [`AccessToken`] if its access token expires after
    /// `until` (Unix ms) and was not invalidated; the one already served
    /// when it is the same.
    pub(super) fn servable(&self, id: &str, token: &OAuthToken, until: i64) -> Option<AccessToken> {
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
    pub(super) fn or_current(
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
