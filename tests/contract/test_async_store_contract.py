"""The store seam's contract, run unchanged against every asyncio backend.

The test bodies are those of :mod:`tests.contract.test_store_contract`; here the
``store`` fixture is an async store seen through :class:`tests.support.async_bridge.SyncStore`
(its requests awaited on one event loop). A backend joins by adding its name to
:data:`tests.conftest.ASYNC_BACKENDS` and defining ``<name>_store`` and
``<name>_store_factory`` fixtures that return bridged stores.
"""

from __future__ import annotations

import pytest

from tests.conftest import ASYNC_BACKENDS
from tests.contract.test_store_contract import *  # noqa: F403 - the same tests, collected here again


@pytest.fixture(params=ASYNC_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
