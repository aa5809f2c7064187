//! Managed refresh for the Zoho SDKs' own token flow: what a `TokenStore`
//! drop-in for an official Zoho SDK (the Python and Node packages of this
//! repository) answers from `find_token` and `find_token_by_id`, so that a
//! fleet of SDK instances makes one refresh per token between them.
//!
//! The official SDKs refresh by themselves: before each API call they ask
//! their store for the token and, when it has less than 5 s left or no
//! access token, post to the accounts server and save the answer, with no
//! lock across processes. [`ZohoAuth::managed_find_token`] and
//! [`ZohoAuth::managed_find_token_by_id`] answer the stored token with a
//! valid access token instead, refreshed first through this `ZohoAuth`
//! (its in-process sharing, the store's fleet-wide lease, the backoff and
//! the `Rejected` mark: see the [module docs](super)) when it has less
//! than `refresh_ahead` left, so the SDK never sees a token it would
//! refresh, and never calls Zoho on its own.

use super::access_token::AccessToken;
use super::accounts::AccountsFallback;
use super::client::ZohoAuth;
use super::error::AuthError;
use super::state::stored_id;
use crate::store::LookupKey;
use crate::token::OAuthToken;

/// Whether `token` carries what a grant exchange needs.
fn has_grant(token: &OAuthToken) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    set(&token.grant_token) && set(&token.client_id) && set(&token.client_secret)
}

/// Whether `token` carries what a refresh needs.
fn refreshable(token: &OAuthToken) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    set(&token.refresh_token) && set(&token.client_id) && set(&token.client_secret)
}

/// The query of an exchange: the caller's token without the values Zoho's
/// answer replaces.
fn exchange_of(query: &OAuthToken) -> OAuthToken {
    OAuthToken {
        access_token: None,
        expiry_time: None,
        refresh_token: None,
        ..query.clone()
    }
}

impl ZohoAuth {
    /// Whether [`managed_find_token_by_id`](Self::managed_find_token_by_id)
    /// answers `token`, stored under `id`, as it is, with no refresh: its
    /// access token has more than
    /// [`refresh_ahead`](super::ZohoAuthBuilder::refresh_ahead) left and was
    /// not [invalidated](Self::invalidate). `false` means "ask
    /// `managed_find_token_by_id`", which may refresh.
    ///
    /// With [`SecretsManagerStore::cached_token_by_id`](crate::SecretsManagerStore::cached_token_by_id),
    /// a warm lookup that needs no `.await`.
    pub fn serves_as_stored(&self, id: &str, token: &OAuthToken) -> bool {
        let inner = &self.inner;
        inner
            .servable(id, token, inner.now_millis() + inner.refresh_ahead)
            .is_some()
    }

    /// The stored token `query` matches (the store's matching rules), with
    /// a valid access token: what a Zoho SDK's store answers from
    /// `find_token` under managed refresh (see the
    /// [module docs](super#for-the-zoho-sdks-own-token-flow)).
    ///
    /// - A stored token whose access token has more than
    ///   [`refresh_ahead`](super::ZohoAuthBuilder::refresh_ahead) left is
    ///   answered as stored, with no call to Zoho (and, with a cached store,
    ///   none to its backend).
    /// - One with less, or none, is refreshed as
    ///   [`access_token`](Self::access_token) refreshes (once per token for
    ///   this process, and for every process sharing a store with
    ///   [leases](crate::TokenStore::refresh_lease)), saved, and the token as
    ///   stored is answered. If the refresh fails while the current access
    ///   token still has [`MIN_VALIDITY`](super::MIN_VALIDITY) left, the
    ///   current one is answered; otherwise the error is returned
    ///   ([`AuthError::Rejected`] for a revoked refresh token or wrong client:
    ///   the stored token is unchanged, and Zoho is not asked again with it
    ///   until it is saved again).
    ///   An access token without an `expiry_time` counts as expiring.
    /// - When nothing matches and `query` carries a grant token with its
    ///   `client_id` and `client_secret` (the SDK's first-time flow), the
    ///   grant is exchanged once for all callers, as
    ///   [`exchange_grant_token`](Self::exchange_grant_token) does, and the
    ///   token it saved is answered. So is a matching stored token that has
    ///   no refresh token yet (another process's exchange in progress).
    /// - A stored token that cannot be refreshed (no refresh token, client
    ///   id or client secret) and has no grant to exchange, e.g. an access
    ///   token handed to the SDK as it is, is answered as stored: the SDK's
    ///   own rules apply to it.
    /// - Otherwise nothing matches: `Ok(None)`. A query with nothing to match
    ///   on is [`AuthError::Store`] with
    ///   [`StoreError::InvalidInput`](crate::StoreError::InvalidInput).
    ///
    /// `fallback` is where the token's secrets go if its `api_domain` is
    /// not a Zoho one ([`AccountsFallback`]). The answer is the stored token
    /// itself: unlike the store's `find_token`, no field of `query` is laid
    /// over it (the SDK's own merge does that).
    pub async fn managed_find_token(
        &self,
        query: &OAuthToken,
        fallback: &AccountsFallback,
    ) -> Result<Option<OAuthToken>, AuthError> {
        LookupKey::require(query)?;
        let store = &self.inner.store;
        let Some(found) = store.find_token(query).await? else {
            if has_grant(query) {
                return self
                    .inner
                    .exchange_shared(exchange_of(query), fallback)
                    .await
                    .map(Some);
            }
            return Ok(None);
        };
        let id = stored_id(&found, "find_token")?;
        // `find_token` lays the query's fields over the stored token: the
        // stored one itself decides (a cache hit after the lookup).
        let Some(stored) = store.find_token_by_id(&id).await? else {
            return Ok(None);
        };
        let grant = has_grant(query).then(|| exchange_of(query));
        self.managed_valid(&id, stored, grant, fallback).await
    }

    /// The token stored under `id`, with a valid access token: what a Zoho
    /// SDK's store answers from `find_token_by_id` under managed refresh
    /// (the request path of the SDKs, once their token has an id). As
    /// [`managed_find_token`](Self::managed_find_token), with `Ok(None)` when
    /// no token is stored under `id` (also when it is deleted meanwhile);
    /// a malformed id is [`AuthError::Store`] with
    /// [`StoreError::InvalidInput`](crate::StoreError::InvalidInput).
    pub async fn managed_find_token_by_id(
        &self,
        id: &str,
        fallback: &AccountsFallback,
    ) -> Result<Option<OAuthToken>, AuthError> {
        let Some(stored) = self.inner.store.find_token_by_id(id).await? else {
            return Ok(None);
        };
        let grant = has_grant(&stored).then(|| exchange_of(&stored));
        self.managed_valid(id, stored, grant, fallback).await
    }

    /// `stored` (token `id`) if its access token has more than
    /// `refresh_ahead` left; else the token as stored after a shared
    /// refresh (or, for a token without a refresh token, after the shared
    /// exchange of `grant`).
    async fn managed_valid(
        &self,
        id: &str,
        stored: OAuthToken,
        grant: Option<OAuthToken>,
        fallback: &AccountsFallback,
    ) -> Result<Option<OAuthToken>, AuthError> {
        let inner = &self.inner;
        if inner
            .servable(id, &stored, inner.now_millis() + inner.refresh_ahead)
            .is_some()
        {
            return Ok(Some(stored));
        }
        if !refreshable(&stored) {
            return match grant {
                Some(grant) => inner.exchange_shared(grant, fallback).await.map(Some),
                // Nothing to refresh with (e.g. an access token given to
                // the SDK as is): the SDK's own rules apply to it.
                None => Ok(Some(stored)),
            };
        }
        let served = match inner.refresh_shared(id, fallback).await {
            Ok(served) => served,
            Err(AuthError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        // The token as stored now: the one just saved (a cache hit), or one
        // another process saved meanwhile.
        let Some(now) = inner.store.find_token_by_id(id).await? else {
            return Ok(None);
        };
        Ok(Some(self.with_served(id, now, &served)))
    }

    /// `stored`, if it holds the access token `served` or another that
    /// lasts as long; else `stored` with `served` in it (the store answered
    /// an older copy).
    fn with_served(&self, id: &str, stored: OAuthToken, served: &AccessToken) -> OAuthToken {
        let inner = &self.inner;
        let holds_served = stored.access_token.as_deref() == Some(served.as_str());
        if holds_served || inner.servable(id, &stored, served.expiry_time()).is_some() {
            return stored;
        }
        OAuthToken {
            access_token: Some(served.as_str().to_owned()),
            expiry_time: Some(served.expiry_time()),
            api_domain: served.api_domain().map(str::to_owned).or(stored.api_domain),
            ..stored
        }
    }
}
