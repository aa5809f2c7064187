//! Secret names: where each token and index shard lives under the prefix.

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

#[cfg(test)]
mod tests {
    use super::*;

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
