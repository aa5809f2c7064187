"""Managed refresh with the v2 SDK: a fleet of SDK processes on one prefix
makes one refresh between them, on the first API call (the SDK asks its
store) and later, when the token a process holds goes under the SDK's 5 s
(the SDK refreshes it by itself, which the store routes through the crate's
lease). The processes are ``v2_worker.py``; every process of a test starts
at the same instant against a fake Zoho that counts and delays its answers."""

import time

import pytest

from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from fake_zoho import FakeZoho
from v2_support import (CLIENT_ID, CLIENT_SECRET, EMAIL, REFRESH_TOKEN, assert_no_secret, bearer, from_the_rust_crate,
                        go_soon, initialize, run_fleet, save_expiring, sdk_token, worker_config)
from zoho_token_store.v2 import RefreshError


def test_a_fleet_of_v2_processes_and_threads_makes_one_refresh(make_store, prefix, endpoint):
    saved = save_expiring(make_store(prefix, managed_refresh=False), left_ms=-60_000, id="python_v2.user_fake_env_9c4d")
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=0.5) as zoho:
        results = run_fleet([worker_config(endpoint, prefix, zoho, go_soon(), threads=3, calls=2) for _ in range(4)])
        assert zoho.calls == 1, "one refresh for 4 processes x 3 threads: {}".format(zoho.token_agents)
        assert from_the_rust_crate(zoho.token_agents[0]), "the SDK refreshed by itself"
    assert [r["errors"] for r in results] == [[]] * 4
    assert [len(r["tokens"]) for r in results] == [6] * 4
    assert {t for r in results for t in r["tokens"]} == {"access-1"}
    assert {r["id"] for r in results} == {saved.get_id()}
    [stored] = make_store(prefix, managed_refresh=False).get_tokens()
    assert (stored.get_id(), stored.get_user_mail(), stored.get_access_token()) == (saved.get_id(), EMAIL, "access-1")
    assert int(stored.get_expires_in()) > time.time() * 1000 + 3_500_000


def test_the_sdks_own_refresh_of_the_token_a_process_holds_is_made_once_for_the_fleet(make_store, prefix, endpoint):
    # 12 s left and a refresh_ahead of 1 s: the first call of each process is
    # answered as stored; at 3 s left each process's SDK would refresh by itself.
    saved = save_expiring(make_store(prefix, managed_refresh=False), left_ms=12_000)
    expiry = int(saved.get_expires_in()) / 1000
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=0.5) as zoho:
        results = run_fleet([
            worker_config(endpoint, prefix, zoho, go_soon(), threads=2, calls=2, again_at=expiry - 3,
                          store={"refresh_ahead": 1})
            for _ in range(3)
        ])
        assert zoho.calls == 1, "one refresh for 3 processes at expiry: {}".format(zoho.token_agents)
        assert from_the_rust_crate(zoho.token_agents[0]), "the SDK refreshed by itself"
    assert [r["errors"] for r in results] == [[]] * 3
    for result in results:
        assert result["tokens"] == [saved.get_access_token()] * 4 + ["access-1"] * 4, result["tokens"]
    assert make_store(prefix).get_tokens()[0].get_access_token() == "access-1"


def test_a_revoked_refresh_token_raises_and_is_not_sent_again_by_any_process(make_store, prefix, endpoint):
    saved = save_expiring(make_store(prefix, managed_refresh=False), left_ms=-60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho:
        zoho.revoked = True
        for _ in range(2):  # the second process learns from the mark on the token's secret
            [result] = run_fleet([worker_config(endpoint, prefix, zoho, 0)])
            [error] = result["errors"]
            assert (error["code"], error["kind"]) == ("TOKEN_REFRESH_REJECTED", "rejected")
            assert "invalid_code" in error["text"] and saved.get_id() in error["text"]
            assert result["tokens"] == []
        assert zoho.calls == 1
    [stored] = make_store(prefix, managed_refresh=False).get_tokens()
    assert (stored.get_access_token(), stored.get_expires_in()) == (saved.get_access_token(), saved.get_expires_in())


def test_one_grant_in_two_processes_is_exchanged_once(make_store, prefix, endpoint):
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=0.5) as zoho:
        grant = zoho.grant_code()
        go_at = go_soon()
        results = run_fleet([worker_config(endpoint, prefix, zoho, go_at, threads=2, calls=2, refresh_token=None,
                                           grant_token=grant) for _ in range(2)])
        assert [f.get("grant_type") for f in zoho.token_requests] == ["authorization_code"]
    assert [r["errors"] for r in results] == [[], []]
    assert {t for r in results for t in r["tokens"]} == {"access-1"}
    [stored] = make_store(prefix, managed_refresh=False).get_tokens()
    assert {r["id"] for r in results} == {stored.get_id()}
    assert (stored.get_user_mail(), stored.get_refresh_token(), stored.get_grant_token()) == (EMAIL, REFRESH_TOKEN, grant)


def test_the_accounts_url_is_the_sdk_environments_else_the_stores_option(make_store, prefix, tmp_path):
    saved = save_expiring(make_store(prefix, managed_refresh=False), left_ms=-60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho:
        # Outside an initialized SDK, without accounts_url: nothing is sent.
        with pytest.raises(RefreshError) as raised:
            make_store(prefix).get_token(UserSignature(EMAIL), sdk_token())
        assert (raised.value.code, raised.value.kind, raised.value.retryable) == (
            "TOKEN_REFRESH_INVALID_INPUT", "invalid_input", False)
        assert "no accounts server" in str(raised.value)
        assert zoho.calls == 0
        # With accounts_url.
        token = make_store(prefix, accounts_url=zoho.accounts_url).get_token_by_id(saved.get_id(), sdk_token())
        assert token.get_access_token() == "access-1" and zoho.calls == 1
        # In an initialized SDK: its environment's accounts URL.
        save_expiring(make_store(prefix, managed_refresh=False), left_ms=-60_000, id=saved.get_id())
        token = sdk_token()
        initialize(make_store(prefix), zoho, tmp_path, token)
        assert bearer(token) == "access-2" and zoho.calls == 2
        assert token.get_id() == saved.get_id()
        assert_no_secret(str(raised.value))
