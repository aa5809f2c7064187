//! A fake Zoho on loopback for running `examples/lambda.rs` locally: the
//! test suite's fake accounts server and CRM endpoint (`tests/fake_zoho`),
//! plus one stored token to call it with.
//!
//! It saves a token for `ada@example.com` (a refresh token the fake accepts,
//! no access token, as after an import) in the store at `ZOHO_TOKEN_PREFIX`
//! (default `zoho/crm-local`) on the Secrets Manager of the environment
//! (LocalStack: `AWS_ENDPOINT_URL`), then serves on `ZOHO_FAKE_ADDR`
//! (default `127.0.0.1:9090`) until Ctrl-C, printing each call's count.
//!
//! ```text
//! cargo run --example fake_zoho
//! ```
//!
//! docs/lambda.md ("The Lambda example, locally") has the whole recipe.

#[path = "../tests/fake_zoho/mod.rs"]
mod fake_zoho;

use std::sync::atomic::Ordering;
use std::time::Duration;

use fake_zoho::{CLIENT_ID, CLIENT_SECRET, Fake};
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

const USER: &str = "ada@example.com";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let addr = env("ZOHO_FAKE_ADDR").unwrap_or_else(|| "127.0.0.1:9090".to_owned());
    let prefix = env("ZOHO_TOKEN_PREFIX").unwrap_or_else(|| "zoho/crm-local".to_owned());

    let fake = Fake::start_on(&addr).await;
    let store = SecretsManagerStore::from_env(prefix.clone()).await?;
    let mut token = OAuthToken {
        user_name: Some(USER.into()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        refresh_token: Some(fake.refresh_token_of(USER, "Ada Lovelace")),
        ..OAuthToken::default()
    };
    // A token saved by an earlier run is replaced (its access token was
    // issued by an earlier fake), keeping its id.
    if let Some(old) = store.find_token(&OAuthToken::for_user(USER)).await?
        && let Some(id) = old.id
    {
        store.delete_token(&id).await?;
        token.id = Some(id);
    }
    store.save_token(&mut token).await?;
    println!(
        "fake Zoho at {}: accounts server /oauth/v2/token, CRM /crm/v8/users",
        fake.url()
    );
    println!(
        "saved a token for {USER} as id {} under prefix {prefix:?}; Ctrl-C to stop",
        token.id.as_deref().unwrap_or_default()
    );

    let mut seen = (0, 0);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let now = (fake.calls(), fake.crm_calls.load(Ordering::SeqCst));
        if now != seen {
            println!("calls so far: accounts server {}, CRM {}", now.0, now.1);
            seen = now;
        }
    }
    Ok(())
}
