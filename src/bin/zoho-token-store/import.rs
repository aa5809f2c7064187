//! `import`: tokens from the Zoho SDK's stores into the store.
//!
//! Every row is read and checked first; a row that cannot be a token, or
//! that the store would refuse, is reported with where it is, and nothing
//! is written unless `--skip-invalid`. The rows are then compared with what
//! is stored (one `get_tokens`), by the store's own matching rules: a row
//! whose id is stored updates that token, a row without id updates the token
//! its user name (or refresh or grant token, with client credentials)
//! matches, and any other row is a new token, under its id when it has one.
//! Only new and changed tokens are saved, through the store's bulk
//! `save_tokens` in a bounded number of batches (each batch writes every
//! index secret a few times, whatever its size), so an import stays within
//! Secrets Manager's quota of versions per secret, and a second run of the
//! same import writes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use zoho_token_store::{
    LookupKey, MAX_USER_NAME_BYTES, OAuthToken, SecretsManagerStore, StoreError, TokenStore,
    encode_token, prepare_save, validate_id,
};

use crate::progress;
use crate::source::{self, BadRow, Row};

/// The default pace of writes: well under Secrets Manager's 50 a second per
/// account, leaving room for the applications that share it.
pub(crate) const DEFAULT_RATE: f64 = 20.0;

/// An import is saved in at most this many batches (plus one per
/// [`MIN_BATCH`] tokens past that): each batch writes every index secret a
/// few times, and a secret may have about 100 versions a day.
const MAX_BATCHES: usize = 20;

/// The smallest batch, so that the progress bar moves on small imports.
const MIN_BATCH: usize = 200;

/// How many times a batch is tried when Secrets Manager fails it with a
/// retryable error (saving a batch again saves nothing twice).
const ATTEMPTS: u32 = 5;

/// `import`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// FileStore CSV files or SQLite databases, told apart by content.
    #[arg(value_name = "FILE", required_unless_present = "mysql")]
    files: Vec<PathBuf>,
    /// A Zoho DBStore table to import: mysql://user:password@host:port/database
    #[arg(long, value_name = "URL")]
    mysql: Option<String>,
    /// The table of a SQLite database or of --mysql.
    #[arg(long, default_value = source::DEFAULT_TABLE, value_name = "T")]
    table: String,
    /// Import the valid rows and report the others, instead of writing nothing.
    #[arg(long)]
    skip_invalid: bool,
    /// Say what would change, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Most Secrets Manager writes per second (0: no limit).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE)]
    pub(crate) rate: f64,
}

/// What saving a row would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A new token.
    New,
    /// Updates the stored token (named by its id).
    Update,
    /// The stored token already holds what the row says.
    Unchanged,
}

/// A checked row and what saving it would do.
struct Planned {
    row: Row,
    change: Change,
    /// The id it is (or will be, when the row has one) stored under.
    id: Option<String>,
}

/// Runs `import`.
pub(crate) async fn run(store: &SecretsManagerStore, args: &ImportArgs) -> anyhow::Result<()> {
    let rows = read_all(args).await?;
    let stored = {
        let spinner = progress::spinner("reading the store");
        let stored = store
            .get_tokens()
            .await
            .context("cannot read the stored tokens")?;
        spinner.finish_and_clear();
        stored
    };
    let (planned, bad) = plan(rows, &stored);
    for bad in &bad {
        eprintln!("invalid: {}: {}", bad.origin, bad.reason);
    }
    if !bad.is_empty() && !args.skip_invalid {
        anyhow::bail!(
            "{} invalid row(s), so nothing was written (--skip-invalid imports the others)",
            bad.len()
        );
    }
    let count = |c: Change| planned.iter().filter(|p| p.change == c).count();
    let (new, updated, unchanged) = (
        count(Change::New),
        count(Change::Update),
        count(Change::Unchanged),
    );
    if args.dry_run {
        for p in planned.iter().filter(|p| p.change != Change::Unchanged) {
            let verb = if p.change == Change::New {
                "create"
            } else {
                "update"
            };
            println!(
                "would {verb} {} (user {}) from {}",
                p.id.as_deref().unwrap_or("a token with a new id"),
                p.row.token.user_name.as_deref().unwrap_or("-"),
                p.row.origin
            );
        }
        println!(
            "dry run: {new} new, {updated} updated, {unchanged} unchanged, {} invalid skipped; nothing written",
            bad.len()
        );
        return Ok(());
    }
    let mut tokens: Vec<OAuthToken> = planned
        .into_iter()
        .filter(|p| p.change != Change::Unchanged)
        .map(|p| p.row.token)
        .collect();
    save(store, &mut tokens).await?;
    println!(
        "imported: {new} new, {updated} updated, {unchanged} unchanged{}",
        if bad.is_empty() {
            String::new()
        } else {
            format!(", {} invalid skipped", bad.len())
        }
    );
    Ok(())
}

/// Every row of every source named, in order.
async fn read_all(args: &ImportArgs) -> anyhow::Result<Vec<Result<Row, BadRow>>> {
    let mut rows = Vec::new();
    for file in &args.files {
        rows.extend(source::read_file(file, &args.table)?);
    }
    if let Some(url) = &args.mysql {
        rows.extend(source::read_mysql(url, &args.table).await?);
    }
    Ok(rows)
}

/// Checks every row and decides what saving it would do against `stored`,
/// by the store's matching rules.
fn plan(rows: Vec<Result<Row, BadRow>>, stored: &[OAuthToken]) -> (Vec<Planned>, Vec<BadRow>) {
    let stored = Stored::index(stored);
    let mut claims = Claims::default();
    let mut planned = Vec::new();
    let mut bad = Vec::new();
    for row in rows {
        match row.and_then(|row| plan_row(&stored, &mut claims, row)) {
            Ok(p) => planned.push(p),
            Err(b) => bad.push(b),
        }
    }
    (planned, bad)
}

/// What saving `row` would do, given what is stored and what the earlier
/// rows claimed (which it then claims too), or why it cannot be saved.
fn plan_row(stored: &Stored<'_>, claims: &mut Claims, row: Row) -> Result<Planned, BadRow> {
    let fail = |reason: String| BadRow {
        origin: row.origin.clone(),
        reason,
    };
    check(&row.token).map_err(fail)?;
    let (change, id, merged) = stored.change(&row.token).map_err(fail)?;
    if let Some(reason) = claims.conflict(stored, &row.token, &merged, id.as_deref()) {
        return Err(fail(reason));
    }
    claims.claim(&row.token, &merged, &row.origin);
    Ok(Planned { row, change, id })
}

/// The stored tokens, indexed as the store matches a saved token.
struct Stored<'a> {
    by_id: HashMap<&'a str, &'a OAuthToken>,
    /// By (lookup field, value).
    by_key: HashMap<(&'static str, &'a str), &'a OAuthToken>,
}

impl<'a> Stored<'a> {
    fn index(stored: &'a [OAuthToken]) -> Self {
        let by_id = stored
            .iter()
            .filter_map(|t| Some((t.id.as_deref()?, t)))
            .collect();
        let mut by_key = HashMap::new();
        for token in stored {
            for (field, value) in [
                ("user_name", &token.user_name),
                ("refresh_token", &token.refresh_token),
                ("grant_token", &token.grant_token),
                ("access_token", &token.access_token),
            ] {
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                    by_key.entry((field, value)).or_insert(token);
                }
            }
        }
        Self { by_id, by_key }
    }

    /// What saving `token` would do: the change, the id it is stored under
    /// (when known) and the token written; or why the store would refuse it.
    fn change(&self, token: &OAuthToken) -> Result<(Change, Option<String>, OAuthToken), String> {
        let target = match (&token.id, LookupKey::of(token)) {
            (Some(id), _) => self.by_id.get(id.as_str()).copied(),
            (None, Some(key)) => self
                .by_key
                .get(&(key.field_name(), key_value(&key)))
                .copied(),
            (None, None) => None,
        };
        let Some(stored) = target else {
            return Ok((Change::New, token.id.clone(), token.clone()));
        };
        let (id, merged) = prepare_save(token, Some(stored)).map_err(|e| store_reason(&e))?;
        let change = if merged == *stored {
            Change::Unchanged
        } else {
            Change::Update
        };
        Ok((change, Some(id), merged))
    }

    /// The id of the stored token with user name `user`.
    fn holder_of(&self, user: &str) -> Option<&'a str> {
        self.by_key
            .get(&("user_name", user))
            .and_then(|t| t.id.as_deref())
    }
}

/// The ids, user names and lookup keys that earlier rows of this import
/// claimed, each with the row that claimed it.
#[derive(Default)]
struct Claims {
    ids: HashMap<String, String>,
    users: HashMap<String, String>,
    keys: HashMap<String, String>,
}

impl Claims {
    /// Why a row's `token`, saved as `merged` under `id`, clashes with a
    /// stored token or an earlier row, if it does.
    fn conflict(
        &self,
        stored: &Stored<'_>,
        token: &OAuthToken,
        merged: &OAuthToken,
        id: Option<&str>,
    ) -> Option<String> {
        // One token per user: the user name may belong to no other token,
        // stored or earlier in this import.
        if let Some(user) = merged.user_name.as_deref() {
            if let (Some(holder), Some(id)) = (stored.holder_of(user), id)
                && holder != id
            {
                return Some(format!(
                    "user {user:?} already has stored token {holder}; this row's token is {id}"
                ));
            }
            if let Some(earlier) = self.users.get(user) {
                return Some(format!("user {user:?} is also on {earlier}"));
            }
        }
        if let Some(id) = token.id.as_deref()
            && let Some(earlier) = self.ids.get(id)
        {
            return Some(format!("id {id} is also on {earlier}"));
        }
        let (name, field) = key_name(token)?;
        let earlier = self.keys.get(&name)?;
        Some(format!(
            "matches the same stored token as {earlier} (same {field})"
        ))
    }

    /// Claims `token`'s id, user name (of `merged`) and, without an id, its
    /// lookup key for the row at `origin`.
    fn claim(&mut self, token: &OAuthToken, merged: &OAuthToken, origin: &str) {
        if let Some((name, _)) = key_name(token) {
            self.keys.insert(name, origin.to_owned());
        }
        if let Some(user) = merged.user_name.clone() {
            self.users.insert(user, origin.to_owned());
        }
        if let Some(id) = token.id.clone() {
            self.ids.insert(id, origin.to_owned());
        }
    }
}

/// For a token without an id: its lookup key as `field:value`, and the
/// field; two such rows with one key would update one stored token.
fn key_name(token: &OAuthToken) -> Option<(String, &'static str)> {
    if token.id.is_some() {
        return None;
    }
    let key = LookupKey::of(token)?;
    Some((
        format!("{}:{}", key.field_name(), key_value(&key)),
        key.field_name(),
    ))
}

/// Why the store would refuse `token`, or `Ok`: its id, user name, size,
/// and whether it has a credential and something to match it on again.
fn check(token: &OAuthToken) -> Result<(), String> {
    if let Some(id) = &token.id {
        validate_id(id).map_err(|e| store_reason(&e))?;
    }
    if token
        .user_name
        .as_ref()
        .is_some_and(|u| u.len() > MAX_USER_NAME_BYTES)
    {
        return Err(format!("user_name is over {MAX_USER_NAME_BYTES} bytes"));
    }
    if !token.has_credential() {
        return Err("has no refresh_token, grant_token or access_token".into());
    }
    if token.id.is_none()
        && !matches!(
            LookupKey::of(token),
            Some(LookupKey::UserName(_) | LookupKey::RefreshToken(_) | LookupKey::GrantToken(_))
        )
    {
        return Err(
            "has no id, no user name, and no client id and secret with its refresh or grant \
             token: nothing would match it again, so a second import would store it twice"
                .into(),
        );
    }
    encode_token(token).map_err(|e| store_reason(&e))?;
    Ok(())
}

/// A store error's reason, without the `invalid input:` prefix.
fn store_reason(error: &StoreError) -> String {
    match error {
        StoreError::InvalidInput { reason } => reason.clone(),
        other => other.to_string(),
    }
}

/// The value a lookup key matches on.
fn key_value<'a>(key: &LookupKey<'a>) -> &'a str {
    match *key {
        LookupKey::UserName(v)
        | LookupKey::AccessToken(v)
        | LookupKey::GrantToken(v)
        | LookupKey::RefreshToken(v) => v,
    }
}

/// Saves `tokens` in bounded batches through the store's bulk path, with a
/// progress bar, retrying a batch that failed with a retryable error.
async fn save(store: &SecretsManagerStore, tokens: &mut [OAuthToken]) -> anyhow::Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let batch = batch_size(tokens.len());
    let bar = progress::bar(tokens.len() as u64, "importing");
    for chunk in tokens.chunks_mut(batch) {
        let mut attempt = 1;
        loop {
            match store.save_tokens(chunk).await {
                Ok(()) => break,
                Err(error) if error.is_retryable() && attempt < ATTEMPTS => {
                    bar.suspend(|| eprintln!("retrying a batch after: {error}"));
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(error) => {
                    bar.abandon();
                    let saved = bar.position();
                    return Err(anyhow::Error::new(error).context(format!(
                        "the import stopped after {saved} of {} tokens were saved; \
                         running it again saves the rest and nothing twice",
                        tokens.len()
                    )));
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The batch size for `n` tokens: at most [`MAX_BATCHES`] batches, each of
/// at least [`MIN_BATCH`] tokens.
fn batch_size(n: usize) -> usize {
    n.div_ceil(MAX_BATCHES).max(MIN_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, token: OAuthToken) -> Result<Row, BadRow> {
        Ok(Row {
            origin: format!("line {n}"),
            token,
        })
    }

    fn token(user: &str, refresh: &str) -> OAuthToken {
        OAuthToken::from_refresh_token("1000.C", "s", refresh).with_user_name(user)
    }

    #[test]
    fn batches_are_bounded() {
        assert_eq!(batch_size(10), 200);
        assert_eq!(batch_size(10_000), 500);
        assert!(10_000usize.div_ceil(batch_size(10_000)) <= MAX_BATCHES);
    }

    #[test]
    fn plans_new_updated_and_unchanged_rows() {
        let stored = vec![
            token("a@x", "r1").with_id("1"),
            token("b@x", "r2").with_id("2"),
        ];
        let rows = vec![
            row(2, token("a@x", "r1").with_id("1")),
            row(3, token("b@x", "r2-new")),
            row(4, token("c@x", "r3").with_id("3")),
        ];
        let (planned, bad) = plan(rows, &stored);
        assert!(bad.is_empty());
        let changes: Vec<Change> = planned.iter().map(|p| p.change).collect();
        assert_eq!(changes, [Change::Unchanged, Change::Update, Change::New]);
        assert_eq!(planned[1].id.as_deref(), Some("2"));
    }

    #[test]
    fn rejects_rows_that_clash_with_earlier_rows() {
        let by_refresh = || OAuthToken::from_refresh_token("1000.C", "s", "r3");
        let rows = vec![
            row(2, token("a@x", "r1").with_id("1")),
            row(3, token("b@x", "r2").with_id("1")),
            row(4, by_refresh()),
            row(5, by_refresh()),
            row(6, token("a@x", "r6").with_id("6")),
        ];
        let (planned, bad) = plan(rows, &[]);
        let reasons: Vec<String> = bad
            .iter()
            .map(|b| format!("{}: {}", b.origin, b.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                "line 3: id 1 is also on line 2",
                "line 5: matches the same stored token as line 4 (same refresh_token)",
                "line 6: user \"a@x\" is also on line 2",
            ]
        );
        assert_eq!(planned.len(), 2);
    }

    #[test]
    fn rejects_rows_the_store_would_refuse() {
        let stored = vec![token("a@x", "r1").with_id("1")];
        let rows = vec![
            row(2, token("a@x", "r9").with_id("9")),
            row(3, token("b@x", "r2").with_id("bad/id")),
            row(4, OAuthToken::for_user("c@x")),
            row(5, token("d@x", "r4").with_id("4")),
            row(6, token("d@x", "r5").with_id("5")),
            row(
                7,
                OAuthToken {
                    refresh_token: Some("r".into()),
                    ..OAuthToken::default()
                },
            ),
        ];
        let (planned, bad) = plan(rows, &stored);
        let origins: Vec<&str> = bad.iter().map(|b| b.origin.as_str()).collect();
        assert_eq!(origins, ["line 2", "line 3", "line 4", "line 6", "line 7"]);
        assert_eq!(planned.len(), 1);
        for b in &bad {
            assert!(
                !b.reason.contains("r9") && !b.reason.contains("r5"),
                "{}",
                b.reason
            );
        }
    }
}
