//! The grant exchange (first-time flow), made once per grant token: by one
//! caller in this process (one flight per grant), and by one process of
//! those sharing the store (the refresh lease of the token being
//! authorized).
//!
//! A grant token is single-use: the second exchange of one is refused by
//! Zoho (`invalid_code`). So when two instances are handed the same grant
//! (a retried deployment, two Lambdas behind one callback), the second must
//! not call Zoho: it waits for the first and answers the token the first
//! saved. A later exchange of an already-used grant still calls Zoho and is
//! `Rejected`, the stored token unchanged.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::mark;
use super::refresh::LeaseWait;
use super::zoho::{self, Request};
use super::{AccountsFallback, AuthError, Inner, MIN_VALIDITY, ZohoAuth, millis};
use crate::error::StoreError;
use crate::lease::{LeaseFailure, LeaseRequest, RefreshLease};
use crate::store::TokenStore;
use crate::token::OAuthToken;

/// One exchange of a grant in this process, awaited by all its callers.
pub(super) type GrantFlight = Arc<OnceCell<Result<OAuthToken, AuthError>>>;

/// A grant's key in this process's flights (a digest: grants are secrets).
fn grant_key(grant: &str) -> String {
    let digest = Sha256::digest(grant.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What an exchange needs of the token it is given.
struct Exchange {
    token: OAuthToken,
    client_id: String,
    client_secret: String,
    grant: String,
}

impl ZohoAuth {
    /// Exchanges `token`'s grant, sharing one exchange per grant among this
    /// process's callers (the first one's `fallback` decides where a token
    /// with no Zoho `api_domain` is exchanged).
    pub(super) async fn exchange_shared(
        &self,
        token: OAuthToken,
        fallback: &AccountsFallback,
    ) -> Result<OAuthToken, AuthError> {
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
        let key = grant_key(&grant);
        let exchange = Exchange {
            token,
            client_id,
            client_secret,
            grant,
        };
        let inner = &self.inner;
        let flight: GrantFlight = {
            let mut flights = inner
                .grant_flights
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            Arc::clone(flights.entry(key.clone()).or_default())
        };
        let result = flight
            .get_or_init(|| inner.exchange_once(exchange, fallback))
            .await
            .clone();
        let mut flights = inner
            .grant_flights
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        result
    }
}

impl Inner {
    /// One exchange of a grant, shared with the other processes through the
    /// refresh lease of the token it authorizes.
    async fn exchange_once(
        &self,
        exchange: Exchange,
        fallback: &AccountsFallback,
    ) -> Result<OAuthToken, AuthError> {
        // No accounts server for it: fail before saving or leasing anything.
        self.endpoint_for(&exchange.token, fallback)?;
        // The token to authorize: the stored one the query matches (by user
        // name, else by grant), else a new one holding the grant, so that
        // racing processes lease one secret (a save never makes two tokens
        // for one user name; without one, the id comes from the grant).
        let stored = match self.store.find_token(&exchange.token).await? {
            Some(found) => found,
            None => {
                let mut pending = OAuthToken {
                    access_token: None,
                    refresh_token: None,
                    expiry_time: None,
                    ..exchange.token.clone()
                };
                if pending.id.is_none() && pending.user_name.is_none() {
                    pending.id = Some(grant_key(&exchange.grant));
                }
                self.store.save_token(&mut pending).await?;
                pending
            }
        };
        let id = stored
            .id
            .clone()
            .ok_or_else(|| StoreError::invalid_input("the store answered a token without an id"))?;
        let mut stale = stored.access_token.as_deref().map(Arc::from);
        let mut wait = LeaseWait::new(self.lease);
        loop {
            let request = LeaseRequest::new(
                self.holder.clone(),
                self.lease,
                self.now_millis() + millis(MIN_VALIDITY),
                stale.clone(),
            );
            match self.store.refresh_lease(&id, &request).await? {
                RefreshLease::Unsupported => {
                    return self.exchange_with(&id, &exchange, false, fallback).await;
                }
                RefreshLease::Acquired { .. } => {
                    return self.exchange_with(&id, &exchange, true, fallback).await;
                }
                // Another process exchanged this grant and saved the result.
                RefreshLease::Refreshed(token)
                    if token.grant_token.as_deref() == Some(exchange.grant.as_str()) =>
                {
                    return Ok(*token);
                }
                RefreshLease::Missing => {
                    return Err(AuthError::NotFound {
                        key: format!("token id {id} (deleted during the grant exchange)"),
                    });
                }
                // The exchange of another process failed: so would this one.
                RefreshLease::Failed(LeaseFailure::GrantExchange { cause, .. }) => {
                    return Err(mark::error_of(&id, Request::Grant, &cause));
                }
                // A refresh failure marks the token, not this grant: a
                // new grant is what mends it, so exchange it.
                RefreshLease::Failed(_) => {
                    return self.exchange_with(&id, &exchange, false, fallback).await;
                }
                // Another process refreshed the token (not with this grant):
                // the token it saved is the one to replace.
                RefreshLease::Refreshed(token) => {
                    stale = token.access_token.as_deref().map(Arc::from);
                }
                // Another process is at Zoho: wait for its save.
                RefreshLease::Held { .. } => {
                    wait.next(|| format!("exchange the grant of token {id}"))
                        .await?;
                }
            }
        }
    }

    /// Exchanges the grant at Zoho and saves token `id` with what Zoho
    /// issued; `leased`: this holder has the token's lease.
    async fn exchange_with(
        &self,
        id: &str,
        exchange: &Exchange,
        leased: bool,
        fallback: &AccountsFallback,
    ) -> Result<OAuthToken, AuthError> {
        let token = &exchange.token;
        let endpoint = self.endpoint_for(token, fallback)?;
        let issued = match zoho::exchange(
            &self.http,
            &endpoint,
            token,
            &exchange.client_id,
            &exchange.client_secret,
            &exchange.grant,
        )
        .await
        {
            Ok(issued) => issued,
            Err(error) => {
                if leased {
                    // Tell the waiters for one lease period, then let the
                    // token's refreshes go on as before.
                    let failure = LeaseFailure::GrantExchange {
                        cause: mark::cause_of(&error),
                        retry_after: self.now_millis() + millis(self.lease),
                    };
                    if let Err(e) = self
                        .store
                        .fail_refresh_lease(id, &self.holder, &failure)
                        .await
                    {
                        tracing::debug!(id, error = %e, "marking the grant lease failed did not work");
                    }
                }
                return Err(error);
            }
        };
        let Some(refresh_token) = issued.refresh_token.clone() else {
            return Err(AuthError::UnexpectedResponse {
                url: zoho::origin(&endpoint),
                status: 200,
                reason: "a grant exchange answer without a refresh_token".into(),
            });
        };
        let mut saved = OAuthToken {
            id: Some(id.to_owned()),
            refresh_token: Some(refresh_token),
            access_token: Some(issued.access_token),
            expiry_time: Some(self.now_millis().saturating_add(issued.lifetime_ms)),
            api_domain: issued.api_domain.or(token.api_domain.clone()),
            ..token.clone()
        };
        self.store.save_token(&mut saved).await?;
        self.failures().remove(id);
        // The token's access token changed: served by user name, it must be
        // read again.
        self.warm
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, warm| &*warm.token.0.id != id);
        Ok(saved)
    }
}
