"""One process of a fleet: the official SDK's own flow through
``SecretsManagerStore``, run by the tests as ``python sdk_worker.py CONFIG``.

CONFIG is JSON: ``prefix``, ``endpoint``, ``region``, ``crm_url`` and
``accounts_url`` (the SDK environment's), ``client_id``, ``client_secret``,
``refresh_token`` or ``grant_token``, ``threads``, ``calls`` (``get_token``
calls per thread), ``go_at`` (epoch seconds: every process starts then),
``store`` (keyword options of the store, e.g. ``{"managed_refresh": false}``).

It waits for ``go_at``, runs ``Initializer.initialize`` (whose first
``get_token`` finds, and may refresh, the token), then ``threads`` threads
calling ``get_token`` (what every CRM request does), and prints one JSON
object: ``id`` (the SDK token's id), ``tokens`` (every access token handed
out), ``errors`` (``{"code", "kind", "text"}``, ``text`` the exception as a
traceback shows it), ``log`` (everything logged, at DEBUG) and ``repr`` (the
store's).
"""

import io
import json
import logging
import sys
import tempfile
import threading
import time

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

from fleet import described
from zoho_token_store import SecretsManagerStore


def main():
    config = json.loads(sys.argv[1])
    log = io.StringIO()
    logging.basicConfig(level=logging.DEBUG, stream=log, force=True)
    store = SecretsManagerStore(
        config["prefix"], endpoint_url=config["endpoint"], region_name=config["region"], **config.get("store", {})
    )
    environment = DataCenter.Environment(config["crm_url"], config["accounts_url"], config["crm_url"])
    token = OAuthToken(
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        refresh_token=config.get("refresh_token"),
        grant_token=config.get("grant_token"),
    )
    result = {"id": None, "tokens": [], "errors": []}
    lock = threading.Lock()
    time.sleep(max(0.0, config.get("go_at", 0) - time.time()))
    with tempfile.TemporaryDirectory() as resource_path:
        try:
            Initializer.initialize(environment, token, store=store, resource_path=resource_path)
            result["tokens"].append(token.get_access_token())
        except SDKException as error:
            result["errors"].append(described(error))
        else:

            def work():
                for _ in range(config["calls"]):
                    try:
                        value = token.get_token()
                    except SDKException as error:
                        with lock:
                            result["errors"].append(described(error))
                    else:
                        with lock:
                            result["tokens"].append(value)

            threads = [threading.Thread(target=work) for _ in range(config["threads"])]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    result["id"] = token.get_id()
    result["log"] = log.getvalue()
    result["repr"] = repr(store)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
