//! Token records: the key of each, the placeholder a save writes before it
//! claims a user name, and how a record is read.

use super::{Record, Storage, Version};
use crate::error::StoreError;
use crate::token::{OAuthToken, decode_token};

/// The prefix of token records' keys.
pub(super) const TOKEN_PREFIX: &str = "token.";

/// The key of token `id`'s record; `id` has passed `validate_id`.
pub(super) fn token_key(id: &str) -> String {
    format!("{TOKEN_PREFIX}{id}")
}

/// The value of a *reservation*: a token record that holds no token. A save
/// that gives a new token a user name writes it first, so that the token's
/// own put expects a version, never an absent record: a put expecting
/// absence could land again after the record is deleted (absent, then
/// absent again), a put expecting a version never can, since a storage
/// never hands out a version twice for one key. Readers take it for no
/// token; a save of its id writes over it; `delete_token` removes it.
pub(super) const RESERVATION: &str = r#"{"reservation":"a token is being saved here"}"#;

/// What a token record holds.
pub(super) enum Stored {
    /// No record.
    Absent,
    /// A [`RESERVATION`] at this version: no token.
    Reserved(Version),
    /// A token, and the record it was read from (boxed: a token is large).
    Token(Box<OAuthToken>, Record),
}

/// Reads token `id`'s record. `id` has passed `validate_id`.
pub(super) async fn read_stored(storage: &dyn Storage, id: &str) -> Result<Stored, StoreError> {
    let Some(record) = storage.get(&token_key(id)).await? else {
        return Ok(Stored::Absent);
    };
    decode_stored(id, record)
}

/// What `record`, token `id`'s, holds.
pub(super) fn decode_stored(id: &str, record: Record) -> Result<Stored, StoreError> {
    if record.value == RESERVATION {
        return Ok(Stored::Reserved(record.version));
    }
    Ok(Stored::Token(
        Box::new(decode_token(id, &record.value)?),
        record,
    ))
}

/// Reads token `id`'s record: the token and the record it was read from,
/// `None` when there is no token (no record, or a reservation). `id` has
/// passed `validate_id`.
pub(super) async fn read_token(
    storage: &dyn Storage,
    id: &str,
) -> Result<Option<(OAuthToken, Record)>, StoreError> {
    Ok(match read_stored(storage, id).await? {
        Stored::Token(token, record) => Some((*token, record)),
        Stored::Absent | Stored::Reserved(_) => None,
    })
}
