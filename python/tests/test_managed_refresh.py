"""Managed refresh: a fleet of SDK processes (and Rust programs) on one
prefix makes one refresh between them, through the SDK's own
``Initializer`` / ``get_token``, against a fake Zoho accounts server on
loopback that counts calls and delays each answer.

The SDK processes are ``sdk_worker.py`` run as subprocesses; every process
of a test starts at the same instant (``go_at``) so that all of them meet
the expired token at once.
"""

import os
import pathlib
import time

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from counting_proxy import CountingProxy
from fake_zoho import FakeZoho
import fleet
from fleet import Fleet, from_the_rust_crate, go_soon
from zoho_token_store import RefreshError, SecretsManagerStore

WORKER = pathlib.Path(__file__).with_name("sdk_worker.py")
CLIENT_ID = "1000.MANAGEDCLIENT"
CLIENT_SECRET = "SECRET-managed-client-5e1b"
REFRESH_TOKEN = "1000.SECRET-managed-refresh-5e1b"
EMAIL = "fleet.user@example.com"
USER = EMAIL + ":70001"
# What must never be shown: the client secret, refresh and grant tokens (the
# access tokens are what get_token hands out, so only logs and errors are
# searched for them).
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, "1000.fake-grant-")


def save_expiring(store, left_ms, refresh_token=REFRESH_TOKEN, user=USER, api_domain=None):
    """Saves the fleet's token with an access token that has ``left_ms`` left."""
    token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=refresh_token,
                       user_signature=UserSignature(user))
    token.set_access_token("old-access-{}".format(user))
    token.set_expires_in(str(int(time.time() * 1000) + left_ms))
    if api_domain is not None:
        token.set_api_domain(api_domain)
    store.save_token(token)
    return token


def worker_config(endpoint, prefix, zoho, go_at, threads=1, calls=1, **extra):
    values = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    values.update(extra)
    return fleet.worker_config(endpoint, prefix, zoho, go_at, threads, calls, **values)


FLEET = Fleet(WORKER, SECRETS)
start_worker, finish, run_fleet, assert_no_secret = FLEET.start, FLEET.finish, FLEET.run, FLEET.assert_no_secret


def test_a_fleet_of_sdk_processes_and_threads_makes_one_refresh(make_store, prefix, endpoint):
    plain = make_store(prefix, managed_refresh=False)
    saved = save_expiring(plain, left_ms=-60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=0.5) as zoho:
        go_at = go_soon()
        results = run_fleet([worker_config(endpoint, prefix, zoho, go_at, threads=5, calls=3) for _ in range(4)])
        assert zoho.calls == 1, "one refresh for 4 processes x 5 threads: {}".format(zoho.token_agents)
        assert from_the_rust_crate(zoho.token_agents[0]), "the SDK refreshed by itself"
    handed_out = {t for r in results for t in r["tokens"]}
    assert [r["errors"] for r in results] == [[]] * 4
    assert sum(len(r["tokens"]) for r in results) == 4 * (1 + 5 * 3)
    assert handed_out == {"access-1"}, handed_out
    assert {r["id"] for r in results} == {saved.get_id()}
    # The stored token is the one handed out.
    stored = make_store(prefix, managed_refresh=False).find_token_by_id(saved.get_id())
    assert stored.get_access_token() == "access-1"
    assert int(stored.get_expires_in()) > time.time() * 1000 + 3_500_000
    assert stored.get_refresh_token() == REFRESH_TOKEN
    assert stored.get_user_signature().get_name() == USER


def test_python_sdk_and_rust_processes_on_one_prefix_make_one_refresh(make_store, prefix, endpoint, rust_peer):
    plain = make_store(prefix, managed_refresh=False)
    saved = save_expiring(plain, left_ms=-60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=0.5) as zoho:
        go_at = go_soon()
        pythons = [start_worker(worker_config(endpoint, prefix, zoho, go_at, threads=3, calls=2)) for _ in range(2)]
        rusts = [
            rust_peer.start("access-token", prefix, USER, zoho.crm_url, str(int(go_at * 1000)), "10")
            for _ in range(2)
        ]
        python_results = [finish(p) for p in pythons]
        rust_results = [rust_peer.finish(p) for p in rusts]
        assert zoho.calls == 1, "one refresh for the mixed fleet: {}".format(zoho.token_agents)
    handed_out = {t for r in python_results for t in r["tokens"]} | {t for r in rust_results for t in r}
    assert handed_out == {"access-1"}, handed_out
    assert [r["errors"] for r in python_results] == [[], []]
    stored = make_store(prefix, managed_refresh=False).find_token_by_id(saved.get_id())
    assert stored.get_access_token() == "access-1"


def test_opt_out_the_sdk_refreshes_by_itself(make_store, prefix, endpoint):
    plain = make_store(prefix, managed_refresh=False)
    saved = save_expiring(plain, left_ms=-60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho:
        [result] = run_fleet([worker_config(endpoint, prefix, zoho, 0, threads=2, calls=2,
                                            store={"managed_refresh": False})])
        assert zoho.calls == 1
        assert not from_the_rust_crate(zoho.token_agents[0]), "the SDK's own refresh is python-requests"
    assert result["errors"] == []
    assert set(result["tokens"]) == {"access-1"}
    assert result["repr"] == "SecretsManagerStore(prefix={!r}, managed_refresh=False)".format(prefix)
    # The store persisted what the SDK saved.
    stored = make_store(prefix, managed_refresh=False).find_token_by_id(saved.get_id())
    assert stored.get_access_token() == "access-1"


def test_a_revoked_refresh_token_raises_and_is_not_sent_again_by_any_process(make_store, prefix, endpoint):
    plain = make_store(prefix, managed_refresh=False)
    saved = save_expiring(plain, left_ms=-60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho:
        zoho.revoked = True
        # Two processes, one after the other: the second learns from the
        # mark on the token's secret, and asks Zoho nothing.
        for _ in range(2):
            [result] = run_fleet([worker_config(endpoint, prefix, zoho, 0)])
            [error] = result["errors"]
            assert error["code"] == "TOKEN_REFRESH_REJECTED"
            assert error["kind"] == "rejected"
            assert "invalid_code" in error["text"] and saved.get_id() in error["text"]
            assert result["tokens"] == []
        assert zoho.calls == 1
    stored = make_store(prefix, managed_refresh=False).find_token_by_id(saved.get_id())
    assert stored.get_access_token() == saved.get_access_token()
    assert stored.get_expires_in() == saved.get_expires_in()
    assert stored.get_refresh_token() == REFRESH_TOKEN


def test_throttled_serves_a_still_valid_token_and_raises_for_an_expired_one(make_store, prefix, endpoint):
    plain = make_store(prefix, managed_refresh=False)
    valid = save_expiring(plain, left_ms=60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho:
        zoho.throttled = True
        # 60 s left: within refresh_ahead, so a refresh is tried once; it is
        # throttled, and the current token is served, now and (backing off)
        # on every later call without asking Zoho again.
        [result] = run_fleet([worker_config(endpoint, prefix, zoho, 0, threads=3, calls=3)])
        assert result["errors"] == []
        assert set(result["tokens"]) == {valid.get_access_token()}
        assert zoho.calls == 1

        expired = save_expiring(plain, left_ms=-60_000, refresh_token="1000.SECRET-managed-refresh-5e1b-2",
                                user="expired@example.com")
        [result] = run_fleet([worker_config(endpoint, prefix, zoho, 0, refresh_token=expired.get_refresh_token())])
        [error] = result["errors"]
        assert (error["code"], error["kind"]) == ("TOKEN_REFRESH_THROTTLED", "throttled")
        assert zoho.calls == 2


def test_one_grant_in_two_processes_is_exchanged_once(make_store, prefix, endpoint):
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=0.5) as zoho:
        grant = zoho.grant_code()
        go_at = go_soon()
        results = run_fleet([
            worker_config(endpoint, prefix, zoho, go_at, threads=2, calls=2, refresh_token=None, grant_token=grant)
            for _ in range(2)
        ])
        exchanges = [f for f in zoho.token_requests if f.get("grant_type") == "authorization_code"]
        assert len(exchanges) == 1, zoho.token_requests
        assert zoho.calls == 1
    assert [r["errors"] for r in results] == [[], []]
    assert {t for r in results for t in r["tokens"]} == {"access-1"}
    [stored] = make_store(prefix, managed_refresh=False).get_tokens()
    assert {r["id"] for r in results} == {stored.get_id()}
    assert stored.get_access_token() == "access-1"
    assert stored.get_refresh_token() == REFRESH_TOKEN
    # Named after the exchange, as the SDK names a token it saves.
    assert stored.get_user_signature().get_name() == USER


def test_the_warm_path_makes_no_api_call_with_or_without_managed_refresh(make_store, prefix, endpoint, tmp_path):
    plain = make_store(prefix, managed_refresh=False)
    saved = save_expiring(plain, left_ms=3_600_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho, CountingProxy(endpoint) as proxy:
        environment = DataCenter.Environment(zoho.crm_url, zoho.accounts_url, zoho.crm_url)
        for managed in (True, False):
            store = SecretsManagerStore(prefix, endpoint_url=proxy.url, region_name=os.environ["AWS_REGION"],
                                        managed_refresh=managed)
            token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
            # A cold start with this store: 6-0 and 7-0 would look up on the previous
            # initializer's (conftest's forget_sdk_initializer).
            Initializer.LOCAL.init = None
            Initializer.initialize(environment, token, store=store, resource_path=str(tmp_path))
            assert proxy.total() > 0, "the cold lookup went through the proxy"
            proxy.reset()
            for _ in range(200):
                assert token.get_token() == saved.get_access_token()
            assert proxy.counts() == {}, "managed_refresh={}: {}".format(managed, proxy.counts())
        assert zoho.calls == 0


def test_outside_an_initialized_sdk_the_accounts_url_option_decides(make_store, prefix, monkeypatch):
    monkeypatch.setattr(Initializer, "initializer", None)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho:
        plain = make_store(prefix, managed_refresh=False)
        # The fake's api_domain is not Zoho's: it chooses no host.
        expired = save_expiring(plain, left_ms=-60_000, api_domain=zoho.crm_url)
        valid = save_expiring(plain, left_ms=60_000, refresh_token="1000.SECRET-managed-refresh-5e1b-3",
                              user="valid@example.com", api_domain=zoho.crm_url)
        without = make_store(prefix)
        # A still-valid token needs no accounts server...
        assert without.find_token_by_id(valid.get_id()).get_access_token() == valid.get_access_token()
        # ...an expired one does: refused, nothing sent.
        try:
            without.find_token_by_id(expired.get_id())
        except RefreshError as error:
            assert (error.code, error.kind, error.retryable) == ("TOKEN_REFRESH_INVALID_INPUT", "invalid_input", False)
            assert "no accounts server" in str(error)
        else:
            raise AssertionError("an expired token was answered without an accounts server")
        assert zoho.calls == 0
        with_url = make_store(prefix, accounts_url=zoho.accounts_url)
        assert with_url.find_token_by_id(expired.get_id()).get_access_token() == "access-1"
        assert zoho.calls == 1
        # find_token answers it too, with the refreshed values over the query's.
        query = OAuthToken(user_signature=UserSignature(USER))
        assert with_url.find_token(query) is query
        assert query.get_access_token() == "access-1"


def test_a_bad_accounts_url_is_refused_when_the_store_is_built():
    try:
        SecretsManagerStore("p", accounts_url="ftp://accounts.example.com")
    except RefreshError as error:
        assert error.code == "TOKEN_REFRESH_INVALID_INPUT"
    else:
        raise AssertionError("a bad accounts_url was accepted")


def test_an_accounts_server_slower_than_refresh_timeout_fails_the_lookup_as_transport(make_store, prefix, monkeypatch):
    monkeypatch.setattr(Initializer, "initializer", None)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=5.0) as zoho:
        plain = make_store(prefix, managed_refresh=False)
        expired = save_expiring(plain, left_ms=-60_000, api_domain=zoho.crm_url)
        store = make_store(prefix, accounts_url=zoho.accounts_url, refresh_timeout=1)
        try:
            store.find_token_by_id(expired.get_id())
        except RefreshError as error:
            assert (error.code, error.kind, error.retryable) == ("TOKEN_REFRESH_TRANSPORT", "transport", True)
            assert_no_secret(str(error))
        else:
            raise AssertionError("a refresh slower than refresh_timeout was waited for")
        assert zoho.calls == 1
        # Backing off: the next lookup fails at once, without asking again.
        try:
            store.find_token_by_id(expired.get_id())
        except RefreshError as error:
            assert error.kind == "transport"
        else:
            raise AssertionError("an expired token was answered")
        assert zoho.calls == 1
