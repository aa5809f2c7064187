"""No secret value in any repr or exception of the v2 store; bad input is an
``SDKException`` that says what is wrong; the v2 store needs no ``zohocrmsdk``."""

import subprocess
import sys
import traceback

import pytest

from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zcrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from zoho_token_store.v2 import SecretsManagerStore

SECRETS = ("SECRET-client-4b1e", "SECRET-refresh-4b1e", "SECRET-access-4b1e", "SECRET-grant-4b1e")


def secret_token(id=None):
    token = OAuthToken(client_id="1000.C", client_secret=SECRETS[0], refresh_token=SECRETS[1], grant_token=SECRETS[3])
    token.set_id(id)
    token.set_access_token(SECRETS[2])
    token.set_expires_in("1900000000000")
    return token


def everything_shown(error):
    """The exception with its chain, as a log or a traceback would show it."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error)


def raised(call, code="TOKEN_STORE"):
    with pytest.raises(SDKException) as info:
        call()
    assert info.value.code == code
    text = everything_shown(info.value)
    for secret in SECRETS:
        assert secret not in text, "a secret value was shown: " + text
    return info.value


def test_repr_and_str_show_the_prefix_only(store, prefix):
    store.save_token(UserSignature("r@example.com"), secret_token())
    assert repr(store) == str(store) == "SecretsManagerStore(prefix={!r}, managed_refresh=True)".format(prefix)
    token = store.get_token(UserSignature("r@example.com"), secret_token())
    assert not any(secret in repr(token.refresh_access_token) for secret in SECRETS)


def test_bad_input_is_an_sdk_exception_that_shows_no_secret(store):
    assert "escape" in str(raised(lambda: store.save_token(UserSignature("e@example.com"), secret_token(id="../escape"))))
    bad_expiry = secret_token()
    bad_expiry.set_expires_in("soon")
    assert "expires_in" in str(raised(lambda: store.save_token(UserSignature("x@example.com"), bad_expiry)))
    huge = secret_token()
    huge.set_redirect_url("x" * 70000)
    raised(lambda: store.save_token(UserSignature("h@example.com"), huge))
    assert "UserSignature" in str(raised(lambda: store.get_token("someone@example.com", secret_token())))
    assert "UserSignature" in str(raised(lambda: store.save_token(None, secret_token())))
    assert "Given ID is invalid" in str(raised(lambda: store.get_token_by_id("../nope", secret_token())))
    raised(lambda: store.get_token_by_id(None, secret_token()))
    raised(lambda: store.delete_token(secret_token()), code="USER MAIL NONE ERROR")


def test_backend_and_option_errors_show_no_secret():
    dead = SecretsManagerStore("nowhere", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                               attempt_timeout=1, operation_timeout=2)
    assert "save_token" in str(raised(lambda: dead.save_token(UserSignature("b@example.com"), secret_token())))
    raised(lambda: dead.get_token(UserSignature("b@example.com"), secret_token()))
    raised(dead.get_tokens)
    assert "prefix" in str(raised(lambda: SecretsManagerStore("bad prefix with spaces")))
    raised(lambda: SecretsManagerStore(cache_ttl=-1))
    raised(lambda: SecretsManagerStore(refresh_ahead="soon"))
    assert raised(lambda: SecretsManagerStore(accounts_url="ftp://x"), code="TOKEN_REFRESH_INVALID_INPUT")


def test_the_v2_store_imports_without_zohocrmsdk():
    script = (
        "import sys\n"
        "sys.modules['zohocrmsdk'] = None  # as if not installed\n"
        "import zoho_token_store, zoho_token_store.v2\n"
        "store = zoho_token_store.v2.SecretsManagerStore('p', region_name='us-east-1')\n"
        "try:\n"
        "    zoho_token_store.SecretsManagerStore\n"
        "except ImportError as error:\n"
        "    print('newer SDKs need zohocrmsdk:', error)\n"
        "print(store)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "newer SDKs need zohocrmsdk" in done.stdout
    assert "SecretsManagerStore(prefix='p', managed_refresh=True)" in done.stdout
