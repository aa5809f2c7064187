//! [`Storage`], the four operations a custom store writes (get, conditional
//! put, list, delete), and [`StorageStore`], the [`TokenStore`] that keeps
//! every Zoho rule on top of any of them.
//!
//! [`TokenStore`]: crate::TokenStore

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;

// The dependency graph is one-way: `layer` (the store) uses `claims` and
// `lease`, and all three use `record` and `retry`, which use none of them.
mod claims;
mod layer;
mod lease;
mod record;
mod retry;

pub use layer::StorageStore;

/// A record's version as a [`Storage`] hands it out: opaque to the layer,
/// and different after every put of the record, never one its key had
/// before, even before a delete (a counter over the storage, an etag, a
/// random id; never the value itself, which a put may write unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// A version with this text.
    pub fn new(version: impl Into<String>) -> Self {
        Self(version.into())
    }

    /// The version's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored record: its value and the version it has.
///
/// `Debug` does not show the value: a token record holds secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// What was stored, as [`Storage::put`] was given it.
    pub value: String,
    /// The version of this value.
    pub version: Version,
}

impl Record {
    /// A record of `value` at `version`.
    pub fn new(value: impl Into<String>, version: Version) -> Self {
        Self {
            value: value.into(),
            version,
        }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("version", &self.version)
            .finish()
    }
}

/// The condition of a [`Storage::put`]: what the record must be for the
/// put to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected<'a> {
    /// No record is stored under the key.
    Absent,
    /// The stored record has this version.
    Version(&'a Version),
}

impl Expected<'_> {
    /// Whether a record whose version is `current` (`None`: no record) is
    /// as expected: the check a [`Storage::put`] makes, atomically with its
    /// write.
    pub fn is_met_by(&self, current: Option<&Version>) -> bool {
        match self {
            Self::Absent => current.is_none(),
            Self::Version(wanted) => current == Some(*wanted),
        }
    }
}

/// Where a custom token store keeps its records: the only part of a
/// [`TokenStore`](crate::TokenStore) you write. Wrap it in a
/// [`StorageStore`], which applies every Zoho rule on top (lookup, merge,
/// upsert, unique user names, ids, encoding and limits, refresh leases).
///
/// A storage is a map from keys to string values with a version per record,
/// shared by every process that uses it. It must:
///
/// - **be linearizable per key**: once a `put` or `delete` returns, every
///   `get` of that key (from any process) sees it, and a `list` that starts
///   after it does too;
/// - **put conditionally**: [`put`](Self::put) writes only if the record is
///   as [`Expected`] (absent, or at the given version), atomically with that
///   check: of two puts expecting one version, at most one writes. Every
///   write gives the record a new [`Version`], never one the key had
///   before, even after a delete (a counter over the whole storage, an
///   etag, a random id; a per-record counter that restarts after a delete
///   would let a stale put land);
/// - **fail cleanly or not at all**: a call that answers an error may have
///   taken effect or not (a timeout), but must not take effect later, once
///   it has answered. The layer keeps its promises (below) whichever it
///   was, and whichever call fails, or if the process stops between two
///   calls: see [`StorageStore`] for what a failed call may leave;
/// - store values as given (JSON text, at most about 1 KiB over
///   [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES)), and
///   keep the keys the layer chooses. Keys are at most 70 characters of
///   `A-Z a-z 0-9 _ . @ + = -`, safe as file names, object keys or secret
///   names: `token.<id>` for each token and `user.<16 hex digits>` for the
///   records that keep user names unique;
/// - answer errors as [`StoreError`] (e.g. [`StoreError::backend`]), never
///   quoting a value: values hold token secrets.
///
/// `examples/custom_store.rs` implements one on a directory of files.
#[async_trait]
pub trait Storage: Send + Sync {
    /// The record stored under `key`, or `Ok(None)`.
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;

    /// Stores `value` under `key` if the record is as `expected`
    /// ([`Expected::is_met_by`] makes the check), and answers its new
    /// version; `Ok(None)` (writing nothing) when it is not.
    async fn put(
        &self,
        key: &str,
        value: &str,
        expected: Expected<'_>,
    ) -> Result<Option<Version>, StoreError>;

    /// The key of every stored record, in no particular order.
    async fn list(&self) -> Result<Vec<String>, StoreError>;

    /// Removes the record stored under `key`; `Ok(())` if there is none.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

macro_rules! forward_storage {
    ($wrapper:ident) => {
        #[async_trait]
        impl<T: Storage + ?Sized> Storage for $wrapper<T> {
            async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
                (**self).get(key).await
            }
            async fn put(
                &self,
                key: &str,
                value: &str,
                expected: Expected<'_>,
            ) -> Result<Option<Version>, StoreError> {
                (**self).put(key, value, expected).await
            }
            async fn list(&self) -> Result<Vec<String>, StoreError> {
                (**self).list().await
            }
            async fn delete(&self, key: &str) -> Result<(), StoreError> {
                (**self).delete(key).await
            }
        }
    };
}

forward_storage!(Arc);
forward_storage!(Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_is_met_by_an_absent_record_or_the_same_version_only() {
        let (v1, v2) = (Version::new("1"), Version::new("2"));
        assert!(Expected::Absent.is_met_by(None));
        assert!(!Expected::Absent.is_met_by(Some(&v1)));
        assert!(Expected::Version(&v1).is_met_by(Some(&v1)));
        assert!(!Expected::Version(&v1).is_met_by(Some(&v2)));
        assert!(!Expected::Version(&v1).is_met_by(None));
    }

    #[test]
    fn record_debug_hides_the_value() {
        let record = Record::new(r#"{"refresh_token":"1000.canary"}"#, Version::new("7"));
        let shown = format!("{record:?}");
        assert!(
            !shown.contains("canary") && shown.contains("\"7\""),
            "{shown}"
        );
    }
}
