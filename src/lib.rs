//! Zoho CRM OAuth tokens for serverless apps, kept in AWS Secrets Manager.
//!
//! The Zoho CRM SDKs persist OAuth tokens through a `TokenStore` interface
//! whose built-in implementations write a local CSV file or a MySQL table:
//! neither survives in AWS Lambda, where the disk is ephemeral and there is
//! no database server. This crate provides that interface in Rust:
//!
//! - [`OAuthToken`] and the [`TokenStore`] trait, with the Zoho SDK's matching
//!   rules ([`LookupKey`]) and without its bugs;
//! - [`SecretsManagerStore`] (feature `secrets-manager`, on by default), tokens in
//!   AWS Secrets Manager behind a read-through cache;
//! - [`MemoryStore`], the reference implementation;
//! - [`Storage`] and [`StorageStore`]: a custom store writes only get,
//!   conditional put, list and delete, and the crate applies every rule on top;
//! - [`auth`] (feature `auth`, on by default): `ZohoAuth`, which gets a valid
//!   access token for a stored token, refreshing it at Zoho when needed, once
//!   for all the processes that share a store;
//! - [`conformance`] (feature `conformance`), checks any store can run.
//!
//! # Where things are
//!
//! | what | where |
//! |---|---|
//! | the trait a store implements, its rules, [`LookupKey`], [`prepare_save`] | `src/store.rs` |
//! | [`OAuthToken`], its codec and limits; ids | `src/token.rs`; `src/id.rs` |
//! | refresh lease types ([`LeaseRequest`], [`RefreshLease`], [`LeaseFailure`]) | `src/lease.rs` |
//! | [`Storage`], for a custom store, and [`StorageStore`], the rules on top of it (`claims.rs`: unique user names; `lease.rs`: leases) | `src/storage/` |
//! | [`MemoryStore`] and [`MemoryStorage`] | `src/memory.rs` |
//! | [`SecretsManagerStore`]: layout, cache, index, saves, leases, repair | `src/secrets_manager/` |
//! | a custom store, file by file | `examples/custom_store.rs` |
//! | the OAuth layer, `ZohoAuth` ([`auth`]) | `src/auth/` |
//! | the conformance checks | `src/conformance/` |
//! | the `zoho-token-store` CLI (feature `cli`) | `src/bin/zoho-token-store/` |
//! | the Python drop-in (PyO3) and the Node drop-in (napi) | `python/src/lib.rs`, `node/src/lib.rs` |
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `secrets-manager` | yes | `SecretsManagerStore` and its builder, on the AWS SDK |
//! | `auth` | yes | the [`auth`] module: `ZohoAuth`, valid access tokens refreshed at Zoho's accounts server and saved back, one refresh per token for a fleet |
//! | `conformance` | no | the `conformance` module and `conformance_tests!` |
//! | `cli` | no | the `zoho-token-store` ops binary (import from the Zoho SDK's stores, list, export, delete, repair, stats); it adds nothing to the library |
//!
//! Without default features the crate is the trait, [`MemoryStore`], the
//! [`StorageStore`] layer and the shared rules and codec, with no AWS
//! dependency: enough to write your own store.
//!
//! # Example
//!
//! ```
//! use zoho_token_store::{MemoryStore, OAuthToken, TokenStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//!
//! // First use: a grant token from the Zoho API console, exchanged for a
//! // refresh token, saved under the CRM user's name.
//! let mut token = OAuthToken::from_refresh_token("1000.CLIENTID", "client-secret", "1000.refresh")
//!     .with_user_name("me@example.com");
//! store.save_token(&mut token).await?;
//! let id = token.id.clone().expect("save_token sets the id");
//!
//! // Hourly: a new access token for the same user updates the stored token.
//! let mut refreshed = OAuthToken {
//!     access_token: Some("1000.access".into()),
//!     expiry_time: Some(1_900_000_000_000),
//!     ..OAuthToken::for_user("me@example.com")
//! };
//! store.save_token(&mut refreshed).await?;
//! assert_eq!(refreshed.id.as_deref(), Some(id.as_str()));
//! assert_eq!(refreshed.refresh_token.as_deref(), Some("1000.refresh"));
//!
//! let found = store.find_token(&OAuthToken::for_user("me@example.com")).await?;
//! assert_eq!(found, Some(refreshed));
//! # Ok::<(), zoho_token_store::StoreError>(())
//! # }).unwrap();
//! ```
//!
//! # Choices where the Zoho SDK is silent or wrong
//!
//! - Reads and deletes of an absent id answer `Ok(None)` / `Ok(())`.
//! - Generated ids are opaque and unique, never `max(id) + 1` (which
//!   concurrent writers compute alike): random in [`MemoryStore`]; in
//!   `SecretsManagerStore`, a hash of the user name for a new token that has
//!   one, so that a new instance finds it by user name in one read.
//! - A given id decides alone: a save with an id that is not stored creates a
//!   token under that id (unless its user name belongs to another token, which
//!   is [`StoreError::InvalidInput`]); it is not merged with a token that
//!   matches by lookup key.
//! - An empty string counts as an absent field in matching, as in the Zoho SDKs.
//! - Tokens are limited to [`MAX_TOKEN_BYTES`] encoded and user names to
//!   [`MAX_USER_NAME_BYTES`], in every store.

#![warn(
    missing_docs,
    missing_debug_implementations,
    clippy::explicit_iter_loop,
    clippy::future_not_send,
    clippy::use_self,
    clippy::clone_on_ref_ptr,
    unreachable_pub
)]
#![forbid(unsafe_code)]
// The store's futures nest deep (save → index commit → compare-and-swap).
#![recursion_limit = "256"]
// docs.rs builds with every feature and `--cfg docsrs`: label what each needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
pub mod auth;
#[cfg(any(test, feature = "conformance"))]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod id;
mod lease;
mod memory;
#[cfg(feature = "secrets-manager")]
mod secrets_manager;
mod storage;
mod store;
mod token;

pub use error::{BoxError, SharedError, StoreError};
pub use id::{MAX_ID_LEN, generate_id, validate_id};
pub use lease::{FailureCause, LeaseFailure, LeaseRequest, RefreshLease};
pub use memory::{MemoryStorage, MemoryStore};
#[cfg(feature = "secrets-manager")]
#[cfg_attr(docsrs, doc(cfg(feature = "secrets-manager")))]
pub use secrets_manager::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_PREFIX, DeletionMode, IndexStats, RepairReport, SecretsManagerStore,
    SecretsManagerStoreBuilder,
};
pub use storage::{Expected, Record, Storage, StorageStore, Version};
pub use store::{LookupKey, TokenStore, check_unique_user, prepare_save};
pub use token::{MAX_TOKEN_BYTES, MAX_USER_NAME_BYTES, OAuthToken, decode_token, encode_token};

/// What `forward_token_store!` expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
}
