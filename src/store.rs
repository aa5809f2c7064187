//! The [`TokenStore`] trait, its forwarding impls, and the matching rules
//! every backend shares: they live here once, and each backend adds only how
//! it reads and writes.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::id::{generate_id, validate_id};
use crate::lease::{LeaseFailure, LeaseRequest, RefreshLease};
use crate::token::{MAX_USER_NAME_BYTES, OAuthToken, is_set};

/// Persistent storage of Zoho OAuth tokens: the `TokenStore` interface of the
/// Zoho CRM SDKs.
///
/// Implementations follow the rules of the Zoho SDK's `FileStore` (where
/// these docs are silent, its behaviour is the reference), with its bugs
/// fixed. Every store, this crate's and yours, keeps these rules:
///
/// - **Lookup.** A query token is matched by its [`LookupKey`]: user name
///   first, else access token (only without client credentials), else grant
///   or refresh token (only with both client id and secret); the first rule
///   that applies decides, with no fall-through. An empty string counts as an
///   absent field.
/// - **Find merges.** [`find_token`](Self::find_token) answers with the
///   stored token overlaid by every field the query sets (Zoho's merge); a
///   query with nothing to match on is [`StoreError::InvalidInput`].
/// - **Save is an upsert.** [`save_token`](Self::save_token) updates the
///   token its `id` names; without an id, or with an id that is not stored,
///   the lookup key decides (but a given id decides alone: a save whose id is
///   not stored creates a token under that id and is never merged into a
///   token that matches by lookup key). An update fills the fields the new
///   token leaves empty from the stored token, then stores the result. With
///   no match, a token with none of refresh, grant or access token is
///   [`StoreError::InvalidInput`]; otherwise it is stored as a new token,
///   under its `id` when given, else under a newly generated one. On `Ok`,
///   the token's `id` is set and the token equals what is stored.
/// - **One token per user.** A save that would give a second stored token
///   the same user name (a new id with a stored user's name, or a rename onto
///   another token's user) is [`StoreError::InvalidInput`] and writes nothing.
/// - **Ids** are 1 to [`MAX_ID_LEN`](crate::MAX_ID_LEN) characters of
///   `A-Z a-z 0-9 _ . @ + = -` ([`validate_id`](crate::validate_id)); any
///   other id is [`StoreError::InvalidInput`] for every method that takes
///   one. Generated ids ([`generate_id`](crate::generate_id)) are opaque and
///   random, never `max(id) + 1`, which concurrent writers compute alike.
/// - **Limits.** A token whose JSON encoding is over
///   [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES), or whose user name is over
///   [`MAX_USER_NAME_BYTES`](crate::MAX_USER_NAME_BYTES), is
///   [`StoreError::InvalidInput`] in every store ([`prepare_save`] checks the
///   user name, [`encode_token`](crate::encode_token) the size), so a token
///   one store accepts every store accepts.
/// - **Absent is not an error.** [`find_token_by_id`](Self::find_token_by_id)
///   of an absent id is `Ok(None)` (the Zoho samples raise);
///   [`delete_token`](Self::delete_token) of an absent id is `Ok(())`.
/// - **Read your writes.** After `save_token` or `delete_token` returns, the
///   same store instance never answers with the old value, by id or by any
///   lookup key; a caching store never serves a token past its `expiry_time`.
/// - Bad input is a [`StoreError::InvalidInput`], never a panic, and no error
///   or `Debug` output shows a token's secret values.
///
/// The trait is object safe: stores are used as `Arc<dyn TokenStore>` or
/// `Box<dyn TokenStore>` as readily as by value. Any implementation can prove
/// that it follows these rules with the [`conformance`](crate::conformance) suite.
///
/// To write a store, implement [`Storage`](crate::Storage) (get, conditional
/// put, list, delete) and wrap it in [`StorageStore`](crate::StorageStore),
/// which keeps every rule here, refresh leases included. Implement this
/// trait by hand for a backend that needs its own ways (as
/// `SecretsManagerStore` does, with its cache and index), and forward it
/// through a wrapper type with [`forward_token_store!`](crate::forward_token_store).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The stored token that `token` matches by its [`LookupKey`], with every
    /// field `token` sets taken from `token`; `Ok(None)` when none matches.
    ///
    /// A store must match by [`LookupKey::of`] (first rule that applies, no
    /// fall-through), answer `token.merged_over(&stored)`
    /// ([`OAuthToken::merged_over`]: the query's set fields win), and answer a `token` with nothing
    /// to match on with [`StoreError::InvalidInput`] ([`LookupKey::require`]).
    /// It never writes.
    async fn find_token(&self, token: &OAuthToken) -> Result<Option<OAuthToken>, StoreError>;

    /// The token stored under `id`, or `Ok(None)`.
    ///
    /// A store must answer `Ok(None)` for an absent id (not an error), and
    /// [`StoreError::InvalidInput`] for an id [`validate_id`](crate::validate_id)
    /// refuses.
    async fn find_token_by_id(&self, id: &str) -> Result<Option<OAuthToken>, StoreError>;

    /// Stores `token`: updates the token its id names, else the one its
    /// [`LookupKey`] matches (stored fields fill the fields `token` leaves
    /// empty), else stores it as a new token under its id or a generated one.
    ///
    /// On `Ok`, `token.id` is set and `token` equals what is stored. A new
    /// token without refresh, grant or access token, or a save that would give
    /// a second stored token the same user name, is [`StoreError::InvalidInput`]
    /// and writes nothing.
    ///
    /// A store must resolve the target (by id, else by lookup key), build
    /// what it writes with [`prepare_save`], check it with
    /// [`check_unique_user`], and write the [`encode_token`](crate::encode_token)
    /// encoding. A save ends the token's refresh lease and any failure mark
    /// on it, and resets its count of failed refreshes
    /// ([`fail_refresh_lease`](Self::fail_refresh_lease)).
    async fn save_token(&self, token: &mut OAuthToken) -> Result<(), StoreError>;

    /// Deletes the token stored under `id`; `Ok(())` if there is none.
    ///
    /// A store must answer [`StoreError::InvalidInput`] for an id
    /// [`validate_id`](crate::validate_id) refuses; after `Ok`, no lookup
    /// finds the token, and its lease (if any) is gone with it.
    async fn delete_token(&self, id: &str) -> Result<(), StoreError>;

    /// Every stored token, in no particular order.
    ///
    /// A store must answer each stored token once, as `find_token_by_id`
    /// would, with its id set.
    async fn get_tokens(&self) -> Result<Vec<OAuthToken>, StoreError>;

    /// Deletes every stored token.
    ///
    /// A store must leave nothing `get_tokens` or a lookup finds.
    async fn delete_tokens(&self) -> Result<(), StoreError>;

    /// Saves every token of `tokens`, with the outcome of calling
    /// [`save_token`](Self::save_token) on each in order: on `Ok`, each
    /// token's `id` is set and it equals what is stored. For imports and
    /// migrations.
    ///
    /// The provided method does exactly that, one token at a time. A store
    /// may do it in bulk: `SecretsManagerStore` writes each index secret a
    /// few times for the whole batch instead of once per token, which keeps
    /// a large import within Secrets Manager's quota of versions per secret.
    ///
    /// On `Err`, the tokens before the failing one may be saved (a bulk store:
    /// any of them); a token that was saved has its `id` set, and saving the
    /// same batch again saves nothing twice (the lookup rules match them).
    async fn save_tokens(&self, tokens: &mut [OAuthToken]) -> Result<(), StoreError> {
        for token in tokens.iter_mut() {
            self.save_token(token).await?;
        }
        Ok(())
    }

    /// Asks for the lease on refreshing token `id` at Zoho, so that of many
    /// processes sharing this store only one refreshes it (Zoho allows 10
    /// access tokens per refresh token in 10 minutes, and 15 live ones).
    ///
    /// The provided method answers [`RefreshLease::Unsupported`]: callers
    /// such as `ZohoAuth` (module `auth`) then share one refresh
    /// among the callers of one process only, and each process refreshes on
    /// its own. A store shared by processes must, in this order:
    ///
    /// - read the stored token past any cache; none: [`RefreshLease::Missing`];
    /// - if it already has an access token `request` accepts
    ///   ([`LeaseRequest::is_refreshed`]): [`RefreshLease::Refreshed`] with it;
    /// - if a failure mark ([`fail_refresh_lease`](Self::fail_refresh_lease))
    ///   has not ended ([`LeaseFailure::retry_after`]; a
    ///   [`LeaseFailure::Rejected`] mark ends only with a save):
    ///   [`RefreshLease::Failed`] with it, whoever asks, writing nothing;
    /// - if `request.holder` already holds an unmarked lease that has not
    ///   ended: [`RefreshLease::Acquired`] with it, writing nothing;
    /// - if another holder's lease has not ended: [`RefreshLease::Held`];
    /// - else record a lease for `request.holder` until now plus
    ///   `request.duration`, atomically (of concurrent askers exactly one
    ///   wins, the others answer `Held`), and answer
    ///   [`RefreshLease::Acquired`] with the token read.
    ///
    /// A later `save_token` of the token ends the lease and any mark; so
    /// does the lease's end time. Asking for a lease does not change the
    /// token's fields: `find_token` answers the same before and after.
    async fn refresh_lease(
        &self,
        id: &str,
        request: &LeaseRequest,
    ) -> Result<RefreshLease, StoreError> {
        let _ = (id, request);
        Ok(RefreshLease::Unsupported)
    }

    /// Marks the lease `holder` holds on token `id` as failed with
    /// `failure`, so that until the mark ends every
    /// [`refresh_lease`](Self::refresh_lease) answers
    /// [`RefreshLease::Failed`] with it instead of a lease, and nobody calls
    /// Zoho again at once.
    ///
    /// A store that implements leases must:
    ///
    /// - do nothing if `holder` does not hold the lease (it ended and was
    ///   taken over, or the token is gone), or if it is marked already;
    /// - keep the mark until [`failure.retry_after()`](LeaseFailure::retry_after)
    ///   (Unix ms), or, when that is `None` ([`LeaseFailure::Rejected`]:
    ///   Zoho refused the refresh token or the client, which retrying cannot
    ///   mend), until the token is saved again; a save ends any mark;
    /// - if it counts failures in a row: count this mark as one more, give
    ///   the count to the next lease ([`RefreshLease::Acquired`]'s
    ///   `failures`), count a lease that ended with neither a save nor a mark
    ///   as one more too, and forget the count on a save;
    /// - retry on transient errors: a mark that does not land costs an early
    ///   retry at Zoho (the next caller takes the lease when it ends, before
    ///   the backoff).
    ///
    /// The provided method does nothing (stores without leases).
    async fn fail_refresh_lease(
        &self,
        id: &str,
        holder: &str,
        failure: &LeaseFailure,
    ) -> Result<(), StoreError> {
        let _ = (id, holder, failure);
        Ok(())
    }
}

/// Implements [`TokenStore`] for a wrapper type by handing every method,
/// the provided ones included, to the store in one of its fields.
///
/// A wrapper that adds something around a store (a temporary directory to
/// remove on drop, a guard, a handle to keep) then forwards the whole trait
/// in one line, and keeps forwarding methods the trait gains later:
///
/// ```
/// use zoho_token_store::MemoryStore;
///
/// /// A store that also says which tenant it is for.
/// struct TenantStore {
///     tenant: String,
///     tokens: MemoryStore,
/// }
///
/// zoho_token_store::forward_token_store!(TenantStore => tokens);
/// # fn is_store<T: zoho_token_store::TokenStore>() {}
/// # is_store::<TenantStore>();
/// ```
///
/// The field may be a tuple index (`Wrapper => 0`). To change what some
/// methods do, implement the trait by hand instead.
#[macro_export]
macro_rules! forward_token_store {
    ($wrapper:ty => $field:tt) => {
        $crate::forward_token_store!(@impl [] $wrapper, this => this.$field);
    };
    // `this` names the wrapper in `$target`: `self` cannot be passed into a
    // macro, so each method binds it.
    (@impl [$($generics:tt)*] $wrapper:ty, $this:ident => $target:expr) => {
        #[$crate::__private::async_trait]
        impl<$($generics)*> $crate::TokenStore for $wrapper {
            async fn find_token(
                &self,
                token: &$crate::OAuthToken,
            ) -> ::std::result::Result<::std::option::Option<$crate::OAuthToken>, $crate::StoreError> {
                let $this = self;
                $target.find_token(token).await
            }
            async fn find_token_by_id(
                &self,
                id: &str,
            ) -> ::std::result::Result<::std::option::Option<$crate::OAuthToken>, $crate::StoreError> {
                let $this = self;
                $target.find_token_by_id(id).await
            }
            async fn save_token(
                &self,
                token: &mut $crate::OAuthToken,
            ) -> ::std::result::Result<(), $crate::StoreError> {
                let $this = self;
                $target.save_token(token).await
            }
            async fn delete_token(&self, id: &str) -> ::std::result::Result<(), $crate::StoreError> {
                let $this = self;
                $target.delete_token(id).await
            }
            async fn get_tokens(
                &self,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::OAuthToken>, $crate::StoreError> {
                let $this = self;
                $target.get_tokens().await
            }
            async fn delete_tokens(&self) -> ::std::result::Result<(), $crate::StoreError> {
                let $this = self;
                $target.delete_tokens().await
            }
            async fn save_tokens(
                &self,
                tokens: &mut [$crate::OAuthToken],
            ) -> ::std::result::Result<(), $crate::StoreError> {
                let $this = self;
                $target.save_tokens(tokens).await
            }
            async fn refresh_lease(
                &self,
                id: &str,
                request: &$crate::LeaseRequest,
            ) -> ::std::result::Result<$crate::RefreshLease, $crate::StoreError> {
                let $this = self;
                $target.refresh_lease(id, request).await
            }
            async fn fail_refresh_lease(
                &self,
                id: &str,
                holder: &str,
                failure: &$crate::LeaseFailure,
            ) -> ::std::result::Result<(), $crate::StoreError> {
                let $this = self;
                $target.fail_refresh_lease(id, holder, failure).await
            }
        }
    };
}

forward_token_store!(@impl [T: TokenStore + ?Sized] Arc<T>, this => (**this));
forward_token_store!(@impl [T: TokenStore + ?Sized] Box<T>, this => (**this));

/// What a query token is matched on: the Zoho lookup rules. The first rule
/// that applies decides, with no fall-through to later rules (a query whose
/// user name is unknown finds nothing, even if its tokens match):
///
/// 1. `user_name` set: the stored token with that user name.
/// 2. else `access_token` set and neither `client_id` nor `client_secret`: the
///    stored token with that access token.
/// 3. else grant or refresh token set and both `client_id` and `client_secret`:
///    the stored token with the query's grant token if it has one (an unknown
///    grant token does not fall through to the refresh token), otherwise the
///    one with its refresh token.
/// 4. else nothing to match on: [`LookupKey::of`] is `None`, and
///    `find_token` answers [`StoreError::InvalidInput`].
///
/// An empty string counts as an absent field, as in the Zoho SDKs. The same
/// key decides which stored token a `save_token` without a stored id updates
/// (see [`TokenStore`]).
/// `Debug` shows the user name but not token values.
///
/// ```
/// use zoho_token_store::{LookupKey, OAuthToken};
///
/// let query = OAuthToken::from_refresh_token("id", "secret", "1000.abc");
/// assert_eq!(LookupKey::of(&query), Some(LookupKey::RefreshToken("1000.abc")));
/// let query = query.with_user_name("me@example.com");
/// assert_eq!(LookupKey::of(&query), Some(LookupKey::UserName("me@example.com")));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupKey<'a> {
    /// Branch 1: the CRM user's name.
    UserName(&'a str),
    /// Branch 2: an access token, for a query without client credentials.
    AccessToken(&'a str),
    /// Branch 3: a grant token, with client credentials.
    GrantToken(&'a str),
    /// Branch 3: a refresh token, with client credentials and no grant token.
    RefreshToken(&'a str),
}

impl<'a> LookupKey<'a> {
    /// The key `token` is matched on, or `None` when it has nothing to match on.
    pub fn of(token: &'a OAuthToken) -> Option<Self> {
        let value = |field: &'a Option<String>| field.as_deref().filter(|v| !v.is_empty());
        if let Some(user_name) = value(&token.user_name) {
            return Some(Self::UserName(user_name));
        }
        let has_id = is_set(&token.client_id);
        let has_secret = is_set(&token.client_secret);
        if let Some(access) = value(&token.access_token)
            && !has_id
            && !has_secret
        {
            return Some(Self::AccessToken(access));
        }
        if has_id && has_secret {
            if let Some(grant) = value(&token.grant_token) {
                return Some(Self::GrantToken(grant));
            }
            if let Some(refresh) = value(&token.refresh_token) {
                return Some(Self::RefreshToken(refresh));
            }
        }
        None
    }

    /// Like [`LookupKey::of`], but a token with nothing to match on is an
    /// [`StoreError::InvalidInput`] (what `find_token` answers).
    pub fn require(token: &'a OAuthToken) -> Result<Self, StoreError> {
        Self::of(token).ok_or_else(|| {
            StoreError::invalid_input(
                "query token has nothing to match on: set user_name, or access_token \
                 without client credentials, or grant_token/refresh_token with \
                 client_id and client_secret",
            )
        })
    }

    /// Whether `stored` has this key's value in the matching field.
    pub fn matches(&self, stored: &OAuthToken) -> bool {
        let (field, wanted) = match *self {
            Self::UserName(v) => (&stored.user_name, v),
            Self::AccessToken(v) => (&stored.access_token, v),
            Self::GrantToken(v) => (&stored.grant_token, v),
            Self::RefreshToken(v) => (&stored.refresh_token, v),
        };
        field.as_deref() == Some(wanted)
    }

    /// The field this key matches on, for logs and errors.
    pub fn field_name(&self) -> &'static str {
        match self {
            Self::UserName(_) => "user_name",
            Self::AccessToken(_) => "access_token",
            Self::GrantToken(_) => "grant_token",
            Self::RefreshToken(_) => "refresh_token",
        }
    }
}

impl fmt::Debug for LookupKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserName(user) => f.debug_tuple("UserName").field(user).finish(),
            other => write!(f, "{}(<redacted>)", other.field_name()),
        }
    }
}

/// The token a `save_token` writes, given the stored token it updates (found
/// by id or by lookup key), or `None` for a new token.
///
/// Every backend resolves the target its own way, then calls this so that the
/// merge, the id rules, the user name limit ([`MAX_USER_NAME_BYTES`]) and the
/// "new token needs a credential" rule live in one place. The result is the
/// id to write under and the token to write (whose `id` is that id); check it
/// with [`check_unique_user`] before writing.
pub fn prepare_save(
    token: &OAuthToken,
    target: Option<&OAuthToken>,
) -> Result<(String, OAuthToken), StoreError> {
    if let Some(id) = &token.id {
        validate_id(id)?;
    }
    check_user_name(token)?;
    match target {
        Some(stored) => {
            let id = stored.id.clone().or_else(|| token.id.clone());
            let id = id.ok_or_else(|| StoreError::invalid_input("stored token has no id"))?;
            let mut merged = token.merged_over(stored);
            merged.id = Some(id.clone());
            Ok((id, merged))
        }
        None if !token.has_credential() => Err(StoreError::invalid_input(
            "a new token needs a refresh_token, grant_token or access_token",
        )),
        None => {
            let id = token.id.clone().unwrap_or_else(generate_id);
            let mut new = token.clone();
            new.id = Some(id.clone());
            Ok((id, new))
        }
    }
}

/// Rejects a user name over [`MAX_USER_NAME_BYTES`]. (A stored token's user
/// name passed this check, so the merged token of an update passes it when the
/// saved token does.)
pub(crate) fn check_user_name(token: &OAuthToken) -> Result<(), StoreError> {
    match token.user_name.as_deref() {
        Some(user) if user.len() > MAX_USER_NAME_BYTES => Err(StoreError::invalid_input(format!(
            "user_name is {} bytes long, over the {MAX_USER_NAME_BYTES}-byte limit",
            user.len()
        ))),
        _ => Ok(()),
    }
}

/// Rejects a save that would give a second stored token `token`'s user name.
///
/// `holder` is the id of the stored token that already has that user name, if any.
pub fn check_unique_user(token: &OAuthToken, holder: Option<&str>) -> Result<(), StoreError> {
    match (holder, token.id.as_deref()) {
        (Some(holder), Some(id)) if holder != id => Err(StoreError::invalid_input(format!(
            "user {:?} already has stored token {holder}; saving token {id} would make a second",
            token.user_name.as_deref().unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(f: impl FnOnce(&mut OAuthToken)) -> OAuthToken {
        let mut t = OAuthToken::default();
        f(&mut t);
        t
    }

    #[test]
    fn lookup_key_branches() {
        let t = token(|t| {
            t.user_name = Some("u".into());
            t.access_token = Some("a".into());
        });
        assert_eq!(LookupKey::of(&t), Some(LookupKey::UserName("u")));
        let t = token(|t| t.access_token = Some("a".into()));
        assert_eq!(LookupKey::of(&t), Some(LookupKey::AccessToken("a")));
        let t = token(|t| {
            t.access_token = Some("a".into());
            t.client_id = Some("c".into());
        });
        assert_eq!(LookupKey::of(&t), None);
        let t = token(|t| {
            t.access_token = Some("a".into());
            t.client_id = Some("c".into());
            t.client_secret = Some("s".into());
            t.refresh_token = Some("r".into());
            t.grant_token = Some("g".into());
        });
        assert_eq!(LookupKey::of(&t), Some(LookupKey::GrantToken("g")));
        let t = token(|t| {
            t.user_name = Some(String::new());
            t.client_id = Some("c".into());
            t.client_secret = Some("s".into());
            t.refresh_token = Some("r".into());
            t.grant_token = Some(String::new());
        });
        assert_eq!(LookupKey::of(&t), Some(LookupKey::RefreshToken("r")));
        let t = token(|t| t.refresh_token = Some("r".into()));
        assert_eq!(LookupKey::of(&t), None);
    }

    #[test]
    fn lookup_key_debug_redacts_token_values() {
        let shown = format!("{:?}", LookupKey::RefreshToken("secret-refresh"));
        assert!(!shown.contains("secret-refresh"), "{shown}");
        assert_eq!(
            format!("{:?}", LookupKey::UserName("u@x")),
            r#"UserName("u@x")"#
        );
    }
}
