"""Emulator fixtures: each module starts one cloud store's emulator on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import pytest


def emulator_unavailable(what: str) -> None:
    """Skip locally, but fail under CI: CI must exercise every backend."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not available under CI")
    pytest.skip(f"{what} is not available (run scripts/test.sh to install it)")


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Running:
    """The test being set up, run or torn down (set by ``tests/emulators/plugin.py``)."""

    item: pytest.Item | None = None


running = _Running()


def require_marker(cloud: str) -> None:
    """Fail the current test if it reaches the ``cloud`` emulator without the ``emulator`` marker.

    Outside a test (a benchmark starting an emulator) there is nothing to check.
    """
    item = running.item
    if item is not None and item.get_closest_marker("emulator") is None:
        pytest.fail(
            f"{item.nodeid} uses the {cloud} emulator but is not marked: add @pytest.mark.{cloud} "
            "(or take a backend parameter) so that the default run deselects it",
            pytrace=False,
        )


@dataclass(frozen=True)
class StoreLocation:
    """A fresh, empty bucket as a URL, plus the environment a subprocess needs to open it.

    ``open_saver(location.url)`` must work in a child process started with
    ``env={**os.environ, **location.env}``.
    """

    url: str
    env: dict[str, str] = field(default_factory=dict)
