//! `stats`: the index's size, how many tokens there are and how many have
//! an expired access token, and what the store costs a month.
//!
//! The cost model: each secret (a token, or an index secret) is USD 0.40 a
//! month, and API calls USD 0.05 per 10,000; refreshing every token hourly
//! is one `PutSecretValue` per token an hour.

use anyhow::Context as _;
use zoho_token_store::{SecretsManagerStore, TokenStore};

use crate::list::now_millis;
use crate::progress;

/// USD a secret costs a month.
const SECRET_MONTHLY_USD: f64 = 0.40;
/// USD per API call.
const CALL_USD: f64 = 0.05 / 10_000.0;
/// Hourly refreshes in a 30-day month.
const REFRESHES_A_MONTH: f64 = 24.0 * 30.0;

/// Runs `stats`.
pub(crate) async fn run(store: &SecretsManagerStore) -> anyhow::Result<()> {
    let spinner = progress::spinner("reading the store");
    let index = store.index_stats().await.context("cannot read the index")?;
    let tokens = store
        .get_tokens()
        .await
        .context("cannot read the stored tokens")?;
    spinner.finish_and_clear();
    let now = now_millis();
    let expired = tokens.iter().filter(|t| t.is_expired_at(now)).count();
    let secrets = tokens.len() + index.shards;
    let storage = secrets as f64 * SECRET_MONTHLY_USD;
    let refresh = tokens.len() as f64 * REFRESHES_A_MONTH * CALL_USD;
    println!("prefix:              {}", store.prefix());
    println!("tokens:              {}", tokens.len());
    println!("expired access:      {expired} (or without expiry)");
    println!("indexed tokens:      {}", index.tokens);
    println!(
        "index secrets:       {} ({} leaves)",
        index.shards, index.leaves
    );
    println!(
        "monthly cost:        USD {:.2} for {secrets} secrets at USD {SECRET_MONTHLY_USD:.2}, \
         + USD {refresh:.2} of API calls for an hourly refresh of every token \
         (USD 0.05 per 10,000 calls)",
        storage
    );
    Ok(())
}
