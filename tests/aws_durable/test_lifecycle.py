"""Stopping executions, execution timeouts, heartbeats, and values larger than the service's 256 KB limit."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration, StepConfig, StepSemantics

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from cairnflow.aws_durable.payloads import REF
from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import CorruptCheckpointError, DecryptionError, InvalidArgumentError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE
from cairnflow.savers.memory import MemoryStore
from tests.aws_durable.conftest import FakeClock, kinds


def test_stop_ends_a_waiting_execution_and_fences_its_invocation(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    ran: list[str] = []

    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        context.step(lambda _: ran.append("before") or 1, name="before")
        answer = context.wait_for_callback(lambda _cid, _ctx: None, name="ask")
        context.step(lambda _: ran.append("after") or 2, name="after")
        return str(answer)

    runner = LocalRunner(handler, client, sleep=clock.sleep)
    waiting = runner.run()
    assert waiting.status == "STARTED"
    (callback_id,) = runner.callback_ids(waiting.arn)
    token = client.token_for(waiting.arn, client.known_seq(waiting.arn))

    stopped = runner.stop(waiting.arn, {"ErrorMessage": "cancelled by the operator"})

    assert stopped.status == "STOPPED"
    assert stopped.error == {"ErrorMessage": "cancelled by the operator"}
    assert kinds(client.records(waiting.arn))[-1] == ("service", [("EXECUTION", "STOP")])
    # An invocation still holding the old token stands down: nothing of it is recorded.
    from aws_durable_execution_sdk_python.exceptions import CheckpointError
    from aws_durable_execution_sdk_python.lambda_service import OperationUpdate

    late = OperationUpdate.from_dict({"Id": "x", "Type": "STEP", "Action": "START", "Name": "late"})
    with pytest.raises(CheckpointError, match="Invalid checkpoint token"):
        client.checkpoint(
            durable_execution_arn=waiting.arn, checkpoint_token=token, updates=[late], client_token=None
        )
    with pytest.raises(InvalidArgumentError, match="already"):
        runner.send_callback_success(callback_id, '"too late"')
    assert runner.drive(waiting.arn).status == "STOPPED"  # nothing more to invoke
    assert ran == ["before"]
    before = len(client.records(waiting.arn))
    assert runner.stop(waiting.arn).status == "STOPPED"  # stopping again changes nothing
    assert len(client.records(waiting.arn)) == before


def test_execution_timeout_ends_an_execution_that_waits_too_long(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        context.wait(Duration.from_seconds(600), name="long")
        return "never"

    result = LocalRunner(handler, client, sleep=clock.sleep, execution_timeout=90).run()

    assert result.status == "TIMED_OUT"
    assert result.error is not None and result.error["ErrorType"] == "Execution.Timeout"
    assert clock.slept == [90.0]  # woken at the deadline, not at the wait's end
    assert kinds(client.records(result.arn))[-1] == ("service", [("EXECUTION", "TIMEOUT")])


def test_execution_timeout_also_ends_one_waiting_for_a_callback(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        return str(context.wait_for_callback(lambda _cid, _ctx: None, name="ask"))

    runner = LocalRunner(handler, client, sleep=clock.sleep, execution_timeout=30)
    result = runner.run()
    assert result.status == "TIMED_OUT" and clock.slept == [30.0]
    with pytest.raises(InvalidArgumentError, match="timeout must be positive"):
        client.start_execution("{}", timeout=0)


def test_a_heartbeat_keeps_a_callback_alive_past_its_heartbeat_timeout(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        callback = context.create_callback(
            name="cb", config=CallbackConfig(heartbeat_timeout=Duration.from_seconds(60))
        )
        try:
            return str(callback.result())
        except Exception as exc:  # the heartbeat deadline passed
            return f"timed out: {type(exc).__name__}"

    runner = LocalRunner(handler, client, sleep=clock.sleep)
    arn = runner.start()
    runner.invoke(arn)
    (callback_id,) = runner.callback_ids(arn)
    clock.now += 50
    runner.send_callback_heartbeat(callback_id)
    clock.now += 50  # 100 s after the start, 50 s after the heartbeat: still alive
    assert client.next_due(arn) == pytest.approx(clock.now + 10)
    runner.send_callback_success(callback_id, "done")
    assert runner.drive(arn).value == "done"


def big(n: int) -> str:
    """``n`` characters that do not compress to nothing (seeded: the same every run)."""
    return base64.b64encode(random.Random(n).randbytes(n)).decode()[:n]


def test_a_step_result_of_several_megabytes_is_stored_once_as_its_own_object(
    counted: CountingStore, clock: FakeClock
) -> None:
    client = CairnflowDurableClient(CheckpointLog(counted, prefix="app"), clock=clock)
    blob = big(3 * 1024 * 1024)

    # The SDK (3.0.0) sends an update larger than its 750 KiB batch limit only as the first of
    # a batch: at-most-once steps checkpoint START on its own first (their START blocks).
    # An at-least-once step's START and a > 750 KiB SUCCEED would share a batch and the SDK's
    # overflow queue would hold the SUCCEED forever (state.py _drain_overflow).
    once = StepConfig(step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)

    @durable_execution
    def handler(event: Any, context: DurableContext) -> int:
        value = context.step(lambda _: blob, name="large", config=once)
        for n in range(4):  # later records must not carry the value again
            context.step(lambda _, n=n: n, name=f"small-{n}")
        context.wait(Duration.from_seconds(5), name="pause")  # replay reads the value back
        again = context.step(lambda _: len(value), name="length")
        return int(again)

    result = LocalRunner(handler, client, sleep=clock.sleep).run()

    assert result.status == "SUCCEEDED" and result.value == len(blob)
    assert result.invocations == 2
    step = result.operation("large")
    assert step.step_details is not None and json.loads(step.step_details.result or "") == blob
    payload_keys = [i.key for i in counted.list("app/durable/payloads/")]
    assert len(payload_keys) == 1
    # Every checkpoint object stays small: the value is written once, referenced from its record.
    log_sizes = [i.size for i in counted.list("app/durable/v1/")]
    assert max(log_sizes) < 64 * 1024
    assert counted.get(payload_keys[0]).data.count(blob[:1000].encode()) == 1
    refs = [u.get("Payload") for r in client.log.latest(result.arn).records for u in r["u"]]  # type: ignore[union-attr]
    assert sum(isinstance(p, dict) and REF in p for p in refs) == 1
    # A fresh process reads it back (the history shows the value, not the reference).
    fresh = CairnflowDurableClient(CheckpointLog(counted, prefix="app"), clock=clock)
    payloads = [u.get("Payload") for r in fresh.records(result.arn) for u in r["u"]]
    assert json.dumps(blob) in payloads


def test_large_values_are_encrypted_and_bound_to_their_key(clock: FakeClock) -> None:
    from cairnflow.encryption import AesGcmCipher, generate_key

    store = MemoryStore()
    cipher = AesGcmCipher({"k1": base64.b64decode(generate_key())}, "k1")
    saver = CheckpointLog(store, prefix="enc", cipher=cipher, require_encryption=True)
    client = CairnflowDurableClient(saver, clock=clock, inline_limit=1024)
    secret = "sensitive-" + big(5000)

    @durable_execution
    def handler(event: Any, context: DurableContext) -> int:
        return len(context.step(lambda _: secret, name="large"))

    result = LocalRunner(handler, client, sleep=clock.sleep).run()
    assert result.value == len(secret)
    (key,) = [i.key for i in store.list("enc/durable/payloads/")]
    assert b"sensitive-" not in store.get(key).data
    for info in store.list("enc/durable/v1/"):
        assert b"sensitive-" not in store.get(info.key).data

    # Without the key: a typed error naming the object, not a silent read.
    keyless = CairnflowDurableClient(CheckpointLog(store, prefix="enc"), clock=clock)
    with pytest.raises(DecryptionError):
        keyless.log.resolve({REF: key, "sha256": "0" * 64})
    # A payload object moved to another key fails to decrypt; a swapped one fails its digest.
    moved = key.rsplit("/", 1)[0] + "/moved"
    store.put(moved, store.get(key).data, CREATE)
    fresh = CairnflowDurableClient(saver, clock=clock, inline_limit=1024)
    with pytest.raises(CorruptCheckpointError):
        fresh.log.resolve({REF: moved, "sha256": "0" * 64})
    with pytest.raises(CorruptCheckpointError, match="does not hold"):
        fresh.log.resolve({REF: key, "sha256": "0" * 64})


def test_verify_accepts_an_execution_with_large_values(clock: FakeClock) -> None:
    from cairnflow import ops

    store = MemoryStore()
    client = CairnflowDurableClient(CheckpointLog(store, prefix="v"), clock=clock, inline_limit=1024)

    @durable_execution
    def handler(event: Any, context: DurableContext) -> int:
        return len(context.step(lambda _: big(4000), name="large"))

    assert LocalRunner(handler, client, sleep=clock.sleep).run().value == 4000
    report = ops.verify(CheckpointLog(store, prefix="v"))
    assert report.problems == () and report.threads_checked == 1


def test_retention_deletes_finished_executions_with_their_values(clock: FakeClock) -> None:
    from cairnflow.aws_durable.retention import delete_execution, prune_executions
    from cairnflow.core.errors import ThreadNotFoundError

    store = MemoryStore()
    client = CairnflowDurableClient(CheckpointLog(store, prefix="r"), clock=clock, inline_limit=1024)

    @durable_execution
    def handler(event: Any, context: DurableContext) -> int:
        value = context.step(lambda _: big(3000), name="large")
        if event.get("ask"):
            context.wait_for_callback(lambda _cid, _ctx: None, name="ask")
        return len(value)

    runner = LocalRunner(handler, client, sleep=clock.sleep)
    old = runner.run({}).arn
    clock.now += 86400
    recent = runner.run({}).arn
    running = runner.run({"ask": True}).arn
    assert len(list(store.list("r/durable/payloads/"))) == 3

    with pytest.raises(InvalidArgumentError, match="stop it first"):
        delete_execution(client, running)
    assert prune_executions(client, older_than=3600) == [old]  # ended a day ago; the rest stays
    with pytest.raises(ThreadNotFoundError):
        client.describe(old)
    assert len(list(store.list("r/durable/payloads/"))) == 2
    assert delete_execution(client, recent) == 1
    assert sorted(client.log.threads()) == [running]
    runner.stop(running)
    assert prune_executions(client, older_than=0) == [running]
    assert list(store.list("r/")) == []  # nothing left: records, tombstones and values all gone
