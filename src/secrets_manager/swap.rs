//! The compare-and-swap on version stages that every conditional write
//! uses: index nodes, token secrets and refresh leases alike.
//!
//! The new value is stored as a version under a staging label (the
//! writer's own, or a pooled one: see [`Staging`]), then `AWSCURRENT` is
//! moved to it from the version the writer read
//! (`UpdateSecretVersionStage` with `RemoveFromVersionId`), which Secrets
//! Manager refuses if `AWSCURRENT` has moved since. A move can take effect
//! and still be answered with an error (the response lost, every SDK retry
//! refused or failed), so after a refused or failed move the secret is read
//! again: if the new version holds `AWSCURRENT`, the swap was won.

use super::api::{Api, Fetched, Put};
use crate::error::StoreError;

/// The staging label a compare-and-swap stores its new version under.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Staging<'a> {
    /// The writer's own label, removed again either way: a secret holds a
    /// limited number of labels, and writers come and go.
    Own(&'a str),
    /// One of [`POOLED_LABELS`] labels named after `prefix`, picked by
    /// `slot`, and left on its version: one call fewer per write. Each put
    /// moves its label to the new version, so a secret carries at most that
    /// many of them (and keeps as many versions alive).
    ///
    /// A pool rather than one shared label because LocalStack deletes a
    /// version the moment its last label moves away, and its
    /// `UpdateSecretVersionStage` takes `AWSCURRENT` off the version read
    /// *before* it finds that the version to move it to is gone, which
    /// leaves the secret with no current version at all. Writers that race
    /// from one version in one attempt claim one version id (see [`claim`]),
    /// so only one of them puts and moves a label; successive attempts use
    /// successive slots. Secrets Manager keeps a version whose labels moved
    /// away (for a day at least), and validates a move before making it.
    Pooled { prefix: &'a str, slot: u64 },
}

/// How many pooled staging labels of one prefix a secret may carry.
pub(crate) const POOLED_LABELS: u64 = 8;

impl Staging<'_> {
    fn label(self) -> String {
        match self {
            Self::Own(label) => label.to_owned(),
            Self::Pooled { prefix, slot } => format!("{prefix}-{}", slot % POOLED_LABELS),
        }
    }
}

/// The version id (`ClientRequestToken`) and pooled staging slot of attempt
/// `attempt` at replacing version `read` of secret `name`.
///
/// Writers racing from one version in one attempt derive one version id:
/// the first stores it, the others are refused before anything is stored
/// (`Swap::Lost { versioned: false }`), and try again from what they read
/// next. A writer whose claim is taken while `read` is still current (the
/// claimant stopped between its put and its move) claims another id, under
/// another label, in its next attempt.
pub(crate) fn claim(name: &str, read: &str, attempt: u32) -> (String, u64) {
    use sha2::{Digest, Sha256};
    let base = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(read.as_bytes());
    let slot_digest = base.clone().finalize();
    let id_digest = base
        .chain_update([0])
        .chain_update(attempt.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&id_digest[..16]);
    let request_token = uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string();
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&slot_digest[..8]);
    let slot = u64::from_be_bytes(seed).wrapping_add(u64::from(attempt));
    (request_token, slot)
}

/// How a compare-and-swap ended.
#[derive(Debug)]
pub(crate) enum Swap {
    /// Written: the version that now holds `AWSCURRENT`.
    Won(String),
    /// Another writer moved `AWSCURRENT` first (or, for a claimed request
    /// token, claimed this version first); `versioned`: this attempt still
    /// made a version (which Secrets Manager counts for a day).
    Lost { versioned: bool },
    /// The secret does not exist; `scheduled`: it is scheduled for deletion.
    Gone { scheduled: bool },
}

impl Api {
    /// Replaces version `previous` of secret `name` by `json` if it still
    /// holds `AWSCURRENT`. The new version's id is `request_token` (also its
    /// idempotency token); if another value already took that id, the swap
    /// is lost before anything is stored (writers that derive the token
    /// from what they read claim one version: see [`claim`]). `staging`
    /// says which label the new version is put under.
    ///
    /// An error is returned only when the swap did not take effect, or
    /// when what happened cannot be read.
    pub(crate) async fn swap(
        &self,
        name: &str,
        json: &str,
        request_token: &str,
        previous: &str,
        staging: Staging<'_>,
    ) -> Result<Swap, StoreError> {
        let label = staging.label();
        let version = match self
            .put_claiming(name, json, request_token, Some(&label))
            .await?
        {
            Some(Put::Yes(version)) => version,
            None => return Ok(Swap::Lost { versioned: false }),
            Some(Put::Absent) => return Ok(Swap::Gone { scheduled: false }),
            Some(Put::Deleted) => return Ok(Swap::Gone { scheduled: true }),
        };
        let moved = self.move_current(name, &version, previous).await;
        // Drop an own label either way so that labels do not pile up on the
        // secret (there is a quota on them).
        if let Staging::Own(label) = staging {
            self.remove_stage(name, label, &version).await;
        }
        let failure = match moved {
            Ok(true) => return Ok(Swap::Won(version)),
            Ok(false) => None,
            Err(error) if !error.is_retryable() => return Err(error),
            Err(error) => Some(error),
        };
        // Refused or failed: another writer won, or this move took effect
        // and its answer was lost (a refusal then answers an SDK retry of it).
        let current = match self.get(name).await {
            Ok(Fetched::Value { version_id, .. }) => version_id,
            Ok(Fetched::Absent | Fetched::Deleted) => None,
            Err(read) => return Err(failure.unwrap_or(read)),
        };
        match (current, failure) {
            (Some(current), _) if current == version => {
                Ok(Swap::Won(self.settled(name, json, version, staging).await?))
            }
            // The move failed and nothing moved: the swap did not happen.
            (Some(current), Some(error)) if current == previous => Err(error),
            (None, Some(error)) => Err(error),
            _ => Ok(Swap::Lost { versioned: true }),
        }
    }

    /// `version` of `name` (value `json`) holds `AWSCURRENT`, but the call
    /// that moved it was answered with an error. LocalStack 4.13 then can
    /// leave its `BatchGetSecretValue` answering with the version before (it
    /// updates the label and not the secret's current version when the call
    /// fails half-way under concurrent load), which would show batch readers
    /// an older value: if a batch read disagrees, the same value is written
    /// once more as a new version, which sets both right. Against AWS the
    /// two reads agree and nothing is written.
    async fn settled(
        &self,
        name: &str,
        json: &str,
        version: String,
        staging: Staging<'_>,
    ) -> Result<String, StoreError> {
        let batch = self.batch_get_versioned(vec![name.to_owned()]).await?;
        if batch
            .iter()
            .all(|(_, _, v)| v.as_deref() == Some(version.as_str()))
        {
            return Ok(version);
        }
        let request_token = uuid::Uuid::new_v4().to_string();
        let Put::Yes(again) = self
            .put(name, json, &request_token, Some(&staging.label()))
            .await?
        else {
            return Ok(version);
        };
        let moved = self.move_current(name, &again, &version).await;
        if let Staging::Own(label) = staging {
            self.remove_stage(name, label, &again).await;
        }
        Ok(if moved? { again } else { version })
    }
}
