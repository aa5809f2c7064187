//! How to write your own token store: a directory of files, one record per
//! file.
//!
//! A custom store writes only its storage, the four operations of
//! [`Storage`]: get, conditional put, list, delete. The crate's
//! [`StorageStore`] puts every Zoho rule of [`TokenStore`] on top (lookup
//! keys, Zoho's merge, the upsert, unique user names, ids, encoding and
//! size limits, refresh leases), the same layer `MemoryStore` is made of.
//!
//! The one thing a storage must get right is the conditional put: it writes
//! only if the record still has the version the caller read, atomically.
//! That is what keeps two concurrent saves of one new user from both
//! succeeding. Here a mutex makes it atomic within the process; several
//! processes sharing one directory would also need a file lock (e.g. on
//! `<dir>/.lock`) around the same steps.
//!
//! Check such a store with the conformance suite (feature `conformance`), as
//! `tests/custom_store.rs` does for this one:
//!
//! ```ignore
//! zoho_token_store::conformance_tests!(JsonFileStorage::open_store(fresh_dir()).await.unwrap());
//! ```
//!
//! Run it with `cargo run --example custom_store`. Besides this crate it uses
//! `async-trait`, `uuid` (feature `v4`) and `tokio` (features `fs`, `io-util`,
//! `macros`, `rt-multi-thread`, `sync`).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use zoho_token_store::{
    Expected, OAuthToken, Record, Storage, StorageStore, StoreError, TokenStore, Version,
};

/// The token store of this example: the crate's rules on [`JsonFileStorage`].
pub type JsonFileStore = StorageStore<JsonFileStorage>;

/// A [`Storage`] keeping each record in `<dir>/<key>.json`: its version on
/// the first line, then the value (a token's JSON, for `token.<id>` keys).
///
/// Every write is atomic on disk (a temporary file renamed over the old one),
/// so readers never see half a record. Keys are in the alphabet
/// `A-Z a-z 0-9 _ . @ + = -`, so a key is a file name that cannot escape the
/// directory. On a case-insensitive file system (the default on macOS and
/// Windows) token ids differing only in case would share a file: keep to
/// one case there.
#[derive(Debug)]
pub struct JsonFileStorage {
    dir: PathBuf,
    /// Held across the read-compare-write of `put` and by `delete`.
    writes: Mutex<()>,
}

impl JsonFileStorage {
    /// A storage in `dir`, which is created if missing.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error("create directory", &dir, e))?;
        Ok(Self {
            dir,
            writes: Mutex::new(()),
        })
    }

    /// The token store on a storage in `dir`.
    pub async fn open_store(dir: impl Into<PathBuf>) -> Result<JsonFileStore, StoreError> {
        Ok(StorageStore::new(Self::open(dir).await?))
    }

    /// The file of record `key`.
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Writes `contents` as record `key`: to a temporary file first, flushed
    /// to disk, then renamed over `<key>.json` in one atomic step.
    async fn write(&self, key: &str, contents: &str) -> Result<(), StoreError> {
        let tmp = self
            .dir
            .join(format!(".{key}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600); // tokens are secrets: readable by this user only
        let written = async {
            let mut file = options.open(&tmp).await?;
            file.write_all(contents.as_bytes()).await?;
            file.sync_all().await?;
            tokio::fs::rename(&tmp, self.path(key)).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await; // best effort
            return Err(io_error("write", &self.path(key), e));
        }
        Ok(())
    }
}

/// An IO failure as a [`StoreError::Backend`]: it names the file, which holds
/// no secret (keys are not secrets), never the contents.
fn io_error(operation: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::backend(format!("{operation} {}", path.display()), error)
}

#[async_trait::async_trait]
impl Storage for JsonFileStorage {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let path = self.path(key);
        let contents = match tokio::fs::read_to_string(&path).await {
            Ok(contents) => contents,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        // The first line is the version; a file without one is not ours.
        let (version, value) = contents
            .split_once('\n')
            .ok_or_else(|| StoreError::Corrupt {
                id: key.to_owned(),
                reason: "no version line".into(),
            })?;
        Ok(Some(Record::new(value, Version::new(version))))
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        expected: Expected<'_>,
    ) -> Result<Option<Version>, StoreError> {
        // Nobody else writes between our check and our write.
        let _guard = self.writes.lock().await;
        let current = self.get(key).await?;
        if !expected.is_met_by(current.as_ref().map(|record| &record.version)) {
            return Ok(None);
        }
        // A fresh version on every write, even of an unchanged value.
        let version = Version::new(uuid::Uuid::new_v4().simple().to_string());
        self.write(key, &format!("{}\n{value}", version.as_str()))
            .await?;
        Ok(Some(version))
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| io_error("list", &self.dir, e))?;
        let mut keys = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("list", &self.dir, e))?
        {
            // `<key>.json`; temporary files start with a dot.
            let name = entry.file_name();
            let key = name.to_str().and_then(|n| n.strip_suffix(".json"));
            if let Some(key) = key.filter(|key| !key.starts_with('.')) {
                keys.push(key.to_owned());
            }
        }
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let _guard = self.writes.lock().await;
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error("delete", &path, e)),
            _ => Ok(()), // deleting an absent record is not an error
        }
    }
}

/// Save, find by user, list and delete, in a fresh temporary directory.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("zoho-tokens-{}", uuid::Uuid::new_v4().simple()));
    let result = demo(&dir).await;
    // Clean up whatever happened in the demo.
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn demo(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = JsonFileStorage::open_store(dir).await?;
    println!("store in {}", dir.display());

    // Save: a refresh token for a CRM user. The store picks the id.
    let mut token =
        OAuthToken::from_refresh_token("1000.CLIENTID", "client-secret", "1000.refresh")
            .with_user_name("me@example.com");
    store.save_token(&mut token).await?;
    let id = token.id.clone().expect("save_token sets the id");
    println!("saved the token of me@example.com as token.{id}.json");

    // Save again for the same user: updates that token in place.
    let mut refreshed = OAuthToken {
        access_token: Some("1000.access".into()),
        expiry_time: Some(1_900_000_000_000),
        ..OAuthToken::for_user("me@example.com")
    };
    store.save_token(&mut refreshed).await?;
    assert_eq!(refreshed.id, token.id);
    println!("saved a new access token for me@example.com: same id {id}");

    // A second user, under an id of our choosing.
    let mut other = OAuthToken::from_grant_token("1000.CLIENTID", "client-secret", "1000.grant")
        .with_user_name("you@example.com")
        .with_id("you");
    store.save_token(&mut other).await?;
    println!("saved the token of you@example.com as token.you.json");

    // Find by user.
    let found = store
        .find_token(&OAuthToken::for_user("me@example.com"))
        .await?;
    let found = found.expect("me@example.com has a token");
    println!(
        "found me@example.com: id {id}, has refresh token: {}, has access token: {}",
        found.refresh_token.is_some(),
        found.access_token.is_some(),
    );

    // List.
    let mut users: Vec<_> = store
        .get_tokens()
        .await?
        .into_iter()
        .filter_map(|t| t.user_name)
        .collect();
    users.sort();
    println!("stored users: {}", users.join(", "));

    // Delete one, then all.
    store.delete_token(&id).await?;
    println!(
        "deleted {id}: {} token(s) left",
        store.get_tokens().await?.len()
    );
    store.delete_tokens().await?;
    println!(
        "deleted all: {} token(s) left",
        store.get_tokens().await?.len()
    );
    Ok(())
}
