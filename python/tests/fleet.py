"""Fleets of SDK worker processes, for the tests of every SDK (this module
imports none): each worker is a Python script run with this venv's python
and a JSON configuration, that prints one JSON object with ``log`` and
``errors`` (each ``described``), none of which may show a secret."""

import json
import os
import subprocess
import sys
import time
import traceback


def described(error):
    """An exception as a worker reports it: its code and kind, and ``text``,
    the exception as a traceback shows it."""
    return {
        "code": getattr(error, "code", None),
        "kind": getattr(error, "kind", None),
        "text": "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error),
    }


def go_soon():
    """A start time every process of a test reaches first (a Python process
    with the SDK imported takes about a second to start)."""
    return time.time() + 4.0


def from_the_rust_crate(agent):
    """The SDKs refresh with python-requests; the Rust crate sends no User-Agent."""
    return agent is None or "python-requests" not in agent


def worker_config(endpoint, prefix, zoho, go_at, threads, calls, **values):
    """A worker's configuration: the store's prefix and LocalStack, the SDK's
    environment on the fake Zoho ``zoho``, ``threads`` threads making
    ``calls`` calls each from ``go_at`` (epoch seconds) on, and ``values``
    (the client, the token, the store's options, ...)."""
    config = {
        "prefix": prefix, "endpoint": endpoint, "region": os.environ["AWS_REGION"],
        "crm_url": zoho.crm_url, "accounts_url": zoho.accounts_url,
        "threads": threads, "calls": calls, "go_at": go_at,
    }
    config.update(values)
    return config


class Fleet:
    """Runs the worker script ``worker`` (a path); ``secrets``: the values
    that nothing it prints or logs may show."""

    def __init__(self, worker, secrets):
        self.worker = worker
        self.secrets = secrets

    def assert_no_secret(self, text):
        """``text`` shows none of the secrets."""
        for secret in self.secrets:
            assert secret not in text, "a secret value was shown: " + text

    def start(self, config):
        """Starts one worker process with ``config``."""
        return subprocess.Popen([sys.executable, str(self.worker), json.dumps(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, process):
        """The worker's JSON result; its stderr, log and errors show no secret."""
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, "{} failed: {}".format(self.worker.name, err)
        result = json.loads(out)
        self.assert_no_secret(err)
        self.assert_no_secret(result["log"])
        for error in result["errors"]:
            self.assert_no_secret(error["text"])
        return result

    def run(self, configs):
        """Runs one worker per configuration at once; their results."""
        return [self.finish(p) for p in [self.start(c) for c in configs]]
