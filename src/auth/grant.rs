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

use super::accounts::AccountsFallback;
use super::error::AuthError;
use super::lease_wait::LeaseWait;
use super::mark;
use super::state::{Inner, millis, stored_id};
use super::zoho::{self, Issued, Request};
use crate::lease::{LeaseFailure, RefreshLease};
use crate::token::OAuthToken;

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

/// Who exchanges a grant.
enum Exchanger {
    /// This caller (`leased`: under the store's lease of the token).
    This { leased: bool },
    /// Nobody: this is the answer (another process's token, or its failure).
    Done(Result<Box<OAuthToken>, AuthError>),
}

impl Inner {
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
        self.grant_flights
            .run(key, || self.exchange_once(exchange, fallback))
            .await
    }

    /// One exchange of a grant, shared with the other processes through the
    /// refresh lease of the token it authorizes.
    async fn exchange_once(
        &self,
        exchange: Exchange,
        fallback: &AccountsFallback,
    ) -> Result<OAuthToken, AuthError> {
        // No accounts server for it: fail before saving or leasing anything.
        self.endpoint_for(&exchange.token, fallback)?;
        let stored = self.token_to_authorize(&exchange).await?;
        let id = stored_id(&stored, "find_token or save_token")?;
        let stale = stored.access_token.as_deref().map(Arc::from);
        match self.exchanger(&id, &exchange, stale).await? {
            Exchanger::This { leased } => {
                self.exchange_with(&id, &exchange, leased, fallback).await
            }
            Exchanger::Done(answer) => answer.map(|token| *token),
        }
    }

    /// The token to authorize: the stored one the query matches (by user
    /// name, else by grant), else a new one holding the grant, so that
    /// racing processes lease one secret (a save never makes two tokens for
    /// one user name; without one, the id comes from the grant).
    async fn token_to_authorize(&self, exchange: &Exchange) -> Result<OAuthToken, AuthError> {
        if let Some(found) = self.store.find_token(&exchange.token).await? {
            return Ok(found);
        }
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
        Ok(pending)
    }

    /// Who exchanges the grant of token `id` (whose access token is
    /// `stale`): this caller once it has the store's lease (or the store has
    /// none, or only a refresh failed), else the answer another process's
    /// exchange left.
    async fn exchanger(
        &self,
        id: &str,
        exchange: &Exchange,
        mut stale: Option<Arc<str>>,
    ) -> Result<Exchanger, AuthError> {
        let mut wait = LeaseWait::new(self.lease);
        loop {
            match self.ask_lease(id, stale.as_ref()).await? {
                RefreshLease::Unsupported => return Ok(Exchanger::This { leased: false }),
                RefreshLease::Acquired { .. } => return Ok(Exchanger::This { leased: true }),
                // Another process exchanged this grant and saved the result.
                RefreshLease::Refreshed(token)
                    if token.grant_token.as_deref() == Some(exchange.grant.as_str()) =>
                {
                    return Ok(Exchanger::Done(Ok(token)));
                }
                RefreshLease::Missing => {
                    return Err(AuthError::NotFound {
                        key: format!("token id {id} (deleted during the grant exchange)"),
                    });
                }
                // The exchange of another process failed: so would this one.
                RefreshLease::Failed(failure) if failure.is_grant_exchange() => {
                    let error = mark::error_of(id, Request::Grant, &failure);
                    return Ok(Exchanger::Done(Err(error)));
                }
                // A refresh failure marks the token, not this grant: a
                // new grant is what mends it, so exchange it.
                RefreshLease::Failed(_) => return Ok(Exchanger::This { leased: false }),
                // Another process refreshed the token (not with this grant):
                // the token it saved is the one to replace.
                RefreshLease::Refreshed(token) => {
                    stale = token.access_token.as_deref().map(Arc::from);
                }
                // Another process is at Zoho: wait for its save.
                RefreshLease::Held { .. } => {
                    wait.next(id, Request::Grant).await?;
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
        let issued = zoho::exchange(
            &self.http,
            &endpoint,
            token,
            &exchange.client_id,
            &exchange.client_secret,
            &exchange.grant,
        )
        .await;
        match issued {
            Ok(issued) => self.save_exchanged(id, token, issued, &endpoint).await,
            Err(error) => {
                if leased {
                    self.mark_exchange_failed(id, &error).await;
                }
                Err(error)
            }
        }
    }

    /// Saves token `id` (`token` as the caller gave it) with what Zoho
    /// `issued` for its grant at `endpoint`.
    async fn save_exchanged(
        &self,
        id: &str,
        token: &OAuthToken,
        issued: Issued,
        endpoint: &reqwest::Url,
    ) -> Result<OAuthToken, AuthError> {
        let Some(refresh_token) = issued.refresh_token.clone() else {
            return Err(AuthError::UnexpectedResponse {
                url: zoho::origin(endpoint),
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
        self.failures.forget(id);
        // The token's access token changed: served by user name, it must be
        // read again.
        self.forget_warm();
        Ok(saved)
    }

    /// Marks the lease of token `id` with the exchange's `error`: it tells
    /// the waiters for one lease period, then the token's refreshes go on
    /// as before.
    async fn mark_exchange_failed(&self, id: &str, error: &AuthError) {
        let failure = LeaseFailure::GrantExchange {
            cause: mark::cause_of(error),
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
}
