//! Token records: the key of each and how one is read, for every part of
//! the layer that reads or writes them.

use super::{Record, Storage};
use crate::error::StoreError;
use crate::token::{OAuthToken, decode_token};

/// The prefix of token records' keys.
pub(super) const TOKEN_PREFIX: &str = "token.";

/// The key of token `id`'s record; `id` has passed `validate_id`.
pub(super) fn token_key(id: &str) -> String {
    format!("{TOKEN_PREFIX}{id}")
}

/// Reads token `id`'s record: the token and the record it was read from.
/// `id` has passed `validate_id`.
pub(super) async fn read_token(
    storage: &dyn Storage,
    id: &str,
) -> Result<Option<(OAuthToken, Record)>, StoreError> {
    let Some(record) = storage.get(&token_key(id)).await? else {
        return Ok(None);
    };
    Ok(Some((decode_token(id, &record.value)?, record)))
}
