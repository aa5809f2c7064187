"""Two store instances on one prefix (two Lambdas), and the Python and Rust
stores reading each other's tokens."""

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature


def token_for(user, access="1000.access-1", expires_in="1900000000000"):
    token = OAuthToken(
        client_id="1000.CLIENT",
        client_secret="client-secret",
        refresh_token="1000.refresh-" + user,
        user_signature=UserSignature(user),
    )
    token.set_access_token(access)
    token.set_expires_in(expires_in)
    return token


def test_two_instances_share_tokens(make_store, prefix):
    first, second = make_store(prefix), make_store(prefix)
    token = token_for("shared@example.com")
    first.save_token(token)

    found = second.find_token(OAuthToken(user_signature=UserSignature("shared@example.com")))
    assert found.get_id() == token.get_id()
    assert found.get_access_token() == "1000.access-1"
    by_refresh = second.find_token(
        OAuthToken(client_id="1000.CLIENT", client_secret="client-secret", refresh_token="1000.refresh-shared@example.com")
    )
    assert by_refresh.get_id() == token.get_id()

    # The second instance refreshes; a third (a cold start) and the first,
    # through its own write path, agree on one token.
    refreshed = token_for("shared@example.com", access="1000.access-2", expires_in="1900000003600")
    second.save_token(refreshed)
    assert refreshed.get_id() == token.get_id(), "a save by user name updates the stored token"
    third = make_store(prefix)
    assert third.find_token_by_id(token.get_id()).get_access_token() == "1000.access-2"
    assert [t.get_id() for t in first.get_tokens()] == [token.get_id()]

    # A token added by one instance is listed by the other.
    other = token_for("other@example.com")
    first.save_token(other)
    assert sorted(t.get_id() for t in second.get_tokens()) == sorted([token.get_id(), other.get_id()])


def test_a_token_saved_from_python_is_found_by_the_rust_store(store, prefix, rust_peer):
    token = token_for("py@example.com")
    token.set_api_domain("https://www.zohoapis.com")
    store.save_token(token)

    by_id = rust_peer("find-by-id", prefix, token.get_id())
    assert by_id == {
        "id": token.get_id(),
        "user_name": "py@example.com",
        "client_id": "1000.CLIENT",
        "client_secret": "client-secret",
        "refresh_token": "1000.refresh-py@example.com",
        "access_token": "1000.access-1",
        "expiry_time": 1900000000000,
        "api_domain": "https://www.zohoapis.com",
    }
    assert rust_peer("find-user", prefix, "py@example.com") == by_id
    assert rust_peer("find-user", prefix, "nobody@example.com") is None


def test_a_token_saved_from_rust_is_found_by_the_python_store(store, prefix, rust_peer):
    saved = rust_peer(
        "save",
        prefix,
        stdin='{"user_name": "rs@example.com", "client_id": "1000.RS", "client_secret": "rs-secret",'
        ' "refresh_token": "1000.rs-refresh", "access_token": "1000.rs-access", "expiry_time": 1900000001234}',
    )
    by_id = store.find_token_by_id(saved["id"])
    assert by_id.get_user_signature().get_name() == "rs@example.com"
    assert by_id.get_refresh_token() == "1000.rs-refresh"
    assert by_id.get_expires_in() == "1900000001234"
    query = OAuthToken(user_signature=UserSignature("rs@example.com"))
    assert store.find_token(query) is query
    assert query.get_id() == saved["id"]
    assert query.get_access_token() == "1000.rs-access"

    # Python updates it; Rust sees the update.
    query.set_access_token("1000.rs-access-from-python")
    store.save_token(query)
    assert rust_peer("find-by-id", prefix, saved["id"])["access_token"] == "1000.rs-access-from-python"


def test_an_expired_token_is_never_served_from_another_instances_cache(make_store, prefix):
    import time

    # The cache's own rule, so without managed refresh (which would refresh
    # the expired token rather than answer it).
    writer = make_store(prefix, managed_refresh=False)
    reader = make_store(prefix, cache_ttl=3600, managed_refresh=False)
    expired = token_for("expiring@example.com", access="1000.old", expires_in=str(int(time.time() * 1000) - 1000))
    writer.save_token(expired)
    assert reader.find_token_by_id(expired.get_id()).get_access_token() == "1000.old"

    # Another Lambda refreshes it; the reader's cached copy has expired, so it reads again.
    refreshed = token_for("expiring@example.com", access="1000.new", expires_in="1900000000000")
    writer.save_token(refreshed)
    assert reader.find_token_by_id(expired.get_id()).get_access_token() == "1000.new"
    query = OAuthToken(user_signature=UserSignature("expiring@example.com"))
    assert reader.find_token(query).get_access_token() == "1000.new"
