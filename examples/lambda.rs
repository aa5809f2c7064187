//! An AWS Lambda function that looks up a CRM user's Zoho token.
//!
//! Event: `{"user_name": "ada@example.com"}`. Answer: the token's
//! `{"id": …, "api_domain": …, "expiry_time": …}`, or `{"found": false}`;
//! never the token itself.
//!
//! The store is built once per cold start, in `main`, and every invocation
//! borrows it: its cache then survives between invocations, so a warm
//! `find_token` makes no API call. Its prefix comes from `ZOHO_TOKEN_PREFIX`
//! (default `zoho/crm`).
//!
//! Deploy with [cargo lambda](https://www.cargo-lambda.info/):
//!
//! ```text
//! cargo lambda build --release --arm64 --example lambda
//! cargo lambda deploy --role <role-arn> --env-var ZOHO_TOKEN_PREFIX=zoho/crm lambda
//! cargo lambda invoke --remote --data-ascii '{"user_name": "ada@example.com"}' lambda
//! ```
//!
//! The role needs `examples/iam-policy.json` (for prefix `zoho/crm`). A function
//! that only reads, like this one, needs only its `GetSecretValue` and
//! `BatchGetSecretValue` statements; `ListSecrets` is for `repair()` alone.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

#[derive(Deserialize)]
struct Request {
    user_name: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Response {
    Found {
        id: Option<String>,
        api_domain: Option<String>,
        expiry_time: Option<i64>,
    },
    NotFound {
        found: bool,
    },
}

async fn handler(
    store: &SecretsManagerStore,
    event: LambdaEvent<Request>,
) -> Result<Response, Error> {
    let query = OAuthToken::for_user(event.payload.user_name);
    Ok(match store.find_token(&query).await? {
        Some(token) => Response::Found {
            id: token.id,
            api_domain: token.api_domain,
            expiry_time: token.expiry_time,
        },
        None => Response::NotFound { found: false },
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Logs to CloudWatch; the store's `token_store` spans show at
    // AWS_LAMBDA_LOG_LEVEL=debug (they name ids and call counts, never secrets).
    lambda_runtime::tracing::init_default_subscriber();

    // Once per cold start: `from_env` loads the function's credentials and
    // region; `build` makes no network call.
    let prefix = std::env::var("ZOHO_TOKEN_PREFIX").unwrap_or_else(|_| "zoho/crm".to_owned());
    let store = SecretsManagerStore::from_env(prefix).await?;

    let store = &store;
    lambda_runtime::run(service_fn(move |event| handler(store, event))).await
}
