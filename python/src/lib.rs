//! The native half of the Python package `zoho_token_store`: the crate's
//! `SecretsManagerStore` behind a small PyO3 class, `NativeStore`.
//!
//! The Python class `zoho_token_store.SecretsManagerStore` wraps it: that one
//! subclasses the Zoho SDK's `TokenStore` (a PyO3 class cannot subclass a
//! Python class) and converts the SDK's `OAuthToken` objects to and from
//! plain dicts, which is all this module sees.
//!
//! - Tokens cross the boundary as dicts keyed by the crate's field names
//!   (`id`, `user_name`, `client_id`, `client_secret`, `refresh_token`,
//!   `access_token`, `grant_token`, `expiry_time`, `redirect_url`,
//!   `api_domain`); `expiry_time` is an int of epoch milliseconds, the other
//!   values are strings, and an absent field is missing or `None`.
//! - Every call blocks on one process-wide tokio runtime with the GIL
//!   released, so Python threads calling the store at once run concurrently.
//! - With managed refresh (the default), `find_token` and `find_token_by_id`
//!   answer through the crate's `ZohoAuth` on the same store: the stored
//!   token with its access token refreshed first (once per token for the
//!   process and, through the store's lease, for the fleet) when less than
//!   `refresh_ahead` is left of it, and a grant that matches nothing
//!   exchanged once. The caller passes the accounts URL of the environment
//!   the SDK was initialized with, for tokens whose `api_domain` names no
//!   Zoho data center.
//! - Every failure of the store is a `zoho_token_store._native.StoreError`
//!   whose `kind` names the crate's error variant; a failed refresh or
//!   exchange is a `zoho_token_store._native.AuthError`, likewise. Messages
//!   are the crate's, which never contain a token's secret values. Nothing
//!   here panics on bad input: a wrong type is a `TypeError`, a bad value a
//!   `StoreError` of kind `invalid_input`.

use std::sync::OnceLock;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Runtime;
use zoho_token_store::auth::{AccountsFallback, AuthError as CoreAuthError, ZohoAuth};
use zoho_token_store::{
    DeletionMode, OAuthToken, SecretsManagerStore, StoreError as CoreError, TokenStore,
};

create_exception!(
    _native,
    StoreError,
    PyException,
    "A token store operation failed. `args` is `(kind, message)`: `kind` is one of \
     `invalid_input`, `corrupt`, `backend`, `quota_exceeded`, `conflict`, `other`; \
     the message never contains a token's secret values."
);

create_exception!(
    _native,
    AuthError,
    PyException,
    "A managed refresh (or grant exchange) failed. `args` is `(kind, message)`: `kind` is one \
     of `rejected` (Zoho refused the refresh token or client: not retried until a token is \
     saved again), `throttled` (Zoho's rate limit), `transport`, `unexpected_response`, \
     `invalid_input` (e.g. no accounts server for the token), `not_found`, `other`; the \
     message never contains a token's secret values."
);

/// The one runtime every store of the process blocks on.
fn runtime() -> PyResult<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("zoho-token-store")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}")))
}

/// The Python exception for a store error: its kind and the crate's message.
fn store_error(error: &CoreError) -> PyErr {
    let kind = match error {
        CoreError::InvalidInput { .. } => "invalid_input",
        CoreError::Corrupt { .. } => "corrupt",
        CoreError::Backend { .. } => "backend",
        CoreError::QuotaExceeded { .. } => "quota_exceeded",
        CoreError::Conflict { .. } => "conflict",
        _ => "other",
    };
    StoreError::new_err((kind, error.to_string()))
}

/// The Python exception for a failed managed refresh: a `StoreError` when
/// the store failed, else an `AuthError` with its kind and the crate's message.
fn auth_error(error: &CoreAuthError) -> PyErr {
    let kind = match error {
        CoreAuthError::Store(error) => return store_error(error),
        // Kinds as before these variants: a wait that gave up was a store
        // conflict, another process's failure a transport one.
        CoreAuthError::LeaseWaitTimedOut { .. } => {
            return StoreError::new_err(("conflict", error.to_string()));
        }
        CoreAuthError::FailedElsewhere { .. } => "transport",
        CoreAuthError::ClientSetup { .. } => "invalid_input",
        CoreAuthError::Rejected { .. } => "rejected",
        CoreAuthError::Throttled { .. } => "throttled",
        CoreAuthError::Transport { .. } => "transport",
        CoreAuthError::UnexpectedResponse { .. } => "unexpected_response",
        CoreAuthError::InvalidInput { .. } => "invalid_input",
        CoreAuthError::NotFound { .. } => "not_found",
        _ => "other",
    };
    AuthError::new_err((kind, error.to_string()))
}

/// A token dict's value as the JSON value of the token field `key`: a
/// `str`, an `int` or `None`.
fn json_of(key: &str, value: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    if value.is_none() {
        Ok(serde_json::Value::Null)
    } else if let Ok(text) = value.extract::<String>() {
        Ok(text.into())
    } else if let Ok(number) = value.extract::<i64>() {
        Ok(number.into())
    } else {
        Err(PyTypeError::new_err(format!(
            "token field {key} must be a str, an int or None"
        )))
    }
}

/// A token dict as the crate's `OAuthToken`, through the token's serde
/// fields (`OAuthToken::from_fields`): its keys are the field names, and
/// an unknown key or a value of the wrong type is a `TypeError` naming the
/// field (a misspelt field would otherwise be silently dropped).
fn token_from_dict(dict: &Bound<'_, PyDict>) -> PyResult<OAuthToken> {
    let mut fields = serde_json::Map::new();
    for (key, value) in dict.iter() {
        let key: String = key
            .extract()
            .map_err(|_| PyTypeError::new_err("token dict keys must be str"))?;
        let value = json_of(&key, &value)?;
        fields.insert(key, value);
    }
    OAuthToken::from_fields(fields).map_err(|e| match e {
        CoreError::InvalidInput { reason } => PyTypeError::new_err(reason),
        other => store_error(&other),
    })
}

/// The crate's `OAuthToken` as a token dict with every field (absent ones
/// `None`), through its serde encoding.
fn token_to_dict<'py>(py: Python<'py>, token: &OAuthToken) -> PyResult<Bound<'py, PyDict>> {
    let json = serde_json::to_value(token)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot encode a token: {e}")))?;
    let dict = PyDict::new(py);
    for name in OAuthToken::FIELDS {
        match json.get(name) {
            Some(serde_json::Value::String(text)) => dict.set_item(name, text)?,
            Some(serde_json::Value::Number(number)) => dict.set_item(name, number.as_i64())?,
            _ => dict.set_item(name, py.None())?,
        }
    }
    Ok(dict)
}

/// The crate's `SecretsManagerStore`, with blocking methods that take and
/// return token dicts. Use it through `zoho_token_store.SecretsManagerStore`.
///
/// Instances are safe to share between threads: they share one cache and
/// index, as clones of the Rust store do.
#[pyclass(frozen, module = "zoho_token_store._native")]
struct NativeStore {
    store: SecretsManagerStore,
    /// Managed refresh on the same store (its clone shares the cache and
    /// index); `None` when turned off.
    auth: Option<ZohoAuth>,
    /// Where a token with no Zoho `api_domain` is refreshed when the caller
    /// names no accounts URL (the store's `accounts_url` option).
    accounts_url: Option<String>,
}

impl NativeStore {
    /// Where a token with no Zoho `api_domain` is refreshed: the caller's
    /// accounts URL (the SDK environment's), else the store's, else nowhere.
    fn fallback(&self, sdk_accounts_url: Option<String>) -> PyResult<AccountsFallback> {
        match sdk_accounts_url.or_else(|| self.accounts_url.clone()) {
            Some(url) => AccountsFallback::token_url(url).map_err(|e| auth_error(&e)),
            None => Ok(AccountsFallback::Refuse),
        }
    }
}

#[pymethods]
impl NativeStore {
    /// Builds the store. No network call is made until the first operation.
    ///
    /// - `prefix`: the namespace of every secret (`{prefix}/tokens/{id}`,
    ///   `{prefix}/index/...`).
    /// - `endpoint_url`, `region_name`: override the AWS configuration that
    ///   is otherwise read from the environment (`AWS_ENDPOINT_URL`,
    ///   `AWS_REGION`, ...), as boto3's arguments of the same names do.
    /// - `cache_ttl`: seconds a token read is served from cache (never past
    ///   its own expiry); `cache_capacity`: tokens the cache holds at most.
    /// - `recovery_window_days`: schedule deletions with this recovery window
    ///   (7 to 30) instead of deleting at once.
    /// - `attempt_timeout`, `operation_timeout`: seconds for one HTTP attempt
    ///   and for one API call with its retries.
    /// - `managed_refresh`: answer `find_token` / `find_token_by_id` with a
    ///   valid access token, refreshed through `ZohoAuth` when less than
    ///   `refresh_ahead` seconds are left; `refresh_timeout`: seconds for one
    ///   call to Zoho's accounts server; `accounts_url`: where tokens whose
    ///   `api_domain` names no Zoho data center are refreshed when the caller
    ///   names no accounts URL (a full token URL or a base URL).
    #[new]
    #[pyo3(signature = (
        prefix,
        *,
        managed_refresh=true,
        refresh_ahead=300.0,
        accounts_url=None,
        refresh_timeout=None,
        endpoint_url=None,
        region_name=None,
        cache_ttl=300.0,
        cache_capacity=None,
        recovery_window_days=None,
        attempt_timeout=None,
        operation_timeout=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        prefix: String,
        managed_refresh: bool,
        refresh_ahead: f64,
        accounts_url: Option<String>,
        refresh_timeout: Option<f64>,
        endpoint_url: Option<String>,
        region_name: Option<String>,
        cache_ttl: f64,
        cache_capacity: Option<u64>,
        recovery_window_days: Option<u8>,
        attempt_timeout: Option<f64>,
        operation_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value).map_err(|_| {
                StoreError::new_err((
                    "invalid_input",
                    format!("{name} must be a finite number of seconds >= 0, not {value}"),
                ))
            })
        };
        let mut builder = SecretsManagerStore::builder()
            .prefix(prefix)
            .cache_ttl(seconds("cache_ttl", cache_ttl)?);
        if let Some(capacity) = cache_capacity {
            builder = builder.cache_capacity(capacity);
        }
        if let Some(days) = recovery_window_days {
            builder = builder.deletion_mode(DeletionMode::RecoveryWindow { days });
        }
        if let Some(timeout) = attempt_timeout {
            builder = builder.attempt_timeout(seconds("attempt_timeout", timeout)?);
        }
        if let Some(timeout) = operation_timeout {
            builder = builder.operation_timeout(seconds("operation_timeout", timeout)?);
        }
        let rt = runtime()?;
        let config = py.detach(|| {
            rt.block_on(async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
                if let Some(url) = endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                if let Some(region) = region_name {
                    loader = loader.region(aws_config::Region::new(region));
                }
                loader.load().await
            })
        });
        let store = builder
            .sdk_config(&config)
            .build()
            .map_err(|e| store_error(&e))?;
        if let Some(url) = &accounts_url {
            AccountsFallback::token_url(url.as_str()).map_err(|e| auth_error(&e))?;
        }
        let auth = if managed_refresh {
            let mut builder = ZohoAuth::builder(store.clone())
                .refresh_ahead(seconds("refresh_ahead", refresh_ahead)?);
            if let Some(timeout) = refresh_timeout {
                builder = builder.timeout(seconds("refresh_timeout", timeout)?);
            }
            Some(builder.build().map_err(|e| auth_error(&e))?)
        } else {
            None
        };
        Ok(Self {
            store,
            auth,
            accounts_url,
        })
    }

    /// Whether `find_token` / `find_token_by_id` refresh (managed refresh).
    #[getter]
    fn managed_refresh(&self) -> bool {
        self.auth.is_some()
    }

    /// The prefix of the store's secrets.
    #[getter]
    fn prefix(&self) -> &str {
        self.store.prefix()
    }

    /// The stored token that `query` matches; `None` when none matches. A
    /// query with nothing to match on is a `StoreError` of kind
    /// `invalid_input`.
    ///
    /// Without managed refresh, every field `query` sets is taken from
    /// `query` (Zoho's merge). With it, the token is answered as stored,
    /// with an access token that has more than `refresh_ahead` left
    /// (refreshed first if needed; a grant in a query that matches nothing
    /// is exchanged), or at least 5 s when a refresh failed; otherwise the
    /// refresh's `AuthError`. `accounts_url` is the SDK environment's (see
    /// the class).
    #[pyo3(signature = (query, accounts_url=None))]
    fn find_token<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyDict>,
        accounts_url: Option<String>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let query = token_from_dict(query)?;
        let rt = runtime()?;
        let found = match &self.auth {
            None => py
                .detach(|| rt.block_on(self.store.find_token(&query)))
                .map_err(|e| store_error(&e))?,
            Some(auth) => {
                let fallback = self.fallback(accounts_url)?;
                py.detach(|| rt.block_on(auth.managed_find_token(&query, &fallback)))
                    .map_err(|e| auth_error(&e))?
            }
        };
        found.map(|token| token_to_dict(py, &token)).transpose()
    }

    /// The stored token that `query` matches, as stored, never refreshed
    /// (also under managed refresh), with every field `query` sets taken
    /// from `query`; `None` when none matches. What a save or a deletion
    /// looks up first (the v2 SDK's store: a user's one token). A query
    /// with nothing to match on is a `StoreError` of kind `invalid_input`.
    fn find_stored<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let query = token_from_dict(query)?;
        let rt = runtime()?;
        py.detach(|| rt.block_on(self.store.find_token(&query)))
            .map_err(|e| store_error(&e))?
            .map(|token| token_to_dict(py, &token))
            .transpose()
    }

    /// The token stored under `id`, or `None`; with managed refresh, with a
    /// valid access token as `find_token` answers it.
    #[pyo3(signature = (id, accounts_url=None))]
    fn find_token_by_id<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        accounts_url: Option<String>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let rt = runtime()?;
        let found = match &self.auth {
            None => py
                .detach(|| rt.block_on(self.store.find_token_by_id(id)))
                .map_err(|e| store_error(&e))?,
            Some(auth) => {
                let fallback = self.fallback(accounts_url)?;
                py.detach(|| rt.block_on(auth.managed_find_token_by_id(id, &fallback)))
                    .map_err(|e| auth_error(&e))?
            }
        };
        found.map(|token| token_to_dict(py, &token)).transpose()
    }

    /// Saves `token` (an upsert) and returns what is stored, `id` included.
    fn save_token<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut token = token_from_dict(token)?;
        let rt = runtime()?;
        py.detach(|| rt.block_on(self.store.save_token(&mut token)))
            .map_err(|e| store_error(&e))?;
        token_to_dict(py, &token)
    }

    /// Deletes the token stored under `id`; returns whether one was stored
    /// (the deletion itself is idempotent).
    fn delete_token(&self, py: Python<'_>, id: &str) -> PyResult<bool> {
        let rt = runtime()?;
        py.detach(|| {
            rt.block_on(async {
                let existed = self.store.find_token_by_id(id).await?.is_some();
                self.store.delete_token(id).await?;
                Ok::<_, CoreError>(existed)
            })
        })
        .map_err(|e| store_error(&e))
    }

    /// Every stored token, in no particular order.
    fn get_tokens<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let rt = runtime()?;
        let tokens = py
            .detach(|| rt.block_on(self.store.get_tokens()))
            .map_err(|e| store_error(&e))?;
        tokens
            .iter()
            .map(|token| token_to_dict(py, token))
            .collect()
    }

    /// Deletes every stored token.
    fn delete_tokens(&self, py: Python<'_>) -> PyResult<()> {
        let rt = runtime()?;
        py.detach(|| rt.block_on(self.store.delete_tokens()))
            .map_err(|e| store_error(&e))
    }

    /// Shows the prefix and whether refresh is managed: no token, no credential.
    fn __repr__(&self) -> String {
        format!(
            "NativeStore(prefix={:?}, managed_refresh={})",
            self.store.prefix(),
            if self.auth.is_some() { "True" } else { "False" }
        )
    }
}

/// The extension module `zoho_token_store._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeStore>()?;
    m.add("StoreError", m.py().get_type::<StoreError>())?;
    m.add("AuthError", m.py().get_type::<AuthError>())?;
    Ok(())
}
