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

The matching rules are the Rust crate's, so that Python and Rust programs
sharing a prefix agree on which token a query finds. They are FileStore's
(user name, else access token without client credentials, else grant or
refresh token with both client credentials), with three differences in
corner cases: an empty string counts as an absent field, a query with a grant
token that matches nothing does not go on to try its refresh token, and a
new token without any of refresh, grant or access token is refused (FileStore
stores one that has neither id nor user name).
"""

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from ._native import NativeStore, StoreError

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


def _kind(error):
    """The kind of a native ``StoreError`` (``invalid_input``, ``backend``, ...)."""
    return error.args[0] if error.args else "other"


class SecretsManagerStore(TokenStore):
    """A Zoho SDK ``TokenStore`` keeping tokens in AWS Secrets Manager.

    ``prefix`` is the namespace of its secrets: ``{prefix}/tokens/{id}`` for
    each token, ``{prefix}/index/...`` for the index. Programs (Python or
    Rust) built with the same prefix share the same tokens.

    Keyword options:

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

    @property
    def prefix(self):
        """The prefix of the store's secrets."""
        return self._native.prefix

    def __repr__(self):
        """Shows the prefix only: never a token or a credential."""
        return "SecretsManagerStore(prefix={!r})".format(self.prefix)

    def find_token(self, token):
        """Fills ``token``'s ``None`` fields from the stored token it matches
        and returns ``token``; ``None`` when nothing matches."""
        if not isinstance(token, OAuthToken):
            return token
        signature = token.get_user_signature()
        if signature is not None and not signature.get_name():
            # FileStore: a user signature decides alone, and an empty name matches nothing.
            return None
        try:
            found = self._native.find_token(from_sdk_token(token, strict=False))
        except StoreError as error:
            if _kind(error) == "invalid_input":
                return None  # nothing to match on: FileStore finds nothing
            raise _sdk_error("find_token", error) from error
        if found is None:
            return None
        return _fill(token, found)

    def find_token_by_id(self, id):
        """A new ``OAuthToken`` for the token stored under ``id``; raises
        ``SDKException`` (code ``TOKEN_STORE``) when there is none."""
        if not isinstance(id, str):
            raise SDKException(TOKEN_STORE, _NOT_FOUND)
        try:
            found = self._native.find_token_by_id(id)
        except StoreError as error:
            if _kind(error) == "invalid_input":
                found = None  # a malformed id is never stored
            else:
                raise _sdk_error("find_token_by_id", error) from error
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
