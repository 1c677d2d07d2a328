"""The exit-code table: every row is reachable, each error type gets its code, nothing else is swallowed."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from cairnflow.cli import EXIT_CODES, commands, main
from cairnflow.cli.output import Output
from cairnflow.cli.parser import exit_code_for
from cairnflow.core.errors import (
    ConflictError,
    CorruptCheckpointError,
    DecryptionError,
    InvalidArgumentError,
    InvalidThreadIdError,
    InvalidURLError,
    MissingDependencyError,
    MisuseError,
    SerializationError,
    StoreAccessError,
    ThreadNotFoundError,
    TransientStoreError,
    UsageError,
)
from tests.cli.support import cli, one_line_error

CASES = [
    (UsageError("refusing to delete without --yes"), 2),
    (InvalidArgumentError("bad argument"), 2),
    (InvalidThreadIdError("thread id too long"), 2),
    (InvalidURLError("unknown store URL scheme"), 2),
    (MisuseError("wrong kind of call"), 2),
    (ThreadNotFoundError("no thread 'x'"), 4),
    (CorruptCheckpointError("checksum mismatch", key="k"), 3),
    (DecryptionError("authentication failed", key="k"), 3),
    (StoreAccessError("access denied", store="s3://b"), 3),
    (TransientStoreError("slow down"), 3),
    (MissingDependencyError("pip install 'cairnflow[s3]'"), 3),
    (ConflictError("advanced by another writer"), 3),
    (SerializationError("cannot load"), 3),
    (KeyboardInterrupt(), 130),
]


def raising(exc: BaseException) -> Callable[[argparse.Namespace, Output], int]:
    def handler(args: argparse.Namespace, out: Output) -> int:
        raise exc

    return handler


@pytest.mark.parametrize(("exc", "code"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_each_error_type_gets_its_code(
    exc: BaseException, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(commands, "cmd_threads", raising(exc))
    line = one_line_error(cli(capsys, "threads", "memory://exit-codes"), code)
    assert line.startswith("cairnflow threads: error: ")
    expected = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc).split("\n")[0]
    assert expected in line
    if isinstance(exc, CorruptCheckpointError):
        assert "cairnflow verify" in line  # the hint of that row


@pytest.mark.parametrize("exc", [ValueError("a bug"), TypeError("a bug"), RuntimeError("a bug")])
def test_plain_builtin_errors_are_not_usage_errors(
    exc: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only cairnflow's typed errors are mapped: a bare ValueError is a bug and keeps its traceback."""
    assert exit_code_for(exc) is None
    monkeypatch.setattr(commands, "cmd_threads", raising(exc))
    with pytest.raises(type(exc), match="a bug"):
        main(["threads", "memory://exit-codes"])


def test_every_row_is_reachable() -> None:
    """A row after a row for one of its base classes could never match."""
    types = [kind for kind, _, _ in EXIT_CODES]
    for i, earlier in enumerate(types):
        for later in types[i + 1 :]:
            assert not issubclass(later, earlier), f"{later.__name__} is shadowed by {earlier.__name__}"
    for exc, code in CASES:
        mapped = exit_code_for(exc)
        assert mapped is not None and mapped[0] == code, (exc, mapped)


def test_table_covers_every_documented_code() -> None:
    assert {code for _, code, _ in EXIT_CODES} == {2, 3, 4, 130}


def test_copy_onto_itself_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Raised by ops as InvalidArgumentError (not a bare ValueError) and mapped to 2."""
    assert "same store" in one_line_error(cli(capsys, "copy", "memory://same", "memory://same"), 2)


def test_bad_encryption_keys_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAIRNFLOW_ENCRYPTION_KEYS", "k1-without-a-colon")
    line = one_line_error(cli(capsys, "threads", "memory://keys"), 2)
    assert "CAIRNFLOW_ENCRYPTION_KEYS" in line


def test_ops_open_saver_is_gone_with_a_hint() -> None:
    """One open_saver: cairnflow.savers.open_saver(url, create=False) for operator tools."""
    import cairnflow.ops

    with pytest.raises(AttributeError, match=r"cairnflow\.savers\.open_saver\(url, create=False\)"):
        cairnflow.ops.open_saver  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        cairnflow.ops.nonsense  # type: ignore[attr-defined]  # noqa: B018
