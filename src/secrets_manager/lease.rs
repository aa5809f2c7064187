//! Refresh leases on a token's own secret, so that of many processes
//! sharing a prefix one refreshes a token at Zoho (see
//! [`TokenStore::refresh_lease`](crate::TokenStore::refresh_lease)).
//!
//! The lease is one more field of the token secret's JSON, which readers
//! ignore (unknown fields are), and which the next save drops (a save
//! writes only the token's fields):
//!
//! ```json
//! {"id":"…", …, "refresh_lease":{"holder":"<uuid>","until":1900000000000}}
//! ```
//!
//! with `"failed":"<code>"` when the holder's refresh failed and nobody
//! should retry before `until` (a [`LeaseFailure`]), and `"failures":n` when
//! that was the n-th refresh in a row to fail (the count is carried into the
//! next lease, so that callers can back off further; a save drops it with
//! the lease; a lease that ended with neither a save nor a mark counts as one
//! failure more).
//!
//! The failure code is a string, as the first releases wrote it, so that
//! processes of every release read each other's marks:
//!
//! | [`LeaseFailure`] | `failed` | `until` |
//! |---|---|---|
//! | `Rejected { code }` | Zoho's code, e.g. `invalid_code` | `i64::MAX`: never ends, until the next save |
//! | `Throttled { retry_after }` | `Access Denied` | `retry_after` |
//! | `Transport { retry_after }` | `transport` | `retry_after` |
//! | `GrantExchange { cause, retry_after }` | `grant:` and the cause's code as above | `retry_after` |
//!
//! While a mark has not ended, every caller is answered
//! [`RefreshLease::Failed`] with it, without a write.
//!
//! Times are the store's [clock](super::SecretsManagerStoreBuilder::clock).
//!
//! It is written by the compare-and-swap of every token secret write
//! (`swap.rs`): the new version is staged under one of a few pooled
//! `zts-lease` labels, then `AWSCURRENT` is moved to it from the version read, which
//! Secrets Manager refuses if another writer moved it first; a move that
//! took effect but was answered with an error counts as made. A save's
//! intent found in the secret (see `record.rs`) is settled before a lease
//! is written over it. The new version's id (its
//! `ClientRequestToken`) is derived from the secret's name, the version read
//! and the lease period, so that every process racing for one lease claims
//! the same version id: the first makes the version, the others are refused
//! before anything is stored. A refresh therefore adds two versions to the
//! token's secret, the lease and the new token, however many processes
//! race (three when the race straddles two lease periods), and waiters
//! write nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SecretsManagerStore;
use super::api::Fetched;
use super::record::TokenRecord;
use super::swap::{Staging, Swap};
use crate::error::StoreError;
use crate::id::validate_id;
use crate::lease::{FailureCause, LeaseFailure, LeaseRequest, RefreshLease};
use crate::token::{MAX_TOKEN_BYTES, OAuthToken, encode_token};

/// Rounds of read and compare-and-swap before giving up.
const ATTEMPTS: u32 = 5;

/// The prefix of the pooled staging labels a lease write puts its version
/// under (`Staging::Pooled`).
const LEASE_LABEL: &str = "zts-lease";

/// The lease period of derived version ids when a request asks for none.
const MIN_PERIOD: Duration = Duration::from_secs(1);

/// The lease field of a token secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: i64,
    /// A failure mark's code (see the module docs): [`mark_of`] writes it,
    /// [`failure_of`] reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<String>,
    /// How many refreshes in a row failed before (or, with `failed`, with)
    /// this lease.
    #[serde(default, skip_serializing_if = "is_zero")]
    failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The `until` of a mark that only a save ends.
const UNTIL_SAVED: i64 = i64::MAX;
/// The `failed` code of a transport failure, and of Zoho's rate limit.
const TRANSPORT: &str = "transport";
const THROTTLED: &str = "Access Denied";
/// The prefix of a grant exchange's failure code.
const GRANT: &str = "grant:";

/// The `failed` code and `until` a failure mark is stored as.
fn mark_of(failure: &LeaseFailure) -> (String, i64) {
    let code = |cause: &FailureCause| match cause {
        FailureCause::Rejected { code } => code.clone(),
        FailureCause::Throttled => THROTTLED.to_owned(),
        FailureCause::Transport => TRANSPORT.to_owned(),
    };
    let until = failure.retry_after().unwrap_or(UNTIL_SAVED);
    match failure {
        LeaseFailure::GrantExchange { cause, .. } => (format!("{GRANT}{}", code(cause)), until),
        other => (code(&other.cause()), until),
    }
}

/// The failure a stored mark records: the inverse of [`mark_of`], and how
/// the marks of the first releases read.
fn failure_of(failed: &str, until: i64) -> LeaseFailure {
    let cause = |code: &str| match code {
        TRANSPORT => FailureCause::Transport,
        code if code.eq_ignore_ascii_case(THROTTLED) => FailureCause::Throttled,
        code => FailureCause::Rejected {
            code: code.to_owned(),
        },
    };
    match failed.strip_prefix(GRANT) {
        Some(code) => LeaseFailure::GrantExchange {
            cause: cause(code),
            retry_after: until,
        },
        None => LeaseFailure::refresh(cause(failed), until),
    }
}

/// The lease field, read leniently: a malformed one counts as none.
#[derive(Deserialize)]
struct WithLease {
    #[serde(default)]
    refresh_lease: Option<serde_json::Value>,
}

fn lease_of(json: &str) -> Option<Lease> {
    let with: WithLease = serde_json::from_str(json).ok()?;
    serde_json::from_value(with.refresh_lease?).ok()
}

/// `token`'s JSON with `lease` in it.
fn with_lease(id: &str, token: &OAuthToken, lease: &Lease) -> Result<String, StoreError> {
    let json = encode_token(token)?;
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&json).map_err(|_| StoreError::invalid_input("token JSON"))?;
    let lease = serde_json::to_value(lease).map_err(|_| StoreError::invalid_input("lease"))?;
    object.insert("refresh_lease".into(), lease);
    let json = serde_json::Value::Object(object).to_string();
    if json.len() > MAX_TOKEN_BYTES {
        return Err(StoreError::invalid_input(format!(
            "token {id} with a refresh lease would exceed {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok(json)
}

/// The version id every process claims for a lease on `name` over version
/// `read` in the lease period of `now`.
fn claim_token(name: &str, read: &str, now: i64, period: Duration) -> String {
    let period = period.max(MIN_PERIOD).as_millis() as i64;
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(read.as_bytes())
        .chain_update([0])
        .chain_update((now / period).to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// What one read of a token secret found.
enum Read {
    Found {
        token: Box<OAuthToken>,
        lease: Option<Lease>,
        version: String,
    },
    Missing,
}

impl SecretsManagerStore {
    /// Now, Unix ms, by the store's clock.
    fn now_millis(&self) -> i64 {
        self.inner.index.now_millis()
    }

    /// Reads token `id`'s secret past the cache, with its lease and version.
    /// A save's intent in it is settled first (see `record.rs`), so that
    /// the lease is written over a settled token.
    async fn read_leased(&self, id: &str) -> Result<Read, StoreError> {
        let name = self.inner.layout.token(id);
        let mut fetched = self.inner.api.get(&name).await?;
        if let Fetched::Value {
            string: Some(json), ..
        } = &fetched
            && TokenRecord::decode_live(id, json)?.is_some_and(|r| r.intent.is_some())
        {
            self.settle(id, 0).await?;
            fetched = self.inner.api.get(&name).await?;
        }
        match fetched {
            Fetched::Value {
                string: Some(json),
                version_id: Some(version),
            } => {
                let Some(record) = TokenRecord::decode_live(id, &json)? else {
                    // A tombstone: a deleted token whose re-save is under way.
                    return Ok(Read::Missing);
                };
                if record.intent.is_some() {
                    // Another save's, since: the caller's next round.
                    return Err(StoreError::Conflict {
                        operation: format!("reading the refresh lease of token {id}"),
                        attempts: 2,
                    });
                }
                Ok(Read::Found {
                    token: Box::new(record.token),
                    lease: lease_of(&json),
                    version,
                })
            }
            Fetched::Value { string: None, .. } => Err(StoreError::Corrupt {
                id: id.to_owned(),
                reason: "a binary secret, not a token JSON string".into(),
            }),
            Fetched::Value {
                version_id: None, ..
            } => Err(StoreError::backend(
                format!("GetSecretValue {name}"),
                "the answer has no version id",
            )),
            Fetched::Absent | Fetched::Deleted => Ok(Read::Missing),
        }
    }

    /// Replaces version `read` of token `id`'s secret by `json` if it is
    /// still current, by the compare-and-swap every write of a token secret
    /// uses ([`Api::swap`]): a stage move that took effect counts, whatever
    /// it was answered. The new version when this write made it current,
    /// which this instance's cached copy then names, so that the save that
    /// ends the lease replaces it without reading it again.
    ///
    /// [`Api::swap`]: super::api::Api::swap
    async fn swap(
        &self,
        id: &str,
        token: &OAuthToken,
        json: &str,
        request_token: &str,
        read: &str,
    ) -> Result<bool, StoreError> {
        let name = self.inner.layout.token(id);
        // The lease's own labels: a lease and a save racing from one version
        // never share one (see `Staging::Pooled`).
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&Sha256::digest(request_token.as_bytes())[..8]);
        let slot = u64::from_be_bytes(seed);
        let staging = Staging::Pooled {
            prefix: LEASE_LABEL,
            slot,
        };
        let swapped = self
            .inner
            .api
            .swap(&name, json, request_token, read, staging)
            .await;
        match swapped {
            Ok(Swap::Won(version)) => {
                self.inner.cache.put(id, token.clone(), Some(version));
                Ok(true)
            }
            // Lost: claimed by another process, or the secret is gone.
            Ok(_) => {
                self.inner.cache.invalidate(id);
                Ok(false)
            }
            Err(error) => {
                self.inner.cache.invalidate(id);
                Err(error)
            }
        }
    }

    /// [`TokenStore::refresh_lease`](crate::TokenStore::refresh_lease) on
    /// the token's secret.
    pub(super) async fn lease(
        &self,
        id: &str,
        request: &LeaseRequest,
    ) -> Result<RefreshLease, StoreError> {
        validate_id(id)?;
        let name = self.inner.layout.token(id);
        for _ in 0..ATTEMPTS {
            let (token, lease, version) = match self.read_leased(id).await? {
                Read::Missing => {
                    self.inner.cache.invalidate(id);
                    return Ok(RefreshLease::Missing);
                }
                Read::Found {
                    token,
                    lease,
                    version,
                } => (token, lease, version),
            };
            if request.is_refreshed(&token) {
                self.inner.cache.put(id, (*token).clone(), Some(version));
                return Ok(RefreshLease::Refreshed(token));
            }
            let now = self.now_millis();
            // Consecutive failed refreshes so far, carried into the new lease.
            // A lease that ended unmarked (its holder neither saved nor
            // marked a failure: it crashed, or its mark was lost) counts as
            // one more, so the backoff still grows.
            let failures = lease.as_ref().map_or(0, |l| {
                let unmarked = l.failed.is_none() && l.until <= now;
                l.failures.saturating_add(u32::from(unmarked))
            });
            if let Some(lease) = lease
                && lease.until > now
            {
                if lease.holder == request.holder && lease.failed.is_none() {
                    // Already this holder's: nothing to write.
                    return Ok(RefreshLease::Acquired {
                        token,
                        until: lease.until,
                        failures: lease.failures,
                    });
                }
                return Ok(match lease.failed {
                    Some(failed) => RefreshLease::Failed(failure_of(&failed, lease.until)),
                    None => RefreshLease::Held { until: lease.until },
                });
            }
            let until = now.saturating_add(request.duration.as_millis() as i64);
            let lease = Lease {
                holder: request.holder.clone(),
                until,
                failed: None,
                failures,
            };
            let json = with_lease(id, &token, &lease)?;
            let claim = claim_token(&name, &version, now, request.duration);
            if self.swap(id, &token, &json, &claim, &version).await? {
                return Ok(RefreshLease::Acquired {
                    token,
                    until,
                    failures,
                });
            }
            // Another process claimed this lease first: it becomes current
            // in a moment (or, if that process died, the next lease period
            // claims another version id).
            tokio::time::sleep(Duration::from_millis(50 + fastrand::u64(0..50))).await;
        }
        Ok(RefreshLease::Held {
            until: self.now_millis() + request.duration.max(MIN_PERIOD).as_millis() as i64,
        })
    }

    /// [`TokenStore::fail_refresh_lease`](crate::TokenStore::fail_refresh_lease)
    /// on the token's secret.
    pub(super) async fn fail_lease(
        &self,
        id: &str,
        holder: &str,
        failure: &LeaseFailure,
    ) -> Result<(), StoreError> {
        validate_id(id)?;
        let (code, until) = mark_of(failure);
        // A mark that does not land lets the next caller retry as soon as
        // the lease ends, before the backoff: so it is retried, and a write
        // refused (or failed) after it took effect counts as landed.
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            let (token, lease, version) = match self.read_leased(id).await {
                Ok(Read::Found {
                    token,
                    lease: Some(lease),
                    version,
                }) => (token, lease, version),
                Ok(_) => return Ok(()),
                Err(e) if e.is_retryable() => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if lease.holder != holder || lease.failed.is_some() {
                // Marked already (by an earlier attempt of this loop), or
                // another process took the lease over (this one's had ended).
                return Ok(());
            }
            let failed = Lease {
                holder: holder.to_owned(),
                until,
                failed: Some(code.clone()),
                failures: lease.failures.saturating_add(1),
            };
            let json = with_lease(id, &token, &failed)?;
            let request_token = uuid::Uuid::new_v4().to_string();
            match self.swap(id, &token, &json, &request_token, &version).await {
                Ok(true) => return Ok(()),
                // Lost, or an error: the next read tells which.
                Ok(false) => {}
                Err(e) if e.is_retryable() => last_error = Some(e),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(50 + fastrand::u64(0..50))).await;
        }
        match last_error {
            Some(e) => Err(e),
            None => Err(StoreError::Conflict {
                operation: format!("marking the refresh lease of token {id} failed"),
                attempts: ATTEMPTS,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_field_round_trips_and_is_ignored_by_the_token_codec() {
        let token = OAuthToken::for_user("u@x").with_id("abc");
        let lease = Lease {
            holder: "h".into(),
            until: i64::MAX,
            failed: Some("invalid_code".into()),
            failures: 3,
        };
        let json = with_lease("abc", &token, &lease).unwrap();
        assert_eq!(crate::token::decode_token("abc", &json).unwrap(), token);
        let read = lease_of(&json).unwrap();
        assert_eq!((read.holder.as_str(), read.until), ("h", i64::MAX));
        assert_eq!(read.failures, 3);
        assert_eq!(read.failed.as_deref(), Some("invalid_code"));
        assert!(lease_of(r#"{"id":"abc","refresh_lease":"junk"}"#).is_none());
        assert!(lease_of(&encode_token(&token).unwrap()).is_none());
    }

    #[test]
    fn failure_marks_are_stored_as_the_first_releases_wrote_them() {
        let rejected = LeaseFailure::Rejected {
            code: "invalid_code".into(),
        };
        let cases = [
            (rejected, ("invalid_code", i64::MAX)),
            (
                LeaseFailure::Throttled { retry_after: 9 },
                ("Access Denied", 9),
            ),
            (LeaseFailure::Transport { retry_after: 9 }, ("transport", 9)),
            (
                LeaseFailure::GrantExchange {
                    cause: FailureCause::Rejected {
                        code: "invalid_code".into(),
                    },
                    retry_after: 9,
                },
                ("grant:invalid_code", 9),
            ),
            (
                LeaseFailure::GrantExchange {
                    cause: FailureCause::Throttled,
                    retry_after: 9,
                },
                ("grant:Access Denied", 9),
            ),
            (
                LeaseFailure::GrantExchange {
                    cause: FailureCause::Transport,
                    retry_after: 9,
                },
                ("grant:transport", 9),
            ),
        ];
        for (failure, (code, until)) in cases {
            assert_eq!(mark_of(&failure), (code.to_owned(), until), "{failure:?}");
            assert_eq!(failure_of(code, until), failure, "{code}");
        }
    }

    #[test]
    fn marks_written_by_deployed_processes_decode() {
        // Lease fields exactly as the first releases wrote them.
        let old = |lease: &str| {
            let json = format!(r#"{{"id":"abc","user_name":"u@x","refresh_lease":{lease}}}"#);
            let lease = lease_of(&json).expect("an old lease field reads");
            failure_of(lease.failed.as_deref().unwrap(), lease.until)
        };
        assert_eq!(
            old(
                r#"{"holder":"h","until":9223372036854775807,"failed":"invalid_client","failures":1}"#
            ),
            LeaseFailure::Rejected {
                code: "invalid_client".into()
            }
        );
        assert_eq!(
            old(r#"{"holder":"h","until":1900000000000,"failed":"Access Denied","failures":2}"#),
            LeaseFailure::Throttled {
                retry_after: 1_900_000_000_000
            }
        );
        assert_eq!(
            old(r#"{"holder":"h","until":1900000000000,"failed":"transport"}"#),
            LeaseFailure::Transport {
                retry_after: 1_900_000_000_000
            }
        );
        assert_eq!(
            old(r#"{"holder":"h","until":1900000000000,"failed":"grant:invalid_code"}"#),
            LeaseFailure::GrantExchange {
                cause: FailureCause::Rejected {
                    code: "invalid_code".into()
                },
                retry_after: 1_900_000_000_000
            }
        );
        // A new mark reads in an old process as its own: the same fields.
        let token = OAuthToken::for_user("u@x").with_id("abc");
        let (code, until) = mark_of(&LeaseFailure::Rejected {
            code: "invalid_code".into(),
        });
        let lease = Lease {
            holder: "h".into(),
            until,
            failed: Some(code),
            failures: 1,
        };
        let json: serde_json::Value =
            serde_json::from_str(&with_lease("abc", &token, &lease).unwrap()).unwrap();
        assert_eq!(
            json["refresh_lease"],
            serde_json::json!({"holder":"h","until":i64::MAX,"failed":"invalid_code","failures":1})
        );
    }

    #[test]
    fn racers_in_one_period_claim_one_version_id() {
        let period = Duration::from_secs(30);
        let a = claim_token("p/tokens/a", "v1", 60_000, period);
        assert_eq!(a, claim_token("p/tokens/a", "v1", 89_999, period));
        assert_ne!(a, claim_token("p/tokens/a", "v1", 90_000, period));
        assert_ne!(a, claim_token("p/tokens/a", "v2", 60_000, period));
        assert_ne!(a, claim_token("p/tokens/b", "v1", 60_000, period));
        assert_eq!(a.len(), 36);
    }
}
