//! Checks of the lookup rules: which stored token a query finds.

use super::{assert_invalid, by_id, find, id_of, sample_token, save, two_stored};
use crate::store::TokenStore;
use crate::token::OAuthToken;

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
