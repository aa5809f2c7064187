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
//! 1. reads `X`'s record (at version `vX`), and `u`'s claim; if another
//!    token holds `u` (below), stops here, having written nothing;
//! 2. if `X` has no record, writes a [`RESERVATION`] there (expecting none),
//!    whose version is then `vX`: the put of step 4 expects a version, never
//!    an absent record, so no delete of `X` can make it land again later;
//! 3. claims `u` for `X` by a conditional put of the claim record, marked
//!    *pending* with the version `vX` its put expects (no token value: a
//!    claim never holds a secret);
//! 4. writes `X`'s record by a put expecting `vX`;
//! 5. marks the claim *settled*, if it is still the one step 3 wrote.
//!
//! A save that finds `u` claimed for another token `Y` with a pending put
//! first *fences* that put: it rewrites `Y`'s record unchanged by a put
//! expecting the pending version, so that the pending put (expecting the
//! same version) can never land after. Then, if `Y`'s record has `u`, the
//! name is taken: a save with a given id is `InvalidInput`, writing
//! nothing; a save without one starts over and now finds `Y` by its user
//! name, as if it had come second. If `Y`'s record does not have `u`
//! (renamed, deleted, or its save failed or lost), the claim is stale and
//! is taken over by the claim put: `Y` can regain `u` only by claiming it
//! again, which changes the claim record and so fails the takeover. Of two
//! concurrent saves of one new user name, then, one claim put fails, or one
//! save finds the other's token: never both create one.
//!
//! So a save that fails at any step leaves the tokens as before it or as
//! after it, and that is settled when it returns: a put it did not make is
//! fenced by the next claimant, never made for it. A pending claim whose
//! token was deleted is inert: the version its put expects is gone, it
//! holds no token value, and the next claimant of the name takes it over.
//!
//! Claim records are never deleted: with no conditional delete, deleting
//! one could drop a claim written just before, and a stale claim costs
//! nothing. `delete_tokens` deletes the token records first, then [`prune`]s
//! every claim record by conditional put. Claims written by earlier versions
//! of the crate may hold a pending token value; it is dropped at the next
//! write of their record, and a pending put expecting an absent record is
//! fenced with a reservation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{RESERVATION, Stored, decode_stored, token_key};
use super::retry::{ATTEMPTS, yield_now};
use super::{Expected, Storage, Version};
use crate::error::StoreError;
use crate::store::check_unique_user;
use crate::token::OAuthToken;

/// The prefix of claim records' keys.
const USER_PREFIX: &str = "user.";

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
    format!("{USER_PREFIX}{hash:016x}")
}

/// The holder of one user name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// The id of the token that holds (or is being given) the name.
    id: String,
    /// From step 3 to step 5: the put that gives the token the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<PendingWrite>,
}

/// A put of a token record that a claim waits on: only the version it
/// expects, enough to fence it (serde ignores the `token` field that
/// claims of earlier versions carried).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PendingWrite {
    /// The version the put expects; `None` (claims of earlier versions
    /// only): the record is absent.
    expected: Option<String>,
}

/// A claim record: the claims of every name with its key.
type Claims = BTreeMap<String, Claim>;

/// What [`claim`] did.
pub(super) enum Claimed {
    /// Claimed: put the token expecting [`Settle::expected`], then
    /// [`settle`] this.
    Pending(Box<Settle>),
    /// A concurrent writer got in first, or the name's holder is a token
    /// the save's lookup key will now find: start the save over.
    Lost,
}

/// A claim made at step 3, for [`settle`] at step 5.
pub(super) struct Settle {
    user: String,
    claim: Claim,
    expected: Version,
}

impl Settle {
    /// The version the token's put must expect (its record's, or its
    /// reservation's).
    pub(super) fn expected(&self) -> &Version {
        &self.expected
    }
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

/// Steps 1 to 3: claims user name `user` for token `id`, whose record is at
/// version `expected` (`None`: absent, and then reserved here). `token` is
/// the token being saved; `id_given`: the caller gave the id, so a name
/// held by another token is `InvalidInput`.
pub(super) async fn claim(
    storage: &dyn Storage,
    user: &str,
    id: &str,
    token: &OAuthToken,
    expected: Option<&Version>,
    id_given: bool,
) -> Result<Claimed, StoreError> {
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
    let reserved = expected.is_none();
    let expected = match expected {
        Some(version) => version.clone(),
        None => match storage
            .put(&token_key(id), RESERVATION, Expected::Absent)
            .await?
        {
            Some(version) => version,
            // Another save of this id got in first.
            None => return Ok(Claimed::Lost),
        },
    };
    let claim = Claim {
        id: id.to_owned(),
        pending: Some(PendingWrite {
            expected: Some(expected.as_str().to_owned()),
        }),
    };
    claims.insert(user.to_owned(), claim.clone());
    if !write_claims(storage, &key, &claims, version.as_ref()).await? {
        if reserved && !id_given {
            // A generated id no other save knows (the claim naming it never
            // landed): its reservation would only be left behind.
            storage.delete(&token_key(id)).await?;
        }
        return Ok(Claimed::Lost);
    }
    Ok(Claimed::Pending(Box::new(Settle {
        user: user.to_owned(),
        claim,
        expected,
    })))
}

/// Whether `holder`'s token has `user`, once its pending put (if any) is
/// fenced: after this, that put can never land.
async fn holds(storage: &dyn Storage, user: &str, holder: &Claim) -> Result<bool, StoreError> {
    let key = token_key(&holder.id);
    let mut record = storage.get(&key).await?;
    if let Some(write) = &holder.pending {
        let fence = match (&write.expected, &record) {
            // The record is still as the pending put expects it: rewrite it
            // as it is, so that its version moves on.
            (Some(wanted), Some(current)) if current.version.as_str() == wanted => Some(
                storage
                    .put(&key, &current.value, Expected::Version(&current.version))
                    .await?,
            ),
            // A claim of an earlier version expecting no record: reserve it.
            (None, None) => Some(storage.put(&key, RESERVATION, Expected::Absent).await?),
            // The record moved on (or went; versions are never reused): the
            // pending put can no longer land.
            _ => None,
        };
        if let Some(None) = fence {
            // Another writer moved the record first: read what it wrote.
            record = storage.get(&key).await?;
        }
    }
    let Some(record) = record else {
        return Ok(false);
    };
    Ok(match decode_stored(&holder.id, record)? {
        Stored::Token(token, _) => token.user_name.as_deref() == Some(user),
        Stored::Absent | Stored::Reserved(_) => false,
    })
}

/// Drops the stale claims of the claim record at `key` (those whose token
/// no longer has the name, their pending puts fenced) by a conditional put
/// of the rest, so that no claim written meanwhile is lost. Rewriting the
/// record also drops the token values that claims of earlier versions held.
pub(super) async fn prune(storage: &dyn Storage, key: &str) -> Result<(), StoreError> {
    for _ in 0..ATTEMPTS {
        let (claims, version) = read_claims(storage, key).await?;
        let Some(version) = version else {
            return Ok(());
        };
        let mut kept = Claims::new();
        for (user, claim) in claims {
            if holds(storage, &user, &claim).await? {
                kept.insert(user, claim);
            }
        }
        if write_claims(storage, key, &kept, Some(&version)).await? {
            return Ok(());
        }
        yield_now().await;
    }
    Err(StoreError::Conflict {
        operation: format!("pruning the user name claims in {key}"),
        attempts: ATTEMPTS,
    })
}

/// Whether `key` is the key of a claim record.
pub(super) fn is_claim_key(key: &str) -> bool {
    key.starts_with(USER_PREFIX)
}

/// Step 5: marks the claim settled if it is still the one step 3 wrote.
/// Best effort: a claim left pending only makes the next claimant fence a
/// put that has landed already (or never will).
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
