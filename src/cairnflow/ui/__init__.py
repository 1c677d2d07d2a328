"""``cairnflow ui URL``: a local, read-only web view of a store.

It lists threads (filter by status, workflow, age and layout), shows one
executor thread's state and timeline with its values, a LangGraph thread's
checkpoints with channel values and pending writes, and what ``verify``
finds. It binds to 127.0.0.1 by default, needs no account and never writes
to the store. Importing this package imports nothing else: the server and
its model load when :func:`main` runs.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cairnflow ui`` with ``argv`` (the arguments after ``ui``); returns the exit status."""
    from cairnflow.ui.server import main as serve

    return serve(argv)
