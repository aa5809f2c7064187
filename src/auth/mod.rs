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
//! A query that sets only a user name (as
//! [`OAuthToken::for_user`](crate::OAuthToken::for_user) makes) is answered
//! from this `ZohoAuth`'s own map of the access tokens it served by user
//! name (a read lock and a hash lookup: no store call, no copy of the
//! token), for at most [`WARM_RECHECK`] (1 s) before it asks
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
//!   implements [`TokenStore::refresh_lease`](crate::TokenStore::refresh_lease):
//!   the first to ask takes a lease (with an end time, so that a holder
//!   that freezes or crashes does not block the others), refreshes and saves; the others, meanwhile,
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

// The layers, each using only those below it (no module uses this one):
//
//   client, managed, builder      ZohoAuth: its public calls and settings
//   refresh, grant                the two flows, siblings
//   lease_wait, accounts          the store's lease, where secrets go
//   state                         what a ZohoAuth and its clones share
//   single_flight, failures, mark one run per key, failures remembered,
//   zoho, error, access_token,    lease mark <-> error; the HTTP calls
//   data_center                   and the plain types
mod access_token;
mod accounts;
mod builder;
mod client;
mod data_center;
mod error;
mod failures;
mod grant;
mod lease_wait;
mod managed;
mod mark;
mod refresh;
mod single_flight;
mod state;
mod warm;
mod zoho;

pub use access_token::AccessToken;
pub use accounts::AccountsFallback;
pub use builder::{DEFAULT_REFRESH_AHEAD, DEFAULT_TIMEOUT, ZohoAuthBuilder};
pub use client::ZohoAuth;
pub use data_center::DataCenter;
pub use error::AuthError;
pub use refresh::MAX_BACKOFF;
pub use state::{MIN_VALIDITY, WARM_RECHECK};
