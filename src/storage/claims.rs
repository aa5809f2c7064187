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
//!    *pending* with a fresh nonce; if the claim names another token `Y`
//!    whose record has `u`, the save is `InvalidInput` (writing nothing);
//! 3. writes `X`'s record by a put expecting `vX`;
//! 4. marks the claim *settled*, if it still carries its nonce.
//!
//! A claim naming a token `Y` that no longer has `u` (renamed, deleted, or
//! a save that failed between 2 and 3) is taken over by the next claimant.
//! A settled claim is taken over at once: `Y` regains `u` only by claiming
//! it again, which changes the claim record and so fails the takeover's
//! conditional put. A pending claim may belong to a save between steps 2
//! and 3, so the takeover first *fences* `Y`: it rewrites `Y`'s record as
//! it read it (or, when absent, writes an empty placeholder that readers
//! treat as absent), so that the pending save's put at step 3, which
//! expects the version before, fails and that save starts over. Of two
//! concurrent saves of one new user name, then, one claim put fails, or one
//! token put does: never both succeed. Claims are never deleted (a stale
//! one costs nothing); `delete_tokens` removes them with everything else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layer::read_token;
use super::{Expected, Storage, Version, token_key, user_key};
use crate::error::StoreError;
use crate::id::generate_id;
use crate::store::check_unique_user;
use crate::token::OAuthToken;

/// The holder of one user name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// The id of the token that holds (or is being given) the name.
    id: String,
    /// Set from step 2 to step 4: the nonce of the save that claimed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<String>,
}

/// A claim record: the claims of every name with its key.
type Claims = BTreeMap<String, Claim>;

/// A claim made at step 2, for [`settle`] to mark settled at step 4.
#[derive(Debug)]
pub(super) struct Pending {
    user: String,
    id: String,
    nonce: String,
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

/// Step 2: claims `token`'s user name `user` for `id`, the id it is saved
/// under. `Ok(None)` when a concurrent writer got in first (the save starts
/// over); [`StoreError::InvalidInput`] when another token holds the name.
pub(super) async fn claim(
    storage: &dyn Storage,
    user: &str,
    id: &str,
    token: &OAuthToken,
) -> Result<Option<Pending>, StoreError> {
    let key = user_key(user);
    let (mut claims, version) = read_claims(storage, &key).await?;
    if let Some(holder) = claims.get(user).filter(|claim| claim.id != id)
        && !release(storage, user, holder, token).await?
    {
        return Ok(None);
    }
    let nonce = generate_id();
    let claim = Claim {
        id: id.to_owned(),
        pending: Some(nonce.clone()),
    };
    claims.insert(user.to_owned(), claim);
    Ok(write_claims(storage, &key, &claims, version.as_ref())
        .await?
        .then(|| Pending {
            user: user.to_owned(),
            id: id.to_owned(),
            nonce,
        }))
}

/// Whether `holder`'s claim on `user` may be taken over for `token`:
/// `InvalidInput` if its token still has the name, `Ok(false)` if a fence
/// was needed and lost.
async fn release(
    storage: &dyn Storage,
    user: &str,
    holder: &Claim,
    token: &OAuthToken,
) -> Result<bool, StoreError> {
    let read = read_token(storage, &holder.id).await?;
    let has_name = |t: &OAuthToken| t.user_name.as_deref() == Some(user);
    if read
        .as_ref()
        .and_then(|r| r.token.as_ref())
        .is_some_and(has_name)
    {
        check_unique_user(token, Some(&holder.id))?;
    }
    if holder.pending.is_none() {
        return Ok(true);
    }
    // Fence: fail the put of a save of the holder that is still under way.
    let key = token_key(&holder.id);
    let written = match &read {
        Some(read) => {
            let expected = Expected::Version(&read.record.version);
            storage.put(&key, &read.record.value, expected).await?
        }
        None => storage.put(&key, "", Expected::Absent).await?,
    };
    Ok(written.is_some())
}

/// Step 4: marks the claim settled if it is still the one `pending` made.
/// Best effort: a claim left pending costs the next takeover a fence.
pub(super) async fn settle(storage: &dyn Storage, pending: Pending) {
    let key = user_key(&pending.user);
    for _ in 0..super::layer::ATTEMPTS {
        let Ok((mut claims, version)) = read_claims(storage, &key).await else {
            return;
        };
        match claims.get_mut(&pending.user) {
            Some(claim)
                if claim.id == pending.id
                    && claim.pending.as_deref() == Some(pending.nonce.as_str()) =>
            {
                claim.pending = None;
            }
            _ => return,
        }
        match write_claims(storage, &key, &claims, version.as_ref()).await {
            Ok(false) => continue,
            _ => return,
        }
    }
}
