"""The v2 SDK's own flow through the store: ``Initializer.initialize`` with
the store on a fake Zoho, users API calls that make the SDK refresh and save
by itself (without managed refresh), then a cold start that finds the stored
token and has it refreshed through the store (with managed refresh)."""

from zcrmsdk.src.com.zoho.crm.api.users import UsersOperations

from fake_zoho import FakeZoho
from v2_support import CLIENT_ID, CLIENT_SECRET, EMAIL, REFRESH_TOKEN, from_the_rust_crate, initialize, sdk_token
from conftest import forget_v2_initializer


def get_users(zoho):
    """A users API call of the SDK; the bearer the fake Zoho received."""
    response = UsersOperations().get_users()
    assert response is not None and response.get_status_code() == 200
    return zoho.crm_requests[-1]


def test_the_sdk_refreshes_and_saves_through_the_store_then_a_cold_start_finds_it(make_store, prefix, tmp_path):
    store = make_store(prefix, managed_refresh=False)
    # Access tokens of 1 s: the SDK refreshes whenever under 5 s are left.
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, expires_in_sec=1) as zoho:
        token = sdk_token()
        initialize(store, zoho, tmp_path, token)
        assert zoho.calls == 0, "initialize asks nobody"

        # First call: nothing stored, so the SDK refreshed and saved through the store.
        assert get_users(zoho) == "Zoho-oauthtoken access-1"
        assert zoho.calls == 1 and not from_the_rust_crate(zoho.token_agents[0])
        assert token.get_user_mail() == EMAIL
        assert token.get_id() == "python_v2.user_fake_env_9c4d", "the SDK's own id, kept by the store"
        [stored] = make_store(prefix, managed_refresh=False).get_tokens()
        assert (stored.get_id(), stored.get_user_mail(), stored.get_access_token()) == (token.get_id(), EMAIL, "access-1")
        assert (stored.get_client_id(), stored.get_client_secret(), stored.get_refresh_token()) == (
            CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
        assert stored.get_expires_in() == token.get_expires_in()

        # Second call: the token the process holds is under 5 s, so the SDK refreshes it again.
        assert get_users(zoho) == "Zoho-oauthtoken access-2"
        assert zoho.calls == 2 and not from_the_rust_crate(zoho.token_agents[1])
        [stored] = make_store(prefix, managed_refresh=False).get_tokens()
        assert (stored.get_id(), stored.get_access_token()) == (token.get_id(), "access-2")

        # A cold start with managed refresh: the store finds the stored token
        # by user, client and refresh token, and refreshes it (the crate, not the SDK).
        zoho.expires_in_sec = 3600  # the crate refuses an answer that is already expiring
        forget_v2_initializer()
        cold = sdk_token()
        initialize(make_store(prefix), zoho, tmp_path, cold)
        assert get_users(zoho) == "Zoho-oauthtoken access-3"
        assert zoho.calls == 3 and from_the_rust_crate(zoho.token_agents[2])
        assert cold.get_id() == token.get_id()
        [stored] = make_store(prefix, managed_refresh=False).get_tokens()
        assert stored.get_access_token() == "access-3"
        assert stored.get_user_mail() == EMAIL


def test_a_cold_start_with_a_valid_stored_token_calls_no_accounts_server(make_store, prefix, tmp_path):
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL) as zoho:
        first = sdk_token()
        initialize(make_store(prefix), zoho, tmp_path, first)
        assert get_users(zoho) == "Zoho-oauthtoken access-1"  # nothing stored: the SDK's refresh
        assert zoho.calls == 1
        for _ in range(3):
            forget_v2_initializer()
            again = sdk_token()
            initialize(make_store(prefix), zoho, tmp_path, again)
            assert get_users(zoho) == "Zoho-oauthtoken access-1"
            assert again.get_id() == first.get_id()
        assert zoho.calls == 1
