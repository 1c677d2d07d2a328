"""The soak workflow, its side-effect ledger, a driver that runs it to completion, and the checks.

``soak`` runs 2 sequential ``step`` tasks, a parallel fan-out of 3 ``fan``
tasks, an ``interrupt()``, then 2 more ``step`` tasks: 7 tasks at positions
0-4 and 6-7 (the interrupt takes position 5). Every task execution counts
itself in :data:`LEDGER` (the side effect) and returns ``[index, value]``.

:func:`drive` runs one thread the way a user would under a flaky network:
``run()``, then ``resume(answer)`` at the interrupt. If a store error survives
every retry (the core's and the SDK's), the driver looks at the thread again
and continues it (``resume()``); such escapes are counted, and a task of such
a workflow may legitimately run twice (at-least-once execution).

:func:`check` inspects the final stored state of every thread through a
fault-free saver: the result, exactly one ``task`` record per position, one
``start``/``interrupt``/``resume``/``end``, every side effect ran (and ran once
where nothing escaped), and ``verify()`` finds no problem in the store.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cairnflow.core import interrupt, task, workflow
from cairnflow.core.errors import TransientStoreError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.verify import verify

MOD = 1_000_003
SEQ1, FAN, SEQ2 = 2, 3, 2
INTERRUPT_POS = SEQ1 + FAN
TASK_POSITIONS = [*range(INTERRUPT_POS), *range(INTERRUPT_POS + 1, INTERRUPT_POS + 1 + SEQ2)]
DURABILITIES = ("sync", "async", "exit")
#: A workflow whose store errors escape this many times fails the soak.
MAX_ESCAPES = 5


class Ledger:
    """Counts task executions per (workflow tag, task index); thread-safe."""

    def __init__(self) -> None:
        self.runs: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def ran(self, tag: str, index: int) -> None:
        with self._lock:
            self.runs[(tag, index)] += 1

    def reset(self) -> None:
        with self._lock:
            self.runs.clear()


LEDGER = Ledger()


def _step_value(index: int, acc: int) -> int:
    return (acc * 31 + index * 7 + 1) % MOD


def _fan_value(index: int, base: int) -> int:
    return (base * base + index) % MOD


@task(name="soak.step")
def step(tag: str, index: int, acc: int) -> list[int]:
    LEDGER.ran(tag, index)
    return [index, _step_value(index, acc)]


@task(name="soak.fan")
def fan(tag: str, index: int, base: int) -> list[int]:
    LEDGER.ran(tag, index)
    return [index, _fan_value(index, base)]


@workflow(name="soak")
def soak(inp: dict[str, Any]) -> dict[str, Any]:
    tag, acc = inp["tag"], inp["seed"]
    for i in range(SEQ1):
        acc = step(tag, i, acc).result()[1]
    futures = [fan(tag, SEQ1 + j, (acc + j) % MOD) for j in range(FAN)]
    fanned = [f.result()[1] for f in futures]
    answer = interrupt({"acc": acc})
    acc = (sum(fanned) * answer + acc) % MOD
    for k in range(SEQ2):
        acc = step(tag, INTERRUPT_POS + 1 + k, acc).result()[1]
    return {"acc": acc, "fanned": fanned}


def expected_result(seed: int, answer: int) -> dict[str, Any]:
    """What ``soak`` returns, computed without cairnflow."""
    acc = seed
    for i in range(SEQ1):
        acc = _step_value(i, acc)
    fanned = [_fan_value(SEQ1 + j, (acc + j) % MOD) for j in range(FAN)]
    acc = (sum(fanned) * answer + acc) % MOD
    for k in range(SEQ2):
        acc = _step_value(INTERRUPT_POS + 1 + k, acc)
    return {"acc": acc, "fanned": fanned}


# --------------------------------------------------------------------------- driving


@dataclass
class Job:
    thread: str
    tag: str
    seed: int
    answer: int
    durability: str
    result: Any = None
    escaped: list[str] = field(default_factory=list)


def make_jobs(count: int, seed: int) -> list[Job]:
    run_id = uuid.uuid4().hex[:6]
    jobs = []
    for n in range(count):
        tag = f"{run_id}-{n}"
        jobs.append(
            Job(
                thread=f"soak-{tag}",
                tag=tag,
                seed=(seed * 7919 + n) % MOD,
                answer=2 + n % 5,
                durability=DURABILITIES[n % len(DURABILITIES)],
            )
        )
    return jobs


def drive(saver: CheckpointLog, job: Job) -> None:
    """Run ``job`` to completion through interrupts and escaped store errors."""
    inp = {"tag": job.tag, "seed": job.seed}
    while True:
        try:
            current = soak.get_run(thread_id=job.thread, saver=saver)
            if current is None:
                run = soak.run(inp, thread_id=job.thread, saver=saver, durability=job.durability)  # type: ignore[arg-type]
            elif current.status == "completed":
                job.result = current.result
                return
            elif current.status == "interrupted":
                run = soak.resume(
                    job.answer,
                    thread_id=job.thread,
                    saver=saver,
                    interrupt_id=current.interrupt_id,
                    durability=job.durability,  # type: ignore[arg-type]
                )
            else:
                run = soak.resume(thread_id=job.thread, saver=saver, durability=job.durability)  # type: ignore[arg-type]
        except TransientStoreError as exc:
            job.escaped.append(f"{type(exc).__name__}: {exc}")
            if len(job.escaped) > MAX_ESCAPES:
                raise
            continue
        if run.status == "completed":
            job.result = run.result
            return
        if run.status != "interrupted":
            raise AssertionError(f"{job.thread}: unexpected status {run.status}")


def run_jobs(saver: CheckpointLog, jobs: list[Job], concurrency: int) -> float:
    """Drive every job, ``concurrency`` at a time; return the wall time. Re-raises the first error."""
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(drive, saver, job) for job in jobs]:
            future.result()
    return time.monotonic() - t0


# --------------------------------------------------------------------------- checking


@dataclass
class Findings:
    workflows: int = 0
    completed: int = 0
    wrong_results: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unrun: list[str] = field(default_factory=list)
    reran: list[str] = field(default_factory=list)
    corruptions: list[str] = field(default_factory=list)
    escaped: int = 0
    objects_checked: int = 0

    @property
    def problems(self) -> list[str]:
        return (
            self.wrong_results + self.duplicates + self.missing + self.unrun + self.reran + self.corruptions
        )


def check(saver: CheckpointLog, jobs: list[Job], ledger: Ledger = LEDGER) -> Findings:
    """Inspect what is stored (``saver`` must inject no faults) and what ran."""
    found = Findings(workflows=len(jobs))
    for job in jobs:
        found.escaped += len(job.escaped)
        want = expected_result(job.seed, job.answer)
        if job.result != want:
            found.wrong_results.append(f"{job.thread}: result {job.result} != {want}")
        head = saver.latest(job.thread)
        if head is None or head.status != "completed":
            found.wrong_results.append(f"{job.thread}: stored status {head and head.status}")
            continue
        found.completed += 1
        ops = Counter(r.get("op") for r in head.records)
        positions = Counter(r["pos"] for r in head.records if r.get("op") == "task")
        dup = sorted(p for p, n in positions.items() if n > 1)
        if dup or any(ops[op] != 1 for op in ("start", "interrupt", "resume", "end")):
            found.duplicates.append(f"{job.thread}: positions {dup} ops {dict(ops)}")
        if sorted(positions) != TASK_POSITIONS or ops["task_error"]:
            found.missing.append(f"{job.thread}: task positions {sorted(positions)}")
        end = head.records[-1]
        if end.get("op") != "end" or end.get("value") != want:
            found.wrong_results.append(f"{job.thread}: stored end record {end}")
        for pos, record in ((r["pos"], r) for r in head.records if r.get("op") == "task"):
            index = record["value"][0]
            runs = ledger.runs[(job.tag, index)]
            if index != pos or runs == 0:
                found.unrun.append(f"{job.thread}: recorded task {pos} (index {index}) ran {runs} times")
            elif runs > 1 and not job.escaped:
                # Without a crash or an escaped error, nothing may run twice in-process.
                found.reran.append(f"{job.thread}: task {pos} ran {runs} times with no escaped error")
    report = verify(saver)
    found.objects_checked = report.objects_checked
    found.corruptions.extend(f"{p.code}: {p.message} ({p.key})" for p in report.problems)
    if report.threads_checked != len(jobs):
        found.corruptions.append(f"verify saw {report.threads_checked} threads, expected {len(jobs)}")
    return found


def summary(
    label: str,
    seed: int,
    jobs: list[Job],
    found: Findings,
    faults: Counter[str],
    requests: int,
    seconds: float,
) -> str:
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(faults.items()))
    return (
        f"SOAK {label}: seed={seed} workflows={found.workflows} completed={found.completed} "
        f"requests={requests} faults={sum(faults.values())} ({kinds}) escaped={found.escaped} "
        f"duplicates={len(found.duplicates)} corruptions={len(found.corruptions)} "
        f"objects_verified={found.objects_checked} seconds={seconds:.1f}"
    )


def require_clean(found: Findings, context: str) -> None:
    problems = found.problems
    assert not problems, f"{context}: {len(problems)} problem(s):\n" + "\n".join(problems[:30])
