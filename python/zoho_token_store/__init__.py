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
"""

from ._store import RefreshError, SecretsManagerStore, from_sdk_token, to_sdk_token
from ._native import AuthError, StoreError

__all__ = ["AuthError", "RefreshError", "SecretsManagerStore", "StoreError", "from_sdk_token", "to_sdk_token"]
