//! A SQLite database with a token table shaped like the Zoho SDK's DBStore
//! (`oauthtoken`, as in Zoho's custom SQLite store examples): columns are
//! matched by name, unknown ones ignored.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::Rows;
use super::columns;

/// Reads every row of `table` in the SQLite database at `path` (read-only).
pub(super) fn read(path: &Path, table: &str) -> anyhow::Result<Rows> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .context("cannot open the database")?;
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .context("cannot list the database's tables")?;
    let Some(name) = tables.iter().find(|t| t.eq_ignore_ascii_case(table)) else {
        anyhow::bail!(
            "it has no table {table:?} (its tables: {})",
            if tables.is_empty() {
                "none".to_owned()
            } else {
                tables.join(", ")
            }
        );
    };
    let query = format!("SELECT * FROM \"{}\"", name.replace('"', "\"\""));
    let mut stmt = db
        .prepare(&query)
        .with_context(|| format!("cannot read table {name}"))?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let columns = columns::map_header(names.iter().map(String::as_str), false)
        .map_err(|reason| anyhow::anyhow!("table {name} is not a token table: {reason}"))?;
    let mut rows = Vec::new();
    let mut cursor = stmt
        .query([])
        .with_context(|| format!("cannot read table {name}"))?;
    let mut n = 0;
    while let Some(row) = cursor
        .next()
        .with_context(|| format!("cannot read table {name}"))?
    {
        n += 1;
        let origin = format!("{} table {name} row {n}", path.display());
        rows.push(columns::table_row(
            origin,
            &columns,
            |at, column| match row.get_ref(at) {
                Ok(ValueRef::Null) => Ok(None),
                Ok(ValueRef::Integer(i)) => Ok(Some(i.to_string())),
                Ok(ValueRef::Real(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Ok(Some(format!("{f:.0}")))
                }
                Ok(ValueRef::Real(_)) => Err(format!("{} holds a fraction", column.name())),
                Ok(ValueRef::Text(bytes)) => match std::str::from_utf8(bytes) {
                    Ok(text) => Ok(Some(text.to_owned())),
                    Err(_) => Err(format!("{} is not UTF-8 text", column.name())),
                },
                Ok(ValueRef::Blob(_)) => Err(format!("{} holds binary data", column.name())),
                Err(error) => Err(format!("cannot read {}: {error}", column.name())),
            },
        ));
    }
    Ok(rows)
}
