//! The Zoho SDK's FileStore: a CSV file with a header row (any SDK
//! generation's, see [`columns`](super::columns)), read with a real CSV
//! parser (quoted fields may hold commas, quotes and line breaks).

use std::path::Path;

use anyhow::Context as _;
use zoho_token_store::OAuthToken;

use super::columns::{self, Column};
use super::{BadRow, Row, Rows};

/// Reads every row of the FileStore CSV at `path`.
pub(super) fn read(path: &Path) -> anyhow::Result<Rows> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header = reader
        .headers()
        .context("cannot read the header row")?
        .clone();
    if header.iter().all(str::is_empty) {
        anyhow::bail!("the file is empty: no header row");
    }
    let columns = columns::map_header(header.iter(), true)
        .map_err(|reason| anyhow::anyhow!("the header row is not a Zoho FileStore's: {reason}"))?;
    let file = path.display().to_string();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| line_at(bytes, p));
                // The csv error describes the problem (e.g. invalid UTF-8)
                // without the field's text.
                rows.push(Err(BadRow {
                    origin: format!("{file} line {line}"),
                    reason: error.to_string(),
                }));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(bytes, p));
        let origin = format!("{file} line {line}");
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != columns.len() {
            rows.push(Err(BadRow {
                origin,
                reason: format!(
                    "has {} fields where the header has {}",
                    record.len(),
                    columns.len()
                ),
            }));
            continue;
        }
        rows.push(
            token_of(columns.iter().copied().flatten().zip(record.iter())).map_or_else(
                |reason| {
                    Err(BadRow {
                        origin: origin.clone(),
                        reason,
                    })
                },
                |token| {
                    Ok(Row {
                        origin: origin.clone(),
                        token,
                    })
                },
            ),
        );
    }
    Ok(rows)
}

/// The line (from 1) where the record at `position` starts. The parser's
/// own line count lags by one after a `\r\n` (it counts the `\n` as part
/// of the next record), so the line is counted from the byte offset,
/// skipping the line break the record may start with.
fn line_at(bytes: &[u8], position: &csv::Position) -> u64 {
    let mut start = usize::try_from(position.byte())
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
}

/// A token from its (column, text) cells.
fn token_of<'a>(cells: impl Iterator<Item = (Column, &'a str)>) -> Result<OAuthToken, String> {
    let mut token = OAuthToken::default();
    for (column, text) in cells {
        columns::set(&mut token, column, Some(text))?;
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<u64> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        reader
            .records()
            .map(|r| line_at(text.as_bytes(), r.unwrap().position().unwrap()))
            .collect()
    }

    #[test]
    fn lines_are_counted_with_either_line_break() {
        assert_eq!(lines("h\na\nb\n"), [2, 3]);
        assert_eq!(lines("h\r\na\r\nb\r\n"), [2, 3]);
        assert_eq!(lines("h\n\"a\nb\"\nc\n"), [2, 4]);
    }
}
