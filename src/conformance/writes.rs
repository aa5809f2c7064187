//! Checks of saving and deleting: upserts, ids, limits, bulk saves,
//! deletes and read-your-writes.

use super::{all, assert_invalid, by_id, find, id_of, sample_token, save, two_stored};
use crate::id::MAX_ID_LEN;
use crate::store::TokenStore;
use crate::token::{MAX_USER_NAME_BYTES, OAuthToken};

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

/// `save_tokens` saves a batch as `save_token` would, one token after the
/// other: new tokens, an update of a stored token by user name, and two
/// tokens of one user in one batch (the second updates the first). Every
/// token comes back with its id, equal to what is stored; the same batch
/// saved again changes nothing.
pub async fn save_tokens_saves_as_one_by_one(store: &dyn TokenStore) {
    let stored = save(store, sample_token(1)).await;
    let mut batch = vec![
        sample_token(2),
        OAuthToken {
            access_token: Some("1000.access-batch-1".into()),
            ..OAuthToken::for_user("user1@example.com")
        },
        sample_token(3),
        OAuthToken {
            access_token: Some("1000.access-batch-3".into()),
            ..OAuthToken::for_user("user3@example.com")
        },
    ];
    store.save_tokens(&mut batch).await.expect("save_tokens");
    assert!(batch.iter().all(|t| t.id.is_some()), "{batch:?}");
    assert_eq!(batch[1].id, stored.id, "an update keeps the stored id");
    assert_eq!(batch[1].refresh_token, stored.refresh_token);
    assert_eq!(batch[3].id, batch[2].id, "one user, one token");
    assert_eq!(batch[3].refresh_token, sample_token(3).refresh_token);
    let mut expected = vec![batch[0].clone(), batch[1].clone(), batch[3].clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(all(store).await, expected);
    for token in &expected {
        assert_eq!(by_id(store, id_of(token)).await.as_ref(), Some(token));
    }

    let mut again = expected.clone();
    store
        .save_tokens(&mut again)
        .await
        .expect("save_tokens again");
    assert_eq!(again, expected);
    assert_eq!(all(store).await, expected);
    store.save_tokens(&mut []).await.expect("an empty batch");
}

/// One user name, one token, under concurrent saves: of eight saves at once
/// of one new user name under eight ids, exactly one succeeds and the others
/// are `InvalidInput`; eight saves at once without an id for another new
/// user all succeed, as one token.
pub async fn concurrent_saves_keep_one_token_per_user(store: &dyn TokenStore) {
    let with_ids = (0..8).map(|n| async move {
        let mut token = sample_token(1).with_id(format!("racer-{n}"));
        store.save_token(&mut token).await.map(|()| token)
    });
    let outcomes = futures::future::join_all(with_ids).await;
    let saved: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(
        saved.len(),
        1,
        "one of eight new tokens for one user: {outcomes:?}"
    );
    for outcome in &outcomes {
        if let Err(e) = outcome {
            assert!(
                matches!(e, crate::StoreError::InvalidInput { .. }),
                "a second token for one user: expected InvalidInput, got {e:?}"
            );
        }
    }
    let without_ids = (0..8).map(|n| {
        save(
            store,
            OAuthToken {
                access_token: Some(format!("1000.access-racer-{n}")),
                ..OAuthToken::for_user("user2@example.com")
            },
        )
    });
    let saved_again = futures::future::join_all(without_ids).await;
    assert!(
        saved_again.iter().all(|t| t.id == saved_again[0].id),
        "saves of one user without an id update one token"
    );
    let stored = all(store).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.contains(saved[0]));
}
