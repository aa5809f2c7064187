//! `delete`: tokens by id, by user name, or all of them.

use anyhow::Context as _;
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore, validate_id};

use crate::progress;

/// Runs `delete` for `ids`, or the token of `user`, or every token (`all`).
pub(crate) async fn run(
    store: &SecretsManagerStore,
    ids: &[String],
    user: Option<&str>,
    all: bool,
) -> anyhow::Result<()> {
    if all {
        let spinner = progress::spinner("deleting every token");
        store
            .delete_tokens()
            .await
            .context("cannot delete every token")?;
        spinner.finish_and_clear();
        println!("deleted every token under {}", store.prefix());
        return Ok(());
    }
    if let Some(user) = user {
        let found = store
            .find_token(&OAuthToken::for_user(user))
            .await
            .with_context(|| format!("cannot look up user {user:?}"))?;
        let Some(id) = found.and_then(|t| t.id) else {
            println!("no stored token has user {user:?}: nothing deleted");
            return Ok(());
        };
        store
            .delete_token(&id)
            .await
            .with_context(|| format!("cannot delete token {id}"))?;
        println!("deleted {id} (user {user})");
        return Ok(());
    }
    // Check every id before deleting any.
    for id in ids {
        validate_id(id)?;
    }
    let bar = progress::bar(ids.len() as u64, "deleting");
    for id in ids {
        store
            .delete_token(id)
            .await
            .with_context(|| format!("cannot delete token {id}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("deleted {} token(s)", ids.len());
    Ok(())
}
