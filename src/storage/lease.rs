//! Refresh leases on a [`Storage`], by conditional put of the token's own
//! record, so that every store on [`StorageStore`](super::StorageStore)
//! gives a fleet one refresh per token.
//!
//! The lease is one more field of the token record's JSON, which the token
//! codec ignores (unknown fields are), and which the next save drops (a save
//! writes only the token's fields): that is how a save ends a lease and any
//! failure mark, and forgets the count of failures:
//!
//! ```json
//! {"id":"…", …, "refresh_lease":{"holder":"<id>","until":1900000000000,
//!  "failed":{"kind":"transport","retry_after":1900000000000},"failures":1}}
//! ```
//!
//! A marked lease lasts until the mark's `retry_after` (`until` is set to
//! it), or forever for a `rejected` mark: until the next save. `failures`
//! counts the refreshes in a row that failed (a mark, or a lease that ended
//! with neither a save nor a mark), for the caller's backoff. Times are
//! Unix ms, by the store's clock (the system's unless
//! [`StorageStore::clock`](super::StorageStore::clock) says otherwise).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::record::{read_token, token_key};
use super::retry::{ATTEMPTS, yield_now};
use super::{Expected, Storage};
use crate::error::StoreError;
use crate::id::validate_id;
use crate::lease::{FailureCause, LeaseFailure, LeaseRequest, RefreshLease};
use crate::token::{MAX_TOKEN_BYTES, OAuthToken};

/// The lease field of a token record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    holder: String,
    /// When the lease (or, with `failed`, the mark) ends, Unix ms.
    until: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<Mark>,
    #[serde(default, skip_serializing_if = "is_zero")]
    failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A [`LeaseFailure`] as the lease field stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark(#[serde(with = "MarkDef")] LeaseFailure);

#[derive(Serialize, Deserialize)]
#[serde(remote = "LeaseFailure", tag = "kind", rename_all = "snake_case")]
enum MarkDef {
    Rejected {
        code: String,
    },
    Throttled {
        retry_after: i64,
    },
    Transport {
        retry_after: i64,
    },
    GrantExchange {
        #[serde(with = "CauseDef")]
        cause: FailureCause,
        retry_after: i64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "FailureCause", tag = "kind", rename_all = "snake_case")]
enum CauseDef {
    Rejected { code: String },
    Throttled,
    Transport,
}

/// The token record's value with its lease field.
#[derive(Serialize)]
struct Leased<'a> {
    #[serde(flatten)]
    token: &'a OAuthToken,
    refresh_lease: &'a Lease,
}

/// The lease field of a token record's value, read leniently: a malformed
/// one counts as none (the token codec has read the rest).
fn lease_in(value: &str) -> Option<Lease> {
    let mut object: serde_json::Value = serde_json::from_str(value).ok()?;
    serde_json::from_value(object.get_mut("refresh_lease")?.take()).ok()
}

/// The record value of `token` with `lease`; within the token size limit.
fn leased_value(token: &OAuthToken, lease: &Lease) -> Result<String, StoreError> {
    let value = serde_json::to_string(&Leased {
        token,
        refresh_lease: lease,
    })
    .map_err(|_| StoreError::invalid_input("a token with its lease cannot be encoded"))?;
    if value.len() > MAX_TOKEN_BYTES {
        return Err(StoreError::invalid_input(format!(
            "token {} with a refresh lease would exceed {MAX_TOKEN_BYTES} bytes",
            token.id.as_deref().unwrap_or_default()
        )));
    }
    Ok(value)
}

/// `time` in Unix ms.
pub(super) fn unix_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a lease request gets, given the stored lease.
enum Decision {
    /// Write this lease: the caller takes it.
    Take(Lease),
    /// The caller holds an unmarked lease already: nothing to write.
    Holds { until: i64, failures: u32 },
    /// Another holder's lease, or a mark: this answer, nothing to write.
    Answer(RefreshLease),
}

fn decide(lease: Option<Lease>, request: &LeaseRequest, now: i64) -> Decision {
    // Failures in a row so far; a lease that ended unmarked (its holder
    // crashed, or its mark was lost) counts as one more.
    let failures = lease.as_ref().map_or(0, |l| {
        let unmarked = l.failed.is_none() && l.until <= now;
        l.failures.saturating_add(u32::from(unmarked))
    });
    if let Some(lease) = lease.filter(|l| l.until > now) {
        return match lease.failed {
            Some(Mark(failure)) => Decision::Answer(RefreshLease::Failed(failure)),
            None if lease.holder == request.holder => Decision::Holds {
                until: lease.until,
                failures: lease.failures,
            },
            None => Decision::Answer(RefreshLease::Held { until: lease.until }),
        };
    }
    let duration = i64::try_from(request.duration.as_millis()).unwrap_or(i64::MAX);
    Decision::Take(Lease {
        holder: request.holder.clone(),
        until: now.saturating_add(duration),
        failed: None,
        failures,
    })
}

/// [`TokenStore::refresh_lease`](crate::TokenStore::refresh_lease) on
/// `storage`.
pub(super) async fn refresh_lease(
    storage: &dyn Storage,
    now: &(dyn Fn() -> i64 + Send + Sync),
    id: &str,
    request: &LeaseRequest,
) -> Result<RefreshLease, StoreError> {
    validate_id(id)?;
    for _ in 0..ATTEMPTS {
        let Some((token, record)) = read_token(storage, id).await? else {
            return Ok(RefreshLease::Missing);
        };
        if request.is_refreshed(&token) {
            return Ok(RefreshLease::Refreshed(Box::new(token)));
        }
        let lease = match decide(lease_in(&record.value), request, now()) {
            Decision::Take(lease) => lease,
            Decision::Holds { until, failures } => {
                let token = Box::new(token);
                return Ok(RefreshLease::Acquired {
                    token,
                    until,
                    failures,
                });
            }
            Decision::Answer(answer) => return Ok(answer),
        };
        let value = leased_value(&token, &lease)?;
        let expected = Expected::Version(&record.version);
        if storage
            .put(&token_key(id), &value, expected)
            .await?
            .is_some()
        {
            let (until, failures) = (lease.until, lease.failures);
            let token = Box::new(token);
            return Ok(RefreshLease::Acquired {
                token,
                until,
                failures,
            });
        }
        // Another writer got in first: the next read says who.
        yield_now().await;
    }
    Err(StoreError::Conflict {
        operation: format!("taking the refresh lease of token {id}"),
        attempts: ATTEMPTS,
    })
}

/// [`TokenStore::fail_refresh_lease`](crate::TokenStore::fail_refresh_lease)
/// on `storage`.
pub(super) async fn fail_refresh_lease(
    storage: &dyn Storage,
    id: &str,
    holder: &str,
    failure: &LeaseFailure,
) -> Result<(), StoreError> {
    validate_id(id)?;
    for _ in 0..ATTEMPTS {
        let Some((token, record)) = read_token(storage, id).await? else {
            return Ok(());
        };
        let Some(lease) = lease_in(&record.value) else {
            return Ok(());
        };
        if lease.holder != holder || lease.failed.is_some() {
            // Taken over by another holder, or marked already.
            return Ok(());
        }
        let marked = Lease {
            holder: lease.holder,
            until: failure.retry_after().unwrap_or(i64::MAX),
            failed: Some(Mark(failure.clone())),
            failures: lease.failures.saturating_add(1),
        };
        let value = leased_value(&token, &marked)?;
        let expected = Expected::Version(&record.version);
        if storage
            .put(&token_key(id), &value, expected)
            .await?
            .is_some()
        {
            return Ok(());
        }
        yield_now().await;
    }
    Err(StoreError::Conflict {
        operation: format!("marking the refresh lease of token {id} failed"),
        attempts: ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lease_field_round_trips_and_the_token_codec_ignores_it() {
        let token = OAuthToken::for_user("u@x").with_id("abc");
        let lease = Lease {
            holder: "h".into(),
            until: 9,
            failed: Some(Mark(LeaseFailure::GrantExchange {
                cause: FailureCause::Rejected {
                    code: "invalid_code".into(),
                },
                retry_after: 9,
            })),
            failures: 2,
        };
        let value = leased_value(&token, &lease).unwrap();
        assert_eq!(crate::decode_token("abc", &value).unwrap(), token);
        assert_eq!(lease_in(&value), Some(lease));
        assert_eq!(lease_in(r#"{"id":"abc","refresh_lease":"junk"}"#), None);
        assert_eq!(lease_in(&crate::encode_token(&token).unwrap()), None);
    }

    #[test]
    fn an_ended_unmarked_lease_counts_as_a_failure() {
        let request = LeaseRequest::new("b", Duration::from_millis(10), 0, None);
        let ended = Lease {
            holder: "a".into(),
            until: 100,
            failed: None,
            failures: 1,
        };
        let Decision::Take(taken) = decide(Some(ended), &request, 100) else {
            panic!("an ended lease is taken");
        };
        assert_eq!((taken.holder.as_str(), taken.until), ("b", 110));
        assert_eq!(taken.failures, 2);
    }
}
