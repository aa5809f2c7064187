//! The Zoho SDK's DBStore: a MySQL (or MariaDB) table, `oauthtoken` by
//! default, whose columns are matched by name (unknown ones ignored).

use anyhow::Context as _;
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, Value};

use super::Rows;
use super::columns;

/// Reads every row of `table` from the database `url` names
/// (`mysql://user:password@host:port/database`).
pub(crate) async fn read(url: &str, table: &str) -> anyhow::Result<Rows> {
    let shown = redacted(url);
    // The parser's message never holds the URL (nor so its password).
    let opts = Opts::from_url(url).with_context(|| format!("invalid MySQL URL {shown}"))?;
    if table.is_empty()
        || !table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        anyhow::bail!("invalid table name {table:?}: use letters, digits, _ and $");
    }
    let mut conn = Conn::new(opts)
        .await
        .with_context(|| format!("cannot connect to MySQL at {shown}"))?;
    let result: Vec<mysql_async::Row> = conn
        .query(format!("SELECT * FROM `{table}`"))
        .await
        .with_context(|| format!("cannot read table {table} at {shown}"))?;
    // Closing politely is not worth failing an import over.
    let _ = conn.disconnect().await;

    let mut rows = Vec::new();
    let Some(first) = result.first() else {
        return Ok(rows);
    };
    let names: Vec<String> = first
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let columns = columns::map_header(names.iter().map(String::as_str), false)
        .map_err(|reason| anyhow::anyhow!("table {table} is not a token table: {reason}"))?;
    for (n, row) in result.into_iter().enumerate() {
        let origin = format!("table {table} row {}", n + 1);
        let mut values = row.unwrap();
        rows.push(columns::table_row(origin, &columns, |at, column| {
            // A row shorter than its columns leaves the rest absent.
            let Some(value) = values.get_mut(at) else {
                return Ok(None);
            };
            match std::mem::replace(value, Value::NULL) {
                Value::NULL => Ok(None),
                Value::Bytes(bytes) => String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| format!("{} is not UTF-8 text", column.name())),
                Value::Int(i) => Ok(Some(i.to_string())),
                Value::UInt(u) => Ok(Some(u.to_string())),
                _ => Err(format!("{} is not text or a whole number", column.name())),
            }
        }));
    }
    Ok(rows)
}

/// `url` without its user and password, for messages.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redacted("mysql://root:s3cret@127.0.0.1:3306/zohooauth"),
            "mysql://127.0.0.1:3306/zohooauth"
        );
        assert_eq!(redacted("mysql://localhost/db"), "mysql://localhost/db");
    }
}
