//! A Rust program on the same prefix as the Node tests: it saves and reads
//! tokens with the crate's `SecretsManagerStore`, so that `node --test` can
//! check that Node and Rust read each other's tokens (a copy of the Python
//! package's peer, so that the Node tests build no PyO3).
//!
//! ```text
//! rust_peer save PREFIX          # token JSON on stdin; prints the stored token's JSON
//! rust_peer find-by-id PREFIX ID # prints the token's JSON, or null
//! rust_peer find-user PREFIX USER
//! ```
//!
//! The AWS configuration comes from the environment (`AWS_ENDPOINT_URL`, ...).
//! It prints token values: it is a test helper, run only on test tokens.

use std::io::Read;
use std::process::ExitCode;

use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

async fn run(args: &[String]) -> Result<String, Box<dyn std::error::Error>> {
    let [command, prefix, rest @ ..] = args else {
        return Err("usage: rust_peer save|find-by-id|find-user PREFIX [ARG]".into());
    };
    let store = SecretsManagerStore::from_env(prefix.as_str()).await?;
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
