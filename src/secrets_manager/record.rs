//! A token secret's value: the token, and, while a save that changes the
//! token's lookup keys is under way, that save's *intent*.
//!
//! A save that changes what the index lists for a token (its user name, its
//! refresh or grant token) writes two things that cannot change together:
//! the token's secret and an index leaf. Whichever goes first, a failure
//! between the two would leave them disagreeing (a renamed token still
//! claiming its old user name in its secret, which a cold lookup by that
//! name trusts). So such a save goes in three steps:
//!
//! 1. the secret, by compare-and-swap: what it held, plus the new token as
//!    `"save_intent"` (readers of earlier releases ignore the field and see
//!    the token as it was);
//! 2. the index: the new keys;
//! 3. the secret, by compare-and-swap: the new token alone.
//!
//! The index write is the commit point. A reader that meets an intent asks
//! the index: if the token's entry has the intent's keys, the intent is the
//! token; else the token is what it was. A writer that meets one *settles*
//! it first (writes the index entry of the intent, then the secret to match)
//! so that no write ever drops an intent that the index may commit later.
//!
//! A store that deletes with a recovery window first writes a *tombstone*,
//! `{"deleted":true}`, as the secret's value: a re-save of the id restores
//! the secret before it writes the new token, and in between readers see
//! the tombstone (no token) rather than the deleted token's values. The
//! deleted token stays in the secret's previous version (`AWSPREVIOUS`), for
//! whoever restores it by hand.

use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::token::{MAX_TOKEN_BYTES, OAuthToken, decode_token, encode_token};

/// The field of a token secret that holds a save's intent.
const INTENT: &str = "save_intent";
/// The field of a tombstone.
const DELETED: &str = "deleted";

/// The value a token secret gets before it is deleted with a recovery window.
pub(crate) const TOMBSTONE: &str = r#"{"deleted":true}"#;

/// A token secret's value, decoded.
#[derive(Debug)]
pub(crate) struct TokenRecord {
    /// The token as it was before the intent (or the token, with none).
    pub(crate) token: OAuthToken,
    /// The token a save under way wants to store.
    pub(crate) intent: Option<OAuthToken>,
}

/// Whether a token secret's value is a [`TOMBSTONE`]: the token was deleted.
pub(crate) fn is_tombstone(json: &str) -> bool {
    json.contains(DELETED)
        && serde_json::from_str::<Map<String, Value>>(json)
            .is_ok_and(|object| object.get(DELETED) == Some(&Value::Bool(true)))
}

impl TokenRecord {
    /// Decodes token `id`'s secret value; `None` for a [`TOMBSTONE`].
    pub(crate) fn decode_live(id: &str, json: &str) -> Result<Option<Self>, StoreError> {
        if is_tombstone(json) {
            return Ok(None);
        }
        Self::decode(id, json).map(Some)
    }

    /// Decodes token `id`'s secret value.
    pub(crate) fn decode(id: &str, json: &str) -> Result<Self, StoreError> {
        let token = decode_token(id, json)?;
        let intent = match intent_json(json) {
            Some(intent) => Some(decode_token(id, &intent)?),
            None => None,
        };
        Ok(Self { token, intent })
    }
}

/// The intent of a token secret's JSON, re-encoded, if it has one.
fn intent_json(json: &str) -> Option<String> {
    // Cheap test first: nearly every secret has none.
    if !json.contains(INTENT) {
        return None;
    }
    let object: Map<String, Value> = serde_json::from_str(json).ok()?;
    match object.get(INTENT)? {
        intent @ Value::Object(_) => Some(intent.to_string()),
        _ => None,
    }
}

/// The value of token `id`'s secret while a save of `intent` is under way
/// over `current`.
pub(crate) fn encode_with_intent(
    id: &str,
    current: &OAuthToken,
    intent: &OAuthToken,
) -> Result<String, StoreError> {
    let object = |token: &OAuthToken| -> Result<Value, StoreError> {
        serde_json::from_str(&encode_token(token)?)
            .map_err(|_| StoreError::invalid_input("token JSON"))
    };
    let Value::Object(mut record) = object(current)? else {
        return Err(StoreError::invalid_input("token JSON"));
    };
    record.insert(INTENT.into(), object(intent)?);
    let json = Value::Object(record).to_string();
    if json.len() > MAX_TOKEN_BYTES {
        return Err(StoreError::invalid_input(format!(
            "token {id} with the save under way would exceed {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(user: &str, refresh: &str) -> OAuthToken {
        OAuthToken {
            id: Some("t1".into()),
            user_name: Some(user.into()),
            refresh_token: Some(refresh.into()),
            ..OAuthToken::default()
        }
    }

    #[test]
    fn an_intent_round_trips_and_plain_readers_see_the_token_as_it_was() {
        let old = token("a@x.com", "1000.old");
        let new = token("b@x.com", "1000.new");
        let json = encode_with_intent("t1", &old, &new).unwrap();
        let record = TokenRecord::decode("t1", &json).unwrap();
        assert_eq!(record.token, old);
        assert_eq!(record.intent, Some(new));
        // What a reader of an earlier release decodes.
        assert_eq!(decode_token("t1", &json).unwrap(), old);
    }

    #[test]
    fn a_tombstone_is_no_token_and_a_token_is_no_tombstone() {
        assert!(TokenRecord::decode_live("t1", TOMBSTONE).unwrap().is_none());
        let named = token("deleted@x.com", "1000.deleted");
        let json = encode_token(&named).unwrap();
        assert!(!is_tombstone(&json));
        assert!(TokenRecord::decode_live("t1", &json).unwrap().is_some());
    }

    #[test]
    fn a_plain_token_has_no_intent() {
        let json = encode_token(&token("a@x.com", "1000.save_intent")).unwrap();
        let record = TokenRecord::decode("t1", &json).unwrap();
        assert!(record.intent.is_none());
    }
}
