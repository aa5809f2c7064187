"""Zoho CRM OAuth tokens in AWS Secrets Manager, for the official Zoho CRM Python SDK.

``SecretsManagerStore`` is a ``TokenStore`` of the SDK (``zohocrmsdk``), so it
drops into ``Initializer.initialize(..., store=SecretsManagerStore())`` where
the SDK would use its ``FileStore``. The work is done by the Rust crate
``zoho-token-store`` (the extension module ``zoho_token_store._native``):
one secret per token under ``{prefix}/tokens/{id}``, index secrets under
``{prefix}/index/``, a read-through cache that never serves an expired token,
and index updates that lose nothing under concurrent writers. Python and Rust
programs configured with the same prefix share the same tokens.

With managed refresh (the default) the store also refreshes: ``find_token``
and ``find_token_by_id`` answer the SDK a token whose access token is valid,
refreshed first through the Rust crate's ``ZohoAuth`` (one refresh per token
for every process sharing the prefix), so the SDK never refreshes by itself.

For the v2 SDK (``zohocrmsdk2-0``, module ``zcrmsdk``, whose ``TokenStore``
has ``get_token(user, token)``): ``zoho_token_store.v2.SecretsManagerStore``.

The names below that need ``zohocrmsdk`` are loaded when first used, so that
``zoho_token_store.v2`` imports where only ``zcrmsdk`` is installed.
"""

from ._native import AuthError, StoreError

__all__ = ["AuthError", "RefreshError", "SecretsManagerStore", "StoreError", "from_sdk_token", "to_sdk_token"]

_FROM_STORE = ("RefreshError", "SecretsManagerStore", "from_sdk_token", "to_sdk_token")


def __getattr__(name):
    """Loads the ``zohocrmsdk`` store's names (``SecretsManagerStore``, ...)
    on first use: importing them needs the SDK, importing the package does not."""
    if name in _FROM_STORE:
        from . import _store

        return getattr(_store, name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))


def __dir__():
    """The package's names, those loaded on first use included."""
    return sorted(set(globals()) | set(__all__))
