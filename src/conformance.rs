//! Checks that any [`TokenStore`] behaves as the Zoho SDKs expect.
//!
//! Each function takes a fresh, empty store, exercises one rule of the
//! [`TokenStore`] contract, and panics (like `assert!`) when the store breaks
//! it. Run them all with [`conformance_tests!`](crate::conformance_tests), one
//! test per check, or with [`run_all`] in one test, or call them one by one
//! from your own tests. [`CHECKS`] names them all.
//!
//! Available under the `conformance` cargo feature:
//!
//! ```toml
//! [dev-dependencies]
//! zoho-token-store = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```

use crate::error::StoreError;
use crate::id::MAX_ID_LEN;
use crate::store::TokenStore;
use crate::token::{MAX_USER_NAME_BYTES, OAuthToken};

/// Declares one `#[tokio::test]` per conformance check, each with the fresh
/// store that the expression (evaluated inside an async test, so it may
/// `.await`) makes.
///
/// ```ignore
/// zoho_token_store::conformance_tests!(zoho_token_store::MemoryStore::new());
/// ```
///
/// The list of checks is written once, in this macro's `@checks` rule: it
/// expands to these tests and to [`run_all`](crate::conformance::run_all), so
/// a check added there runs everywhere.
#[macro_export]
macro_rules! conformance_tests {
    ($new_store:expr) => {
        $crate::conformance_tests!(@checks [@tests $new_store]);
    };
    // The one list of checks, handed to the expansion named in brackets.
    (@checks [$($expansion:tt)*]) => {
        $crate::conformance_tests!($($expansion)*;
            find_by_user_name,
            find_by_access_token,
            find_by_grant_token,
            find_by_refresh_token,
            lookup_user_name_comes_first,
            lookup_grant_token_before_refresh_token,
            lookup_access_token_only_without_client_credentials,
            find_merges_query_fields,
            find_absent_is_none,
            find_with_nothing_to_match_is_invalid,
            save_updates_match_in_place,
            save_by_id_updates_that_token,
            save_sets_id_and_returns_what_is_stored,
            generated_ids_are_unique,
            given_id_is_honoured,
            invalid_ids_are_rejected,
            save_without_credential_is_rejected,
            second_token_for_one_user_is_rejected,
            user_names_over_the_limit_are_rejected,
            delete_is_idempotent,
            delete_tokens_removes_all,
            get_tokens_lists_all,
            read_your_writes,
        );
    };
    (@tests $new_store:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let store = $new_store;
                $crate::conformance::$check(&store).await;
            }
        )*
    };
    // Inside this crate only: the body of `conformance::run_all` and `CHECKS`.
    (@run_all; $($check:ident),* $(,)?) => {
        /// The name of every conformance check, in the order
        /// [`run_all`] runs them.
        pub const CHECKS: &[&str] = &[$(stringify!($check)),*];

        /// Runs every conformance check, each on a fresh store from
        /// `new_store`, in the order of [`CHECKS`].
        ///
        /// For a test runner without one test per check (use
        /// [`conformance_tests!`](crate::conformance_tests) where you can: it
        /// runs the checks in parallel and reports each). A failing check
        /// panics with its own message, after a line on standard error that
        /// names the check.
        ///
        /// ```
        /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
        /// use zoho_token_store::MemoryStore;
        ///
        /// zoho_token_store::conformance::run_all(|| async { MemoryStore::new() }).await;
        /// # });
        /// ```
        pub async fn run_all<S, F, Fut>(mut new_store: F)
        where
            S: TokenStore,
            F: FnMut() -> Fut,
            Fut: Future<Output = S>,
        {
            $(
                let store = new_store().await;
                let _named = Named(stringify!($check));
                $check(&store).await;
                std::mem::forget(_named);
            )*
        }
    };
}

crate::conformance_tests!(@checks [@run_all]);

/// Names the check that panicked: dropped during unwinding only (a passing
/// check forgets it).
struct Named(&'static str);

impl Drop for Named {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("conformance check `{}` failed", self.0);
        }
    }
}

/// A complete token for user number `n`, every value distinct per `n`.
pub fn sample_token(n: usize) -> OAuthToken {
    OAuthToken {
        id: None,
        user_name: Some(format!("user{n}@example.com")),
        client_id: Some(format!("1000.CLIENT{n}")),
        client_secret: Some(format!("client-secret-{n}")),
        refresh_token: Some(format!("1000.refresh-{n}")),
        access_token: Some(format!("1000.access-{n}")),
        grant_token: Some(format!("1000.grant-{n}")),
        expiry_time: Some(4_102_444_800_000 + n as i64),
        redirect_url: Some("https://example.com/oauth/callback".into()),
        api_domain: Some("https://www.zohoapis.com".into()),
    }
}

async fn save(store: &dyn TokenStore, mut token: OAuthToken) -> OAuthToken {
    store
        .save_token(&mut token)
        .await
        .unwrap_or_else(|e| panic!("save_token failed: {e}"));
    token
}

async fn find(store: &dyn TokenStore, query: &OAuthToken) -> Option<OAuthToken> {
    store
        .find_token(query)
        .await
        .unwrap_or_else(|e| panic!("find_token({query:?}) failed: {e}"))
}

async fn by_id(store: &dyn TokenStore, id: &str) -> Option<OAuthToken> {
    store
        .find_token_by_id(id)
        .await
        .unwrap_or_else(|e| panic!("find_token_by_id({id}) failed: {e}"))
}

async fn all(store: &dyn TokenStore) -> Vec<OAuthToken> {
    let mut tokens = store
        .get_tokens()
        .await
        .unwrap_or_else(|e| panic!("get_tokens failed: {e}"));
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    tokens
}

fn id_of(token: &OAuthToken) -> &str {
    token.id.as_deref().expect("a saved token has an id")
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::InvalidInput { .. }) => {}
        other => panic!("{what}: expected StoreError::InvalidInput, got {other:?}"),
    }
}

/// Saves two tokens for the checks that need a match and a non-match.
async fn two_stored(store: &dyn TokenStore) -> (OAuthToken, OAuthToken) {
    (
        save(store, sample_token(1)).await,
        save(store, sample_token(2)).await,
    )
}

/// Branch 1: a query with a user name finds that user's token.
pub async fn find_by_user_name(store: &dyn TokenStore) {
    let (first, second) = two_stored(store).await;
    assert_eq!(
        find(store, &OAuthToken::for_user("user1@example.com")).await,
        Some(first)
    );
    assert_eq!(
        find(store, &OAuthToken::for_user("user2@example.com")).await,
        Some(second)
    );
    assert_eq!(
        find(store, &OAuthToken::for_user("nobody@example.com")).await,
        None
    );
}

/// Branch 2: an access token without client credentials matches by access token.
pub async fn find_by_access_token(store: &dyn TokenStore) {
    let (_, second) = two_stored(store).await;
    let query = OAuthToken {
        access_token: second.access_token.clone(),
        ..OAuthToken::default()
    };
    assert_eq!(find(store, &query).await, Some(second));
    let query = OAuthToken {
        access_token: Some("1000.access-unknown".into()),
        ..OAuthToken::default()
    };
    assert_eq!(find(store, &query).await, None);
}

/// Branch 3: with client credentials, a grant token matches by grant token.
pub async fn find_by_grant_token(store: &dyn TokenStore) {
    let (first, _) = two_stored(store).await;
    let query = OAuthToken::from_grant_token("1000.CLIENT1", "client-secret-1", "1000.grant-1");
    assert_eq!(find(store, &query).await, Some(first));
    let query = OAuthToken::from_grant_token("1000.CLIENT1", "client-secret-1", "1000.grant-x");
    assert_eq!(find(store, &query).await, None);
}

/// Branch 3: with client credentials and no grant token, a refresh token matches.
pub async fn find_by_refresh_token(store: &dyn TokenStore) {
    let (_, second) = two_stored(store).await;
    let query = OAuthToken::from_refresh_token("1000.CLIENT2", "client-secret-2", "1000.refresh-2");
    assert_eq!(find(store, &query).await, Some(second));
    let query = OAuthToken::from_refresh_token("1000.CLIENT2", "client-secret-2", "1000.refresh-x");
    assert_eq!(find(store, &query).await, None);
}

/// A user name decides alone: other fields neither help nor override it.
pub async fn lookup_user_name_comes_first(store: &dyn TokenStore) {
    let (first, second) = two_stored(store).await;
    // User 1's name with user 2's tokens: user 1's token, overlaid by the query.
    let query = OAuthToken {
        id: None,
        ..second.clone()
    }
    .with_user_name("user1@example.com");
    let found = find(store, &query).await.expect("matched by user name");
    assert_eq!(found.id, first.id, "the user name must win over the tokens");
    // An unknown user name does not fall through to the matching tokens.
    let query = OAuthToken { id: None, ..second }.with_user_name("nobody@example.com");
    assert_eq!(
        find(store, &query).await,
        None,
        "no fall-through past the user name"
    );
}

/// Branch 3 prefers the grant token: a query whose grant token is unknown
/// does not fall through to its (matching) refresh token.
pub async fn lookup_grant_token_before_refresh_token(store: &dyn TokenStore) {
    let (first, _) = two_stored(store).await;
    let mut query =
        OAuthToken::from_refresh_token("1000.CLIENT1", "client-secret-1", "1000.refresh-1");
    query.grant_token = Some("1000.grant-unknown".into());
    assert_eq!(
        find(store, &query).await,
        None,
        "no fall-through to the refresh token"
    );
    query.grant_token = Some(String::new());
    let found = find(store, &query)
        .await
        .expect("an empty grant token is absent");
    assert_eq!(found.id, first.id);
}

/// Branch 2 applies only without client credentials; an access token with
/// credentials but no grant or refresh token has nothing to match on.
pub async fn lookup_access_token_only_without_client_credentials(store: &dyn TokenStore) {
    let (first, _) = two_stored(store).await;
    let mut query = OAuthToken {
        access_token: first.access_token.clone(),
        client_id: first.client_id.clone(),
        ..OAuthToken::default()
    };
    assert_invalid(
        store.find_token(&query).await,
        "access token with client_id",
    );
    query.client_secret = first.client_secret.clone();
    assert_invalid(
        store.find_token(&query).await,
        "access token with client credentials",
    );
    query.refresh_token = first.refresh_token.clone();
    let found = find(store, &query).await.expect("matched by refresh token");
    assert_eq!(found.id, first.id);
}

/// `find_token` answers with the stored token overlaid by the query's fields.
pub async fn find_merges_query_fields(store: &dyn TokenStore) {
    let (first, _) = two_stored(store).await;
    let query = OAuthToken {
        redirect_url: Some("https://other.example.com/cb".into()),
        expiry_time: Some(1),
        ..OAuthToken::for_user("user1@example.com")
    };
    let found = find(store, &query).await.expect("matched");
    let expected = OAuthToken {
        redirect_url: query.redirect_url.clone(),
        expiry_time: Some(1),
        ..first.clone()
    };
    assert_eq!(found, expected);
    // The find itself writes nothing.
    assert_eq!(by_id(store, id_of(&first)).await, Some(first));
}

/// Nothing stored, nothing found: `Ok(None)`, not an error.
pub async fn find_absent_is_none(store: &dyn TokenStore) {
    assert_eq!(
        find(store, &OAuthToken::for_user("user1@example.com")).await,
        None
    );
    assert_eq!(by_id(store, "absent-id").await, None);
    save(store, sample_token(1)).await;
    assert_eq!(
        find(store, &OAuthToken::for_user("user9@example.com")).await,
        None
    );
    assert_eq!(by_id(store, "absent-id").await, None);
}

/// A query with nothing to match on is `InvalidInput`.
pub async fn find_with_nothing_to_match_is_invalid(store: &dyn TokenStore) {
    save(store, sample_token(1)).await;
    let queries = [
        OAuthToken::default(),
        OAuthToken::for_user(""),
        OAuthToken {
            refresh_token: Some("1000.refresh-1".into()),
            ..OAuthToken::default()
        },
        OAuthToken {
            client_id: Some("1000.CLIENT1".into()),
            refresh_token: Some("1000.refresh-1".into()),
            ..OAuthToken::default()
        },
        OAuthToken {
            id: Some("some-id".into()),
            expiry_time: Some(5),
            ..OAuthToken::default()
        },
    ];
    for query in queries {
        assert_invalid(
            store.find_token(&query).await,
            &format!("find_token({query:?})"),
        );
    }
}

/// Saving a token that matches a stored one updates it: stored fields fill
/// what the new token leaves empty, and no second token appears.
pub async fn save_updates_match_in_place(store: &dyn TokenStore) {
    let (first, _) = two_stored(store).await;
    let refreshed = save(
        store,
        OAuthToken {
            access_token: Some("1000.access-new".into()),
            expiry_time: Some(4_200_000_000_000),
            ..OAuthToken::for_user("user1@example.com")
        },
    )
    .await;
    let expected = OAuthToken {
        access_token: Some("1000.access-new".into()),
        expiry_time: Some(4_200_000_000_000),
        ..first.clone()
    };
    assert_eq!(refreshed, expected);
    assert_eq!(all(store).await.len(), 2, "an update must not add a token");
    assert_eq!(by_id(store, id_of(&first)).await, Some(expected));
    // Matched by refresh token (with credentials) as well.
    let mut by_refresh =
        OAuthToken::from_refresh_token("1000.CLIENT2", "client-secret-2", "1000.refresh-2");
    by_refresh.api_domain = Some("https://www.zohoapis.eu".into());
    let updated = save(store, by_refresh).await;
    assert_eq!(updated.user_name.as_deref(), Some("user2@example.com"));
    assert_eq!(
        updated.api_domain.as_deref(),
        Some("https://www.zohoapis.eu")
    );
    assert_eq!(all(store).await.len(), 2);
}

/// Saving with the id of a stored token updates that token, whatever else
/// the new token carries.
pub async fn save_by_id_updates_that_token(store: &dyn TokenStore) {
    let (first, second) = two_stored(store).await;
    let update = OAuthToken {
        id: first.id.clone(),
        refresh_token: Some("1000.refresh-rotated".into()),
        user_name: Some("renamed@example.com".into()),
        ..OAuthToken::default()
    };
    let saved = save(store, update).await;
    let expected = OAuthToken {
        refresh_token: Some("1000.refresh-rotated".into()),
        user_name: Some("renamed@example.com".into()),
        ..first.clone()
    };
    assert_eq!(saved, expected);
    assert_eq!(by_id(store, id_of(&first)).await, Some(expected.clone()));
    assert_eq!(all(store).await, {
        let mut both = vec![expected, second];
        both.sort_by(|a, b| a.id.cmp(&b.id));
        both
    });
    assert_eq!(
        find(store, &OAuthToken::for_user("user1@example.com")).await,
        None
    );
    let found = find(store, &OAuthToken::for_user("renamed@example.com")).await;
    assert_eq!(found.and_then(|t| t.id), first.id);
}

/// On `Ok`, the saved token has its id and equals what is stored.
pub async fn save_sets_id_and_returns_what_is_stored(store: &dyn TokenStore) {
    let saved = save(store, sample_token(1)).await;
    let id = id_of(&saved);
    assert!(
        crate::id::validate_id(id).is_ok(),
        "generated id {id:?} is not a valid id"
    );
    assert_eq!(by_id(store, id).await, Some(saved.clone()));
    assert_eq!(all(store).await, vec![saved]);
}

/// Generated ids are unique over 1,000 saves (eight at a time).
pub async fn generated_ids_are_unique(store: &dyn TokenStore) {
    use futures::StreamExt;
    // Tokens with nothing to match on: each save is a new token.
    let saved: Vec<OAuthToken> = futures::stream::iter(0..1_000)
        .map(|n| {
            save(
                store,
                OAuthToken {
                    refresh_token: Some(format!("1000.refresh-{n}")),
                    ..OAuthToken::default()
                },
            )
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut ids = std::collections::HashSet::new();
    for token in &saved {
        assert!(
            ids.insert(token.id.clone()),
            "id {:?} generated twice",
            token.id
        );
    }
    assert_eq!(all(store).await.len(), 1_000);
}

/// A new token saved with an id is stored under exactly that id, up to 64 characters.
pub async fn given_id_is_honoured(store: &dyn TokenStore) {
    for id in ["my-token", "a.b@c+d=e_f-0", &"x".repeat(MAX_ID_LEN)] {
        let saved = save(
            store,
            OAuthToken {
                id: Some(id.to_owned()),
                user_name: None,
                ..sample_token(id.len())
            },
        )
        .await;
        assert_eq!(saved.id.as_deref(), Some(id));
        assert_eq!(by_id(store, id).await, Some(saved));
    }
    assert_eq!(all(store).await.len(), 3);
}

/// Malformed ids are `InvalidInput` for every method that takes one, and
/// nothing is written.
pub async fn invalid_ids_are_rejected(store: &dyn TokenStore) {
    let long = "a".repeat(MAX_ID_LEN + 1);
    for bad in ["", long.as_str(), "a/b", "../x", "a b", "tök", "tab\t", "*"] {
        assert_invalid(
            store.find_token_by_id(bad).await,
            &format!("find_token_by_id({bad:?})"),
        );
        assert_invalid(
            store.delete_token(bad).await,
            &format!("delete_token({bad:?})"),
        );
        let mut token = OAuthToken {
            id: Some(bad.to_owned()),
            ..sample_token(1)
        };
        assert_invalid(
            store.save_token(&mut token).await,
            &format!("save_token(id {bad:?})"),
        );
    }
    assert_eq!(
        all(store).await,
        vec![],
        "a rejected save must write nothing"
    );
}

/// A new token needs a refresh, grant or access token.
pub async fn save_without_credential_is_rejected(store: &dyn TokenStore) {
    let without = [
        OAuthToken::default(),
        OAuthToken::for_user("user1@example.com"),
        OAuthToken {
            client_id: Some("1000.CLIENT".into()),
            client_secret: Some("client-secret".into()),
            refresh_token: Some(String::new()),
            ..OAuthToken::for_user("user1@example.com")
        },
        OAuthToken {
            id: Some("fresh".into()),
            api_domain: Some("https://www.zohoapis.com".into()),
            ..OAuthToken::default()
        },
    ];
    for mut token in without {
        let what = format!("save_token({token:?})");
        assert_invalid(store.save_token(&mut token).await, &what);
    }
    assert_eq!(all(store).await, vec![]);
}

/// Never two stored tokens for one user name; the rejected save writes nothing.
pub async fn second_token_for_one_user_is_rejected(store: &dyn TokenStore) {
    let (first, second) = two_stored(store).await;
    // A new id with a stored user's name.
    let mut token = OAuthToken {
        id: Some("another-id".into()),
        ..sample_token(1)
    };
    assert_invalid(store.save_token(&mut token).await, "second token for user1");
    // Renaming one stored token to another's user name.
    let mut token = OAuthToken {
        id: second.id.clone(),
        user_name: first.user_name.clone(),
        ..OAuthToken::default()
    };
    assert_invalid(store.save_token(&mut token).await, "rename onto user1");
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        all(store).await,
        expected,
        "rejected saves must write nothing"
    );
    assert_eq!(by_id(store, "another-id").await, None);
    let found = find(store, &OAuthToken::for_user("user1@example.com")).await;
    assert_eq!(found.and_then(|t| t.id), first.id);
}

/// User names are limited to [`MAX_USER_NAME_BYTES`] bytes in every store:
/// one byte more is `InvalidInput` for a new token and for a rename, and
/// writes nothing; the limit itself is stored and found.
pub async fn user_names_over_the_limit_are_rejected(store: &dyn TokenStore) {
    let longest = format!("{}@example.com", "u".repeat(MAX_USER_NAME_BYTES - 12));
    assert_eq!(longest.len(), MAX_USER_NAME_BYTES);
    let too_long = format!("u{longest}");
    let mut token = sample_token(1).with_user_name(too_long.clone());
    assert_invalid(
        store.save_token(&mut token).await,
        "new token, long user name",
    );
    assert_eq!(
        all(store).await,
        vec![],
        "a rejected save must write nothing"
    );
    let saved = save(store, sample_token(1).with_user_name(longest.clone())).await;
    assert_eq!(
        find(store, &OAuthToken::for_user(longest))
            .await
            .and_then(|t| t.id),
        saved.id
    );
    let mut rename = OAuthToken {
        id: saved.id.clone(),
        ..OAuthToken::for_user(too_long)
    };
    assert_invalid(
        store.save_token(&mut rename).await,
        "rename to a long user name",
    );
    assert_eq!(
        all(store).await,
        vec![saved],
        "a rejected rename must write nothing"
    );
}

/// Deleting is idempotent: an absent id is `Ok`.
pub async fn delete_is_idempotent(store: &dyn TokenStore) {
    let (first, second) = two_stored(store).await;
    store.delete_token("never-stored").await.expect("absent id");
    store
        .delete_token(id_of(&first))
        .await
        .expect("first delete");
    store
        .delete_token(id_of(&first))
        .await
        .expect("second delete");
    assert_eq!(by_id(store, id_of(&first)).await, None);
    assert_eq!(all(store).await, vec![second]);
}

/// `delete_tokens` removes every token, and the store stays usable.
pub async fn delete_tokens_removes_all(store: &dyn TokenStore) {
    store
        .delete_tokens()
        .await
        .expect("delete_tokens on an empty store");
    for n in 0..5 {
        save(store, sample_token(n)).await;
    }
    store.delete_tokens().await.expect("delete_tokens");
    assert_eq!(all(store).await, vec![]);
    assert_eq!(
        find(store, &OAuthToken::for_user("user1@example.com")).await,
        None
    );
    let saved = save(store, sample_token(1)).await;
    assert_eq!(all(store).await, vec![saved]);
}

/// `get_tokens` returns every stored token, as stored.
pub async fn get_tokens_lists_all(store: &dyn TokenStore) {
    assert_eq!(all(store).await, vec![]);
    let mut saved = Vec::new();
    for n in 0..25 {
        saved.push(save(store, sample_token(n)).await);
    }
    saved.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(all(store).await, saved);
}

/// After a save or delete returns, the same store never answers with the
/// old value, by id or by any lookup key.
pub async fn read_your_writes(store: &dyn TokenStore) {
    let first = save(store, sample_token(1)).await;
    let id = id_of(&first).to_owned();
    // Warm whatever cache the store has.
    assert_eq!(by_id(store, &id).await, Some(first.clone()));
    let query = OAuthToken::for_user("user1@example.com");
    assert_eq!(find(store, &query).await, Some(first.clone()));
    for round in 0..3 {
        let rotated = save(
            store,
            OAuthToken {
                id: Some(id.clone()),
                access_token: Some(format!("1000.access-round-{round}")),
                refresh_token: Some(format!("1000.refresh-round-{round}")),
                ..OAuthToken::default()
            },
        )
        .await;
        assert_eq!(by_id(store, &id).await, Some(rotated.clone()));
        assert_eq!(find(store, &query).await, Some(rotated.clone()));
        let by_refresh = OAuthToken::from_refresh_token(
            "1000.CLIENT1",
            "client-secret-1",
            format!("1000.refresh-round-{round}"),
        );
        assert_eq!(
            find(store, &by_refresh).await.and_then(|t| t.id),
            Some(id.clone())
        );
        let by_old_refresh =
            OAuthToken::from_refresh_token("1000.CLIENT1", "client-secret-1", "1000.refresh-1");
        assert_eq!(
            find(store, &by_old_refresh).await,
            None,
            "old refresh token still found"
        );
        assert_eq!(all(store).await, vec![rotated]);
    }
    store.delete_token(&id).await.expect("delete");
    assert_eq!(by_id(store, &id).await, None);
    assert_eq!(find(store, &query).await, None);
    assert_eq!(all(store).await, vec![]);
}
