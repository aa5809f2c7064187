//! `export`: every stored token to a Zoho Python SDK 8 FileStore CSV, so
//! that going back to the SDK's FileStore is one copy.
//!
//! The file holds secrets: it is created with mode 0600, written in full to
//! a temporary file beside it, then moved into place, and an existing file
//! is kept unless `--force`.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

use crate::progress;

/// The Python SDK 8 FileStore header.
pub(crate) const HEADER: [&str; 10] = [
    "id",
    "user_name",
    "client_id",
    "client_secret",
    "refresh_token",
    "access_token",
    "grant_token",
    "expiry_time",
    "redirect_uri",
    "api_domain",
];

/// Runs `export`.
pub(crate) async fn run(
    store: &SecretsManagerStore,
    file: &Path,
    force: bool,
) -> anyhow::Result<()> {
    if !force && file.exists() {
        anyhow::bail!(
            "{} exists; it would be replaced by a file of secrets (--force replaces it)",
            file.display()
        );
    }
    let spinner = progress::spinner("reading tokens");
    let mut tokens = store
        .get_tokens()
        .await
        .context("cannot read the stored tokens")?;
    spinner.finish_and_clear();
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    let csv = to_csv(&tokens)?;
    write_private(file, &csv, force)?;
    println!("exported {} token(s) to {}", tokens.len(), file.display());
    Ok(())
}

/// The FileStore CSV of `tokens`: the header, then one row per token with
/// absent values empty (as the SDK writes them).
fn to_csv(tokens: &[OAuthToken]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(HEADER)?;
    for t in tokens {
        let expiry = t.expiry_time.map(|e| e.to_string());
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        writer.write_record([
            text(&t.id),
            text(&t.user_name),
            text(&t.client_id),
            text(&t.client_secret),
            text(&t.refresh_token),
            text(&t.access_token),
            text(&t.grant_token),
            expiry.unwrap_or_default(),
            text(&t.redirect_url),
            text(&t.api_domain),
        ])?;
    }
    writer.into_inner().context("cannot encode the CSV")
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file in the
/// same folder; without `replace`, fails rather than replace an existing file.
fn write_private(path: &Path, bytes: &[u8], replace: bool) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_new(&tmp, bytes).and_then(|()| {
        if replace {
            fs::rename(&tmp, path).with_context(|| format!("cannot move it to {}", path.display()))
        } else {
            // A hard link never replaces an existing file: no window in
            // which another process's file would be overwritten.
            fs::hard_link(&tmp, path)
                .with_context(|| format!("cannot create {} (does it exist?)", path.display()))
        }
    });
    // After a rename the temporary name is gone; after a link it remains.
    let _ = fs::remove_file(&tmp);
    written
}

/// Creates `path` (which must not exist) with mode 0600 and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
