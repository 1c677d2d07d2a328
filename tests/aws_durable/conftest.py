"""Fixtures of the durable-execution tests: a fake clock, a client on a counted memory store."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from cairnflow.core.counting import CountingStore
from cairnflow.core.log import CheckpointLog
from cairnflow.savers.memory import MemoryStore

# The SDK needs Python 3.11+ (the aws-durable extra): without it these tests are not collected.
if importlib.util.find_spec("aws_durable_execution_sdk_python") is None:
    collect_ignore_glob = ["test_*.py"]

START = 1_700_000_000.0


class FakeClock:
    """Epoch seconds that move only when the runner "sleeps": waits cost no wall time."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def counted() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest.fixture
def client(counted: CountingStore, clock: FakeClock) -> Any:
    from cairnflow.aws_durable import CairnflowDurableClient

    return CairnflowDurableClient(CheckpointLog(counted, prefix="app"), clock=clock)


def kinds(records: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each record as (who, [(type, action), ...]): the shape of an execution's history.

    ``who`` is ``"end"`` for the service record that ends an invocation (``InvocationCompleted``).
    """
    return [("end" if "inv" in r else r["by"], [(u["Type"], u["Action"]) for u in r["u"]]) for r in records]
