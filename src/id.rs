//! Token id validation and generation: the id rules every store shares.

use crate::error::StoreError;

/// The longest id a store accepts.
pub const MAX_ID_LEN: usize = 64;

/// Checks that `id` is 1 to 64 characters of `A-Z a-z 0-9 _ . @ + = -`.
///
/// The alphabet is what a Secrets Manager secret name allows besides `/`, so an
/// id maps to exactly one secret name and never escapes its prefix.
///
/// ```
/// use zoho_token_store::validate_id;
///
/// assert!(validate_id("user@example.com").is_ok());
/// assert!(validate_id("../other").is_err());
/// ```
pub fn validate_id(id: &str) -> Result<(), StoreError> {
    if is_valid_id(id) {
        return Ok(());
    }
    if id.is_empty() {
        return Err(StoreError::invalid_input("token id is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(StoreError::invalid_input(format!(
            "token id is {} bytes long, over the {MAX_ID_LEN}-character limit",
            id.len()
        )));
    }
    if let Some(bad) = id.chars().find(|c| !is_id_char(*c)) {
        return Err(StoreError::invalid_input(format!(
            "token id {id:?} contains {bad:?}; ids use only A-Z a-z 0-9 _ . @ + = -"
        )));
    }
    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii() && is_id_byte(c as u8)
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'+' | b'=' | b'-')
}

/// Whether [`validate_id`] accepts `id`, without building its error: the
/// check of the warm read path. Written without an early exit so that it
/// compiles to a few vector compares for a typical 32-byte id.
#[inline]
pub(crate) fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().fold(true, |ok, b| ok & is_id_byte(b))
}

/// A new opaque, unique token id: 32 hex digits of a random (v4) UUID.
///
/// Random rather than `max(id) + 1`, which two writers compute alike and so
/// collide (the bug of the Zoho SDK's database stores).
pub fn generate_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        validate_id("AZaz09_.@+=-").unwrap();
        validate_id(&"a".repeat(64)).unwrap();
        validate_id(&generate_id()).unwrap();
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", &"a".repeat(65), "a/b", "a b", "é", "a\nb", "*", "a%2F"] {
            assert!(
                matches!(validate_id(bad), Err(StoreError::InvalidInput { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate_id(), generate_id());
    }
}
