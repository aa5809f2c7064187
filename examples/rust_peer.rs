//! A Rust program on the same prefix as the Python and Node packages' tests:
//! it saves and reads tokens with the crate's `SecretsManagerStore`, and gets
//! access tokens with its `ZohoAuth`, so that `pytest` and `node --test` can
//! check that Python, Node and Rust read each other's tokens and share one
//! refresh. Both suites build it from this crate's manifest
//! (`cargo build --example rust_peer`).
//!
//! ```text
//! rust_peer save PREFIX          # token JSON on stdin; prints the stored token's JSON
//! rust_peer find-by-id PREFIX ID # prints the token's JSON, or null
//! rust_peer find-user PREFIX USER
//! rust_peer access-token PREFIX USER ACCOUNTS_URL GO_AT_MS CALLERS
//!     # at GO_AT_MS (Unix ms), CALLERS concurrent `ZohoAuth::access_token`
//!     # for USER, refreshing at ACCOUNTS_URL; prints a JSON list of the
//!     # bearer values (or {"error": ...} for each that failed)
//! ```
//!
//! The AWS configuration comes from the environment (`AWS_ENDPOINT_URL`, ...).
//! It prints token values: it is a test helper, run only on test tokens.

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zoho_token_store::auth::ZohoAuth;
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

/// `CALLERS` concurrent access tokens for `user`, from `GO_AT_MS` on.
async fn access_tokens(
    store: SecretsManagerStore,
    user: &str,
    accounts_url: &str,
    go_at_ms: &str,
    callers: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let auth = ZohoAuth::builder(store)
        .accounts_url(accounts_url)
        .build()?;
    let go_at = UNIX_EPOCH + Duration::from_millis(go_at_ms.parse()?);
    if let Ok(wait) = go_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    let query = OAuthToken::for_user(user);
    let calls = (0..callers.parse::<usize>()?).map(|_| {
        let (auth, query) = (auth.clone(), query.clone());
        tokio::spawn(async move { auth.access_token(&query).await })
    });
    let mut answers = Vec::new();
    for call in calls {
        answers.push(match call.await? {
            Ok(token) => serde_json::Value::from(token.as_str()),
            Err(error) => serde_json::json!({ "error": error.to_string() }),
        });
    }
    Ok(serde_json::to_string(&answers)?)
}

async fn run(args: &[String]) -> Result<String, Box<dyn std::error::Error>> {
    let [command, prefix, rest @ ..] = args else {
        return Err(
            "usage: rust_peer save|find-by-id|find-user|access-token PREFIX [ARG...]".into(),
        );
    };
    let store = SecretsManagerStore::from_env(prefix.as_str()).await?;
    if let ("access-token", [user, accounts_url, go_at_ms, callers]) = (command.as_str(), rest) {
        return access_tokens(store, user, accounts_url, go_at_ms, callers).await;
    }
    let found = match (command.as_str(), rest) {
        ("save", []) => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let mut token: OAuthToken = serde_json::from_str(&input)?;
            store.save_token(&mut token).await?;
            Some(token)
        }
        ("find-by-id", [id]) => store.find_token_by_id(id).await?,
        ("find-user", [user]) => {
            store
                .find_token(&OAuthToken::for_user(user.as_str()))
                .await?
        }
        _ => return Err(format!("unknown command {command:?} or wrong arguments").into()),
    };
    Ok(serde_json::to_string(&found)?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rust_peer: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("rust_peer: {error}");
            ExitCode::FAILURE
        }
    }
}
