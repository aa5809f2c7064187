//! `repair`: the store's repair (index entries for token secrets it misses,
//! none for secrets that are gone, a rebuild of an unreadable index), or
//! with `--dry-run` what it would do.

use anyhow::Context as _;
use zoho_token_store::{RepairReport, SecretsManagerStore};

use crate::progress;

/// Runs `repair`.
pub(crate) async fn run(store: &SecretsManagerStore, dry_run: bool) -> anyhow::Result<()> {
    let spinner = progress::spinner("repairing");
    let report = if dry_run {
        store.repair_dry_run().await
    } else {
        store.repair().await
    }
    .context("cannot repair the index")?;
    spinner.finish_and_clear();
    print!("{}", describe(&report, dry_run));
    Ok(())
}

/// The report as lines of text.
fn describe(report: &RepairReport, dry_run: bool) -> String {
    let (would, done) = if dry_run {
        ("would be ", "would list")
    } else {
        ("", "lists")
    };
    let mut out = String::new();
    let mut line = |label: &str, ids: &[String]| {
        if !ids.is_empty() {
            out.push_str(&format!("{label} ({}): {}\n", ids.len(), ids.join(", ")));
        }
    };
    line(
        &format!("{would}indexed (secret without index entry)"),
        &report.indexed,
    );
    line(
        &format!("{would}dropped (index entry without secret)"),
        &report.dropped,
    );
    line(
        "corrupt (cannot be decoded; fix or delete them)",
        &report.corrupt,
    );
    line(
        "left out (another token has their user name; delete one)",
        &report.duplicate_users,
    );
    if report.index_rebuilt {
        out.push_str(&format!("the index was unreadable and {would}rebuilt\n"));
    }
    if report.indexed.is_empty()
        && report.dropped.is_empty()
        && report.corrupt.is_empty()
        && report.duplicate_users.is_empty()
        && !report.index_rebuilt
    {
        out.push_str("the index and the token secrets agree\n");
    }
    out.push_str(&format!(
        "{}the index {done} {} token(s)\n",
        if dry_run {
            "dry run, nothing changed: "
        } else {
            ""
        },
        report.tokens
    ));
    out
}
