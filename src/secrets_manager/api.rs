//! The Secrets Manager calls the store makes, each counted for its tracing
//! span and mapped to the outcomes the store acts on.

use std::cell::Cell;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Failure, StoreError};

tokio::task_local! {
    /// API calls made by the store operation running in this task.
    static CALLS: Cell<u32>;
}

/// Runs `operation` counting the API calls it makes; returns its result and the count.
pub(crate) async fn counting_calls<T>(operation: impl Future<Output = T>) -> (T, u32) {
    CALLS
        .scope(Cell::new(0), async {
            let result = operation.await;
            (result, CALLS.with(Cell::get))
        })
        .await
}

fn count_call() {
    let _ = CALLS.try_with(|calls| calls.set(calls.get() + 1));
}

/// The `Display` of `error` and of each of its sources, joined by `: `.
///
/// Never the `Debug` of an [`SdkError`] (which `DisplayErrorContext` appends):
/// it holds the raw HTTP response, body included, and the body of a
/// `GetSecretValue` or `BatchGetSecretValue` response the SDK failed to parse
/// is the secret values in clear.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Error codes of Secrets Manager (and of AWS services in general) that mean
/// "busy or broken for now": the same request may succeed later.
const RETRYABLE_CODES: [&str; 12] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "InternalServiceError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The code of a write refused by a Secrets Manager quota, e.g. more
/// versions of one secret within 24 hours than it keeps.
const QUOTA_CODE: &str = "LimitExceededException";

/// Whether a service error with this code (and HTTP status) may succeed if
/// sent again later.
fn is_retryable_code(code: Option<&str>, status: u16) -> bool {
    code.is_some_and(|code| RETRYABLE_CODES.contains(&code)) || status >= 500 || status == 429
}

/// A [`StoreError::Backend`] for a failed call: its message is the SDK
/// error's cause chain (never a body), classified by the SDK error kind and
/// the service's error code, so that callers can tell a throttled or broken
/// call (retryable) from a refusal (not).
fn backend<E>(operation: &str, name: &str, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let (code, retryable) = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (None, true)
        }
        SdkError::ServiceError(context) => {
            let code = context.err().code();
            (
                code,
                is_retryable_code(code, context.raw().status().as_u16()),
            )
        }
        // A request the SDK could not build fails the same way every time.
        _ => (None, false),
    };
    if code == Some(QUOTA_CODE) {
        return StoreError::QuotaExceeded {
            secret: name.to_owned(),
            reason: quota_reason(&causes(&error)),
        };
    }
    let message = causes(&error);
    StoreError::backend(
        format!("{operation} {name}"),
        Failure {
            message,
            code: code.map(str::to_owned),
            retryable,
        },
    )
}

/// Why a `LimitExceededException` refused a write, and what it means.
///
/// Retrying soon does not help: Secrets Manager keeps every version of a
/// secret for 24 hours whatever its labels, and refuses new ones past its
/// quota of about 100 versions per secret.
fn quota_reason(cause: &str) -> String {
    format!(
        "quota exceeded ({cause}). Secrets Manager keeps each version of a secret for \
         24 hours and allows about 100 versions per secret, so writes to this secret \
         fail until older versions age out"
    )
}

fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
}

fn is_marked_for_deletion<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    code(error) == Some("InvalidRequestException")
        && error
            .as_service_error()
            .and_then(ProvideErrorMetadata::message)
            .is_some_and(|m| m.to_ascii_lowercase().contains("deletion"))
}

/// A secret as read.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// The current value.
    Value {
        /// The string value; `None` for a binary secret.
        string: Option<String>,
        /// The version that holds `AWSCURRENT`.
        version_id: Option<String>,
    },
    /// No such secret.
    Absent,
    /// The secret is scheduled for deletion.
    Deleted,
}

/// What a create did.
#[derive(Debug)]
pub(crate) enum Created {
    /// Created with this version id.
    Yes(String),
    /// A secret with the name exists already.
    Exists,
    /// A secret with the name is scheduled for deletion.
    Deleted,
}

/// What a put did.
#[derive(Debug)]
pub(crate) enum Put {
    /// Stored as this new version.
    Yes(String),
    /// No such secret.
    Absent,
    /// The secret is scheduled for deletion.
    Deleted,
}

/// The Secrets Manager client with the settings every write uses.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub(crate) client: Client,
    pub(crate) kms_key_id: Option<String>,
    pub(crate) tags: Vec<Tag>,
    /// `None`: delete at once; `Some(days)`: with a recovery window.
    pub(crate) recovery_window_days: Option<i64>,
}

impl Api {
    pub(crate) async fn get(&self, name: &str) -> Result<Fetched, StoreError> {
        count_call();
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => Ok(Fetched::Value {
                string: out.secret_string,
                version_id: out.version_id,
            }),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(Fetched::Absent),
            Err(e) if is_marked_for_deletion(&e) => Ok(Fetched::Deleted),
            Err(e) => Err(backend("GetSecretValue", name, e)),
        }
    }

    /// Reads up to 20 secrets in one call (see [`Api::batch_get_or_exact`]);
    /// absent or deleted ones are left out. Returns (name, string value or
    /// `None` for a binary secret).
    pub(crate) async fn batch_get(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let values = self.batch_get_or_exact(names).await?;
        Ok(values
            .into_iter()
            .map(|(name, value, _)| (name, value))
            .collect())
    }

    /// [`Api::batch_get_versioned`], except that a batch that fails past
    /// the SDK's retries with a retryable error (a 5xx, a timeout) is read
    /// again one secret at a time (`GetSecretValue`, 8 in flight): one failed
    /// call of a listing of thousands of tokens no longer fails it. Never
    /// leaves a secret out: if an exact read fails too, so does this.
    pub(crate) async fn batch_get_or_exact(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Option<String>, Option<String>)>, StoreError> {
        match self.batch_get_versioned(names.clone()).await {
            Err(error) if error.is_retryable() => {
                tracing::debug!(%error, secrets = names.len(), "batch read failed; reading its secrets one by one");
                let read = futures::stream::iter(names)
                    .map(|name| async move {
                        let fetched = self.get(&name).await?;
                        Ok::<_, StoreError>((name, fetched))
                    })
                    .buffer_unordered(8)
                    .try_collect::<Vec<_>>()
                    .await?;
                Ok(read
                    .into_iter()
                    .filter_map(|(name, fetched)| match fetched {
                        Fetched::Value { string, version_id } => Some((name, string, version_id)),
                        Fetched::Absent | Fetched::Deleted => None,
                    })
                    .collect())
            }
            other => other,
        }
    }

    /// One `BatchGetSecretValue` of up to 20 secrets, with each secret's
    /// current version id as the batch read reports it:
    /// (name, string value or `None` for a binary secret, version id).
    pub(crate) async fn batch_get_versioned(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Option<String>, Option<String>)>, StoreError> {
        debug_assert!(names.len() <= 20);
        count_call();
        let first = names.first().cloned().unwrap_or_default();
        let out = self
            .client
            .batch_get_secret_value()
            .set_secret_id_list(Some(names))
            .send()
            .await
            .map_err(|e| backend("BatchGetSecretValue", &first, e))?;
        if let Some(error) = out.errors().iter().find(|e| {
            !matches!(
                e.error_code(),
                Some("ResourceNotFoundException") | Some("InvalidRequestException")
            )
        }) {
            let code = error.error_code();
            return Err(StoreError::backend(
                format!(
                    "BatchGetSecretValue {}",
                    error.secret_id().unwrap_or_default()
                ),
                Failure {
                    message: format!(
                        "{}: {}",
                        code.unwrap_or("error"),
                        error.message().unwrap_or_default()
                    ),
                    code: code.map(str::to_owned),
                    // Per-secret errors carry no HTTP status of their own.
                    retryable: is_retryable_code(code, 200),
                },
            ));
        }
        Ok(out
            .secret_values
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| Some((entry.name?, entry.secret_string, entry.version_id)))
            .collect())
    }

    pub(crate) async fn create(
        &self,
        name: &str,
        value: &str,
        request_token: &str,
    ) -> Result<Created, StoreError> {
        count_call();
        let result = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value)
            .client_request_token(request_token)
            .set_kms_key_id(self.kms_key_id.clone())
            .set_tags((!self.tags.is_empty()).then(|| self.tags.clone()))
            .send()
            .await;
        match result {
            Ok(out) => Ok(Created::Yes(
                out.version_id.unwrap_or_else(|| request_token.to_owned()),
            )),
            // An SDK retry of a create that took effect (its response was
            // lost) finds the secret it made: that is this create's success,
            // not another writer's secret.
            Err(e) if code(&e) == Some("ResourceExistsException") => {
                if self.has_version(name, request_token).await? {
                    Ok(Created::Yes(request_token.to_owned()))
                } else {
                    Ok(Created::Exists)
                }
            }
            Err(e) if is_marked_for_deletion(&e) => Ok(Created::Deleted),
            Err(e) => Err(backend("CreateSecret", name, e)),
        }
    }

    /// Whether secret `name` has a version with id `version_id` (a write's
    /// `ClientRequestToken` becomes the id of the version it creates).
    async fn has_version(&self, name: &str, version_id: &str) -> Result<bool, StoreError> {
        count_call();
        let result = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_id(version_id)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(false),
            Err(e) if is_marked_for_deletion(&e) => Ok(false),
            Err(e) => Err(backend("GetSecretValue", name, e)),
        }
    }

    /// Stores a new version. With `stage`, the version gets only that label
    /// (not `AWSCURRENT`): the first half of a compare-and-swap.
    pub(crate) async fn put(
        &self,
        name: &str,
        value: &str,
        request_token: &str,
        stage: Option<&str>,
    ) -> Result<Put, StoreError> {
        match self.put_claiming(name, value, request_token, stage).await? {
            Some(put) => Ok(put),
            // A random request token is never reused with another value.
            None => Err(StoreError::Conflict {
                operation: format!("PutSecretValue {name}"),
                attempts: 1,
            }),
        }
    }

    /// [`Api::put`] whose `request_token` may already name a version with
    /// another value: `Ok(None)` then, and no version is made. Writers that
    /// derive the token from what they read all claim one version id, and
    /// only the first makes a version.
    pub(crate) async fn put_claiming(
        &self,
        name: &str,
        value: &str,
        request_token: &str,
        stage: Option<&str>,
    ) -> Result<Option<Put>, StoreError> {
        count_call();
        let result = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .client_request_token(request_token)
            .set_version_stages(stage.map(|s| vec![s.to_owned()]))
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(Put::Yes(
                out.version_id.unwrap_or_else(|| request_token.to_owned()),
            ))),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(Some(Put::Absent)),
            Err(e) if code(&e) == Some("ResourceExistsException") => Ok(None),
            Err(e) if is_marked_for_deletion(&e) => Ok(Some(Put::Deleted)),
            Err(e) => Err(backend("PutSecretValue", name, e)),
        }
    }

    /// Moves `AWSCURRENT` from version `from` to version `to`. `Ok(false)` when
    /// `AWSCURRENT` is no longer on `from`: another writer won.
    pub(crate) async fn move_current(
        &self,
        name: &str,
        to: &str,
        from: &str,
    ) -> Result<bool, StoreError> {
        count_call();
        let result = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage("AWSCURRENT")
            .move_to_version_id(to)
            .remove_from_version_id(from)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    code(&e),
                    Some("InvalidParameterException") | Some("InvalidRequestException")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("UpdateSecretVersionStage", name, e)),
        }
    }

    /// Removes staging label `stage` from version `from` (best effort cleanup).
    pub(crate) async fn remove_stage(&self, name: &str, stage: &str, from: &str) {
        count_call();
        let result = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(stage)
            .remove_from_version_id(from)
            .send()
            .await;
        if let Err(e) = result {
            tracing::debug!(secret = name, error = %causes(&e), "label cleanup failed");
        }
    }

    /// Deletes a secret (at once, or with the recovery window); an absent or
    /// already deleted secret is `Ok`.
    ///
    /// With the recovery window, the secret's value becomes a tombstone
    /// first, so that a re-save that restores it (then writes the new token)
    /// never shows readers the deleted token in between.
    pub(crate) async fn delete(&self, name: &str) -> Result<(), StoreError> {
        if self.recovery_window_days.is_some() {
            let request_token = uuid::Uuid::new_v4().to_string();
            // Absent or deleted already: nothing to hide.
            self.put(name, super::record::TOMBSTONE, &request_token, None)
                .await?;
        }
        count_call();
        let request = self.client.delete_secret().secret_id(name);
        let request = match self.recovery_window_days {
            Some(days) => request.recovery_window_in_days(days),
            None => request.force_delete_without_recovery(true),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) if is_marked_for_deletion(&e) => Ok(()),
            Err(e) => Err(backend("DeleteSecret", name, e)),
        }
    }

    /// Cancels a scheduled deletion. `Ok(false)` when it cannot be restored
    /// (e.g. an immediate delete still in flight).
    pub(crate) async fn restore(&self, name: &str) -> Result<bool, StoreError> {
        count_call();
        match self.client.restore_secret().secret_id(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(false),
            Err(e) if code(&e) == Some("InvalidRequestException") => Ok(false),
            Err(e) => Err(backend("RestoreSecret", name, e)),
        }
    }

    /// Names of the secrets whose name starts with `prefix` (not those
    /// scheduled for deletion). Used by `repair` only: the listing lags writes.
    pub(crate) async fn list_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        let mut next_token = None;
        loop {
            count_call();
            let out = self
                .client
                .list_secrets()
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(prefix)
                        .build(),
                )
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| backend("ListSecrets", prefix, e))?;
            names.extend(
                out.secret_list()
                    .iter()
                    .filter_map(|s| s.name())
                    .filter(|name| name.starts_with(prefix))
                    .map(str::to_owned),
            );
            next_token = out.next_token;
            if next_token.is_none() {
                return Ok(names);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_secretsmanager::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// The error `PutSecretValue` returns when the service answers `status`
    /// with error `code`.
    fn service_error(code: &str, status: u16) -> SdkError<PutSecretValueError, HttpResponse> {
        let error = PutSecretValueError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("refused")
                .build(),
        );
        let response = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(error, response)
    }

    fn put_failure(error: SdkError<PutSecretValueError, HttpResponse>) -> StoreError {
        backend("PutSecretValue", "zoho/crm/tokens/abc", error)
    }

    #[test]
    fn limit_exceeded_explains_the_version_quota_and_is_not_retryable() {
        let error = put_failure(service_error("LimitExceededException", 400));
        assert!(
            matches!(&error, StoreError::QuotaExceeded { secret, .. } if secret == "zoho/crm/tokens/abc"),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        assert_eq!(error.code(), Some("LimitExceededException"));
        let shown = error.to_string();
        for part in [
            "Secrets Manager refused a write to zoho/crm/tokens/abc",
            "24 hours",
            "about 100 versions per secret",
            "until older versions age out",
        ] {
            assert!(shown.contains(part), "{part:?} missing from {shown:?}");
        }
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        for (code, status) in [
            ("ThrottlingException", 400),
            ("InternalServiceError", 500),
            ("SomethingNew", 503),
            ("TooManyRequestsException", 429),
        ] {
            let error = put_failure(service_error(code, status));
            assert!(error.is_retryable(), "{code} {status}");
            assert_eq!(error.code(), Some(code));
        }
    }

    #[test]
    fn refusals_are_not_retryable() {
        for code in [
            "AccessDeniedException",
            "InvalidParameterException",
            "ResourceNotFoundException",
            "EncryptionFailure",
        ] {
            let error = put_failure(service_error(code, 400));
            assert!(!error.is_retryable(), "{code}");
            assert_eq!(error.code(), Some(code));
        }
    }

    #[test]
    fn timeouts_and_broken_connections_are_retryable_without_a_code() {
        let timeout = put_failure(SdkError::timeout_error("attempt timed out"));
        assert!(timeout.is_retryable());
        assert_eq!(timeout.code(), None);
        let dispatch = put_failure(SdkError::dispatch_failure(ConnectorError::io(
            "connection reset".into(),
        )));
        assert!(dispatch.is_retryable());
        let response = put_failure(SdkError::response_error(
            "unparseable",
            HttpResponse::new(200.try_into().unwrap(), SdkBody::empty()),
        ));
        assert!(response.is_retryable());
        let construction = put_failure(SdkError::construction_failure("missing field"));
        assert!(!construction.is_retryable());
    }
}
