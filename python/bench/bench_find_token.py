"""What the Zoho SDK pays per CRM request to look up its token, through
``SecretsManagerStore`` (warm cache) with managed refresh on (the default)
and off, and through a naive boto3 store that calls ``GetSecretValue`` every
time, in the same run.

Every CRM request the SDK makes authenticates with ``OAuthToken.get_token()``,
which looks the token up in the store (``find_token``, or ``find_token_by_id``
once the token has an id, as it has after the first); this script times ``get_token()``
after ``Initializer.initialize``, with a valid stored token (so nothing is
refreshed and no Zoho server is contacted).

The two ``SecretsManagerStore`` runs reach LocalStack through a counting
proxy on loopback (``python/tests/counting_proxy.py``), which counts every
Secrets Manager call of the timed loop: the warm path makes none, with
managed refresh or without.

    export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test \\
           AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    python python/bench/bench_find_token.py [--calls 5000] [--naive-calls 500]

It needs LocalStack (see localstack/README.md), boto3 and zohocrmsdk8-0, and
deletes the secrets it creates.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

import boto3
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from zoho_token_store import SecretsManagerStore

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from counting_proxy import CountingProxy  # noqa: E402 - from the tests' folder

CLIENT_ID, CLIENT_SECRET, REFRESH = "1000.BENCH", "bench-secret", "1000.bench-refresh"
USER = "bench@example.com"


class NaiveBoto3Store(TokenStore):
    """The store a Lambda author writes first: one secret per user, read with
    ``GetSecretValue`` on every lookup, no cache. Enough of the interface for
    this benchmark: its one secret holds the one token it serves.

    After its first lookup the SDK's token has an id, so each later request
    goes through ``find_token_by_id``: one ``GetSecretValue`` here."""

    def __init__(self, client, name):
        self.client = client
        self.name = name

    def find_token(self, token):
        return self._fill(token)

    def find_token_by_id(self, id):
        token = object.__new__(OAuthToken)
        token.set_id(None)
        for setter in (token.set_user_signature, token.set_client_id, token.set_client_secret,
                       token.set_refresh_token, token.set_access_token, token.set_grant_token,
                       token.set_redirect_url, token.set_expires_in, token.set_api_domain):
            setter(None)
        return self._fill(token)

    def _read(self):
        return json.loads(self.client.get_secret_value(SecretId=self.name)["SecretString"])

    def _fill(self, token):
        value = self._read()
        for field, setter in (
            ("id", token.set_id),
            ("client_id", token.set_client_id),
            ("client_secret", token.set_client_secret),
            ("refresh_token", token.set_refresh_token),
            ("access_token", token.set_access_token),
            ("expires_in", token.set_expires_in),
            ("api_domain", token.set_api_domain),
        ):
            if getattr(token, "get_" + field)() is None:
                setter(value.get(field))
        if token.get_user_signature() is None:
            token.set_user_signature(UserSignature(value["user_name"]))
        return token

    def save_token(self, token):
        raise NotImplementedError("the benchmark never saves through the naive store")

    def delete_token(self, id):
        raise NotImplementedError

    def get_tokens(self):
        raise NotImplementedError

    def delete_tokens(self):
        raise NotImplementedError


class DictStore(NaiveBoto3Store):
    """The same store reading a dict in memory: no I/O, so its time is about
    the SDK's own work in ``get_token()`` (a reference, not a strict floor:
    it builds its tokens in Python, as this package's wrapper does)."""

    def __init__(self, value):
        self.value = value

    def _read(self):
        return dict(self.value)


def stored_token():
    token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH,
                       user_signature=UserSignature(USER))
    token.set_access_token("1000.bench-access")
    token.set_expires_in(str(int(time.time() * 1000) + 3_600_000))
    token.set_api_domain("http://127.0.0.1:9")
    return token


def time_get_token(store, calls, resource_path, proxy=None):
    """Seconds per ``get_token()`` (one per CRM request), after ``initialize``;
    with a ``proxy``, also the Secrets Manager calls of the timed loop."""
    environment = DataCenter.Environment("http://127.0.0.1:9", "http://127.0.0.1:9/oauth/v2/token",
                                         "http://127.0.0.1:9")
    token = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH)
    Initializer.initialize(environment, token, store=store, resource_path=resource_path)
    if proxy is not None:
        proxy.reset()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        token.get_token()
        samples.append(time.perf_counter() - start)
    return samples, (proxy.total() if proxy is not None else None)


def summary(timed):
    samples, api_calls = timed
    samples = sorted(samples)
    return {
        "api_calls": api_calls,
        "calls": len(samples),
        "mean_us": statistics.fmean(samples) * 1e6,
        "median_us": samples[len(samples) // 2] * 1e6,
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--naive-calls", type=int, default=500)
    args = parser.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    region = os.environ.get("AWS_REGION", "us-east-1")
    prefix = "bench/python-{}".format(uuid.uuid4().hex[:8])
    client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name=region)
    store = SecretsManagerStore(prefix, endpoint_url=endpoint, region_name=region)
    naive_name = prefix + "-naive/" + USER
    try:
        saved = stored_token()
        store.save_token(saved)
        value = {
            "id": saved.get_id(), "user_name": USER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH, "access_token": saved.get_access_token(),
            "expires_in": saved.get_expires_in(), "api_domain": saved.get_api_domain(),
        }
        client.create_secret(Name=naive_name, SecretString=json.dumps(value))
        with tempfile.TemporaryDirectory() as resource_path, CountingProxy(endpoint) as proxy:
            # A fresh store instance each: initialize makes its one cold
            # lookup, every timed one is warm.
            def ours(managed):
                fresh = SecretsManagerStore(prefix, endpoint_url=proxy.url, region_name=region,
                                            managed_refresh=managed)
                return summary(time_get_token(fresh, args.calls, resource_path, proxy))

            managed = ours(True)
            unmanaged = ours(False)
            naive = summary(time_get_token(NaiveBoto3Store(client, naive_name), args.naive_calls, resource_path))
            floor = summary(time_get_token(DictStore(value), args.calls, resource_path))
    finally:
        store.delete_tokens()
        for page in client.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=True
        ):
            for secret in page["SecretList"]:
                client.delete_secret(SecretId=secret["Name"], ForceDeleteWithoutRecovery=True)

    print("| store | get_token calls | Secrets Manager calls | mean | median | p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in (("SecretsManagerStore, managed refresh (warm)", managed),
                      ("SecretsManagerStore, managed_refresh=False (warm)", unmanaged),
                      ("naive boto3 GetSecretValue", naive),
                      ("dict in memory, no I/O", floor)):
        calls = "{}".format(row["api_calls"]) if row["api_calls"] is not None else (
            "{} (one per call, by construction; not counted)".format(row["calls"]) if row is naive else "0")
        print("| {} | {} | {} | {:.1f} µs | {:.1f} µs | {:.1f} µs |".format(
            name, row["calls"], calls, row["mean_us"], row["median_us"], row["p99_us"]))
    print("\nmedian ratios: managed / unmanaged {:.2f}x; naive / managed {:.0f}x; naive / unmanaged {:.0f}x".format(
        managed["median_us"] / unmanaged["median_us"], naive["median_us"] / managed["median_us"],
        naive["median_us"] / unmanaged["median_us"]))


if __name__ == "__main__":
    main()
