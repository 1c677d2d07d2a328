"""Operator tools on a store that also holds AWS durable executions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_durable_execution_sdk_python")

from aws_durable_execution_sdk_python import DurableContext, durable_execution

from cairnflow import ops
from cairnflow.aws_durable import CairnflowDurableClient
from cairnflow.core import keys
from cairnflow.core.store import OVERWRITE
from cairnflow.savers import open_saver
from tests.aws_durable.conftest import FakeClock
from tests.aws_durable.test_runner import runner_for
from tests.driver import flows


def test_verify_checks_durable_executions_as_their_own_log(tmp_path: Path) -> None:
    saver = open_saver(f"file://{tmp_path}/store")
    clock = FakeClock()
    client = CairnflowDurableClient(saver, clock=clock)

    @durable_execution
    def handler(event: dict[str, Any], context: DurableContext) -> int:
        return context.step(lambda _: 1, name="one")

    assert runner_for(handler, client, clock).run({}).status == "SUCCEEDED"
    flows.five_steps.run("x", thread_id="ex-1", saver=saver)

    sound = ops.verify(saver)
    assert sound.ok, sound.problems
    durable_objects = list(saver.store.list(keys.durable_prefix(saver.prefix)))
    assert durable_objects and sound.objects_checked >= len(durable_objects)

    # A damaged durable object is found (checked, not merely skipped).
    victim = durable_objects[0].key
    saver.store.put(victim, b"not a checkpoint", OVERWRITE)
    damaged = ops.verify(saver)
    assert not damaged.ok
    assert victim in [p.key for p in damaged.errors]
