//! [`ZohoAuth`], the public face of the layers below: a valid access token
//! for a stored token (the warm map, the store, then a shared refresh), a
//! rejected one invalidated, a grant exchanged.

use std::fmt;
use std::sync::Arc;

use super::access_token::AccessToken;
use super::accounts::AccountsFallback;
use super::error::AuthError;
use super::state::{Inner, stored_id};
use super::zoho;
use crate::store::{LookupKey, TokenStore};
use crate::token::OAuthToken;

/// Zoho OAuth on a [`TokenStore`]: valid access tokens, refreshed once per
/// token for all callers (see the [module docs](super)).
///
/// Clones share everything. Build one per process (in a Lambda, once per
/// cold start) with [`ZohoAuth::builder`].
#[derive(Clone)]
pub struct ZohoAuth {
    pub(super) inner: Arc<Inner>,
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

impl ZohoAuth {
    /// A valid access token for the stored token `query` matches (the
    /// store's matching rules, e.g. [`OAuthToken::for_user`]), refreshed
    /// and saved if less than `refresh_ahead` is left of it (see the
    /// [module docs](super)).
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
        // Before the lookup: if the warm map is emptied while it runs (an
        // invalidate, a new grant), what it finds is never served warm.
        let epoch = self.inner.warm_epoch();
        // Concurrent cold callers for one user share one lookup (and one
        // refresh): a burst of requests reads the index once, not once each.
        // Only callers of one epoch do: one that starts after a forget runs
        // a lookup of its own.
        let token = self
            .inner
            .lookups
            .run((user.into(), epoch), || self.access_token_from_store(query))
            .await?;
        // Every caller, not only the one whose lookup ran: the warm map is
        // per thread, and each caller fills its own thread's.
        self.inner.warm_insert(user, &token, epoch);
        Ok(token)
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
        let id = stored_id(&found, "find_token")?;
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
        inner
            .refresh_shared(&id, &AccountsFallback::DataCenter)
            .await
    }

    /// Marks `token` as rejected by the CRM API (`401 INVALID_TOKEN`): it is
    /// never served again, and the next [`access_token`](Self::access_token)
    /// for its token re-reads the store (past a cache, when the store
    /// supports [leases](TokenStore::refresh_lease)) and serves a newer
    /// access token stored by another process, or refreshes.
    pub async fn invalidate(&self, token: &AccessToken) {
        self.inner.invalidate(token);
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
        self.inner
            .exchange_shared(token, &AccountsFallback::DataCenter)
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
