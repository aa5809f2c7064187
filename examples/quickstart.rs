//! Quickstart: the `TokenStore` operations on [`SecretsManagerStore`], step by step.
//!
//! ```text
//! localstack/start                     # once; no Docker needed (see localstack/README.md)
//! cargo run --example quickstart
//! ```
//!
//! With `AWS_ENDPOINT_URL` unset it talks to LocalStack at `http://127.0.0.1:4566`
//! (credentials `test`/`test`, region `us-east-1`). With `AWS_ENDPOINT_URL` set
//! it uses `SecretsManagerStore::from_env`, the default AWS configuration chain,
//! as a deployed app would. Each run uses a fresh prefix, `zoho/quickstart/<random>`,
//! and deletes its tokens at the end (the store keeps its now empty index
//! secret, `<prefix>/index/0`: the store has no call that removes it).
//!
//! It prints ids, user names, API domains and expiry times, never a token's
//! secret values (`OAuthToken`'s `Debug` redacts them too).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

const LOCALSTACK: &str = "http://127.0.0.1:4566";
const USER: &str = "ada@example.com";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prefix = format!("zoho/quickstart/{:08x}", fastrand::u32(..));
    let store = if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        SecretsManagerStore::from_env(prefix.as_str()).await?
    } else {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(LOCALSTACK)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "localstack"))
            .load()
            .await;
        SecretsManagerStore::builder()
            .client(aws_sdk_secretsmanager::Client::new(&config))
            .prefix(prefix.as_str())
            .build()?
    };
    println!("store prefix: {}", store.prefix());

    // 1. First use: the client credentials and a refresh token (exchanged from
    //    a grant token), saved under the CRM user's name. The store picks the id.
    let mut token = OAuthToken {
        api_domain: Some("https://www.zohoapis.com".into()),
        ..OAuthToken::from_refresh_token(
            "1000.QUICKSTARTCLIENTID",
            "quickstart-client-secret",
            "1000.quickstart-refresh-token",
        )
        .with_user_name(USER)
    };
    store.save_token(&mut token).await?;
    let id = token.id.clone().expect("save_token sets the id");
    println!("1. saved:          {}", summary(&token));

    // 2. Find it by user name: how the Zoho SDK looks a token up.
    let found = store.find_token(&OAuthToken::for_user(USER)).await?;
    let found = found.expect("the token was just saved");
    println!("2. found by user:  {}", summary(&found));

    // 3. Find it by id.
    let found = store.find_token_by_id(&id).await?;
    let found = found.expect("the token was just saved");
    println!("3. found by id:    {}", summary(&found));

    // 4. The hourly refresh: a new access token and expiry for the same user.
    //    It updates the stored token in place (same id, refresh token kept)
    //    with one `PutSecretValue`.
    let mut refreshed = OAuthToken {
        access_token: Some("1000.quickstart-access-token".into()),
        expiry_time: Some(now_millis() + 3_600_000),
        ..OAuthToken::for_user(USER)
    };
    store.save_token(&mut refreshed).await?;
    assert_eq!(refreshed.id.as_deref(), Some(id.as_str()));
    assert_eq!(refreshed.refresh_token, token.refresh_token);
    println!("4. refreshed:      {}", summary(&refreshed));

    // 5. Every stored token under the prefix.
    let tokens = store.get_tokens().await?;
    println!("5. listed:         {} token(s)", tokens.len());
    for token in &tokens {
        println!("                   {}", summary(token));
    }

    // 6. Delete it; deleting is idempotent.
    store.delete_token(&id).await?;
    println!("6. deleted:        id={id}");

    // 7. Gone, for this instance at once (no stale cache).
    let gone = store.find_token_by_id(&id).await?.is_none()
        && store
            .find_token(&OAuthToken::for_user(USER))
            .await?
            .is_none();
    assert!(gone);
    println!("7. gone:           find_token_by_id and find_token answer None");

    // 8. Clean up: delete every token under the prefix.
    store.delete_tokens().await?;
    println!(
        "8. cleaned up:     {} token(s) left",
        store.get_tokens().await?.len()
    );
    Ok(())
}

/// The fields that are safe to print: never a client secret or a token.
fn summary(token: &OAuthToken) -> String {
    let expiry = token.expiry_time.map_or_else(
        || "none".to_owned(),
        |at| format!("{at} (in {} min)", (at - now_millis() + 30_000) / 60_000),
    );
    format!(
        "id={} user={} api_domain={} expiry_time={expiry}",
        token.id.as_deref().unwrap_or("-"),
        token.user_name.as_deref().unwrap_or("-"),
        token.api_domain.as_deref().unwrap_or("-"),
    )
}

/// Now, in Unix epoch milliseconds (the unit of `expiry_time`).
fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
}
