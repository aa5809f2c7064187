//! One interceptor for what a Secrets Manager client's calls do: each call
//! (once, whatever the SDK's retries), each HTTP attempt, and each call that
//! wrote a secret version, created or deleted a secret. The CLI's
//! [`Meter`](crate::meter::Meter) observes a client through it, and so do
//! the integration tests' call counter and version ledger, which include
//! this file (`#[path]` in `tests/common/mod.rs`): the library has no part
//! in it.

use std::fmt;
use std::sync::Arc;

use aws_sdk_secretsmanager::operation::create_secret::CreateSecretInput;
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretInput;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// What a call that succeeded did to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretWrite {
    /// `PutSecretValue`: a new version.
    Put,
    /// `CreateSecret`: a new secret, with its first version.
    Create,
    /// `DeleteSecret`.
    Delete,
}

impl SecretWrite {
    /// Whether it made a version of the secret (Secrets Manager keeps about
    /// 100 a secret in 24 hours). An SDK retry repeats the call's
    /// `ClientRequestToken`, which Secrets Manager treats as the same
    /// version: a call makes at most one.
    pub(crate) fn adds_version(self) -> bool {
        self != Self::Delete
    }
}

/// What a client's calls tell an observer; every method does nothing unless
/// the observer wants it.
pub(crate) trait Observe: Send + Sync + fmt::Debug {
    /// A call of `operation` (e.g. `GetSecretValue`) is about to be sent:
    /// once per call.
    fn call(&self, operation: &str) {
        let _ = operation;
    }

    /// An HTTP attempt of a call of `operation` is about to be sent: once per
    /// attempt, the SDK's retries included. It may block to pace attempts.
    fn attempt(&self, operation: &str) {
        let _ = operation;
    }

    /// A call that did `write` to `secret` succeeded (a put that later lost
    /// a compare-and-swap still made its version).
    fn secret_written(&self, secret: &str, write: SecretWrite) {
        let _ = (secret, write);
    }
}

/// The SDK interceptor that feeds an [`Observe`]r.
#[derive(Debug, Clone)]
pub(crate) struct Observer {
    name: &'static str,
    observe: Arc<dyn Observe>,
}

impl Observer {
    /// The interceptor named `name` (in the SDK's logs) that feeds `observe`.
    pub(crate) fn new(name: &'static str, observe: Arc<dyn Observe>) -> Self {
        Self { name, observe }
    }
}

/// The secret a call in flight writes, from its input.
#[derive(Debug, Clone)]
struct PendingWrite(String, SecretWrite);

impl Storable for PendingWrite {
    type Storer = StoreReplace<Self>;
}

fn operation(cfg: &ConfigBag) -> &str {
    cfg.load::<Metadata>().map_or("<unknown>", Metadata::name)
}

impl Intercept for Observer {
    fn name(&self) -> &'static str {
        self.name
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let pending = if let Some(put) = input.downcast_ref::<PutSecretValueInput>() {
            put.secret_id().map(|s| (s, SecretWrite::Put))
        } else if let Some(create) = input.downcast_ref::<CreateSecretInput>() {
            create.name().map(|s| (s, SecretWrite::Create))
        } else if let Some(delete) = input.downcast_ref::<DeleteSecretInput>() {
            delete.secret_id().map(|s| (s, SecretWrite::Delete))
        } else {
            None
        };
        if let Some((secret, write)) = pending {
            cfg.interceptor_state()
                .store_put(PendingWrite(secret.to_owned(), write));
        }
        Ok(())
    }

    fn read_after_serialization(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.observe.call(operation(cfg));
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.observe.attempt(operation(cfg));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(Ok(_)), Some(PendingWrite(secret, write))) =
            (context.output_or_error(), cfg.load::<PendingWrite>())
        {
            self.observe.secret_written(secret, *write);
        }
        Ok(())
    }
}
