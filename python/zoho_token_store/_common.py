"""What the stores of every Zoho Python SDK share, whatever the SDK.

``zoho_token_store.SecretsManagerStore`` (the SDKs with ``find_token``:
``zohocrmsdk8-0``, ``7-0``, ``6-0``, module ``zohocrmsdk``) and
``zoho_token_store.v2.SecretsManagerStore`` (``zohocrmsdk2-0``, module
``zcrmsdk``, with ``get_token``) are both a ``NativeBacked``: the native store
built from the same options, the same managed refresh, the same errors. Each
subclass names its SDK's ``SDKException``, ``RefreshError`` and
``Initializer`` (class attributes), and converts its SDK's ``OAuthToken``.

This module imports no Zoho SDK, so that either SDK alone is enough.
"""

from ._native import AuthError, NativeStore, StoreError

#: The code of every ``SDKException`` a store raises (both SDKs' ``Constants.TOKEN_STORE``).
TOKEN_STORE = "TOKEN_STORE"


def kind_of(error):
    """The kind of a native ``StoreError`` or ``AuthError`` (``invalid_input``,
    ``backend``, ``rejected``, ...)."""
    return error.args[0] if error.args else "other"


def message_of(error):
    """The message of a native ``StoreError`` or ``AuthError``: it names ids,
    operations and Zoho's error codes, never a secret value."""
    return error.args[1] if len(error.args) > 1 else str(error)


def expiry_ms(expires_in, strict, sdk_exception):
    """The SDK's ``expires_in`` (a string of epoch ms) as an int, or ``None``.

    A value that is not a whole number is an ``sdk_exception`` when
    ``strict`` (saving it would lose it), else ignored (it plays no part in
    matching).
    """
    if expires_in is None or expires_in == "":
        return None
    try:
        return int(expires_in)
    except (TypeError, ValueError):
        if strict:
            raise sdk_exception(
                code=TOKEN_STORE,
                message="Exception in save_token - SecretsManagerStore: expires_in must be "
                "epoch milliseconds as a string of digits",
            ) from None
        return None


def token_fields(token, user_name, strict, sdk_exception):
    """The fields that an ``OAuthToken`` of either SDK holds alike (both have
    the same getters for them), as the dict the native store takes, with
    ``user_name`` (each SDK holds its user in its own way) and
    ``expires_in`` as ``expiry_time`` (see ``expiry_ms``)."""
    return {
        "id": token.get_id(),
        "user_name": user_name,
        "client_id": token.get_client_id(),
        "client_secret": token.get_client_secret(),
        "refresh_token": token.get_refresh_token(),
        "access_token": token.get_access_token(),
        "grant_token": token.get_grant_token(),
        "expiry_time": expiry_ms(token.get_expires_in(), strict, sdk_exception),
        "redirect_url": token.get_redirect_url(),
    }


class RefreshErrorMixin:
    """The behaviour of each SDK's ``RefreshError`` (which also subclasses
    that SDK's ``SDKException``): ``kind`` says what failed, ``code`` is
    ``TOKEN_REFRESH_`` followed by it in capitals, ``retryable`` whether the
    same call may succeed later without a new token."""

    def __init__(self, kind, code, message):
        super().__init__(code=code, message=message)
        self.kind = kind

    @property
    def retryable(self):
        """Whether the same call may succeed later without a new token."""
        return self.kind in ("throttled", "transport", "unexpected_response")


#: The docstring of each SDK's ``RefreshError``.
REFRESH_ERROR_DOC = """A managed refresh (or grant exchange) that could not give the SDK a
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

_REFRESH_ADVICE = {
    "rejected": " (a revoked refresh token or wrong client credentials: save a token from a new "
    "grant; until then no process sharing the prefix asks Zoho again with these)",
    "throttled": " (Zoho's limit on access tokens per refresh token; the refresh is retried after a "
    "backoff)",
}

#: The docstring of the keyword options both stores take.
OPTIONS_DOC = """
    ``prefix`` is the namespace of its secrets: ``{prefix}/tokens/{id}`` for
    each token, ``{prefix}/index/...`` for the index. Programs (Python, of
    either SDK, Node or Rust) built with the same prefix share the same tokens.

    Keyword options:

    - ``managed_refresh`` (default ``True``): the store answers the SDK a
      token with a valid access token, refreshed first through the Rust
      crate's ``ZohoAuth`` when fewer than ``refresh_ahead`` seconds (default
      300) are left of it: one refresh per token for every thread, process
      and Rust program sharing the prefix, where the SDK alone would refresh
      in each process. ``False``: plain persistence, and the SDK refreshes by
      itself.
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


class NativeBacked:
    """The SDK-independent half of a store: the native store, its options,
    its ``repr``, and its calls with their errors turned into the SDK's.

    Subclasses set ``_sdk_exception`` (the SDK's ``SDKException``),
    ``_refresh_error`` (its ``RefreshError``) and ``_initializer`` (its
    ``Initializer``, whose environment's accounts URL managed refresh uses).
    """

    _sdk_exception = None
    _refresh_error = None
    _initializer = None

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
            raise self._store_error("SecretsManagerStore", error) from error
        except AuthError as error:
            raise self._auth_error("SecretsManagerStore", error) from error
        except (TypeError, ValueError, OverflowError) as error:
            # A wrong type of option (e.g. refresh_ahead="soon"): named, not a crash.
            raise self._sdk_exception(
                code=TOKEN_STORE,
                message="Exception in SecretsManagerStore: bad option ({}: {})".format(type(error).__name__, error),
            ) from None
        self._managed = self._native.managed_refresh

    @property
    def prefix(self):
        """The prefix of the store's secrets."""
        return self._native.prefix

    @property
    def managed_refresh(self):
        """Whether the store refreshes tokens before answering them (see the class)."""
        return self._managed

    def __repr__(self):
        """Shows the prefix and the refresh mode only: never a token or a credential."""
        return "SecretsManagerStore(prefix={!r}, managed_refresh={!r})".format(self.prefix, self._managed)

    def _store_error(self, operation, error):
        """The SDK's ``SDKException`` (code ``TOKEN_STORE``) for a native ``StoreError``."""
        return self._sdk_exception(
            code=TOKEN_STORE,
            message="Exception in {} - SecretsManagerStore: {}".format(operation, message_of(error)),
        )

    def _auth_error(self, operation, error):
        """The SDK's ``RefreshError`` for a native ``AuthError``."""
        kind = kind_of(error)
        return self._refresh_error(
            kind,
            "TOKEN_REFRESH_" + kind.upper(),
            "Exception in {} - SecretsManagerStore: {}{}".format(
                operation, message_of(error), _REFRESH_ADVICE.get(kind, "")
            ),
        )

    def _sdk_accounts_url(self):
        """The accounts URL (the full token URL) of the environment the SDK was
        initialized with, where the SDK itself would refresh a token whose
        ``api_domain`` names no Zoho data center; ``None`` outside an
        initialized SDK."""
        try:
            environment = self._initializer.get_initializer().environment
        except AttributeError:
            return None
        url = getattr(environment, "accounts_url", None)
        return url if isinstance(url, str) and url else None

    def _find(self, operation, query):
        """The stored token (a dict) that the native ``query`` matches, refreshed
        under managed refresh; ``None`` when none matches or the query has
        nothing to match on."""
        try:
            if self._managed:
                return self._native.find_token(query, self._sdk_accounts_url())
            return self._native.find_token(query)
        except StoreError as error:
            if kind_of(error) == "invalid_input":
                return None  # nothing to match on: FileStore finds nothing
            raise self._store_error(operation, error) from error
        except AuthError as error:
            raise self._auth_error(operation, error) from error

    def _find_by_id(self, operation, id):
        """The token (a dict) stored under ``id``, refreshed under managed
        refresh; ``None`` when there is none (a malformed id is never stored)."""
        if not isinstance(id, str):
            return None
        try:
            if self._managed:
                return self._native.find_token_by_id(id, self._sdk_accounts_url())
            return self._native.find_token_by_id(id)
        except StoreError as error:
            if kind_of(error) == "invalid_input":
                return None
            raise self._store_error(operation, error) from error
        except AuthError as error:
            raise self._auth_error(operation, error) from error

    def _save(self, operation, token):
        """Saves the native ``token`` dict (an upsert) and returns what is stored."""
        try:
            return self._native.save_token(token)
        except StoreError as error:
            raise self._store_error(operation, error) from error

    def _delete(self, operation, id):
        """Deletes the token stored under ``id``; whether one was stored."""
        if not isinstance(id, str):
            return False
        try:
            return self._native.delete_token(id)
        except StoreError as error:
            if kind_of(error) == "invalid_input":
                return False
            raise self._store_error(operation, error) from error

    def _all(self, operation):
        """Every stored token, as native dicts."""
        try:
            return self._native.get_tokens()
        except StoreError as error:
            raise self._store_error(operation, error) from error

    def _delete_all(self, operation):
        """Deletes every stored token."""
        try:
            self._native.delete_tokens()
        except StoreError as error:
            raise self._store_error(operation, error) from error
