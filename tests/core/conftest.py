"""Fixtures for the core acceptance tests.

``<backend>_location`` (local and every emulator) and ``reap`` come from
``tests/conftest.py`` and the emulator plugin; ``location_env`` is this suite's own.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.emulators import StoreLocation


@pytest.fixture
def location_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[StoreLocation], None]:
    """Apply a location's environment to this (the test) process too, to read the store here."""

    def apply(location: StoreLocation) -> None:
        for key, value in location.env.items():
            monkeypatch.setenv(key, value)

    return apply
