//! Secret names: where each token and index shard lives under the prefix.

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// The longest prefix accepted: secret names are at most 512 characters, and
/// `/tokens/` plus a 64-character id must still fit.
pub(crate) const MAX_PREFIX_LEN: usize = 400;

/// The names of a store's secrets: `{prefix}/tokens/{id}` and `{prefix}/index/{node}`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: String,
}

impl Layout {
    /// A layout under `prefix`, which must be a valid secret-name path.
    pub(crate) fn new(prefix: &str) -> Result<Self, StoreError> {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(StoreError::invalid_input(format!(
                "prefix must be 1 to {MAX_PREFIX_LEN} characters"
            )));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
        if let Some(bad) = prefix.chars().find(|c| !valid(*c)) {
            return Err(StoreError::invalid_input(format!(
                "prefix {prefix:?} contains {bad:?}; secret names use only A-Z a-z 0-9 / _ + = . @ -"
            )));
        }
        if prefix.starts_with('/') || prefix.contains("//") {
            return Err(StoreError::invalid_input(format!(
                "prefix {prefix:?} has an empty path segment"
            )));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix, without a trailing `/`.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The secret holding token `id`.
    pub(crate) fn token(&self, id: &str) -> String {
        format!("{}/tokens/{id}", self.prefix)
    }

    /// The token id a secret name denotes, if it is one of this store's token secrets.
    pub(crate) fn id_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_prefix(self.prefix.as_str())?
            .strip_prefix("/tokens/")
    }

    /// The secret of the index node named `suffix` (`r`, `r0`, `r01`, …).
    pub(crate) fn index_node(&self, suffix: &str) -> String {
        format!("{}/index/{suffix}", self.prefix)
    }
}

/// The id a new token for user name `user` is created under, when the store
/// generates it: 32 hex digits of a SHA-256 of the user name, shaped like a
/// random id ([`generate_id`](crate::generate_id)) and as opaque in a secret
/// name (no user name in clear).
///
/// A cold lookup by user name reads this one secret and, when it holds that
/// user's token, needs no index read: one round trip. It is only a guess the
/// index stays the judge of: ids never change, so a token whose user name
/// changed, or one saved under an id of its own (imported, or given by the
/// caller), is found through the index as before.
pub(crate) fn user_token_id(user: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"zoho-token-store user token id\0")
        .chain_update(user.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_token_ids_are_stable_opaque_and_valid() {
        let id = user_token_id("ada@example.com");
        assert_eq!(id, user_token_id("ada@example.com"));
        assert_ne!(id, user_token_id("Ada@example.com"));
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!id.contains("ada"));
        crate::validate_id(&id).unwrap();
    }

    #[test]
    fn names() {
        let layout = Layout::new("zoho/crm/").unwrap();
        assert_eq!(layout.token("abc"), "zoho/crm/tokens/abc");
        assert_eq!(layout.index_node("r01"), "zoho/crm/index/r01");
        assert_eq!(layout.id_of("zoho/crm/tokens/abc"), Some("abc"));
        assert_eq!(layout.id_of("zoho/crm/index/r"), None);
        assert_eq!(layout.id_of("zoho/crmx/tokens/abc"), None);
    }

    #[test]
    fn rejects_bad_prefixes() {
        for bad in ["", "/abs", "a//b", "sp ace", "é", &"a".repeat(401)] {
            assert!(Layout::new(bad).is_err(), "{bad:?}");
        }
    }
}
