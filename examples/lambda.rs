//! An AWS Lambda function that calls Zoho CRM for a user: it gets the user's
//! access token through [`ZohoAuth`] (refreshed once for the whole fleet
//! when it is about to expire) and answers who the CRM says the user is.
//!
//! Event: `{"user_name": "ada@example.com"}`. Answer:
//! `{"user_name": "ada@example.com", "full_name": "Ada Lovelace", "email": …}`
//! from `GET {api_domain}/crm/v8/users?type=CurrentUser`; never a token.
//!
//! The store and `ZohoAuth` are built once per cold start, in `main`, and
//! every invocation borrows them: the store's cache and the access token
//! then survive between invocations, so a warm invocation makes no Secrets
//! Manager call and no call to Zoho's accounts server, only the CRM call.
//!
//! Settings (environment):
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `ZOHO_TOKEN_PREFIX` | `zoho/crm` | the store's prefix |
//! | `ZOHO_DATA_CENTER` | `us` | `us`, `eu`, `in`, `cn`, `jp`, `au`, `ca` or `sa` |
//! | `ZOHO_ACCOUNTS_URL` | the data center's | an accounts server to use instead (tests) |
//! | `ZOHO_API_DOMAIN` | the token's | a CRM API origin to use instead (tests) |
//!
//! Run it locally under cargo-lambda's emulator, against LocalStack and the
//! fake Zoho of `examples/fake_zoho.rs`: see docs/lambda.md ("The Lambda
//! example, locally"). Deploy with [cargo lambda](https://www.cargo-lambda.info/):
//!
//! ```text
//! cargo lambda build --release --arm64 --example lambda
//! cargo lambda deploy --role <role-arn> --env-var ZOHO_DATA_CENTER=eu lambda
//! cargo lambda invoke --remote --data-ascii '{"user_name": "ada@example.com"}' lambda
//! ```
//!
//! The role needs `examples/iam-policy.json` (for prefix `zoho/crm`): a
//! refresh reads and writes the token's secret (`GetSecretValue`,
//! `PutSecretValue`, `UpdateSecretVersionStage`), and the first lookup of a
//! user reads the user's token secret (`GetSecretValue`), then, for a token
//! imported under an id of its own, the index (`BatchGetSecretValue`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zoho_token_store::auth::{AccessToken, DataCenter, ZohoAuth};
use zoho_token_store::{OAuthToken, SecretsManagerStore};

#[derive(Deserialize)]
struct Request {
    user_name: String,
}

#[derive(Serialize)]
struct Response {
    user_name: String,
    full_name: Option<String>,
    email: Option<String>,
}

/// What an invocation needs, built once per cold start.
struct Function {
    auth: ZohoAuth,
    http: reqwest::Client,
    data_center: DataCenter,
    api_domain: Option<String>,
}

/// What the CRM answered.
enum Crm {
    User(Value),
    /// 401 `INVALID_TOKEN`: Zoho no longer accepts this access token.
    InvalidToken,
}

impl Function {
    async fn handle(&self, event: LambdaEvent<Request>) -> Result<Response, Error> {
        let query = OAuthToken::for_user(event.payload.user_name.clone());
        let mut token = self.auth.access_token(&query).await?;
        let mut user = self.current_user(&token).await?;
        if let Crm::InvalidToken = user {
            // Invalidated at Zoho (e.g. a 16th access token was issued):
            // another instance may have stored a newer one already; else
            // this refreshes. Once only: a second 401 is an error.
            self.auth.invalidate(&token).await;
            token = self.auth.access_token(&query).await?;
            user = self.current_user(&token).await?;
        }
        let Crm::User(user) = user else {
            return Err("Zoho CRM answered 401 INVALID_TOKEN for a new access token".into());
        };
        let field = |name: &str| user[name].as_str().map(str::to_owned);
        Ok(Response {
            user_name: event.payload.user_name,
            full_name: field("full_name"),
            email: field("email"),
        })
    }

    /// `GET {api_domain}/crm/v8/users?type=CurrentUser`.
    async fn current_user(&self, token: &AccessToken) -> Result<Crm, Error> {
        let url = format!("{}/crm/v8/users?type=CurrentUser", self.api_domain(token));
        let answer = self
            .http
            .get(url)
            .header(
                "Authorization",
                format!("Zoho-oauthtoken {}", token.as_str()),
            )
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        if status == reqwest::StatusCode::UNAUTHORIZED && body["code"] == "INVALID_TOKEN" {
            return Ok(Crm::InvalidToken);
        }
        if !status.is_success() {
            // Zoho's error code and message name no secret.
            return Err(format!(
                "Zoho CRM answered {status}: {} {}",
                body["code"], body["message"]
            )
            .into());
        }
        Ok(Crm::User(body["users"][0].clone()))
    }

    /// Where the access token may be sent: the configured API origin, else
    /// the token's `api_domain` if it is Zoho's, else the data center's.
    fn api_domain(&self, token: &AccessToken) -> String {
        if let Some(domain) = &self.api_domain {
            return domain.clone();
        }
        match token.api_domain() {
            Some(domain) if DataCenter::from_api_domain(domain).is_some() => domain.to_owned(),
            _ => self.data_center.api_domain().to_owned(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Logs to CloudWatch; the store's spans and ZohoAuth's events show at
    // AWS_LAMBDA_LOG_LEVEL=debug (ids and counts, never a secret value).
    lambda_runtime::tracing::init_default_subscriber();
    // ZohoAuth's HTTPS goes through the AWS SDK's TLS stack (rustls with
    // aws-lc-rs), and the crate's reqwest brings no crypto provider of its
    // own: this function's CRM client uses the same one, made the default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    // Once per cold start: `from_env` loads the function's credentials and
    // region; the builders make no network call.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let prefix = env("ZOHO_TOKEN_PREFIX").unwrap_or_else(|| "zoho/crm".to_owned());
    let store = SecretsManagerStore::from_env(prefix).await?;
    let data_center: DataCenter = env("ZOHO_DATA_CENTER").as_deref().unwrap_or("us").parse()?;
    let mut auth = ZohoAuth::builder(store).data_center(data_center);
    if let Some(url) = env("ZOHO_ACCOUNTS_URL") {
        auth = auth.accounts_url(url);
    }
    let function = Function {
        auth: auth.build()?,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
        data_center,
        api_domain: env("ZOHO_API_DOMAIN").map(|d| d.trim_end_matches('/').to_owned()),
    };

    let function = &function;
    lambda_runtime::run(service_fn(move |event| function.handle(event))).await
}
