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

mod leases;
mod lookups;
mod writes;

pub use leases::*;
pub use lookups::*;
pub use writes::*;

use crate::error::StoreError;
use crate::store::TokenStore;
use crate::token::OAuthToken;

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
            save_tokens_saves_as_one_by_one,
            concurrent_saves_keep_one_token_per_user,
            lease_is_taken,
            lease_is_held_against_others,
            lease_expires,
            lease_is_taken_over,
            lease_failure_is_reported,
            lease_failure_ends_at_its_retry_time,
            lease_is_cleared_by_a_save,
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
