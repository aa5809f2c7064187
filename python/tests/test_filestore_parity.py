"""The six methods against the SDK's own FileStore: the same operations on
both stores, and the same answers (ids aside: FileStore numbers them, this
store generates random ones, so ids are compared through a name per token).

That is the persistence, so the store runs with ``managed_refresh=False``;
with managed refresh, ``find_token`` differs on purpose in one way, tested
at the end: the access token answered is the store's valid one, not one the
query carried (and an expiring one is refreshed, see test_managed_refresh)."""

import pytest

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from zoho_token_store import SecretsManagerStore


@pytest.fixture
def store(make_store, prefix):
    """A store under this test's prefix, without managed refresh."""
    return make_store(prefix, managed_refresh=False)


def alice():
    token = OAuthToken(
        client_id="1000.ALICE",
        client_secret="alice-secret",
        refresh_token="1000.alice-refresh",
        redirect_url="https://example.com/cb",
        user_signature=UserSignature("alice@example.com"),
    )
    token.set_access_token("1000.alice-access-1")
    token.set_expires_in("1900000000000")
    token.set_api_domain("https://www.zohoapis.eu")
    return token


def bob():
    token = OAuthToken(client_id="1000.BOB", client_secret="bob-secret", refresh_token="1000.bob-refresh")
    token.set_access_token("1000.bob-access")
    return token


def snapshot(token, names):
    """The fields of ``token`` (or what the call answered), ids by name."""
    if token is None:
        return None
    signature = token.get_user_signature()
    return {
        "id": names.get(token.get_id(), token.get_id()),
        "user": signature.get_name() if signature is not None else None,
        "client_id": token.get_client_id(),
        "client_secret": token.get_client_secret(),
        "refresh_token": token.get_refresh_token(),
        "access_token": token.get_access_token(),
        "grant_token": token.get_grant_token(),
        "expires_in": token.get_expires_in(),
        "redirect_url": token.get_redirect_url(),
        "api_domain": token.get_api_domain(),
    }


def outcome(call, names):
    """What ``call()`` did: its answer (tokens as snapshots) or the exception it raised."""
    try:
        answer = call()
    except SDKException as error:
        return ("SDKException", error.code)
    if isinstance(answer, list):
        return ("list", sorted((snapshot(t, names) for t in answer), key=repr))
    if isinstance(answer, OAuthToken):
        return ("token", snapshot(answer, names))
    return ("value", answer)


def scenario(store):
    """The same operations on ``store``; returns every outcome, in order."""
    names = {}
    log = []

    def record(label, call, query=None):
        log.append((label, outcome(call, names), snapshot(query, names) if query is not None else None))

    def save_as(token, name):
        answer = store.save_token(token)
        names[token.get_id()] = name
        return answer

    a = alice()
    record("save alice", lambda: save_as(a, "A"), a)
    b = bob()
    record("save bob", lambda: save_as(b, "B"), b)

    q = OAuthToken(user_signature=UserSignature("alice@example.com"))
    record("find by user", lambda: store.find_token(q), q)
    q = OAuthToken(client_id="1000.BOB", client_secret="bob-secret", refresh_token="1000.bob-refresh")
    record("find by refresh token", lambda: store.find_token(q), q)
    q = OAuthToken(access_token="1000.alice-access-1")
    record("find by access token", lambda: store.find_token(q), q)
    q = OAuthToken(user_signature=UserSignature("nobody@example.com"))
    record("find unknown user", lambda: store.find_token(q), q)
    q = OAuthToken(id="no-key-only-an-id")
    record("find with nothing to match on", lambda: store.find_token(q), q)
    record("find a non-token", lambda: store.find_token("not a token"))
    q = OAuthToken(user_signature=UserSignature("alice@example.com"))
    q.set_access_token("query-access")
    record("find keeps the query's own fields", lambda: store.find_token(q), q)

    record("find by id", lambda: store.find_token_by_id(a.get_id()))
    record("find by unknown id", lambda: store.find_token_by_id("424242"))

    # The hourly refresh: the SDK saves the token it holds, id set.
    a.set_access_token("1000.alice-access-2")
    a.set_expires_in("1900000003600")
    record("save refreshed alice", lambda: store.save_token(a), a)
    # A save without id, matched by user name: fills the rest from the stored token.
    u = OAuthToken(user_signature=UserSignature("alice@example.com"), access_token="1000.alice-access-3")
    record("save by user name", lambda: store.save_token(u), u)
    record("find by id after saves", lambda: store.find_token_by_id(a.get_id()))
    n = OAuthToken(id="4242", user_signature=UserSignature("carol@example.com"))
    record("save new token without credential", lambda: store.save_token(n), n)
    record("save a non-token", lambda: store.save_token("not a token"))

    record("get tokens", store.get_tokens)
    record("delete unknown id", lambda: store.delete_token("424242"))
    record("delete bob", lambda: store.delete_token(b.get_id()))
    record("find deleted bob by id", lambda: store.find_token_by_id(b.get_id()))
    record("get tokens after delete", store.get_tokens)
    record("delete tokens", store.delete_tokens)
    record("get tokens after delete_tokens", store.get_tokens)
    return log


def test_the_six_methods_answer_as_filestore_does(store, tmp_path):
    assert isinstance(store, TokenStore)
    expected = scenario(FileStore(str(tmp_path / "tokens.csv")))
    actual = scenario(store)
    assert [label for label, _, _ in actual] == [label for label, _, _ in expected]
    for (label, want, want_query), (_, got, got_query) in zip(expected, actual):
        assert got == want, label
        assert got_query == want_query, label


def test_expires_in_is_the_sdks_string_of_epoch_ms(store):
    token = alice()
    store.save_token(token)
    found = store.find_token_by_id(token.get_id())
    assert found.get_expires_in() == "1900000000000"
    [listed] = store.get_tokens()
    assert listed.get_expires_in() == "1900000000000"
    bad = bob()
    bad.set_expires_in("soon")
    try:
        store.save_token(bad)
    except SDKException as error:
        assert error.code == "TOKEN_STORE"
    else:
        raise AssertionError("a non-numeric expires_in was saved")


def test_the_default_prefix_is_zoho_crm():
    assert SecretsManagerStore().prefix == "zoho/crm"


def test_managed_refresh_answers_valid_tokens_as_filestore_does_with_its_own_access_token(
    make_store, prefix, tmp_path
):
    managed = make_store(prefix)
    files = FileStore(str(tmp_path / "tokens.csv"))
    for target in (managed, files):
        target.save_token(alice())
    queries = {
        "by user": lambda: OAuthToken(user_signature=UserSignature("alice@example.com")),
        "by refresh token": lambda: OAuthToken(
            client_id="1000.ALICE", client_secret="alice-secret", refresh_token="1000.alice-refresh"
        ),
        "by access token": lambda: OAuthToken(access_token="1000.alice-access-1"),
    }
    for label, make in queries.items():
        want, got = make(), make()
        files.find_token(want)
        assert managed.find_token(got) is got, label
        assert snapshot(got, {}) == dict(snapshot(want, {}), id=got.get_id()), label
    own = OAuthToken(user_signature=UserSignature("alice@example.com"))
    own.set_access_token("query-access")
    managed.find_token(own)
    assert own.get_access_token() == "1000.alice-access-1"
    assert own.get_expires_in() == "1900000000000"
