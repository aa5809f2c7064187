"""``SecretsManagerStore``: the Zoho SDK's ``TokenStore`` on the Rust store.

The six methods behave as the SDK's own ``FileStore`` does, on the SDK's
``OAuthToken`` objects:

- ``find_token(token)`` fills the fields of ``token`` that are ``None`` from
  the stored token it matches and returns ``token`` itself, or returns
  ``None`` when nothing matches (also when ``token`` has nothing to match on).
  Anything that is not an ``OAuthToken`` is returned unchanged.
- ``save_token(token)`` stores it (an upsert), then sets its id and fills its
  ``None`` fields from the stored token, so ``token`` equals what is stored.
- ``find_token_by_id(id)`` returns a new ``OAuthToken``; an id that is not
  stored raises ``SDKException`` with code ``TOKEN_STORE``.
- ``delete_token(id)`` deletes; an id that is not stored raises
  ``SDKException`` with code ``TOKEN_STORE`` (the SDK's ``remove()`` catches
  it and answers ``False``).
- ``get_tokens()`` returns a list of new ``OAuthToken`` objects;
  ``delete_tokens()`` removes them all.
- ``expires_in`` is the SDK's string of epoch milliseconds on the way in and
  out; the store keeps it as a number.

Every failure of the store is an ``SDKException`` with code ``TOKEN_STORE``,
whose message never contains a token's secret values.

Managed refresh (``managed_refresh=True``, the default) changes what
``find_token`` and ``find_token_by_id`` answer: the stored token with an
access token that has more than ``refresh_ahead`` seconds left, refreshed
first through the Rust crate's ``ZohoAuth`` when it has less (one refresh per
token for every thread, process and Rust program sharing the prefix), so that
the SDK, which refreshes by itself only when under 5 seconds are left, never
calls Zoho on its own. A query that matches nothing but carries a grant token
is exchanged once for the fleet, and the saved token answered. A refresh that
cannot be made raises ``RefreshError`` (an ``SDKException``), see there.

The matching rules are the Rust crate's, so that Python and Rust programs
sharing a prefix agree on which token a query finds. They are FileStore's
(user name, else access token without client credentials, else grant or
refresh token with both client credentials), with three differences in
corner cases: an empty string counts as an absent field, a query with a grant
token that matches nothing does not go on to try its refresh token, and a
new token without any of refresh, grant or access token is refused (FileStore
stores one that has neither id nor user name).
"""

import logging

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from ._common import OPTIONS_DOC, REFRESH_ERROR_DOC, TOKEN_STORE, NativeBacked, RefreshErrorMixin, kind_of, token_fields
from ._native import StoreError

_NOT_FOUND = "Given ID is not found in SecretsManagerStore"


def from_sdk_token(token, strict=True):
    """The fields of an SDK ``OAuthToken`` as the dict the native store takes.

    ``expires_in`` becomes ``expiry_time``, an int of epoch milliseconds;
    ``user_signature`` becomes ``user_name``.
    """
    signature = token.get_user_signature()
    fields = token_fields(token, signature.get_name() if signature is not None else None, strict, SDKException)
    fields["api_domain"] = token.get_api_domain()
    return fields


def _fill(token, stored):
    """Sets every field of ``token`` that is ``None`` from the ``stored`` dict,
    as FileStore's merge does."""
    if token.get_id() is None:
        token.set_id(stored["id"])
    if token.get_user_signature() is None and stored["user_name"] is not None:
        token.set_user_signature(UserSignature(stored["user_name"]))
    if token.get_client_id() is None:
        token.set_client_id(stored["client_id"])
    if token.get_client_secret() is None:
        token.set_client_secret(stored["client_secret"])
    if token.get_refresh_token() is None:
        token.set_refresh_token(stored["refresh_token"])
    if token.get_access_token() is None:
        token.set_access_token(stored["access_token"])
    if token.get_grant_token() is None:
        token.set_grant_token(stored["grant_token"])
    if token.get_expires_in() is None and stored["expiry_time"] is not None:
        token.set_expires_in(str(stored["expiry_time"]))
    if token.get_redirect_url() is None:
        token.set_redirect_url(stored["redirect_url"])
    if token.get_api_domain() is None:
        token.set_api_domain(stored["api_domain"])
    return token


def to_sdk_token(stored):
    """A new SDK ``OAuthToken`` from a dict of the native store, made as
    FileStore makes the tokens it reads (without running the constructor's
    checks, which a stored token need not pass)."""
    token = object.__new__(OAuthToken)
    for setter in (
        token.set_id,
        token.set_user_signature,
        token.set_client_id,
        token.set_client_secret,
        token.set_refresh_token,
        token.set_access_token,
        token.set_grant_token,
        token.set_redirect_url,
        token.set_expires_in,
        token.set_api_domain,
    ):
        setter(None)
    return _fill(token, stored)


class RefreshError(RefreshErrorMixin, SDKException):
    __doc__ = REFRESH_ERROR_DOC


class SecretsManagerStore(NativeBacked, TokenStore):
    __doc__ = """A Zoho SDK ``TokenStore`` (``zohocrmsdk``) keeping tokens in AWS Secrets Manager.

    With managed refresh, ``find_token`` and ``find_token_by_id`` answer the
    refreshed token (the SDK asks its store before every API call).
    """ + OPTIONS_DOC

    _sdk_exception = SDKException
    _refresh_error = RefreshError
    _initializer = Initializer

    def find_token(self, token):
        """Fills ``token``'s ``None`` fields from the stored token it matches
        and returns ``token``; ``None`` when nothing matches."""
        if not isinstance(token, OAuthToken):
            return token
        signature = token.get_user_signature()
        if signature is not None and not signature.get_name():
            # FileStore: a user signature decides alone, and an empty name matches nothing.
            return None
        found = self._find("find_token", from_sdk_token(token, strict=False))
        if found is None:
            return None
        if self._managed:
            if token.get_grant_token() and found["user_name"] is None and token.get_user_signature() is None:
                found = self._name_user(token, found)
            # The access token answered, not one the query carried.
            token.set_access_token(found["access_token"])
            token.set_expires_in(None if found["expiry_time"] is None else str(found["expiry_time"]))
        return _fill(token, found)

    def _name_user(self, token, found):
        """After a grant exchange: names the token's CRM user and saves the
        name, as the SDK does when it saves a token it generated (its
        ``Utility.get_user_name``, a call to the CRM API), unless the SDK
        token was made with ``find_user=False``. A failure leaves the token
        unnamed (the SDK logs and goes on too); so does one that cannot be
        saved (another stored token has that user name)."""
        if not getattr(token, "_OAuthToken__find_user", True):
            return found
        try:
            from zohocrmsdk.src.com.zoho.crm.api.util.utility import Utility

            name = Utility.get_user_name(found["access_token"])
        except Exception as error:  # noqa: BLE001 - the SDK goes on without a name too
            logging.getLogger("SDKLogger").info(
                "SecretsManagerStore: the user of token %s could not be named (%s)", found["id"],
                type(error).__name__,
            )
            return found
        if not name:
            return found
        try:
            return self._native.save_token({"id": found["id"], "user_name": name})
        except StoreError as error:
            # E.g. another stored token already has that user name.
            logging.getLogger("SDKLogger").info(
                "SecretsManagerStore: the user name of token %s was not saved (%s)", found["id"], kind_of(error)
            )
            return found

    def find_token_by_id(self, id):
        """A new ``OAuthToken`` for the token stored under ``id``; raises
        ``SDKException`` (code ``TOKEN_STORE``) when there is none."""
        found = self._find_by_id("find_token_by_id", id)
        if found is None:
            raise SDKException(TOKEN_STORE, _NOT_FOUND)
        return to_sdk_token(found)

    def save_token(self, token):
        """Stores ``token``, then sets its id and fills its ``None`` fields
        from what is stored. Anything that is not an ``OAuthToken`` is ignored."""
        if not isinstance(token, OAuthToken):
            return
        stored = self._save("save_token", from_sdk_token(token, strict=True))
        token.set_id(stored["id"])
        _fill(token, stored)

    def delete_token(self, id):
        """Deletes the token stored under ``id``; raises ``SDKException``
        (code ``TOKEN_STORE``) when there is none."""
        if not self._delete("delete_token", id):
            raise SDKException(TOKEN_STORE, _NOT_FOUND)

    def get_tokens(self):
        """Every stored token, as a list of new ``OAuthToken`` objects."""
        return [to_sdk_token(stored) for stored in self._all("get_tokens")]

    def delete_tokens(self):
        """Deletes every stored token."""
        self._delete_all("delete_tokens")
