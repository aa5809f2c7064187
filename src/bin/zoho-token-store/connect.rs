//! The store the commands work on: a Secrets Manager client from the usual
//! AWS environment, with the run's [`Meter`] on it.

use std::time::Duration;

use anyhow::Context as _;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use zoho_token_store::SecretsManagerStore;

use crate::meter::Meter;

/// A store under `prefix`. An ops run walks many secrets, so it is more
/// patient than a Lambda: 10 attempts per call, 20 s per attempt, 60 s per
/// call.
pub(crate) async fn store(prefix: &str, meter: &Meter) -> anyhow::Result<SecretsManagerStore> {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(10))
        .load()
        .await;
    let client_config = aws_sdk_secretsmanager::config::Builder::from(&config)
        .interceptor(meter.interceptor())
        .build();
    SecretsManagerStore::builder()
        .client(aws_sdk_secretsmanager::Client::from_conf(client_config))
        .prefix(prefix)
        .attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build()
        .with_context(|| format!("cannot open the store under prefix {prefix:?}"))
}
