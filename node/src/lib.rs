//! The native half of the npm package `zoho-token-store`: the crate's
//! `SecretsManagerStore` behind a small napi-rs class, `NativeStore`.
//!
//! The JavaScript class `SecretsManagerStore` (`index.js`) wraps it: that one
//! extends the Zoho SDK's `TokenStore` (a napi class cannot extend a
//! JavaScript class) and converts the SDK's `OAuthToken` objects to and from
//! plain objects, which is all this module sees.
//!
//! - Tokens cross the boundary as plain objects keyed by the crate's field
//!   names (`OAuthToken::FIELDS`: `id`, `user_name`, `client_id`, …), as the
//!   token's serde encoding has them: `expiry_time` is a number of epoch
//!   milliseconds, the other values are strings, and an absent field is
//!   `undefined` or `null` (answers leave it out).
//! - Every method returns a Promise and runs on napi-rs's one process-wide
//!   tokio runtime, off the JavaScript thread: the event loop never waits
//!   for Secrets Manager.
//! - Every failure is a rejected `Error` whose message is `"{kind}: {text}"`:
//!   `kind` names the crate's error variant (`invalid_input`, `corrupt`,
//!   `backend`, `quota_exceeded`, `conflict`, `other`; for a managed refresh
//!   also `auth_rejected`, `auth_throttled`, `auth_transport`,
//!   `auth_unexpected_response`, `auth_invalid_input`, `auth_not_found`,
//!   `auth_other`) and `text` is the crate's message, which never contains a
//!   token's secret values. Nothing here panics on bad input: a bad value is
//!   an `invalid_input` error.
//! - Managed refresh (`managedFindToken`, `managedFindTokenById`) answers the
//!   stored token with a valid access token, refreshed first through the
//!   crate's `ZohoAuth` on the same store (one refresh per token for every
//!   process sharing the prefix) when it has less than `refreshAhead` left.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::OnceCell;
use zoho_token_store::auth::{AccountsFallback, AuthError, ZohoAuth};
use zoho_token_store::{
    DeletionMode, OAuthToken, SecretsManagerStore, SecretsManagerStoreBuilder, StoreError,
    TokenStore,
};

/// A token object from JavaScript as the crate's `OAuthToken`, through the
/// token's serde fields (`OAuthToken::from_fields`), so that this file names
/// no field: properties that are not token fields are ignored (the objects
/// may carry others), and a field of the wrong type is an `invalid_input`
/// error naming it, never its value.
fn token_from_js(value: serde_json::Value) -> Result<OAuthToken> {
    let serde_json::Value::Object(mut fields) = value else {
        return Err(store_error(&StoreError::invalid_input(
            "a token must be an object",
        )));
    };
    fields.retain(|name, _| OAuthToken::FIELDS.contains(&name.as_str()));
    OAuthToken::from_fields(fields).map_err(|e| store_error(&e))
}

/// The crate's `OAuthToken` as a plain JavaScript object: its serde
/// encoding, without the absent fields.
fn token_to_js(token: &OAuthToken) -> Result<serde_json::Value> {
    serde_json::to_value(token)
        .map_err(|e| Error::new(Status::GenericFailure, format!("other: {e}")))
}

/// The options of `new NativeStore(options)`; every one but `prefix` optional.
#[napi(object)]
pub struct StoreOptions {
    /// The namespace of every secret (`{prefix}/tokens/{id}`, `{prefix}/index/...`).
    pub prefix: String,
    /// Overrides the Secrets Manager endpoint (otherwise `AWS_ENDPOINT_URL`, ...).
    pub endpoint_url: Option<String>,
    /// Overrides the region (otherwise `AWS_REGION`, ...).
    pub region: Option<String>,
    /// Seconds a token read is served from cache (never past its own expiry).
    pub cache_ttl: Option<f64>,
    /// Tokens the cache holds at most.
    pub cache_capacity: Option<i64>,
    /// Schedule deletions with this recovery window (7 to 30 days).
    pub recovery_window_days: Option<u32>,
    /// Seconds for one HTTP attempt to Secrets Manager.
    pub attempt_timeout: Option<f64>,
    /// Seconds for one Secrets Manager call with its retries.
    pub operation_timeout: Option<f64>,
    /// Seconds before expiry a managed refresh renews an access token
    /// (default 300; at least 5 is used).
    pub refresh_ahead: Option<f64>,
    /// Where a managed refresh sends a token whose `api_domain` names no Zoho
    /// data center when the SDK's environment names none either.
    pub accounts_url: Option<String>,
}

/// A warm hit of `warmFindTokenById`: the token and its cache revision.
#[napi(object)]
pub struct WarmHit {
    /// Changes whenever the cached token does.
    pub revision: f64,
    /// The token, with the crate's field names.
    pub token: serde_json::Value,
}

/// The JavaScript error for a store error: `"{kind}: {message}"`.
fn store_error(error: &StoreError) -> Error {
    let kind = match error {
        StoreError::InvalidInput { .. } => "invalid_input",
        StoreError::Corrupt { .. } => "corrupt",
        StoreError::Backend { .. } => "backend",
        StoreError::QuotaExceeded { .. } => "quota_exceeded",
        StoreError::Conflict { .. } => "conflict",
        _ => "other",
    };
    Error::new(Status::GenericFailure, format!("{kind}: {error}"))
}

/// The JavaScript error for a managed refresh's error: `"auth_{kind}: {message}"`,
/// or the store error's own kind when the store failed.
fn auth_error(error: &AuthError) -> Error {
    let kind = match error {
        AuthError::Store(store) => return store_error(store),
        // Kinds as before these variants: a wait that gave up was a store
        // conflict, another process's failure a transport one.
        AuthError::LeaseWaitTimedOut { .. } => "conflict",
        AuthError::FailedElsewhere { .. } => "auth_transport",
        AuthError::ClientSetup { .. } => "auth_invalid_input",
        AuthError::Rejected { .. } => "auth_rejected",
        AuthError::Throttled { .. } => "auth_throttled",
        AuthError::Transport { .. } => "auth_transport",
        AuthError::UnexpectedResponse { .. } => "auth_unexpected_response",
        AuthError::InvalidInput { .. } => "auth_invalid_input",
        AuthError::NotFound { .. } => "auth_not_found",
        _ => "auth_other",
    };
    Error::new(Status::GenericFailure, format!("{kind}: {error}"))
}

/// An `invalid_input` error for a bad option.
fn invalid_option(message: String) -> Error {
    Error::new(Status::InvalidArg, format!("invalid_input: {message}"))
}

/// `value` seconds as a `Duration`, or an `invalid_input` error naming `name`.
fn seconds(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        invalid_option(format!(
            "{name} must be a finite number of seconds >= 0, not {value}"
        ))
    })
}

/// The crate's `SecretsManagerStore`, with methods that take and return
/// plain token objects. Use it through `SecretsManagerStore` of `index.js`.
///
/// The AWS configuration is loaded, and the store built, on the first call
/// (the constructor checks the options but makes no network call and never
/// blocks the event loop).
#[napi]
pub struct NativeStore {
    prefix: String,
    builder: SecretsManagerStoreBuilder,
    endpoint_url: Option<String>,
    region: Option<String>,
    refresh_ahead: Option<Duration>,
    accounts_url: Option<String>,
    store: OnceCell<SecretsManagerStore>,
    auth: OnceCell<ZohoAuth>,
}

impl NativeStore {
    /// The store, built on first use from the AWS configuration of the
    /// environment and the options.
    async fn store(&self) -> Result<&SecretsManagerStore> {
        self.store
            .get_or_try_init(|| async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
                if let Some(url) = &self.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                if let Some(region) = &self.region {
                    loader = loader.region(aws_config::Region::new(region.clone()));
                }
                let config = loader.load().await;
                self.builder
                    .clone()
                    .sdk_config(&config)
                    .build()
                    .map_err(|e| store_error(&e))
            })
            .await
    }

    /// The `ZohoAuth` of managed refresh, on the same store (its cache,
    /// index and fleet-wide refresh lease), built on first use.
    async fn auth(&self) -> Result<&ZohoAuth> {
        let store = self.store().await?;
        self.auth
            .get_or_try_init(|| async {
                let mut builder = ZohoAuth::builder(store.clone());
                if let Some(ahead) = self.refresh_ahead {
                    builder = builder.refresh_ahead(ahead);
                }
                builder.build().map_err(|e| auth_error(&e))
            })
            .await
    }

    /// Where a managed refresh sends a token whose `api_domain` names no
    /// Zoho data center: the SDK environment's accounts URL, else the
    /// `accountsUrl` option, else nowhere (the refresh fails, nothing sent).
    fn fallback(&self, sdk_accounts_url: Option<String>) -> Result<AccountsFallback> {
        match sdk_accounts_url.or_else(|| self.accounts_url.clone()) {
            Some(url) => AccountsFallback::token_url(url).map_err(|e| auth_error(&e)),
            None => Ok(AccountsFallback::Refuse),
        }
    }

    /// `f` of the cached token of `id` and its revision, when the warm path
    /// may serve it: the store is built and caches it, and (with `managed`)
    /// a managed lookup would answer it without a refresh.
    fn warm<T>(&self, id: &str, managed: bool, f: impl FnOnce(&OAuthToken, u64) -> T) -> Option<T> {
        let store = self.store.get()?;
        let auth = if managed {
            Some(self.auth.get()?)
        } else {
            None
        };
        store
            .with_cached_token(id, |token, revision| {
                auth.is_none_or(|a| a.serves_as_stored(id, token))
                    .then(|| f(token, revision))
            })
            .flatten()
    }
}

#[napi]
impl NativeStore {
    /// Checks the options; makes no network call. A bad option (prefix,
    /// timeout, recovery window) throws an `invalid_input` error.
    #[napi(constructor)]
    pub fn new(options: StoreOptions) -> Result<Self> {
        let mut builder = SecretsManagerStore::builder().prefix(options.prefix.clone());
        if let Some(ttl) = options.cache_ttl {
            builder = builder.cache_ttl(seconds("cacheTtl", ttl)?);
        }
        if let Some(capacity) = options.cache_capacity {
            let capacity = u64::try_from(capacity).map_err(|_| {
                invalid_option(format!("cacheCapacity must be >= 0, not {capacity}"))
            })?;
            builder = builder.cache_capacity(capacity);
        }
        if let Some(days) = options.recovery_window_days {
            let days = u8::try_from(days).map_err(|_| {
                invalid_option(format!(
                    "recoveryWindowDays of {days} days: Secrets Manager takes 7 to 30"
                ))
            })?;
            builder = builder.deletion_mode(DeletionMode::RecoveryWindow { days });
        }
        if let Some(timeout) = options.attempt_timeout {
            builder = builder.attempt_timeout(seconds("attemptTimeout", timeout)?);
        }
        if let Some(timeout) = options.operation_timeout {
            builder = builder.operation_timeout(seconds("operationTimeout", timeout)?);
        }
        let refresh_ahead = options
            .refresh_ahead
            .map(|ahead| seconds("refreshAhead", ahead))
            .transpose()?;
        if let Some(url) = &options.accounts_url {
            AccountsFallback::token_url(url.as_str()).map_err(|e| auth_error(&e))?;
        }
        // Build once with a client that is never called, so that a bad
        // prefix or recovery window fails here rather than on first use.
        let unused = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .build(),
        );
        builder
            .clone()
            .client(unused)
            .build()
            .map_err(|e| store_error(&e))?;
        Ok(Self {
            prefix: options.prefix,
            builder,
            endpoint_url: options.endpoint_url,
            region: options.region,
            refresh_ahead,
            accounts_url: options.accounts_url,
            store: OnceCell::new(),
            auth: OnceCell::new(),
        })
    }

    /// The prefix of the store's secrets.
    #[napi(getter)]
    pub fn prefix(&self) -> String {
        self.prefix.clone()
    }

    /// The stored token that `query` matches, with every field `query` sets
    /// taken from `query`; `null` when none matches. A query with nothing to
    /// match on is an `invalid_input` error.
    #[napi]
    pub async fn find_token(&self, query: serde_json::Value) -> Result<Option<serde_json::Value>> {
        let query = token_from_js(query)?;
        let found = self
            .store()
            .await?
            .find_token(&query)
            .await
            .map_err(|e| store_error(&e))?;
        found.as_ref().map(token_to_js).transpose()
    }

    /// The token stored under `id`, or `null`.
    #[napi]
    pub async fn find_token_by_id(&self, id: String) -> Result<Option<serde_json::Value>> {
        let found = self
            .store()
            .await?
            .find_token_by_id(&id)
            .await
            .map_err(|e| store_error(&e))?;
        found.as_ref().map(token_to_js).transpose()
    }

    /// Saves `token` (an upsert) and returns what is stored, `id` included.
    #[napi]
    pub async fn save_token(&self, token: serde_json::Value) -> Result<serde_json::Value> {
        let mut token = token_from_js(token)?;
        self.store()
            .await?
            .save_token(&mut token)
            .await
            .map_err(|e| store_error(&e))?;
        token_to_js(&token)
    }

    /// Deletes the token stored under `id`; answers whether one was stored
    /// (the deletion itself is idempotent).
    #[napi]
    pub async fn delete_token(&self, id: String) -> Result<bool> {
        let store = self.store().await?;
        let existed = store
            .find_token_by_id(&id)
            .await
            .map_err(|e| store_error(&e))?
            .is_some();
        store.delete_token(&id).await.map_err(|e| store_error(&e))?;
        Ok(existed)
    }

    /// Every stored token, in no particular order.
    #[napi]
    pub async fn get_tokens(&self) -> Result<Vec<serde_json::Value>> {
        let tokens = self
            .store()
            .await?
            .get_tokens()
            .await
            .map_err(|e| store_error(&e))?;
        tokens.iter().map(token_to_js).collect()
    }

    /// Deletes every stored token.
    #[napi]
    pub async fn delete_tokens(&self) -> Result<()> {
        self.store()
            .await?
            .delete_tokens()
            .await
            .map_err(|e| store_error(&e))
    }

    /// Managed refresh's `findToken`: the stored token `query` matches, with
    /// an access token that has more than `refreshAhead` left (refreshed
    /// first, once for the fleet, when it has less); `null` when none
    /// matches. A query that matches nothing but carries a grant token and
    /// its client is exchanged once for the fleet, and the saved token
    /// answered. `sdkAccountsUrl` is the SDK environment's accounts URL (see
    /// `fallback`). The answer is the stored token: no field of `query` is
    /// laid over it.
    #[napi]
    pub async fn managed_find_token(
        &self,
        query: serde_json::Value,
        sdk_accounts_url: Option<String>,
    ) -> Result<Option<serde_json::Value>> {
        let query = token_from_js(query)?;
        let fallback = self.fallback(sdk_accounts_url)?;
        let found = self
            .auth()
            .await?
            .managed_find_token(&query, &fallback)
            .await
            .map_err(|e| auth_error(&e))?;
        found.as_ref().map(token_to_js).transpose()
    }

    /// Managed refresh's `findTokenById`: the token stored under `id` with a
    /// valid access token, as `managedFindToken`; `null` when none is stored.
    #[napi]
    pub async fn managed_find_token_by_id(
        &self,
        id: String,
        sdk_accounts_url: Option<String>,
    ) -> Result<Option<serde_json::Value>> {
        let fallback = self.fallback(sdk_accounts_url)?;
        let found = self
            .auth()
            .await?
            .managed_find_token_by_id(&id, &fallback)
            .await
            .map_err(|e| auth_error(&e))?;
        found.as_ref().map(token_to_js).transpose()
    }

    /// The warm path of `findTokenById`, on the JavaScript thread: the
    /// revision (see `SecretsManagerStore::with_cached_token`) of the token
    /// stored under `id` when this instance's cache holds it (and, with
    /// `managed`, its access token is one a managed lookup answers without
    /// a refresh); `null` otherwise, when the caller makes the asynchronous
    /// call. Makes no call, never waits, converts no token: a caller that
    /// kept the token of that revision (`warmFindTokenById`) serves it.
    #[napi]
    pub fn warm_revision(&self, id: String, managed: bool) -> Option<f64> {
        self.warm(&id, managed, |_, revision| revision as f64)
    }

    /// `warmRevision` with the token itself: `{ revision, token }`, or
    /// `null`.
    #[napi]
    pub fn warm_find_token_by_id(&self, id: String, managed: bool) -> Result<Option<WarmHit>> {
        let hit = self.warm(&id, managed, |token, revision| (token.clone(), revision));
        hit.map(|(token, revision)| {
            Ok(WarmHit {
                revision: revision as f64,
                token: token_to_js(&token)?,
            })
        })
        .transpose()
    }

    /// Shows the prefix only: no token, no credential.
    #[napi(js_name = "toString")]
    pub fn describe(&self) -> String {
        format!("NativeStore(prefix={:?})", self.prefix)
    }
}
