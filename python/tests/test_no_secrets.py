"""No secret value in any repr or exception the store produces."""

import traceback

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from zoho_token_store import SecretsManagerStore

SECRETS = ("SECRET-client-7f3a", "SECRET-refresh-7f3a", "SECRET-access-7f3a", "SECRET-grant-7f3a")


def secret_token(**extra):
    token = OAuthToken(client_id="1000.C", client_secret=SECRETS[0], refresh_token=SECRETS[1],
                       grant_token=SECRETS[3], **extra)
    token.set_access_token(SECRETS[2])
    return token


def everything_shown(error):
    """The exception with its chain, as a log or a traceback would show it."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error)


def assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text, "a secret value was shown: " + text


def raised(call):
    try:
        call()
    except SDKException as error:
        assert error.code == "TOKEN_STORE"
        return error
    raise AssertionError("no SDKException")


def test_repr_shows_the_prefix_only(store, prefix):
    store.save_token(secret_token(user_signature=UserSignature("r@example.com")))
    assert repr(store) == "SecretsManagerStore(prefix={!r}, managed_refresh=True)".format(prefix)
    assert repr(store._native) == 'NativeStore(prefix="{}", managed_refresh=True)'.format(prefix)


def test_invalid_input_errors_show_no_secret(store):
    error = raised(lambda: store.save_token(secret_token(id="../escape")))
    assert "escape" in str(error)  # the id is named: it is not a secret
    assert_no_secret(everything_shown(error))
    long_user = secret_token(user_signature=UserSignature("u" * 400 + "@example.com"))
    assert_no_secret(everything_shown(raised(lambda: store.save_token(long_user))))
    huge = secret_token(user_signature=UserSignature("h@example.com"))
    huge.set_redirect_url("x" * 70000)
    assert_no_secret(everything_shown(raised(lambda: store.save_token(huge))))


def test_a_corrupt_stored_token_is_named_not_shown(store, prefix, secretsmanager):
    secretsmanager.create_secret(Name=prefix + "/tokens/broken", SecretString='{"refresh_token": 42, "x": "' + SECRETS[1] + '"')
    error = raised(lambda: store.find_token_by_id("broken"))
    assert "broken" in str(error)
    assert_no_secret(everything_shown(error))


def test_backend_errors_show_no_secret():
    dead = SecretsManagerStore("nowhere", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                               attempt_timeout=1, operation_timeout=2)
    error = raised(lambda: dead.save_token(secret_token(user_signature=UserSignature("b@example.com"))))
    assert "save_token" in str(error)
    assert_no_secret(everything_shown(error))
    assert_no_secret(everything_shown(raised(dead.get_tokens)))


def test_bad_options_are_sdk_exceptions():
    error = raised(lambda: SecretsManagerStore("bad prefix with spaces"))
    assert "prefix" in str(error)
    raised(lambda: SecretsManagerStore(cache_ttl=-1))
    raised(lambda: SecretsManagerStore(recovery_window_days=3))
