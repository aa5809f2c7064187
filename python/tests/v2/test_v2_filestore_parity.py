"""The store and the v2 SDK's own ``FileStore`` give the same answers to the
same calls of the six methods (``get_token``, ``save_token``,
``delete_token``, ``get_tokens``, ``delete_tokens``, ``get_token_by_id``),
as the SDK makes them: the user apart, the token filled in place, the id the
SDK made up. Then the one place where they differ on purpose: a second token
for one user."""

import pytest

from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zcrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zcrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zcrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

ALICE, BOB = "alice@example.com", "bob@example.com"


def fields(token):
    """What an ``OAuthToken`` holds (``None`` stays ``None``)."""
    if not isinstance(token, OAuthToken):
        return token
    return {
        "id": token.get_id(), "user_mail": token.get_user_mail(), "client_id": token.get_client_id(),
        "client_secret": token.get_client_secret(), "refresh_token": token.get_refresh_token(),
        "access_token": token.get_access_token(), "grant_token": token.get_grant_token(),
        "expires_in": token.get_expires_in(), "redirect_url": token.get_redirect_url(),
    }


def made(id, refresh, access, expires_in, client="1000.C", grant=None, redirect=None):
    token = OAuthToken(client_id=client, client_secret="secret-" + client, refresh_token=refresh,
                       grant_token=grant, redirect_url=redirect)
    token.set_id(id)
    token.set_access_token(access)
    token.set_expires_in(expires_in)
    return token


def query(client="1000.C", refresh=None, grant=None):
    """The token an app configures: what the SDK asks its store with."""
    return OAuthToken(client_id=client, client_secret="secret-" + client, refresh_token=refresh, grant_token=grant)


def outcome(call):
    """A call's answer as comparable data: fields of tokens, or the error's code."""
    try:
        answer = call()
    except SDKException as error:
        return ("SDKException", error.code)
    if isinstance(answer, list):
        return sorted((fields(t) for t in answer), key=lambda f: f["id"])
    return fields(answer)


def scenario(store):
    """The same calls on ``store``; everything observable, in order."""
    seen = []
    alice = made("python_alice_us_prd_1111", "1000.r-alice", "1000.a-alice", "1900000000000")
    seen.append(outcome(lambda: store.save_token(UserSignature(ALICE), alice)))
    seen.append(fields(alice))  # save sets the user mail (and keeps the id)
    bob = made("python_bob_us_prd_2222", "1000.r-bob", "1000.a-bob", "1900000000001", client="1000.D",
               grant="1000.g-bob", redirect="https://example.com/cb")
    seen.append(outcome(lambda: store.save_token(UserSignature(BOB), bob)))

    # get_token: user, client id and refresh token (or grant token, when the query has one) all match.
    q = query(refresh="1000.r-alice")
    seen.append(outcome(lambda: store.get_token(UserSignature(ALICE), q)))
    seen.append(store.get_token(UserSignature(ALICE), q) is q)
    seen.append(outcome(lambda: store.get_token(UserSignature(ALICE), query(refresh="1000.other"))))
    seen.append(outcome(lambda: store.get_token(UserSignature(ALICE), query(client="1000.X", refresh="1000.r-alice"))))
    seen.append(outcome(lambda: store.get_token(UserSignature(BOB), query(refresh="1000.r-alice"))))
    seen.append(outcome(lambda: store.get_token(UserSignature("carol@example.com"), query(refresh="1000.r-alice"))))
    seen.append(outcome(lambda: store.get_token(UserSignature(BOB), query(client="1000.D", grant="1000.g-bob"))))
    seen.append(outcome(lambda: store.get_token(UserSignature(BOB), query(client="1000.D", refresh="1000.r-bob"))))
    seen.append(outcome(lambda: store.get_token(UserSignature(BOB), query(client="1000.D", grant="1000.g-other",
                                                                           refresh="1000.r-bob"))))
    seen.append(outcome(lambda: store.get_token(UserSignature(ALICE), "not a token")))

    # get_token_by_id: fills the token given; an unknown id is an SDKException.
    by_id = OAuthToken(id="python_bob_us_prd_2222")
    seen.append(outcome(lambda: store.get_token_by_id("python_bob_us_prd_2222", by_id)))
    seen.append(outcome(lambda: store.get_token_by_id("python_nobody_us_prd_0000", OAuthToken(id="x"))))
    seen.append(outcome(lambda: store.get_token_by_id("python_bob_us_prd_2222", "not a token")))

    # The hourly refresh: saved under the same id, still one token for the user.
    refreshed = made("python_alice_us_prd_1111", "1000.r-alice", "1000.a-alice-2", "1900000003600")
    seen.append(outcome(lambda: store.save_token(UserSignature(ALICE), refreshed)))
    seen.append(outcome(store.get_tokens))
    seen.append(outcome(lambda: store.save_token(UserSignature(ALICE), "not a token")))

    # delete_token: by user mail, client id and refresh (or grant) token.
    seen.append(outcome(lambda: store.delete_token(query(refresh="1000.r-alice"))))  # no user mail
    stranger = query(refresh="1000.other")
    stranger.set_user_mail(ALICE)
    seen.append(outcome(lambda: store.delete_token(stranger)))
    seen.append(outcome(store.get_tokens))
    seen.append(outcome(lambda: store.delete_token(refreshed)))
    seen.append(outcome(lambda: store.get_token(UserSignature(ALICE), query(refresh="1000.r-alice"))))
    seen.append(outcome(store.get_tokens))
    seen.append(outcome(lambda: store.delete_token("not a token")))

    seen.append(outcome(store.delete_tokens))
    seen.append(outcome(store.get_tokens))
    seen.append(outcome(lambda: store.get_token(UserSignature(BOB), query(client="1000.D", grant="1000.g-bob"))))
    return seen


def test_the_store_answers_as_the_sdks_file_store(make_store, prefix, tmp_path):
    store = make_store(prefix, managed_refresh=False)
    assert isinstance(store, TokenStore)
    expected = scenario(FileStore(str(tmp_path / "tokens.csv")))
    assert scenario(store) == expected
    # What the scenario shows, so that a FileStore change cannot empty it.
    assert expected[3]["access_token"] == "1000.a-alice" and expected[3]["user_mail"] == ALICE
    assert expected[4] is True
    assert expected[5:9] == [None] * 4
    assert expected[9]["id"] == "python_bob_us_prd_2222"
    assert expected[14] == ("SDKException", "TOKEN_STORE")
    assert expected[19] == ("SDKException", "USER MAIL NONE ERROR")


def test_save_keeps_one_token_per_user_where_file_store_keeps_two(make_store, prefix, tmp_path):
    """The SDK makes up an id (``python_{user}_{environment}_{last 4 of the
    refresh token}``) when its store had no token for it, e.g. a new client
    for the user: FileStore then holds two rows for the user, the store one
    token, under the id it had, with the new values."""
    file_store = FileStore(str(tmp_path / "tokens.csv"))
    store = make_store(prefix, managed_refresh=False)
    for s in (file_store, store):
        s.save_token(UserSignature(ALICE), made("python_alice_us_prd_1111", "1000.r-alice", "1000.a-1", "1900000000000"))
        second = made("python_alice_us_prd_9999", "1000.r-alice-new", "1000.a-2", "1900000000000", client="1000.NEW")
        s.save_token(UserSignature(ALICE), second)
    assert len(file_store.get_tokens()) == 2
    [kept] = store.get_tokens()
    assert second.get_id() == kept.get_id() == "python_alice_us_prd_1111"
    assert (kept.get_client_id(), kept.get_refresh_token(), kept.get_access_token()) == (
        "1000.NEW", "1000.r-alice-new", "1000.a-2")
    found = store.get_token(UserSignature(ALICE), query(client="1000.NEW", refresh="1000.r-alice-new"))
    assert found.get_id() == "python_alice_us_prd_1111"


@pytest.mark.parametrize("user", [None, "alice@example.com", 42])
def test_a_user_that_is_not_a_user_signature_is_an_sdk_exception(store, user):
    for call in (lambda: store.get_token(user, query(refresh="1000.r")),
                 lambda: store.save_token(user, made("python_a_b_1", "1000.r", "1000.a", "1900000000000"))):
        with pytest.raises(SDKException) as raised:
            call()
        assert raised.value.code == "TOKEN_STORE"
        assert "UserSignature" in str(raised.value)
