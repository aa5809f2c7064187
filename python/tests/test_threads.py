"""Threads calling one store at once (calls release the GIL)."""

import threading

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

THREADS = 8


def run_threads(target):
    errors = []

    def guarded(n):
        try:
            target(n)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append((n, error))

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_threads_save_and_find_their_own_tokens(store, make_store, prefix):
    ids = {}

    def work(n):
        user = "thread{}@example.com".format(n)
        token = OAuthToken(client_id="1000.C", client_secret="s", refresh_token="1000.r{}".format(n),
                           user_signature=UserSignature(user))
        token.set_access_token("access-{}".format(n))
        token.set_expires_in("1900000000000")  # valid: nothing to refresh
        store.save_token(token)
        ids[n] = token.get_id()
        for _ in range(5):
            found = store.find_token(OAuthToken(user_signature=UserSignature(user)))
            assert found.get_id() == token.get_id()
            assert found.get_access_token() == "access-{}".format(n)

    run_threads(work)
    assert len(set(ids.values())) == THREADS
    listed = {t.get_id(): t.get_user_signature().get_name() for t in make_store(prefix).get_tokens()}
    assert listed == {ids[n]: "thread{}@example.com".format(n) for n in range(THREADS)}


def test_threads_refreshing_one_token_leave_one_token(store, make_store, prefix):
    first = OAuthToken(client_id="1000.C", client_secret="s", refresh_token="1000.r",
                       user_signature=UserSignature("one@example.com"))
    first.set_access_token("access-start")
    store.save_token(first)

    def work(n):
        token = OAuthToken(user_signature=UserSignature("one@example.com"), access_token="access-{}".format(n))
        store.save_token(token)
        assert token.get_id() == first.get_id()
        assert token.get_refresh_token() == "1000.r"

    run_threads(work)
    [stored] = make_store(prefix).get_tokens()
    assert stored.get_id() == first.get_id()
    assert stored.get_access_token() in {"access-{}".format(n) for n in range(THREADS)}
