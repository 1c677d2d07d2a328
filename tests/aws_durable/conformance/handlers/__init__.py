"""One module per suite; each registers its handlers with ``registry.requirement``."""

from __future__ import annotations

import importlib
import importlib.util

SUITE_MODULES = [
    "step",
    "wait",
    "child",
    "callback",
    "invoke",
    "wait_for_condition",
    "wait_for_callback",
    "parallel",
    "map",
    "plugin",
]


def load_all() -> list[str]:
    """Import every suite module that exists; return the names imported."""
    loaded = []
    for suite in SUITE_MODULES:
        name = f"{__name__}.{suite}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            loaded.append(suite)
    return loaded
