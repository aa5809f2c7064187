//! [`SecretsManagerStoreBuilder`]: configuration of a [`SecretsManagerStore`].

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::types::Tag;

use super::api::Api;
use super::cache::{TokenCache, UserIds};
use super::index::{Clock, Index};
use super::layout::Layout;
use super::{Inner, SecretsManagerStore};
use crate::error::StoreError;

/// The prefix used when none is set.
pub const DEFAULT_PREFIX: &str = "zoho/crm";
/// How long a token (and the index) is served from cache when none is set.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// How many tokens the cache holds when no capacity is set.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// The default limit on one HTTP attempt: well under a Lambda's timeout.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// The default limit on one API call, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How the store deletes token secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeletionMode {
    /// Delete at once, without recovery (the default): a deleted token is gone.
    #[default]
    Immediate,
    /// Schedule the deletion with a recovery window of 7 to 30 days; saving
    /// the same id again within the window restores the secret.
    RecoveryWindow {
        /// Days before the secret is really deleted (7 to 30).
        days: u8,
    },
}

#[must_use = "a builder does nothing until `build` is called"]
/// Builds a [`SecretsManagerStore`]. `build` is synchronous and makes no
/// network call: a Lambda cold start pays nothing until the first operation.
///
/// ```no_run
/// # async fn example() -> Result<(), zoho_token_store::StoreError> {
/// use std::time::Duration;
/// use zoho_token_store::SecretsManagerStore;
///
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let store = SecretsManagerStore::builder()
///     .client(aws_sdk_secretsmanager::Client::new(&config))
///     .prefix("zoho/crm/production")
///     .cache_ttl(Duration::from_secs(60))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Default, Clone)]
pub struct SecretsManagerStoreBuilder {
    client: Option<Client>,
    prefix: Option<String>,
    cache_ttl: Option<Duration>,
    cache_capacity: Option<u64>,
    kms_key_id: Option<String>,
    tags: Vec<(String, String)>,
    deletion: DeletionMode,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    clock: Option<Clock>,
}

impl std::fmt::Debug for SecretsManagerStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerStoreBuilder")
            .field("client", &self.client.is_some())
            .field("prefix", &self.prefix)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_capacity", &self.cache_capacity)
            .field("kms_key_id", &self.kms_key_id)
            .field("tags", &self.tags)
            .field("deletion", &self.deletion)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl SecretsManagerStoreBuilder {
    /// The Secrets Manager client to use (required).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// A client made from this AWS configuration (credentials, region,
    /// endpoint): the same as `client(Client::new(config))`.
    pub fn sdk_config(self, config: &aws_config::SdkConfig) -> Self {
        self.client(Client::new(config))
    }

    /// The namespace of all the store's secrets (default [`DEFAULT_PREFIX`]):
    /// tokens live at `{prefix}/tokens/{id}`, the index under `{prefix}/index/`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// How long a token read from Secrets Manager is served from cache
    /// (default [`DEFAULT_CACHE_TTL`]). A token is never served past its own
    /// `expiry_time`, whatever the TTL. Also how long the index is cached.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// How many tokens the cache holds at most (default [`DEFAULT_CACHE_CAPACITY`]).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = Some(capacity);
        self
    }

    /// The KMS key that encrypts new secrets (default: the account's
    /// `aws/secretsmanager` key).
    pub fn kms_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.kms_key_id = Some(key_id.into());
        self
    }

    /// A tag to put on every secret the store creates.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// How deleted tokens are deleted (default [`DeletionMode::Immediate`]).
    pub fn deletion_mode(mut self, mode: DeletionMode) -> Self {
        self.deletion = mode;
        self
    }

    /// The limit on one HTTP attempt.
    ///
    /// When not set, the client's own attempt timeout is kept (from its
    /// `TimeoutConfig`, including one it disables explicitly), and only a
    /// client without one gets [`DEFAULT_ATTEMPT_TIMEOUT`]. The client's
    /// connect and read timeouts are always kept.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The limit on one API call including its retries. A call that runs out
    /// fails with a [`StoreError::Backend`] (retryable).
    ///
    /// When not set, the client's own operation timeout is kept, and only a
    /// client without one gets [`DEFAULT_OPERATION_TIMEOUT`].
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// Where the store reads the time of day (default: the system clock).
    ///
    /// The index records when it writes each of its secrets, to keep every
    /// secret under Secrets Manager's quota of versions a day; this clock
    /// dates those writes. Tests and simulations set it to replay a day of
    /// writes in minutes. Token expiry and cache lifetimes do not use it.
    pub fn clock<F>(mut self, now: F) -> Self
    where
        F: Fn() -> std::time::SystemTime + Send + Sync + 'static,
    {
        self.clock = Some(Arc::new(now));
        self
    }

    /// The store. Fails with [`StoreError::InvalidInput`] when no client is
    /// set, or the prefix, recovery window or cache settings are invalid.
    pub fn build(self) -> Result<SecretsManagerStore, StoreError> {
        let client = self
            .client
            .ok_or_else(|| StoreError::invalid_input("SecretsManagerStore needs a client"))?;
        let layout = Layout::new(self.prefix.as_deref().unwrap_or(DEFAULT_PREFIX))?;
        let recovery_window_days = match self.deletion {
            DeletionMode::Immediate => None,
            DeletionMode::RecoveryWindow { days } if (7..=30).contains(&days) => {
                Some(i64::from(days))
            }
            DeletionMode::RecoveryWindow { days } => {
                return Err(StoreError::invalid_input(format!(
                    "recovery window of {days} days: Secrets Manager takes 7 to 30"
                )));
            }
        };
        let ttl = self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL);
        let timeouts = merged_timeouts(
            client.config().timeout_config(),
            self.attempt_timeout,
            self.operation_timeout,
        );
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .timeout_config(timeouts)
                .build(),
        );
        let tags = self
            .tags
            .into_iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        let api = Api {
            client,
            kms_key_id: self.kms_key_id,
            tags,
            recovery_window_days,
        };
        Ok(SecretsManagerStore {
            inner: Arc::new(Inner {
                index: Index::new(
                    api.clone(),
                    layout.clone(),
                    ttl,
                    self.clock
                        .unwrap_or_else(|| Arc::new(std::time::SystemTime::now)),
                ),
                cache: TokenCache::new(ttl, self.cache_capacity.unwrap_or(DEFAULT_CACHE_CAPACITY)),
                users: UserIds::new(ttl, self.cache_capacity.unwrap_or(DEFAULT_CACHE_CAPACITY)),
                api,
                layout,
                deletion: self.deletion,
            }),
        })
    }
}

/// The timeouts the store's client gets, each from the first that has it:
/// the builder's setting, the client's own configuration (where "disabled"
/// counts as a setting), the store's defaults.
fn merged_timeouts(
    own: Option<&TimeoutConfig>,
    attempt: Option<Duration>,
    operation: Option<Duration>,
) -> TimeoutConfig {
    // Only what the builder sets: the builder's `set_*(None)` would mean
    // "disabled", not "unset".
    let mut chosen = TimeoutConfig::builder();
    if let Some(attempt) = attempt {
        chosen = chosen.operation_attempt_timeout(attempt);
    }
    if let Some(operation) = operation {
        chosen = chosen.operation_timeout(operation);
    }
    let own = own.map(TimeoutConfig::to_builder).unwrap_or_default();
    let defaults = TimeoutConfig::builder()
        .operation_attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT)
        .operation_timeout(DEFAULT_OPERATION_TIMEOUT);
    chosen
        .take_unset_from(own)
        .take_unset_from(defaults)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// The timeouts of the client a store built with `builder` on a client
    /// configured with `own` uses.
    fn built_timeouts(
        own: Option<TimeoutConfig>,
        builder: SecretsManagerStoreBuilder,
    ) -> TimeoutConfig {
        let mut config = aws_sdk_secretsmanager::Config::builder();
        config.set_timeout_config(own);
        let store = builder
            .client(Client::from_conf(config.build()))
            .build()
            .unwrap();
        store
            .inner
            .api
            .client
            .config()
            .timeout_config()
            .cloned()
            .expect("the store sets timeouts")
    }

    #[test]
    fn a_client_without_timeouts_gets_the_defaults() {
        let timeouts = built_timeouts(None, SecretsManagerStore::builder());
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(DEFAULT_ATTEMPT_TIMEOUT)
        );
        assert_eq!(
            timeouts.operation_timeout(),
            Some(DEFAULT_OPERATION_TIMEOUT)
        );
    }

    #[test]
    fn the_clients_own_timeouts_are_kept() {
        let own = TimeoutConfig::builder()
            .operation_attempt_timeout(7 * SECOND)
            .operation_timeout(30 * SECOND)
            .connect_timeout(2 * SECOND)
            .build();
        let timeouts = built_timeouts(Some(own), SecretsManagerStore::builder());
        assert_eq!(timeouts.operation_attempt_timeout(), Some(7 * SECOND));
        assert_eq!(timeouts.operation_timeout(), Some(30 * SECOND));
        assert_eq!(timeouts.connect_timeout(), Some(2 * SECOND));
    }

    #[test]
    fn builder_settings_win_and_defaults_fill_the_rest() {
        let own = TimeoutConfig::builder()
            .operation_attempt_timeout(7 * SECOND)
            .connect_timeout(2 * SECOND)
            .build();
        let timeouts = built_timeouts(
            Some(own),
            SecretsManagerStore::builder().attempt_timeout(SECOND),
        );
        assert_eq!(timeouts.operation_attempt_timeout(), Some(SECOND));
        assert_eq!(
            timeouts.operation_timeout(),
            Some(DEFAULT_OPERATION_TIMEOUT)
        );
        assert_eq!(timeouts.connect_timeout(), Some(2 * SECOND));
        let timeouts = built_timeouts(
            None,
            SecretsManagerStore::builder().operation_timeout(SECOND),
        );
        assert_eq!(timeouts.operation_timeout(), Some(SECOND));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(DEFAULT_ATTEMPT_TIMEOUT)
        );
    }

    #[test]
    fn timeouts_the_client_disables_stay_disabled() {
        let timeouts = built_timeouts(
            Some(TimeoutConfig::disabled()),
            SecretsManagerStore::builder(),
        );
        assert_eq!(timeouts.operation_attempt_timeout(), None);
        assert_eq!(timeouts.operation_timeout(), None);
    }
}
