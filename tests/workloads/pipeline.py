"""A 20-task workflow with a side-effect ledger, meant to run as a child process.

    python -m tests.workloads.pipeline --url URL --thread ID --ledger PATH [options]

The body runs 8 sequential ``prepare`` tasks, a parallel fan-out of 6 ``fan``
tasks (futures created together, then awaited), and 6 sequential ``combine``
tasks: 20 task executions in all, each with a distinct ``index`` argument.
``approval_pipeline`` is the same body with an ``interrupt()`` between the
fan-out and the ``combine`` tasks; its answer is folded into the result.

Every task execution appends exactly one line ``<task name>:<args>`` to the
LEDGER file (``O_APPEND``, write, fsync) *before* returning, and returns
``[line, value]``: the recorded value names its own ledger line, so a test can
tell from the checkpoint log which ledger lines were recorded.

The process prints one machine-readable line ``OUTCOME {json}`` and exits with
one of the codes below, so a parent can tell how it ended.

With ``CAIRNFLOW_TEST_FLAVOUR=async`` in its environment (or ``--flavour async``) the
process runs the ``async def`` twins (same names, same records: ``async def`` tasks
awaited, the fan-out gathered) with ``await arun``/``aresume`` on an async saver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cairnflow.core import ConflictError, ResumeError, interrupt, task, workflow
from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectStore, PutMode
from tests.core.asavers import async_twin
from tests.support.async_bridge import AsyncStore
from tests.support.forwarding import AsyncForwardingStore, ForwardingStore

EXIT_OK = 0
EXIT_ERROR = 1  # any other exception (traceback on stderr)
EXIT_CONFLICT = 3
EXIT_RESUME_ERROR = 4
EXIT_BARRIER_TIMEOUT = 5

SEQ1, FAN, SEQ2 = 8, 6, 6
TASK_COUNT = SEQ1 + FAN + SEQ2
MOD = 1_000_003
BARRIER_TIMEOUT = 60.0


class _Config:
    ledger: str = ""
    task_ms: float = 0.0
    crash_at: int | None = None


CONFIG = _Config()


def ledger_append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_ledger(path: str | os.PathLike[str]) -> list[str]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.split("\n") if line]


def _side_effect(name: str, index: int, arg: int) -> str:
    if CONFIG.crash_at == index:
        os.kill(os.getpid(), signal.SIGKILL)  # a hard crash, as from the OOM killer
    if CONFIG.task_ms:
        time.sleep(CONFIG.task_ms / 1000)  # the task's "work": lets a kill land mid-run
    line = f"{name}:{index},{arg}"
    ledger_append(CONFIG.ledger, line)
    return line


@task
def prepare(index: int, acc: int) -> list[Any]:
    return [_side_effect("prepare", index, acc), (acc * 31 + index * 7 + 1) % MOD]


@task
def fan(index: int, base: int) -> list[Any]:
    return [_side_effect("fan", index, base), (base * base + index) % MOD]


@task
def combine(index: int, acc: int) -> list[Any]:
    return [_side_effect("combine", index, acc), (acc * 17 + index) % MOD]


def _body(seed: int, with_interrupt: bool) -> dict[str, Any]:
    values: list[int] = []
    acc = seed
    for i in range(SEQ1):
        _, acc = prepare(i, acc).result()
        values.append(acc)
    futures = [fan(SEQ1 + j, (acc + j) % MOD) for j in range(FAN)]
    fanned = [f.result()[1] for f in futures]
    values.extend(fanned)
    factor = 1
    if with_interrupt:
        factor = int(interrupt({"question": "approve?", "acc": acc}))
    acc = (sum(fanned) * factor) % MOD
    for k in range(SEQ2):
        _, acc = combine(SEQ1 + FAN + k, acc).result()
        values.append(acc)
    return {"checksum": sum(values) % MOD, "last": acc, "count": len(values)}


@workflow(name="pipeline")
def pipeline(seed: int) -> dict[str, Any]:
    return _body(seed, with_interrupt=False)


@workflow(name="approval_pipeline")
def approval_pipeline(seed: int) -> dict[str, Any]:
    return _body(seed, with_interrupt=True)


WORKFLOWS = {"pipeline": pipeline, "approval_pipeline": approval_pipeline}


# The async twins: the same tasks (names, arguments, ledger lines) and body, awaited.


async def _aside_effect(name: str, index: int, arg: int) -> str:
    if CONFIG.crash_at == index:
        os.kill(os.getpid(), signal.SIGKILL)
    if CONFIG.task_ms:
        await asyncio.sleep(CONFIG.task_ms / 1000)
    line = f"{name}:{index},{arg}"
    ledger_append(CONFIG.ledger, line)
    return line


@task(name="prepare")
async def aprepare(index: int, acc: int) -> list[Any]:
    return [await _aside_effect("prepare", index, acc), (acc * 31 + index * 7 + 1) % MOD]


@task(name="fan")
async def afan(index: int, base: int) -> list[Any]:
    return [await _aside_effect("fan", index, base), (base * base + index) % MOD]


@task(name="combine")
async def acombine(index: int, acc: int) -> list[Any]:
    return [await _aside_effect("combine", index, acc), (acc * 17 + index) % MOD]


async def _abody(seed: int, with_interrupt: bool) -> dict[str, Any]:
    values: list[int] = []
    acc = seed
    for i in range(SEQ1):
        _, acc = await aprepare(i, acc)
        values.append(acc)
    fanned = [r[1] for r in await asyncio.gather(*[afan(SEQ1 + j, (acc + j) % MOD) for j in range(FAN)])]
    values.extend(fanned)
    factor = 1
    if with_interrupt:
        factor = int(interrupt({"question": "approve?", "acc": acc}))
    acc = (sum(fanned) * factor) % MOD
    for k in range(SEQ2):
        _, acc = await acombine(SEQ1 + FAN + k, acc)
        values.append(acc)
    return {"checksum": sum(values) % MOD, "last": acc, "count": len(values)}


@workflow(name="pipeline")
async def apipeline(seed: int) -> dict[str, Any]:
    return await _abody(seed, with_interrupt=False)


@workflow(name="approval_pipeline")
async def aapproval_pipeline(seed: int) -> dict[str, Any]:
    return await _abody(seed, with_interrupt=True)


AWORKFLOWS = {"pipeline": apipeline, "approval_pipeline": aapproval_pipeline}


def ledger_line_of(record: dict[str, Any]) -> str:
    """The ledger line a recorded task result stands for."""
    return str(record["value"][0])


# --------------------------------------------------------------------------- barriers


def wait_for(condition: Any, what: str) -> None:
    """Poll ``condition()`` until true; exit with EXIT_BARRIER_TIMEOUT after BARRIER_TIMEOUT s."""
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            print(f"OUTCOME {json.dumps({'status': 'barrier-timeout', 'waiting_for': what})}", flush=True)
            os._exit(EXIT_BARRIER_TIMEOUT)
        time.sleep(0.0005)


class FirstPutBarrierStore(ForwardingStore):
    """Delegates to ``inner``; the first PUT waits until ``peers`` processes reached theirs.

    Every process of a race reads the thread (``latest()``) before its first
    write, so once all of them stand at their first PUT they have all loaded
    the same head: the PUTs that follow race for the same checkpoint key.
    """

    def __init__(
        self,
        inner: ObjectStore,
        directory: str,
        peers: int,
        *,
        hold_for_lines: int = 0,
        hold_timeout: float = 0.0,
    ) -> None:
        super().__init__(inner)
        self.directory = Path(directory)
        self.peers = peers
        self.hold_for_lines = hold_for_lines
        self.hold_timeout = hold_timeout
        self.ledger_lines_at_start = len(read_ledger(CONFIG.ledger)) if CONFIG.ledger else 0
        self.passed = False

    def put(self, key: str, data: bytes, mode: PutMode | None = None) -> str:
        self.arrive()
        return self.inner.put(key, data) if mode is None else self.inner.put(key, data, mode)

    def arrive(self) -> None:
        """The first call waits for the peers (and the ledger, with ``hold_for_lines``); later ones pass."""
        if not self.passed:
            self.passed = True
            (self.directory / f"at-put-{os.getpid()}").touch()
            wait_for(lambda: len(list(self.directory.glob("at-put-*"))) >= self.peers, "peers at first PUT")
            if self.hold_for_lines:
                # Give the body a chance to run tasks while this first write is pending: hold it
                # until the ledger grew by ``hold_for_lines`` lines, or ``hold_timeout`` passed
                # (a body that waits for its first write runs nothing, and the time runs out).
                target = self.ledger_lines_at_start + self.hold_for_lines
                deadline = time.monotonic() + self.hold_timeout
                while len(read_ledger(CONFIG.ledger)) < target and time.monotonic() < deadline:
                    time.sleep(0.001)


class AsyncFirstPutBarrierStore(AsyncForwardingStore):
    """A :class:`FirstPutBarrierStore`'s barrier in front of an async store.

    The first PUT waits for the barrier in a worker thread (test scaffolding), so the
    loop goes on running the body's tasks meanwhile (``hold_for_lines``); every request
    itself goes through the async backend under test.
    """

    def __init__(self, inner: AsyncObjectStore, barrier: FirstPutBarrierStore) -> None:
        super().__init__(inner)
        self.barrier = barrier
        self.arrived = False

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        if not self.arrived:
            self.arrived = True
            await asyncio.to_thread(self.barrier.arrive)
        return await self.inner.put(key, data, mode)


# --------------------------------------------------------------------------- main


def _outcome(payload: dict[str, Any], code: int) -> int:
    print(f"OUTCOME {json.dumps(payload, sort_keys=True)}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.workloads.pipeline")
    parser.add_argument("--url", required=True)
    parser.add_argument("--thread", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--workflow", choices=sorted(WORKFLOWS), default="pipeline")
    parser.add_argument(
        "--op",
        choices=["run", "resume", "auto"],
        default="run",
        help="auto: run() if the thread does not exist yet, else resume()",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--answer", type=int, default=None, help="resume(answer) for an interrupt")
    parser.add_argument("--durability", choices=["sync", "async", "exit"], default="sync")
    parser.add_argument("--task-ms", type=float, default=0.0)
    parser.add_argument(
        "--crash-at", type=int, default=None, help="SIGKILL this process when the task with this index starts"
    )
    parser.add_argument("--started", default=None, help="create this file just before the run starts")
    parser.add_argument("--ready", default=None, help="create this file, then wait for --go to exist")
    parser.add_argument("--go", default=None)
    parser.add_argument(
        "--put-barrier",
        default=None,
        help="directory: hold the first PUT until --peers processes reached theirs",
    )
    parser.add_argument("--peers", type=int, default=1)
    parser.add_argument(
        "--flavour", choices=["sync", "async"], default=os.environ.get("CAIRNFLOW_TEST_FLAVOUR", "sync")
    )
    parser.add_argument(
        "--hold-first-put",
        type=float,
        nargs=2,
        metavar=("LINES", "TIMEOUT"),
        default=None,
        help="with --put-barrier: then hold the first PUT until the ledger grew by LINES or TIMEOUT s",
    )
    args = parser.parse_args(argv)

    from cairnflow.savers import open_saver

    CONFIG.ledger = args.ledger
    CONFIG.task_ms = args.task_ms
    CONFIG.crash_at = args.crash_at
    wf = WORKFLOWS[args.workflow]
    saver = open_saver(args.url)
    if args.put_barrier:
        lines, timeout = args.hold_first_put or (0, 0.0)
        saver.store = FirstPutBarrierStore(
            saver.store, args.put_barrier, args.peers, hold_for_lines=int(lines), hold_timeout=timeout
        )

    if args.ready:
        Path(args.ready).touch()
        go = Path(args.go or "")
        wait_for(go.exists, "go file")
    if args.started:
        Path(args.started).touch()

    if args.flavour == "async":
        barrier = saver.store if isinstance(saver.store, FirstPutBarrierStore) else None
        asaver: Any = async_twin(
            saver, args.url
        )  # no async backend: bridged to saver.store, barrier included
        if barrier is not None and not isinstance(asaver.store, AsyncStore):
            asaver.store = AsyncFirstPutBarrierStore(asaver.store, barrier)
        return asyncio.run(_amain(args, AWORKFLOWS[args.workflow], asaver))
    op = args.op
    loaded = saver.latest(args.thread)
    if op == "auto":
        op = "run" if loaded is None else "resume"
    try:
        if op == "run":
            run = wf.run(args.seed, thread_id=args.thread, saver=saver, durability=args.durability)
        elif args.answer is not None:
            run = wf.resume(args.answer, thread_id=args.thread, saver=saver, durability=args.durability)
        else:
            run = wf.resume(thread_id=args.thread, saver=saver, durability=args.durability)
    except ConflictError as exc:
        return _outcome({"status": "conflict", "error": str(exc)}, EXIT_CONFLICT)
    except ResumeError as exc:
        return _outcome({"status": "resume-error", "error": str(exc)}, EXIT_RESUME_ERROR)
    return _outcome(
        {"status": run.status, "result": run.result, "interrupt": run.interrupt, "op": op, **_found(loaded)},
        EXIT_OK,
    )


def _found(head: Any) -> dict[str, Any]:
    """The task results recorded when this process loaded the thread (their ledger lines).

    A write of a killed process may land after the killer read the thread (the request
    was on the wire); what counts for "each unrecorded task runs once" is what this
    process found.
    """
    records = head.records if head is not None else ()
    return {"found": [ledger_line_of(r) for r in records if r.get("op") == "task"]}


async def _amain(args: argparse.Namespace, wf: Any, saver: Any) -> int:
    """:func:`main`'s run or resume, with the async twin on an async saver."""
    op = args.op
    loaded = await saver.latest(args.thread)
    if op == "auto":
        op = "run" if loaded is None else "resume"
    try:
        if op == "run":
            run = await wf.arun(args.seed, thread_id=args.thread, saver=saver, durability=args.durability)
        elif args.answer is not None:
            run = await wf.aresume(
                args.answer, thread_id=args.thread, saver=saver, durability=args.durability
            )
        else:
            run = await wf.aresume(thread_id=args.thread, saver=saver, durability=args.durability)
    except ConflictError as exc:
        return _outcome({"status": "conflict", "error": str(exc)}, EXIT_CONFLICT)
    except ResumeError as exc:
        return _outcome({"status": "resume-error", "error": str(exc)}, EXIT_RESUME_ERROR)
    return _outcome(
        {"status": run.status, "result": run.result, "interrupt": run.interrupt, "op": op, **_found(loaded)},
        EXIT_OK,
    )


if __name__ == "__main__":
    sys.exit(main())
