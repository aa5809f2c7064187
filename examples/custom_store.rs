//! How to write your own [`TokenStore`]: a directory of JSON files, one
//! `<id>.json` per token.
//!
//! The crate exports the Zoho rules as building blocks, so a store only has to
//! say how to read, write, list and delete one token:
//!
//! - [`validate_id`] before an id becomes a file name (it also keeps ids from
//!   escaping the directory: no `/`, no `\`);
//! - [`encode_token`] / [`decode_token`] for the stored JSON (size limit,
//!   error messages that never quote secrets);
//! - [`LookupKey`] to match a query token the way the Zoho SDKs do;
//! - [`prepare_save`] and [`check_unique_user`] for the upsert of `save_token`.
//!
//! Check such a store with the conformance suite (feature `conformance`), as
//! `tests/custom_store.rs` does for this one:
//!
//! ```ignore
//! zoho_token_store::conformance_tests!(JsonFileStore::open(fresh_dir()).await.unwrap());
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
    LookupKey, OAuthToken, StoreError, TokenStore, check_unique_user, decode_token, encode_token,
    prepare_save, validate_id,
};

/// A [`TokenStore`] keeping each token in `<dir>/<id>.json`.
///
/// Every write is atomic on disk (a temporary file renamed over the old one),
/// so readers never see half a token. Saves and deletes are serialized by a
/// mutex: two saves for one user in this process cannot both create a token.
/// The mutex does not span processes; several processes sharing one directory
/// would also need a file lock (e.g. on `<dir>/.lock`). On a case-insensitive
/// file system (the default on macOS and Windows) ids differing only in case
/// would share a file: keep to one case there.
#[derive(Debug)]
pub struct JsonFileStore {
    dir: PathBuf,
    /// Held across the read-check-write of `save_token` and by the deletes.
    writes: Mutex<()>,
}

impl JsonFileStore {
    /// A store in `dir`, which is created if missing.
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

    /// The file of token `id`; `id` must have passed [`validate_id`].
    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The token stored under `id`, or `None` when its file does not exist.
    async fn read(&self, id: &str) -> Result<Option<OAuthToken>, StoreError> {
        let path = self.path(id);
        match tokio::fs::read_to_string(&path).await {
            Ok(json) => decode_token(id, &json).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    /// The ids of every stored token: the `<id>.json` files with a valid id
    /// (which leaves out the temporary files of `write`).
    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| io_error("list", &self.dir, e))?;
        let mut ids = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("list", &self.dir, e))?
        {
            let name = entry.file_name();
            let id = name.to_str().and_then(|n| n.strip_suffix(".json"));
            if let Some(id) = id.filter(|id| validate_id(id).is_ok()) {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// Every stored token. A file deleted while we list is skipped.
    async fn read_all(&self) -> Result<Vec<OAuthToken>, StoreError> {
        let mut tokens = Vec::new();
        for id in self.ids().await? {
            tokens.extend(self.read(&id).await?);
        }
        Ok(tokens)
    }

    /// The stored token `key` matches, if any.
    async fn find_by_key(&self, key: &LookupKey<'_>) -> Result<Option<OAuthToken>, StoreError> {
        Ok(self.read_all().await?.into_iter().find(|t| key.matches(t)))
    }

    /// Writes `json` as token `id`: to a temporary file first, flushed to
    /// disk, then renamed over `<id>.json` in one atomic step.
    async fn write(&self, id: &str, json: &str) -> Result<(), StoreError> {
        let tmp = self
            .dir
            .join(format!(".{id}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600); // tokens are secrets: readable by this user only
        let written = async {
            let mut file = options.open(&tmp).await?;
            file.write_all(json.as_bytes()).await?;
            file.sync_all().await?;
            tokio::fs::rename(&tmp, self.path(id)).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await; // best effort
            return Err(io_error("write", &self.path(id), e));
        }
        Ok(())
    }
}

/// An IO failure as a [`StoreError::Backend`]: it names the file, which holds
/// no secret (ids are not secrets), never the contents.
fn io_error(operation: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::backend(format!("{operation} {}", path.display()), error)
}

#[async_trait::async_trait]
impl TokenStore for JsonFileStore {
    async fn find_token(&self, query: &OAuthToken) -> Result<Option<OAuthToken>, StoreError> {
        // No match key is InvalidInput, as the trait requires.
        let key = LookupKey::require(query)?;
        // Zoho's merge: the stored token, overlaid by the fields the query sets.
        Ok(self.find_by_key(&key).await?.map(|t| query.merged_over(&t)))
    }

    async fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>, StoreError> {
        validate_id(id)?;
        self.read(id).await
    }

    async fn save_token(&self, token: &mut OAuthToken) -> Result<(), StoreError> {
        // Nobody else writes between our checks and our write.
        let _guard = self.writes.lock().await;

        // Like the Zoho SDK's `FileStore`, read every token: fine for the
        // handful a Zoho app keeps.
        let stored = self.read_all().await?;
        let find = |key: LookupKey<'_>| stored.iter().find(|t| key.matches(t));

        // 1. The stored token this save updates: the one its id names, else
        //    the one its lookup key matches.
        let target = match token.id.as_deref() {
            Some(id) => stored.iter().find(|t| t.id.as_deref() == Some(id)),
            None => LookupKey::of(token).and_then(find),
        };
        // 2. The merge, the id (checked with `validate_id`), and "a new token
        //    needs a credential".
        let (id, updated) = prepare_save(token, target)?;
        // 3. Never two tokens for one user name.
        let user = updated.user_name.as_deref().filter(|u| !u.is_empty());
        let holder = user.and_then(|u| find(LookupKey::UserName(u)));
        check_unique_user(&updated, holder.and_then(|t| t.id.as_deref()))?;
        // 4. Write, then hand back exactly what is stored.
        self.write(&id, &encode_token(&updated)?).await?;
        *token = updated;
        Ok(())
    }

    async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        validate_id(id)?;
        let _guard = self.writes.lock().await;
        let path = self.path(id);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error("delete", &path, e)),
            _ => Ok(()), // deleting an absent token is not an error
        }
    }

    async fn get_tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        self.read_all().await
    }

    async fn delete_tokens(&self) -> Result<(), StoreError> {
        let _guard = self.writes.lock().await;
        for id in self.ids().await? {
            let path = self.path(&id);
            match tokio::fs::remove_file(&path).await {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(io_error("delete", &path, e));
                }
                _ => {}
            }
        }
        Ok(())
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
    let store = JsonFileStore::open(dir).await?;
    println!("store in {}", dir.display());

    // Save: a refresh token for a CRM user. The store picks the id.
    let mut token =
        OAuthToken::from_refresh_token("1000.CLIENTID", "client-secret", "1000.refresh")
            .with_user_name("me@example.com");
    store.save_token(&mut token).await?;
    let id = token.id.clone().expect("save_token sets the id");
    println!("saved the token of me@example.com as {id}.json");

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
    println!("saved the token of you@example.com as you.json");

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
