"""What the v2 tests share: the test client and user, the SDK's
initialization on a fake Zoho, and the fleet of ``v2_worker.py`` processes."""

import pathlib
import time

from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zcrmsdk.src.com.zoho.api.logger import Logger
from zcrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zcrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

import fleet
from fleet import Fleet, from_the_rust_crate, go_soon  # noqa: F401 - the tests take them from here

WORKER = pathlib.Path(__file__).with_name("v2_worker.py")
CLIENT_ID = "1000.V2CLIENT"
CLIENT_SECRET = "SECRET-v2-client-9c4d"
REFRESH_TOKEN = "1000.SECRET-v2-refresh-9c4d"
EMAIL = "v2.user@example.com"
#: What must never be shown: the client secret, refresh and grant tokens.
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, "1000.fake-grant-")


def environment(zoho, name="fake_env"):
    """The SDK's environment on the fake Zoho (its accounts URL is the full token URL)."""
    return DataCenter.Environment(zoho.crm_url, zoho.accounts_url, zoho.crm_url, name)


def initialize(store, zoho, tmp_path, token, email=EMAIL):
    """``Initializer.initialize`` as an app does, with ``store``; logs and
    resources go to ``tmp_path``."""
    logger = Logger.get_instance(Logger.Levels.INFO, str(tmp_path / "sdk.log"))
    Initializer.initialize(UserSignature(email), environment(zoho), token, store=store, logger=logger,
                           resource_path=str(tmp_path))


def sdk_token(refresh_token=REFRESH_TOKEN, grant_token=None, client_id=CLIENT_ID):
    """The SDK token an app makes from its configuration."""
    return OAuthToken(client_id=client_id, client_secret=CLIENT_SECRET, refresh_token=refresh_token,
                      grant_token=grant_token)


def save_expiring(store, left_ms, email=EMAIL, refresh_token=REFRESH_TOKEN, id=None):
    """Saves the user's token with an access token that has ``left_ms`` left."""
    token = sdk_token(refresh_token=refresh_token)
    token.set_id(id)
    token.set_access_token("old-access-" + email)
    token.set_expires_in(str(int(time.time() * 1000) + left_ms))
    store.save_token(UserSignature(email), token)
    return token


class Header:
    """What ``OAuthToken.authenticate`` (the start of every API call) writes
    the bearer into, in place of the SDK's HTTP connector."""

    def __init__(self):
        self.value = None

    def add_header(self, name, value):
        self.value = value.split(" ", 1)[-1]


def bearer(token):
    """The access token the SDK's next API call would send."""
    header = Header()
    token.authenticate(header)
    return header.value


def worker_config(endpoint, prefix, zoho, go_at, threads=1, calls=1, **extra):
    """The configuration of one ``v2_worker.py`` process."""
    values = {"email": EMAIL, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    values.update(extra)
    return fleet.worker_config(endpoint, prefix, zoho, go_at, threads, calls, **values)


FLEET = Fleet(WORKER, SECRETS)
start_worker, finish, run_fleet, assert_no_secret = FLEET.start, FLEET.finish, FLEET.run, FLEET.assert_no_secret
