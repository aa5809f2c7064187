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

from ._native import AuthError, NativeStore, StoreError

#: The code of every ``SDKException`` the store raises (the SDK's ``Constants.TOKEN_STORE``).
TOKEN_STORE = "TOKEN_STORE"
_NOT_FOUND = "Given ID is not found in SecretsManagerStore"


def _expiry_ms(expires_in, strict):
    """The SDK's ``expires_in`` (a string of epoch ms) as an int, or ``None``.

    A value that is not a whole number is an ``SDKException`` when ``strict``
    (saving it would lose it), else ignored (it plays no part in matching).
    """
    if expires_in is None or expires_in == "":
        return None
    try:
        return int(expires_in)
    except (TypeError, ValueError):
        if strict:
            raise SDKException(
                code=TOKEN_STORE,
                message="Exception in save_token - SecretsManagerStore: expires_in must be "
                "epoch milliseconds as a string of digits",
            ) from None
        return None


def from_sdk_token(token, strict=True):
    """The fields of an SDK ``OAuthToken`` as the dict the native store takes.

    ``expires_in`` becomes ``expiry_time``, an int of epoch milliseconds;
    ``user_signature`` becomes ``user_name``.
    """
    signature = token.get_user_signature()
    return {
        "id": token.get_id(),
        "user_name": signature.get_name() if signature is not None else None,
        "client_id": token.get_client_id(),
        "client_secret": token.get_client_secret(),
        "refresh_token": token.get_refresh_token(),
        "access_token": token.get_access_token(),
        "grant_token": token.get_grant_token(),
        "expiry_time": _expiry_ms(token.get_expires_in(), strict),
        "redirect_url": token.get_redirect_url(),
        "api_domain": token.get_api_domain(),
    }


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


def _sdk_error(operation, error):
    """The ``SDKException`` for a native ``StoreError`` (whose message names
    ids and operations, never secret values)."""
    message = error.args[1] if len(error.args) > 1 else str(error)
    return SDKException(
        code=TOKEN_STORE,
        message="Exception in {} - SecretsManagerStore: {}".format(operation, message),
    )


class RefreshError(SDKException):
    """A managed refresh (or grant exchange) that could not give the SDK a
    valid access token. An ``SDKException``, so the SDK's callers catch it as
    they catch its own; ``kind`` says what failed, and ``code`` is
    ``TOKEN_REFRESH_`` followed by it in capitals:

    - ``rejected``: Zoho refused the refresh token or the client (a revoked
      refresh token, a wrong client secret, a used grant). The stored token is
      unchanged, and no process sharing the prefix asks Zoho again with it
      until a token is saved again (re-authorize with a new grant).
    - ``throttled``: Zoho's rate limit (10 access tokens per refresh token in
      10 minutes); refreshes are retried after a backoff.
    - ``transport``, ``unexpected_response``: the accounts server could not
      be reached, or answered nonsense; retried after a backoff.
    - ``invalid_input``: e.g. no accounts server is known for the token (its
      ``api_domain`` is not Zoho's, the SDK is not initialized and the store
      has no ``accounts_url``); nothing was sent.

    Its message names the token id and Zoho's error code, never a secret.
    """

    def __init__(self, kind, code, message):
        SDKException.__init__(self, code=code, message=message)
        self.kind = kind

    @property
    def retryable(self):
        """Whether the same call may succeed later without a new token."""
        return self.kind in ("throttled", "transport", "unexpected_response")


_REFRESH_ADVICE = {
    "rejected": " (a revoked refresh token or wrong client credentials: save a token from a new "
    "grant; until then no process sharing the prefix asks Zoho again with these)",
    "throttled": " (Zoho's limit on access tokens per refresh token; the refresh is retried after a "
    "backoff)",
}


def _refresh_error(operation, error):
    """The ``RefreshError`` for a native ``AuthError`` (whose message names
    ids and Zoho's error codes, never secret values)."""
    kind = _kind(error)
    message = error.args[1] if len(error.args) > 1 else str(error)
    return RefreshError(
        kind,
        "TOKEN_REFRESH_" + kind.upper(),
        "Exception in {} - SecretsManagerStore: {}{}".format(operation, message, _REFRESH_ADVICE.get(kind, "")),
    )


def _sdk_accounts_url():
    """The accounts URL (the full token URL) of the environment the SDK was
    initialized with, where the SDK itself would refresh a token whose
    ``api_domain`` names no Zoho data center; ``None`` outside an
    initialized SDK."""
    try:
        environment = Initializer.get_initializer().environment
    except AttributeError:
        return None
    url = getattr(environment, "accounts_url", None)
    return url if isinstance(url, str) and url else None


def _kind(error):
    """The kind of a native ``StoreError`` (``invalid_input``, ``backend``, ...)."""
    return error.args[0] if error.args else "other"


class SecretsManagerStore(TokenStore):
    """A Zoho SDK ``TokenStore`` keeping tokens in AWS Secrets Manager.

    ``prefix`` is the namespace of its secrets: ``{prefix}/tokens/{id}`` for
    each token, ``{prefix}/index/...`` for the index. Programs (Python or
    Rust) built with the same prefix share the same tokens.

    Keyword options:

    - ``managed_refresh`` (default ``True``): ``find_token`` and
      ``find_token_by_id`` answer the SDK a token with a valid access token,
      refreshed first through the Rust crate's ``ZohoAuth`` when fewer than
      ``refresh_ahead`` seconds (default 300) are left of it: one refresh per
      token for every thread, process and Rust program sharing the prefix,
      where the SDK alone would refresh in each process. ``False``: plain
      persistence, and the SDK refreshes by itself.
    - ``accounts_url``: where a token whose ``api_domain`` names no Zoho data
      center is refreshed when the SDK is not initialized (a full token URL
      such as ``https://accounts.zoho.eu/oauth/v2/token``, or a base URL). A
      token's credentials go to the accounts server of its ``api_domain``'s
      Zoho data center; else to the accounts URL of the environment the SDK
      was initialized with; else here; never to a host taken from an
      ``api_domain`` that is not Zoho's.
    - ``refresh_timeout`` (seconds, default 10): limit on one call to Zoho's
      accounts server.
    - ``endpoint_url``, ``region_name``: as boto3's; by default the AWS
      configuration is read from the environment (``AWS_REGION``,
      ``AWS_ENDPOINT_URL``, the Lambda's role credentials, ...).
    - ``cache_ttl`` (seconds, default 300): how long a token read is served
      from this instance's cache. A cached token is never served past its
      ``expires_in``, and this instance's own writes update its cache at once.
    - ``cache_capacity``: tokens cached at most (default 10,000).
    - ``recovery_window_days``: schedule deletions with a recovery window of
      7 to 30 days instead of deleting at once.
    - ``attempt_timeout``, ``operation_timeout`` (seconds): limits on one
      HTTP attempt and on one API call with its retries (defaults 3 and 10).

    Building it makes no network call. Make one per process (in a Lambda, at
    module level) and share it between threads: calls release the GIL.
    """

    def __init__(
        self,
        prefix="zoho/crm",
        *,
        managed_refresh=True,
        refresh_ahead=300,
        accounts_url=None,
        refresh_timeout=None,
        endpoint_url=None,
        region_name=None,
        cache_ttl=300,
        cache_capacity=None,
        recovery_window_days=None,
        attempt_timeout=None,
        operation_timeout=None,
    ):
        try:
            self._native = NativeStore(
                prefix,
                managed_refresh=bool(managed_refresh),
                refresh_ahead=float(refresh_ahead),
                accounts_url=accounts_url,
                refresh_timeout=None if refresh_timeout is None else float(refresh_timeout),
                endpoint_url=endpoint_url,
                region_name=region_name,
                cache_ttl=float(cache_ttl),
                cache_capacity=cache_capacity,
                recovery_window_days=recovery_window_days,
                attempt_timeout=None if attempt_timeout is None else float(attempt_timeout),
                operation_timeout=None if operation_timeout is None else float(operation_timeout),
            )
        except StoreError as error:
            raise _sdk_error("SecretsManagerStore", error) from error
        except AuthError as error:
            raise _refresh_error("SecretsManagerStore", error) from error
        self._managed = self._native.managed_refresh

    @property
    def prefix(self):
        """The prefix of the store's secrets."""
        return self._native.prefix

    @property
    def managed_refresh(self):
        """Whether ``find_token`` / ``find_token_by_id`` refresh (see the class)."""
        return self._managed

    def __repr__(self):
        """Shows the prefix and the refresh mode only: never a token or a credential."""
        return "SecretsManagerStore(prefix={!r}, managed_refresh={!r})".format(self.prefix, self._managed)

    def find_token(self, token):
        """Fills ``token``'s ``None`` fields from the stored token it matches
        and returns ``token``; ``None`` when nothing matches."""
        if not isinstance(token, OAuthToken):
            return token
        signature = token.get_user_signature()
        if signature is not None and not signature.get_name():
            # FileStore: a user signature decides alone, and an empty name matches nothing.
            return None
        query = from_sdk_token(token, strict=False)
        try:
            if self._managed:
                found = self._native.find_token(query, _sdk_accounts_url())
            else:
                found = self._native.find_token(query)
        except StoreError as error:
            if _kind(error) == "invalid_input":
                return None  # nothing to match on: FileStore finds nothing
            raise _sdk_error("find_token", error) from error
        except AuthError as error:
            raise _refresh_error("find_token", error) from error
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
                "SecretsManagerStore: the user name of token %s was not saved (%s)", found["id"], _kind(error)
            )
            return found

    def find_token_by_id(self, id):
        """A new ``OAuthToken`` for the token stored under ``id``; raises
        ``SDKException`` (code ``TOKEN_STORE``) when there is none."""
        if not isinstance(id, str):
            raise SDKException(TOKEN_STORE, _NOT_FOUND)
        try:
            if self._managed:
                found = self._native.find_token_by_id(id, _sdk_accounts_url())
            else:
                found = self._native.find_token_by_id(id)
        except StoreError as error:
            if _kind(error) == "invalid_input":
                found = None  # a malformed id is never stored
            else:
                raise _sdk_error("find_token_by_id", error) from error
        except AuthError as error:
            raise _refresh_error("find_token_by_id", error) from error
        if found is None:
            raise SDKException(TOKEN_STORE, _NOT_FOUND)
        return to_sdk_token(found)

    def save_token(self, token):
        """Stores ``token``, then sets its id and fills its ``None`` fields
        from what is stored. Anything that is not an ``OAuthToken`` is ignored."""
        if not isinstance(token, OAuthToken):
            return
        try:
            stored = self._native.save_token(from_sdk_token(token, strict=True))
        except StoreError as error:
            raise _sdk_error("save_token", error) from error
        token.set_id(stored["id"])
        _fill(token, stored)

    def delete_token(self, id):
        """Deletes the token stored under ``id``; raises ``SDKException``
        (code ``TOKEN_STORE``) when there is none."""
        if not isinstance(id, str):
            raise SDKException(TOKEN_STORE, _NOT_FOUND)
        try:
            existed = self._native.delete_token(id)
        except StoreError as error:
            if _kind(error) == "invalid_input":
                existed = False
            else:
                raise _sdk_error("delete_token", error) from error
        if not existed:
            raise SDKException(TOKEN_STORE, _NOT_FOUND)

    def get_tokens(self):
        """Every stored token, as a list of new ``OAuthToken`` objects."""
        try:
            return [to_sdk_token(stored) for stored in self._native.get_tokens()]
        except StoreError as error:
            raise _sdk_error("get_tokens", error) from error

    def delete_tokens(self):
        """Deletes every stored token."""
        try:
            self._native.delete_tokens()
        except StoreError as error:
            raise _sdk_error("delete_tokens", error) from error
