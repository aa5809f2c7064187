//! Tokens read from the Zoho SDK's stores: the FileStore CSV of every SDK
//! generation, a SQLite database with an `oauthtoken` table, and the
//! DBStore MySQL table. Each source gives [`Row`]s and the [`BadRow`]s that
//! cannot be tokens, named by where they are.

mod columns;
mod csv_file;
mod mysql;
mod sqlite;

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use zoho_token_store::OAuthToken;

pub(crate) use mysql::read as read_mysql;

/// The table the Zoho SDK's DBStore (and the SQLite stores modelled on it) use.
pub(crate) const DEFAULT_TABLE: &str = "oauthtoken";

/// One token read from a source.
#[derive(Debug)]
pub(crate) struct Row {
    /// Where it is, e.g. `tokens.csv line 4` (for messages).
    pub(crate) origin: String,
    /// The token, with absent values as `None`.
    pub(crate) token: OAuthToken,
}

/// A source row that cannot be a token.
#[derive(Debug)]
pub(crate) struct BadRow {
    /// Where it is, e.g. `tokens.csv line 4`.
    pub(crate) origin: String,
    /// What is wrong with it, never a secret value.
    pub(crate) reason: String,
}

/// Every row of a source, in order.
pub(crate) type Rows = Vec<Result<Row, BadRow>>;

/// The first bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// Reads the tokens of `path`, a FileStore CSV or a SQLite database (told
/// apart by content, whatever the file is called); `table` is the SQLite
/// table to read.
pub(crate) fn read_file(path: &Path, table: &str) -> anyhow::Result<Rows> {
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    File::open(path)
        .and_then(|file| file.take(SQLITE_MAGIC.len() as u64).read_to_end(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if head == SQLITE_MAGIC {
        sqlite::read(path, table)
            .with_context(|| format!("cannot import the SQLite database {}", path.display()))
    } else {
        csv_file::read(path)
            .with_context(|| format!("cannot import {} as a Zoho FileStore CSV", path.display()))
    }
}
