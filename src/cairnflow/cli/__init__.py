"""The ``cairnflow`` command: inspect, prune, copy and verify the threads in a store.

A thin layer over :mod:`cairnflow.ops`; see ``docs/operations.md``. Stores are
named by URL (``file://``, ``s3://``, ``gs://``, ``az://``); cloud credentials
and endpoints come from the environment exactly as
:func:`cairnflow.savers.open_store` builds its clients, and encryption keys
from ``CAIRNFLOW_ENCRYPTION_KEYS`` as :mod:`cairnflow.encryption` reads them.

Modules: :mod:`~cairnflow.cli.parser` (subcommands and the exit-code table),
:mod:`~cairnflow.cli.commands` (one function per command),
:mod:`~cairnflow.cli.output` (tables, progress, formatting),
:mod:`~cairnflow.cli.app` (``main``). Exit codes are listed in
:mod:`cairnflow.cli.parser`.
"""

from __future__ import annotations

from cairnflow.cli.app import main
from cairnflow.cli.output import ago
from cairnflow.cli.parser import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_STORE,
    EXIT_USAGE,
    build_parser,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_STORE",
    "EXIT_USAGE",
    "ago",
    "build_parser",
    "main",
]
