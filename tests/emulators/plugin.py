"""The one registration of the emulator fixtures, and the markers that keep the fast loop fast.

``tests/conftest.py`` loads this module as a pytest plugin; it loads the emulator modules
(``tests/emulators/{s3,gcs,azure}.py`` for the stores, ``azure_queue.py`` and
``cloudtasks.py`` for the drivers' queues), so every fixture they define
(``s3_store``, ``gcs_server_url``, ``azure_location``, ``cloud_tasks``, ...) is
visible to every test.
No other conftest or test module imports emulator fixtures.

Markers (declared in ``pyproject.toml``):

* ``s3`` / ``gcs`` / ``azure`` and ``emulator`` are applied here, at collection, from
  what a test uses: an emulator fixture in its fixture closure, or a ``backend``
  (or ``location``) parameter naming a cloud, or a parameter object whose ``backend``
  attribute names one. A test that reaches an emulator some other way (through
  ``request.getfixturevalue`` in its body) says so with ``@pytest.mark.s3`` (etc.).
* A test that reaches an emulator without carrying the ``emulator`` marker fails,
  naming the emulator (:func:`tests.emulators.require_marker`, called by every
  launcher): the default run (which deselects ``emulator``) must never need one.

Default selection: ``pyproject.toml``'s ``addopts`` deselects ``slow`` and ``emulator``
tests. When the command line names test files or node ids (``pytest
tests/backends/test_s3.py``, ``pytest path::test``), that default is dropped and they
run whatever their markers; an explicit ``-m`` is always obeyed. When the default left
tests out, the summary says how many and how to run them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulators import running

pytest_plugins = [
    "tests.emulators.s3",
    "tests.emulators.gcs",
    "tests.emulators.azure",
    "tests.emulators.azure_queue",
    "tests.emulators.cloudtasks",
]

#: The clouds whose emulators this package starts; each is also a marker name.
CLOUDS = ("s3", "gcs", "azure")
#: The ``-m`` expression of the default run (pyproject's addopts); kept in one place here
#: so that the explicit-path rule below recognises it.
DEFAULT_MARKEXPR = "not slow and not emulator"
#: Emulator fixtures whose name does not start with their cloud's marker name.
FIXTURE_CLOUDS = {"cloud_tasks": "gcs"}
#: Parameter names whose string value names a backend.
BACKEND_PARAMS = ("backend", "location")

_default_dropped_key = pytest.StashKey[bool]()


def clouds_used(item: pytest.Item) -> set[str]:
    """The clouds ``item`` needs an emulator for, from its fixtures, parameters and markers."""
    found = {cloud for cloud in CLOUDS if item.get_closest_marker(cloud) is not None}
    for name in getattr(item, "fixturenames", ()):
        prefix, sep, _ = name.partition("_")
        if sep and prefix in CLOUDS:
            found.add(prefix)
        elif name in FIXTURE_CLOUDS:
            found.add(FIXTURE_CLOUDS[name])
    callspec = getattr(item, "callspec", None)
    for key, value in callspec.params.items() if callspec is not None else ():
        backend: Any = value if key in BACKEND_PARAMS else getattr(value, "backend", None)
        cloud = backend.partition("_")[0] if isinstance(backend, str) else ""  # "s3_async" is s3's
        if cloud in CLOUDS:
            found.add(cloud)
    return found


def mark_clouds(item: pytest.Item, clouds: set[str]) -> None:
    """Give ``item`` the per-cloud markers for ``clouds`` and, if any, the ``emulator`` marker."""
    for cloud in sorted(clouds):
        if item.get_closest_marker(cloud) is None:
            item.add_marker(cloud)
    if clouds and item.get_closest_marker("emulator") is None:
        item.add_marker(pytest.mark.emulator)


def _names_tests(arg: str, rootdir: Path) -> bool:
    """True if a command-line argument names a test file or a node id, not a directory."""
    if "::" in arg:
        return True
    path = Path(arg)
    return (path if path.is_absolute() else rootdir / path).is_file()


def pytest_configure(config: pytest.Config) -> None:
    dropped = False
    if config.option.markexpr == DEFAULT_MARKEXPR and config.args_source == pytest.Config.ArgsSource.ARGS:
        invocation_dir = config.invocation_params.dir
        if any(_names_tests(arg, invocation_dir) for arg in config.args):
            config.option.markexpr = ""
            dropped = True
    config.stash[_default_dropped_key] = dropped


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: the markers must be on the items before pytest's own -m deselection runs.
    for item in items:
        mark_clouds(item, clouds_used(item))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    running.item = item  # what the launchers' require_marker() checks


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    running.item = None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.option.markexpr != DEFAULT_MARKEXPR:
        return
    left_out = len(terminalreporter.stats.get("deselected", []))
    if left_out:
        terminalreporter.write_line(
            f'{left_out} tests deselected by the default -m "{DEFAULT_MARKEXPR}": '
            "run them with `pytest -m ''` (all) or `-m emulator` / `-m slow`, or name their "
            "file; `bash scripts/test.sh` runs everything",
            yellow=True,
        )
