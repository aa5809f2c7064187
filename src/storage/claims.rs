//! Unique user names on a storage whose only atomic step is a conditional
//! put of one record.
//!
//! A token record cannot be written together with a check of every other
//! token, so the name is claimed in a record of its own first: the *claim*
//! of user name `u` (in the record at `user_key(u)`, shared by the names
//! whose hashes collide) says which token id holds `u`. The rule it keeps:
//! **every token record with user name `u` is the one `u`'s claim names.**
//! A save that gives token `X` the user name `u` (a new token, or a rename):
//!
//! 1. reads `X`'s record (at version `vX`, or absent);
//! 2. claims `u` for `X` by a conditional put of the claim record, marked
//!    *pending* with the write it is about to make (the token, and `vX`);
//! 3. writes `X`'s record by a put expecting `vX`;
//! 4. marks the claim *settled* (dropping the pending write), if it is
//!    still the one step 2 wrote.
//!
//! A save that finds `u` claimed for another token `Y` first finishes a
//! pending claim's write itself (the same put, expecting the same version:
//! of the two puts at most one lands, and after either the put of step 3
//! can never land again). Then, if `Y`'s record has `u`, the name is taken:
//! a save with a given id is `InvalidInput`, writing nothing; a save
//! without one starts over and now finds `Y` by its user name, as if it
//! had come second. If `Y`'s record does not have `u` (renamed, deleted, or
//! its save lost), the claim is stale and is taken over by the claim put:
//! `Y` can regain `u` only by claiming it again, which changes the claim
//! record and so fails the takeover. Of two concurrent saves of one new
//! user name, then, one claim put fails, or one save finds the other's
//! token: never both create one.
//!
//! Claims are never deleted (a stale one costs nothing); `delete_tokens`
//! removes them with everything else. A pending claim holds the token being
//! written, secrets included, until it is settled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{read_token, token_key};
use super::retry::ATTEMPTS;
use super::{Expected, Storage, Version};
use crate::error::StoreError;
use crate::store::check_unique_user;
use crate::token::{OAuthToken, encode_token};

/// The key of the record that says which token holds `user_name`: a stable
/// 64-bit FNV-1a hash of the name, so that the key is short and in the key
/// alphabet whatever the name. Names whose hashes collide share the record,
/// which keeps one entry per name, so a collision costs nothing but a
/// conflict now and then.
pub(super) fn user_key(user_name: &str) -> String {
    let hash = user_name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("user.{hash:016x}")
}

/// The holder of one user name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// The id of the token that holds (or is being given) the name.
    id: String,
    /// From step 2 to step 4: the write that gives the token the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<PendingWrite>,
}

/// A put of a token record that a claim waits on.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PendingWrite {
    /// The version the put expects; `None`: the record is absent.
    expected: Option<String>,
    /// The token it writes (its record's value is `encode_token` of it).
    token: OAuthToken,
}

/// A claim record: the claims of every name with its key.
type Claims = BTreeMap<String, Claim>;

/// What [`claim`] did.
pub(super) enum Claimed {
    /// Claimed: write the token, then [`settle`] this.
    Pending(Box<Settle>),
    /// A concurrent writer got in first, or the name's holder is a token
    /// the save's lookup key will now find: start the save over.
    Lost,
}

/// A claim made at step 2, for [`settle`] at step 4.
pub(super) struct Settle {
    user: String,
    claim: Claim,
}

/// Reads the claim record at `key`, with its version (`None`: absent).
async fn read_claims(
    storage: &dyn Storage,
    key: &str,
) -> Result<(Claims, Option<Version>), StoreError> {
    let Some(record) = storage.get(key).await? else {
        return Ok((Claims::new(), None));
    };
    let claims = serde_json::from_str(&record.value).map_err(|error| StoreError::Corrupt {
        id: key.to_owned(),
        reason: format!(
            "not a user name claim record ({:?} error)",
            error.classify()
        ),
    })?;
    Ok((claims, Some(record.version)))
}

/// Writes the claim record at `key` if it is still at `version`.
async fn write_claims(
    storage: &dyn Storage,
    key: &str,
    claims: &Claims,
    version: Option<&Version>,
) -> Result<bool, StoreError> {
    let value = serde_json::to_string(claims)
        .map_err(|_| StoreError::invalid_input("user name claims cannot be encoded"))?;
    let expected = version.map_or(Expected::Absent, Expected::Version);
    Ok(storage.put(key, &value, expected).await?.is_some())
}

/// Step 2: claims user name `user` for `token` (as it is about to be
/// written over version `expected` of its record). `id_given`: the caller
/// gave the id, so a name held by another token is `InvalidInput`.
pub(super) async fn claim(
    storage: &dyn Storage,
    user: &str,
    token: &OAuthToken,
    expected: Option<&Version>,
    id_given: bool,
) -> Result<Claimed, StoreError> {
    let id = token.id.clone().unwrap_or_default();
    let key = user_key(user);
    let (mut claims, version) = read_claims(storage, &key).await?;
    if let Some(holder) = claims.get(user).filter(|claim| claim.id != id)
        && holds(storage, user, holder).await?
    {
        if id_given {
            check_unique_user(token, Some(&holder.id))?;
        }
        return Ok(Claimed::Lost);
    }
    let claim = Claim {
        id,
        pending: Some(PendingWrite {
            expected: expected.map(|v| v.as_str().to_owned()),
            token: token.clone(),
        }),
    };
    claims.insert(user.to_owned(), claim.clone());
    if !write_claims(storage, &key, &claims, version.as_ref()).await? {
        return Ok(Claimed::Lost);
    }
    Ok(Claimed::Pending(Box::new(Settle {
        user: user.to_owned(),
        claim,
    })))
}

/// Whether `holder`'s token has `user`, once its pending write (if any) is
/// finished.
async fn holds(storage: &dyn Storage, user: &str, holder: &Claim) -> Result<bool, StoreError> {
    if let Some(write) = &holder.pending {
        let version = write.expected.clone().map(Version::new);
        let expected = version.as_ref().map_or(Expected::Absent, Expected::Version);
        let value = encode_token(&write.token)?;
        // Landed or not, the owner's own put can no longer land after this.
        storage
            .put(&token_key(&holder.id), &value, expected)
            .await?;
    }
    let read = read_token(storage, &holder.id).await?;
    Ok(read.is_some_and(|(token, _)| token.user_name.as_deref() == Some(user)))
}

/// Step 4: marks the claim settled if it is still the one step 2 wrote.
/// Best effort: a claim left pending only makes the next claimant finish a
/// put that can no longer land.
pub(super) async fn settle(storage: &dyn Storage, settle: Box<Settle>) {
    let key = user_key(&settle.user);
    for _ in 0..ATTEMPTS {
        let Ok((mut claims, version)) = read_claims(storage, &key).await else {
            return;
        };
        match claims.get_mut(&settle.user) {
            Some(claim) if *claim == settle.claim => claim.pending = None,
            _ => return,
        }
        if !matches!(
            write_claims(storage, &key, &claims, version.as_ref()).await,
            Ok(false)
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_the_key_alphabet_and_stay_short() {
        let long = "u".repeat(crate::MAX_USER_NAME_BYTES);
        for key in [
            token_key(&"x".repeat(crate::MAX_ID_LEN)),
            user_key(&long),
            user_key("tök@example.com"),
        ] {
            let alphabet = |b: u8| b.is_ascii_alphanumeric() || b"_.@+=-".contains(&b);
            assert!(key.len() <= 70 && key.bytes().all(alphabet), "{key}");
        }
        // Stable across processes and versions: a fixed function of the name.
        assert_eq!(user_key(""), "user.cbf29ce484222325");
        assert_ne!(user_key("a@x"), user_key("b@x"));
    }
}
