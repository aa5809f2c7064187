"""``SecretsManagerStore`` for the Zoho CRM v2 Python SDK (``zohocrmsdk2-0``, module ``zcrmsdk``).

An instance of ``zcrmsdk.src.com.zoho.api.authenticator.store.token_store.TokenStore``,
so it drops into ``Initializer.initialize(user, environment, token,
store=SecretsManagerStore(), ...)`` where the SDK would use its ``FileStore``.
It needs only ``zcrmsdk`` (not ``zohocrmsdk``), and keeps tokens as the
package's other stores do: a v2 process, a process of the newer SDKs
(``zoho_token_store.SecretsManagerStore``), Node and Rust programs built with
the same prefix share one secret per CRM user and make one refresh between them.

The six methods behave as the v2 SDK's own ``FileStore`` does, on the SDK's
``OAuthToken`` objects, with the user passed apart (``UserSignature(email)``);
the user's email is the stored token's user name:

- ``get_token(user, token)``: the stored token of ``user`` whose client id is
  ``token``'s and whose grant token is ``token``'s (if ``token`` has one) or
  else whose refresh token is; every field of ``token`` is set from it (id,
  user mail, client id and secret, refresh, access and grant tokens,
  ``expires_in``, redirect URL) and ``token`` is returned. ``None`` when none
  matches, or when ``token`` is not an ``OAuthToken``.
- ``get_token_by_id(id, token)``: the same from the token stored under
  ``id``; an id that is not stored raises ``SDKException`` with code
  ``TOKEN_STORE``. ``None`` when ``token`` is not an ``OAuthToken``.
- ``save_token(user, token)``: sets ``token``'s user mail to ``user``'s email
  and stores it (an upsert), then sets ``token``'s id to the stored one. A
  user has one stored token: a save for a user who has one updates it, even
  under another id (the SDK makes up an id per process when it saved nothing
  before), where FileStore would add a second row.
- ``delete_token(token)``: deletes the stored token that ``token`` matches
  (by its user mail, client id and grant or refresh token, as ``get_token``);
  nothing when none does.
- ``get_tokens()``: every stored token, as new ``OAuthToken`` objects (also
  those a newer SDK or a Rust program stored, which the SDK's constructor
  would refuse); ``delete_tokens()`` removes them all.
- ``expires_in`` is the SDK's string of epoch milliseconds on the way in and
  out; the store keeps it as a number.

A ``user`` that is not a ``UserSignature`` raises ``SDKException`` (code
``TOKEN_STORE``); a user or token without an email raises it with the code
and message of FileStore (``USER MAIL NONE ERROR``). Every failure of the store
is an ``SDKException`` whose message never contains a token's secret values.

Managed refresh (``managed_refresh=True``, the default): the v2 SDK asks its
store for the token only while its ``OAuthToken`` has no access token (the
first API call of the process), and later refreshes it by itself, in each
process, when under 5 seconds are left. So ``get_token`` and
``get_token_by_id`` answer a token with more than ``refresh_ahead`` seconds
left, refreshed first through the Rust crate's ``ZohoAuth`` (one refresh per
token for every thread, process and program sharing the prefix), and the
``OAuthToken`` they fill (or that ``save_token`` saves) gets its
``refresh_access_token`` replaced by the store's: when the SDK would refresh,
the store answers the token refreshed once for the fleet instead, and the
SDK's own refresh runs only for a token that is not stored. A query that
matches nothing but carries a grant token is exchanged once for the fleet. A
refresh that cannot be made raises ``RefreshError`` (an ``SDKException``).
Accounts server: the Zoho data center of the stored token's ``api_domain``
(a v2 token has none of its own; a newer SDK or the Rust crate stores it);
else the accounts URL of the environment the SDK was initialized with; else
the store's ``accounts_url``.
"""

import functools

from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zcrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zcrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zcrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature
from zcrmsdk.src.com.zoho.crm.api.util.constants import Constants

from ._common import OPTIONS_DOC, REFRESH_ERROR_DOC, TOKEN_STORE, NativeBacked, RefreshErrorMixin, token_fields
from ._native import StoreError

__all__ = ["RefreshError", "SecretsManagerStore", "from_sdk_token", "to_sdk_token"]

_NOT_FOUND = "Exception in getTokenById - SecretsManagerStore : Given ID is invalid"
#: The SDK's own ``refresh_access_token``, which the store's replaces on the tokens it answers.
_SDK_REFRESH = OAuthToken.refresh_access_token


def from_sdk_token(email, token, strict=True):
    """The fields of a v2 SDK ``OAuthToken`` of the user ``email`` as the
    dict the native store takes (``expires_in`` as ``expiry_time``, an int of
    epoch milliseconds; a v2 token has no ``api_domain``, so a save keeps the
    stored one)."""
    return token_fields(token, email, strict, SDKException)


def _set_all(token, stored):
    """Sets every field of ``token`` from the ``stored`` dict, as FileStore
    does on a match, and returns ``token``."""
    token.set_id(stored["id"])
    token.set_user_mail(stored["user_name"])
    token.set_client_id(stored["client_id"])
    token.set_client_secret(stored["client_secret"])
    token.set_refresh_token(stored["refresh_token"])
    token.set_access_token(stored["access_token"])
    token.set_grant_token(stored["grant_token"])
    token.set_expires_in(None if stored["expiry_time"] is None else str(stored["expiry_time"]))
    token.set_redirect_url(stored["redirect_url"])
    return token


def to_sdk_token(stored):
    """A new v2 SDK ``OAuthToken`` from a dict of the native store (made
    without the constructor's checks, which a token another SDK or a Rust
    program stored need not pass)."""
    return _set_all(object.__new__(OAuthToken), stored)


def _as_csv(value):
    """A stored value as FileStore reads it back from its CSV file (``None`` as ``""``)."""
    return "" if value is None else value


def _matches(email, token, stored):
    """FileStore's ``check_token_exists``: the same user email and client id,
    and the same grant token if ``token`` has one, else the same refresh token."""
    grant = token.get_grant_token()
    if grant is not None:
        same_token = grant == _as_csv(stored["grant_token"])
    else:
        same_token = token.get_refresh_token() == _as_csv(stored["refresh_token"])
    return _as_csv(stored["user_name"]) == email and _as_csv(stored["client_id"]) == token.get_client_id() and same_token


def _no_mail():
    """FileStore's error for a user (or token) without an email."""
    return SDKException(Constants.USER_MAIL_NULL_ERROR, Constants.USER_MAIL_NULL_ERROR_MESSAGE)


class RefreshError(RefreshErrorMixin, SDKException):
    __doc__ = REFRESH_ERROR_DOC


class SecretsManagerStore(NativeBacked, TokenStore):
    __doc__ = """A v2 Zoho SDK ``TokenStore`` (``zcrmsdk``) keeping tokens in AWS Secrets Manager.

    With managed refresh, ``get_token`` and ``get_token_by_id`` answer the
    refreshed token, and the SDK's later refreshes of it go through the store
    (see the module).
    """ + OPTIONS_DOC

    _sdk_exception = SDKException
    _refresh_error = RefreshError
    _initializer = Initializer

    def _email(self, operation, user):
        """``user``'s email; an ``SDKException`` for anything but a
        ``UserSignature`` with one."""
        if not isinstance(user, UserSignature):
            raise SDKException(
                code=TOKEN_STORE,
                message="Exception in {} - SecretsManagerStore: user must be a UserSignature, not {}".format(
                    operation, type(user).__name__
                ),
            )
        email = user.get_email()
        if email is None:
            raise _no_mail()
        if not isinstance(email, str):
            raise SDKException(
                code=TOKEN_STORE,
                message="Exception in {} - SecretsManagerStore: the user's email must be a str".format(operation),
            )
        return email

    def _users_token(self, operation, email):
        """The token stored for the user ``email``, as stored (never
        refreshed); ``None`` when there is none."""
        if not email:
            return None
        try:
            return self._native.find_stored({"user_name": email})
        except StoreError as error:
            raise self._store_error(operation, error) from error

    def _answer(self, token, stored):
        """Sets ``token`` from ``stored`` and, under managed refresh, routes its
        refreshes through the store; returns ``token``."""
        _set_all(token, stored)
        self._manage(token)
        return token

    def _manage(self, token):
        """Under managed refresh, replaces ``token``'s ``refresh_access_token``
        (which the SDK calls when under 5 s are left) with the store's."""
        if self._managed:
            token.refresh_access_token = functools.partial(self._refresh_access_token, token)

    def _refresh_access_token(self, token, user, store):
        """What the SDK's ``token.refresh_access_token(user, store)`` does under
        managed refresh: the stored token, refreshed once for the fleet if
        another process has not already, set on ``token``. A token that is not
        stored (no id, or deleted) is refreshed by the SDK's own code."""
        found = self._find_by_id("refresh_access_token", token.get_id())
        if found is None:
            return _SDK_REFRESH(token, user, store)
        _set_all(token, found)
        return token

    def get_token(self, user, token):
        """Sets every field of ``token`` from the stored token of ``user`` that
        it matches (client id, and grant or else refresh token) and returns
        ``token``; ``None`` when none matches."""
        if not isinstance(token, OAuthToken):
            return None
        email = self._email("get_token", user)
        if not email:
            return None
        # The user's token, as stored: the match is checked here, on the
        # stored values. Under managed refresh the crate answers the stored
        # token (refreshed) and needs the client and grant, to exchange a
        # grant that nothing matches; without it, the crate would lay the
        # query's values over the stored ones.
        query = from_sdk_token(email, token, strict=False) if self._managed else {"user_name": email}
        found = self._find("get_token", query)
        if found is None or not _matches(email, token, found):
            return None
        return self._answer(token, found)

    def get_token_by_id(self, id, token):
        """Sets every field of ``token`` from the token stored under ``id`` and
        returns ``token``; raises ``SDKException`` (code ``TOKEN_STORE``) when
        there is none. ``None`` when ``token`` is not an ``OAuthToken``."""
        if not isinstance(token, OAuthToken):
            return None
        found = self._find_by_id("get_token_by_id", id)
        if found is None:
            raise SDKException(code=TOKEN_STORE, message=_NOT_FOUND)
        return self._answer(token, found)

    def save_token(self, user, token):
        """Sets ``token``'s user mail to ``user``'s email, stores ``token`` as
        the user's one token, and sets its id to the stored one. Anything that
        is not an ``OAuthToken`` is ignored."""
        if not isinstance(token, OAuthToken):
            return
        email = self._email("save_token", user)
        token.set_user_mail(email)
        record = from_sdk_token(email, token, strict=True)
        if record["id"] is not None:
            held = self._users_token("save_token", email)
            if held is not None:
                record["id"] = held["id"]  # the user's token, whatever id this process made up
        stored = self._save("save_token", record)
        token.set_id(stored["id"])
        self._manage(token)

    def delete_token(self, token):
        """Deletes the stored token that ``token`` matches (its user mail,
        client id, and grant or else refresh token); nothing when none does.
        Anything that is not an ``OAuthToken`` is ignored."""
        if not isinstance(token, OAuthToken):
            return
        email = token.get_user_mail()
        if email is None:
            raise _no_mail()
        held = self._users_token("delete_token", email if isinstance(email, str) else None)
        if held is not None and _matches(email, token, held):
            self._delete("delete_token", held["id"])

    def get_tokens(self):
        """Every stored token, as a list of new ``OAuthToken`` objects."""
        return [to_sdk_token(stored) for stored in self._all("get_tokens")]

    def delete_tokens(self):
        """Deletes every stored token."""
        self._delete_all("delete_tokens")
