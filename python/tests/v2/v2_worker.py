"""One process of a fleet: the v2 SDK's own flow through
``zoho_token_store.v2.SecretsManagerStore``, run by the tests as
``python v2_worker.py CONFIG``.

CONFIG is JSON: ``prefix``, ``endpoint``, ``region``, ``crm_url`` and
``accounts_url`` (the SDK environment's), ``email`` (the user),
``client_id``, ``client_secret``, ``refresh_token`` or ``grant_token``,
``threads``, ``calls`` (API calls per thread), ``go_at`` (epoch seconds:
every process starts then), optionally ``again_at`` (epoch seconds: the
threads make their calls again then, with the token the process holds),
``store`` (keyword options of the store).

At ``go_at`` it runs ``Initializer.initialize``, then ``threads`` threads
each making ``calls`` calls of ``OAuthToken.authenticate`` (what every API
call of the SDK starts with: the first asks the store, later ones use the
token the process holds, which the SDK refreshes when under 5 s are left),
and prints one JSON object: ``id`` (the SDK token's id), ``tokens`` (every
bearer value handed out), ``errors`` (``{"code", "kind", "text"}``, ``text``
the exception as a traceback shows it), ``log`` (everything logged) and
``repr`` (the store's).
"""

import io
import json
import logging
import pathlib
import sys
import tempfile
import threading
import time

from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zcrmsdk.src.com.zoho.api.logger import Logger
from zcrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zcrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException
from zcrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from zoho_token_store.v2 import SecretsManagerStore

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # python/tests: fleet.py
from fleet import described  # noqa: E402


class Header:
    """Takes the bearer ``authenticate`` writes."""

    value = None

    def add_header(self, name, value):
        self.value = value.split(" ", 1)[-1]


def main():
    config = json.loads(sys.argv[1])
    store = SecretsManagerStore(
        config["prefix"], endpoint_url=config["endpoint"], region_name=config["region"], **config.get("store", {})
    )
    environment = DataCenter.Environment(config["crm_url"], config["accounts_url"], config["crm_url"], "fake_env")
    token = OAuthToken(client_id=config["client_id"], client_secret=config["client_secret"],
                       refresh_token=config.get("refresh_token"), grant_token=config.get("grant_token"))
    result = {"id": None, "tokens": [], "errors": []}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as resource_path:
        log_file = resource_path + "/sdk.log"
        Initializer.initialize(UserSignature(config["email"]), environment, token, store=store,
                               logger=Logger.get_instance(Logger.Levels.DEBUG, log_file), resource_path=resource_path)
        # The SDK's logger writes to its file; the crate's and the store's to this one too.
        log = io.StringIO()
        logging.getLogger().addHandler(logging.StreamHandler(log))
        logging.getLogger().setLevel(logging.DEBUG)

        def work():
            for _ in range(config["calls"]):
                header = Header()
                try:
                    token.authenticate(header)
                except SDKException as error:
                    with lock:
                        result["errors"].append(described(error))
                else:
                    with lock:
                        result["tokens"].append(header.value)

        for at in (config["go_at"], config.get("again_at")):
            if at is None:
                continue
            time.sleep(max(0.0, at - time.time()))
            threads = [threading.Thread(target=work) for _ in range(config["threads"])]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        with open(log_file) as f:
            result["log"] = f.read() + log.getvalue()
    result["id"] = token.get_id()
    result["repr"] = repr(store)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
