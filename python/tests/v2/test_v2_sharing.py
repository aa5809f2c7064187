"""The v2 store and the package's other stores on one prefix: one secret per
CRM user whatever SDK saved it, and one refresh between a v2 process and the
Rust crate's ``ZohoAuth`` (what the store of the newer SDKs refreshes with),
run as the ``rust_peer`` example."""

import json

from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from fake_zoho import FakeZoho
from v2_support import (CLIENT_ID, CLIENT_SECRET, EMAIL, REFRESH_TOKEN, finish, go_soon, save_expiring, sdk_token,
                        start_worker, worker_config)


def test_a_token_of_another_sdk_is_the_v2_users_token_and_stays_one_secret(store, prefix, rust_peer):
    # As the newer SDKs' store saves it: the user name is the UserSignature's, with an api_domain.
    saved = rust_peer("save", prefix, stdin=json.dumps({
        "user_name": EMAIL, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
        "access_token": "1000.from-v8", "expiry_time": 1900000000000, "api_domain": "https://www.zohoapis.eu",
    }))
    token = store.get_token(UserSignature(EMAIL), sdk_token())
    assert (token.get_id(), token.get_user_mail(), token.get_access_token(), token.get_expires_in()) == (
        saved["id"], EMAIL, "1000.from-v8", "1900000000000")

    # The v2 SDK refreshes and saves it under an id of its own making: still the one secret.
    token.set_id("python_v2.user_us_prd_9c4d")
    token.set_access_token("1000.from-v2")
    token.set_expires_in("1900000003600")
    store.save_token(UserSignature(EMAIL), token)
    assert token.get_id() == saved["id"]
    found = rust_peer("find-user", prefix, EMAIL)
    assert (found["id"], found["access_token"], found["expiry_time"]) == (saved["id"], "1000.from-v2", 1900000003600)
    assert found["api_domain"] == "https://www.zohoapis.eu", "a v2 save keeps what the v2 token cannot hold"
    assert [t.get_id() for t in store.get_tokens()] == [saved["id"]]


def test_v2_processes_and_rust_processes_on_one_prefix_make_one_refresh(make_store, prefix, endpoint, rust_peer):
    saved = save_expiring(make_store(prefix, managed_refresh=False), left_ms=-60_000)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, delay=0.5) as zoho:
        go_at = go_soon()
        pythons = [start_worker(worker_config(endpoint, prefix, zoho, go_at, threads=3, calls=2)) for _ in range(2)]
        rusts = [rust_peer.start("access-token", prefix, EMAIL, zoho.crm_url, str(int(go_at * 1000)), "5")
                 for _ in range(2)]
        python_results = [finish(p) for p in pythons]
        rust_results = [rust_peer.finish(p) for p in rusts]
        assert zoho.calls == 1, "one refresh for the mixed fleet: {}".format(zoho.token_agents)
    assert [r["errors"] for r in python_results] == [[], []]
    handed_out = {t for r in python_results for t in r["tokens"]} | {t for r in rust_results for t in r}
    assert handed_out == {"access-1"}, handed_out
    assert {r["id"] for r in python_results} == {saved.get_id()}
    assert rust_peer("find-user", prefix, EMAIL)["access_token"] == "access-1"
