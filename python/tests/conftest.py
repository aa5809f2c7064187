"""Shared fixtures: LocalStack, a fresh prefix per test, the store, the Rust peer.

The tests need LocalStack (Secrets Manager) at ``AWS_ENDPOINT_URL`` (default
``http://127.0.0.1:4566``; start it with ``localstack/start``). They fail,
never skip, when it does not answer. Each test works under its own prefix and
deletes every secret under it at the end.

The tests of this folder run with a Zoho SDK of the ``find_token`` interface
(module ``zohocrmsdk``); those of ``v2/`` with the v2 SDK (module ``zcrmsdk``,
``tests/python-sdks zohocrmsdk2-0``), whose fixtures ``v2/conftest.py`` lays
over these. Where a module is not installed, the tests that need it are not
collected (``pytest python/tests`` with zohocrmsdk8-0 alone runs this folder;
``pytest python/tests/v2`` with zohocrmsdk2-0 alone runs ``v2/``).
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import urllib.request
import uuid

import boto3
import pytest

HERE = pathlib.Path(__file__).resolve().parent
HAVE_ZOHOCRMSDK = importlib.util.find_spec("zohocrmsdk") is not None
HAVE_ZCRMSDK = importlib.util.find_spec("zcrmsdk") is not None

collect_ignore = []
if not HAVE_ZCRMSDK:
    collect_ignore.append("v2")
if HAVE_ZOHOCRMSDK:
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

    from zoho_token_store import SecretsManagerStore
else:
    collect_ignore += sorted(p.name for p in HERE.glob("test_*.py"))

REPO = pathlib.Path(__file__).resolve().parents[2]
PYTHON_CRATE = REPO / "python"

os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ["AWS_REGION"])


@pytest.fixture(scope="session")
def endpoint():
    """The LocalStack endpoint; fails the test run when it does not answer."""
    url = (os.environ.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:4566").rstrip("/")
    try:
        with urllib.request.urlopen(url + "/_localstack/health", timeout=5) as response:
            health = json.loads(response.read().decode())
    except Exception as error:  # noqa: BLE001 - any failure means no LocalStack
        pytest.fail(
            "LocalStack does not answer at {} ({}): start it with localstack/start".format(url, error)
        )
    state = health.get("services", {}).get("secretsmanager")
    if state not in ("available", "running"):
        pytest.fail("LocalStack at {} has no Secrets Manager (state {!r})".format(url, state))
    os.environ["AWS_ENDPOINT_URL"] = url
    return url


def forget_sdk_initializer():
    """Starts the SDK afresh in this thread, as a new process would.

    zohocrmsdk6-0 and 7-0 (not 8-0) keep the last initializer in a thread
    local, which ``Initializer.initialize`` sets only after its first
    ``get_token`` and which ``get_initializer`` prefers: a second
    ``initialize`` in a thread runs that ``get_token`` on the previous
    initializer's store and environment (another test's prefix and a fake
    Zoho that is gone). 8-0 sets it only in ``switch_user``."""
    Initializer.LOCAL.init = None


@pytest.fixture(autouse=True)
def fresh_sdk_initializer():
    """Every test starts without the previous test's SDK initializer in this
    thread (see ``forget_sdk_initializer``)."""
    if HAVE_ZOHOCRMSDK:
        forget_sdk_initializer()
    yield


@pytest.fixture(scope="session")
def secretsmanager(endpoint):
    """A boto3 Secrets Manager client on LocalStack."""
    return boto3.client("secretsmanager", endpoint_url=endpoint, region_name=os.environ["AWS_REGION"])


def secret_names(client, prefix):
    """Every secret name under ``prefix/`` (ListSecrets is immediate on LocalStack)."""
    names = []
    for page in client.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [prefix + "/"]}], IncludePlannedDeletion=True
    ):
        names += [s["Name"] for s in page["SecretList"] if s["Name"].startswith(prefix + "/")]
    return names


def _run_segment():
    """``run-<pid>-<start>``: this process and its start time (field 22 of
    ``/proc/self/stat``), in every prefix, so that ``localstack/clean`` deletes
    what a test left once this process is gone, even when it was killed."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        start = stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        start = "0"
    return "run-{}-{}".format(os.getpid(), start)


RUN_SEGMENT = _run_segment()


@pytest.fixture
def prefix(secretsmanager):
    """A prefix of this test's own; every secret under it is deleted afterwards."""
    name = "pytest/{}/{}".format(RUN_SEGMENT, uuid.uuid4().hex[:12])
    yield name
    for secret in secret_names(secretsmanager, name):
        secretsmanager.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
    assert secret_names(secretsmanager, name) == [], "secrets left under " + name


@pytest.fixture
def make_store(endpoint):
    """Builds stores on LocalStack: ``make_store(prefix, **options)``."""

    def make(prefix, **options):
        return SecretsManagerStore(
            prefix, endpoint_url=endpoint, region_name=os.environ["AWS_REGION"], **options
        )

    return make


@pytest.fixture
def store(make_store, prefix):
    """A store under this test's prefix."""
    return make_store(prefix)


@pytest.fixture(scope="session")
def rust_peer():
    """Runs the Rust example ``rust_peer`` (built once) and returns its JSON answer.

    ``rust_peer(command, prefix, *args, stdin=None)``; or, to run several at
    once, ``process = rust_peer.start(command, prefix, *args)`` and then
    ``rust_peer.finish(process)``.
    """
    build = subprocess.run(
        [
            "cargo",
            "build",
            "--quiet",
            "--manifest-path",
            str(REPO / "Cargo.toml"),  # the root crate's example, shared with node/
            "--example",
            "rust_peer",
            "--message-format=json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    executable = None
    for line in build.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "rust_peer":
            executable = message["executable"]
    assert executable, "cargo built no rust_peer executable"

    def run(command, prefix, *args, stdin=None):
        done = subprocess.run(
            [executable, command, prefix, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, "rust_peer failed: " + done.stderr
        return json.loads(done.stdout)

    def start(command, prefix, *args):
        return subprocess.Popen(
            [executable, command, prefix, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(process):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, "rust_peer failed: " + err
        return json.loads(out)

    run.start = start
    run.finish = finish
    return run
