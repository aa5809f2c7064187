"""The SDK's own flow through the store: ``Initializer.initialize`` with a
custom environment on a fake Zoho, a refresh, then a CRM call that refreshes
the expiring token and saves it again, all through ``SecretsManagerStore``
(without managed refresh: the SDK refreshes by itself); and a second cold
start that finds the stored token (with managed refresh, the default)."""

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature
from zohocrmsdk.src.com.zoho.crm.api.users import UsersOperations, GetUsersParam, ResponseWrapper
from zohocrmsdk.src.com.zoho.crm.api import ParameterMap
from zohocrmsdk.src.com.zoho.crm.api.util.choice import Choice

from fake_zoho import FakeZoho

CLIENT_ID = "1000.FAKECLIENT"
CLIENT_SECRET = "fake-client-secret-value"
REFRESH_TOKEN = "1000.fake-refresh-token-value"
EMAIL = "flow.user@example.com"
# The SDK names the user "{email}:{org zgid}" (see fake_zoho).
USER = EMAIL + ":70001"


def current_user_param():
    """``type=CurrentUser`` for ``get_users``: a ``str`` in zohocrmsdk8-0, a
    ``Choice`` in 6-0 and 7-0 (tests/python-sdks runs them all); each SDK
    refuses the other's."""
    param = ParameterMap()
    try:
        param.add(GetUsersParam.type, "CurrentUser")
    except SDKException:
        param.add(GetUsersParam.type, Choice("CurrentUser"))
    return param


def test_initialize_then_crm_call_refreshes_and_saves_through_the_store(make_store, prefix, tmp_path, rust_peer):
    # The SDK's own refresh, so without managed refresh (test_managed_refresh
    # has the managed flow). expires_in of 1 s: the SDK refreshes whenever
    # under 5 s remain, so the token from initialize is refreshed again by
    # the next CRM call.
    store = make_store(prefix, managed_refresh=False)
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, expires_in_sec=1) as zoho:
        environment = DataCenter.Environment(zoho.crm_url, zoho.accounts_url, zoho.crm_url)
        token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
        Initializer.initialize(environment, token, store=store, resource_path=str(tmp_path))

        # initialize: no stored token, so the SDK refreshed, asked the CRM who
        # the user is, and saved through the store.
        assert len(zoho.token_requests) == 1
        assert token.get_id() is not None
        assert token.get_access_token() == "access-1"
        assert token.get_user_signature().get_name() == USER
        stored = make_store(prefix, managed_refresh=False).find_token_by_id(token.get_id())
        assert stored.get_access_token() == "access-1"
        assert stored.get_refresh_token() == REFRESH_TOKEN
        assert stored.get_user_signature().get_name() == USER
        assert stored.get_api_domain() == zoho.crm_url
        assert isinstance(stored.get_expires_in(), str) and int(stored.get_expires_in()) > 0

        # A CRM call: the token is about to expire, so the SDK refreshes and saves again.
        response = UsersOperations().get_users(current_user_param())
        assert response.get_status_code() == 200
        assert isinstance(response.get_object(), ResponseWrapper)
        assert response.get_object().get_users()[0].get_email() == EMAIL
        assert len(zoho.token_requests) == 2
        assert zoho.crm_requests[-1] == "Zoho-oauthtoken access-2"

    # One stored token, updated in place, as a fresh instance (another Lambda) sees it.
    other = make_store(prefix, managed_refresh=False)
    tokens = other.get_tokens()
    assert [t.get_id() for t in tokens] == [token.get_id()]
    assert tokens[0].get_access_token() == "access-2"
    found = other.find_token(OAuthToken(user_signature=UserSignature(USER)))
    assert found.get_access_token() == "access-2"
    assert found.get_client_secret() == CLIENT_SECRET

    # And the Rust store on the same prefix finds what the SDK saved.
    from_rust = rust_peer("find-user", prefix, USER)
    assert from_rust["id"] == token.get_id()
    assert from_rust["access_token"] == "access-2"
    assert str(from_rust["expiry_time"]) == found.get_expires_in()


def test_a_second_lambda_starts_from_the_stored_token_without_refreshing(store, make_store, prefix, tmp_path):
    with FakeZoho(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, EMAIL, expires_in_sec=3600) as zoho:
        environment = DataCenter.Environment(zoho.crm_url, zoho.accounts_url, zoho.crm_url)
        first = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
        Initializer.initialize(environment, first, store=store, resource_path=str(tmp_path))
        assert len(zoho.token_requests) == 1

        # A cold start elsewhere: a new store instance, the same configuration.
        # (Without the first initializer in this thread, as conftest's
        # forget_sdk_initializer says: 6-0 and 7-0 would look up on the first store.)
        Initializer.LOCAL.init = None
        second = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
        Initializer.initialize(environment, second, store=make_store(prefix), resource_path=str(tmp_path))
        assert len(zoho.token_requests) == 1, "the second start refreshed instead of using the stored token"
        assert second.get_id() == first.get_id()
        assert second.get_access_token() == "access-1"
