"""Fixtures of the v2 SDK's tests (``zohocrmsdk2-0``, module ``zcrmsdk``),
laid over ``python/tests/conftest.py``'s (LocalStack, a prefix per test, the
Rust peer): ``make_store`` and ``store`` build ``zoho_token_store.v2``'s store,
and every test starts with the SDK uninitialized, as a new process does."""

import os

import pytest

from zcrmsdk.src.com.zoho.crm.api.initializer import Initializer

from zoho_token_store.v2 import SecretsManagerStore


def forget_v2_initializer():
    """The v2 SDK as a new process has it: no initializer (``initialize``
    sets ``Initializer.initializer``, ``switch_user`` a thread local)."""
    Initializer.initializer = None
    Initializer.LOCAL.init = None


@pytest.fixture(autouse=True)
def fresh_v2_initializer():
    """Every test starts, and leaves, the v2 SDK uninitialized."""
    forget_v2_initializer()
    yield
    forget_v2_initializer()


@pytest.fixture
def make_store(endpoint):
    """Builds v2 stores on LocalStack: ``make_store(prefix, **options)``."""

    def make(prefix, **options):
        return SecretsManagerStore(prefix, endpoint_url=endpoint, region_name=os.environ["AWS_REGION"], **options)

    return make
