"""Kill the service at a store request boundary, restart it, and let the package judge what it left.

For each requirement: a clean run counts the store requests the service (the runner
and the handler's SDK, one process) makes while driving the execution. Then, for a
few of those boundaries K (seeded), a forked child drives a fresh execution of the
same requirement on a local directory and SIGKILLs itself just before request K is
sent or just after it returned; a fresh client and runner (a restarted service)
drive the execution to its end; and the package's own code judges the result
(``validate._validate_execution_result``) and the event history
(``EventHistoryMatcher`` against the YAML's ``ExpectedExecutionHistory``), read
through :class:`~cairnflow.aws_durable.lambda_api.LocalLambda` as in the pipeline.

A kill takes the whole process down (the handler's checkpoint thread too), as a
crash of the service would; the history must read as if nothing had happened: a
killed invocation leaves no ``InvocationCompleted``, a restarted service invokes
only when something is due, and replays repeat no recorded operation.

The requirements' ``CallbackActions`` are sent by :class:`Outside` (as the package's
polling validator would) whenever the service waits for callbacks alone; kills are drawn
from the requests made before that first wait. ``LEFT_OUT`` says which requirements
this check leaves to the pipeline, and why. Forking needs a process
with no other threads: run it as its own process::

    python -m tests.aws_durable.conformance.crashes [ids or suites ...] [--per 2] [--seed 1]

It prints ``VERDICT {json}`` per killed run and ``SUMMARY {json}``, and exits 1 if any
restarted execution's result or history did not validate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aws_durable_execution_conformance_tests import validate
from aws_durable_execution_conformance_tests.callback import CallbackAction, CallbackSender
from aws_durable_execution_conformance_tests.history import EventHistoryMatcher
from aws_durable_execution_conformance_tests.validate import extract_callback_events, find_matching_action
from aws_durable_execution_conformance_tests.variables import PlaceholderContext

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from cairnflow.aws_durable.lambda_api import LocalLambda
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore, PutMode, StoredObject
from cairnflow.savers.local import LocalStore

from . import registry
from .handlers import load_all
from .harness import requirements

__all__ = ["LEFT_OUT", "RESULT_ONLY", "KillStore", "Outside", "Verdict", "main", "run_requirement"]

_AT_MOST_ONCE = (
    "an at-most-once step whose handler crashes the process on purpose: a kill inside the step's body "
    "interrupts it first, so the history has no InvocationCompleted for the handler's own crash (the "
    "killed service records no end for the invocation it lost); the result is still checked"
)
#: Requirements whose history a kill may legitimately change: only their result is judged.
RESULT_ONLY = {"1-17": _AT_MOST_ONCE, "1-18": _AT_MOST_ONCE}

_REAL_TIME = (
    "its callbacks race the service in real time (sent while a wait runs, or a heartbeat against its "
    "timeout); the outside world here acts only once the service waits for callbacks alone, on a "
    "virtual clock: judged by the pipeline and its --kill-rate run instead"
)
#: Requirements this check leaves to the pipeline.
LEFT_OUT = {"4-5": _REAL_TIME, "4-9": _REAL_TIME, "4-10": _REAL_TIME, "7-13": _REAL_TIME}


class KillStore(ObjectStore):
    """Numbers the requests made through it; SIGKILLs this process at request ``at`` (``side`` of it)."""

    def __init__(self, inner: ObjectStore, at: int | None = None, side: str = "before") -> None:
        self.inner = inner
        self.url = inner.url
        self.at = at
        self.side = side
        self.count = 0

    def _boundary(self, side: str) -> None:
        if self.count == self.at and side == self.side:
            os.kill(os.getpid(), signal.SIGKILL)

    def _request(self) -> None:
        self._boundary("before")

    def _done(self) -> None:
        self._boundary("after")
        self.count += 1

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self._request()
        etag = self.inner.put(key, data, mode)
        self._done()
        return etag

    def get(self, key: str) -> StoredObject:
        self._request()
        obj = self.inner.get(key)
        self._done()
        return obj

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        self._request()
        found = list(self.inner.list(prefix, start_after=start_after, limit=limit))
        self._done()
        return iter(found)

    def delete(self, key: str) -> None:
        self._request()
        self.inner.delete(key)
        self._done()


@dataclass
class Verdict:
    """One killed-and-restarted run of a requirement."""

    rid: str
    boundary: int
    of: int
    side: str
    killed: bool
    errors: list[str]

    @property
    def passed(self) -> bool:
        return not self.errors


class VirtualClock:
    """Epoch seconds from now on that jump when the runner sleeps: a one-hour wait costs nothing."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def _client(store: ObjectStore) -> CairnflowDurableClient:
    """A service process's client (its own clock) on ``store``."""
    return CairnflowDurableClient(CheckpointLog(store), clock=VirtualClock())


class Outside:
    """The world outside the service: sends a requirement's ``CallbackActions`` as the package's
    polling validator does (the first unused action whose name matches each new callback; a
    heartbeat leaves the callback open for the next action), after the action's delay."""

    def __init__(self, data: dict[str, Any], context: PlaceholderContext) -> None:
        self.actions = [CallbackAction.from_dict(a) for a in data.get("CallbackActions") or []]
        self.context = context
        self.used: set[int] = set()
        self.handled: set[str] = set()

    def act(self, client: CairnflowDurableClient, arn: str) -> bool:
        """Send what is due to the callbacks ``arn`` has opened; True if anything was sent."""
        lam = LocalLambda(client, dict(registry.FUNCTIONS))
        events = lam.get_durable_execution_history(DurableExecutionArn=arn, IncludeExecutionData=True)[
            "Events"
        ]
        for event in extract_callback_events(events, self.handled):
            callback_id = event["CallbackStartedDetails"]["CallbackId"]
            action, index = find_matching_action(event, self.actions, self.used, self.context)
            if action is None or index is None:
                self.handled.add(callback_id)  # no action: left open (a timeout requirement)
                continue
            self.used.add(index)
            if action.operation != "heartbeat":
                self.handled.add(callback_id)
            if isinstance(client.clock, VirtualClock):
                client.clock.sleep(action.delay_seconds)
            payload = self.context.substitute(action.payload)
            CallbackSender(client=lam).send(
                callback_id, CallbackAction(action.callback_name, action.operation, payload)
            )
            return True
        return False


def _drive(handler: Any, client: CairnflowDurableClient, arn: str, outside: Outside | None = None) -> None:
    """Drive ``arn`` to its end; while it awaits a callback, ``outside`` sends it (without: return)."""
    clock = client.clock
    sleep = clock.sleep if isinstance(clock, VirtualClock) else time.sleep
    runner = LocalRunner(handler, client, functions=dict(registry.FUNCTIONS), sleep=sleep)
    for _ in range(50):
        if runner.drive(arn).status != "STARTED" or outside is None or not outside.act(client, arn):
            return


def _judge(
    data: dict[str, Any],
    context: PlaceholderContext,
    client: CairnflowDurableClient,
    arn: str,
    *,
    result_only: bool = False,
) -> list[str]:
    """The package's verdict on the execution's result and (unless ``result_only``) its history."""
    lam = LocalLambda(client, dict(registry.FUNCTIONS))
    errors: list[str] = []
    history = lam.get_durable_execution_history(DurableExecutionArn=arn, IncludeExecutionData=True)
    expected_events = data.get("ExpectedExecutionHistory") or []
    if not result_only:
        errors += EventHistoryMatcher(context=context).match(expected_events, history["Events"]).errors
    if data.get("ExpectedResult"):
        errors += validate._validate_execution_result(
            execution_arn=arn, expected_result=data["ExpectedResult"], context=context, lambda_client=lam
        )
    return errors


def run_requirement(rid: str, path: Path, root: Path, rng: random.Random, per: int) -> list[Verdict]:
    """A clean run of ``rid``, then ``per`` killed-and-restarted runs at sampled boundaries."""
    data = yaml.safe_load(path.read_text())
    handler = registry.REQUIREMENTS[rid]

    def fresh_execution(store_dir: Path) -> tuple[str, PlaceholderContext]:
        context = PlaceholderContext()
        context.resolve_variables(data.get("Variables"))
        client = _client(LocalStore(store_dir))
        arn = LocalRunner(handler, client).start(context.substitute(data.get("Input")))
        return arn, context

    clean_dir = root / f"{rid}-clean"
    arn, context = fresh_execution(clean_dir)
    counting = KillStore(LocalStore(clean_dir))
    client = _client(counting)
    _drive(handler, client, arn)  # up to the first callback awaited, if any: the killable window
    total = counting.count
    _drive(handler, client, arn, Outside(data, context))
    errors = _judge(data, context, _client(LocalStore(clean_dir)), arn)
    if errors:
        return [Verdict(rid, -1, total, "clean", False, errors)]

    verdicts = []
    for boundary in sorted(rng.sample(range(total), min(per, total))):
        side = rng.choice(["before", "after"])
        store_dir = root / f"{rid}-{boundary}-{side}"
        arn, context = fresh_execution(store_dir)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the service, killed at the boundary
            code = 0
            try:
                _drive(handler, _client(KillStore(LocalStore(store_dir), boundary, side)), arn)
            except BaseException:  # the child only reports through its exit status
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        errors = [] if killed or os.WEXITSTATUS(status) == 0 else [f"the killed service failed: {status}"]
        restarted = _client(LocalStore(store_dir))
        try:
            _drive(handler, restarted, arn, Outside(data, context))
            errors += _judge(data, context, restarted, arn, result_only=rid in RESULT_ONLY)
        except Exception as exc:  # reported as this run's verdict
            errors.append(f"restart failed: {exc!r}")
        verdicts.append(Verdict(rid, boundary, total, side, killed, errors))
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.aws_durable.conformance.crashes")
    parser.add_argument("selection", nargs="*", help="requirement ids or suite names; default all")
    parser.add_argument("--per", type=int, default=2, help="killed runs per requirement")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # no logging locks held across fork
    load_all()
    cases = requirements(args.selection or None)
    verdicts: list[Verdict] = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="cairnflow-crashes-") as tmp:
        for rid, case in sorted(cases.items(), key=lambda item: tuple(int(p) for p in item[0].split("-"))):
            if rid not in registry.REQUIREMENTS or rid in LEFT_OUT:
                skipped.append(rid)
                continue
            rng = random.Random(f"{args.seed}:{rid}")
            for verdict in run_requirement(rid, case.path, Path(tmp), rng, args.per):
                verdicts.append(verdict)
                print("VERDICT", json.dumps(verdict.__dict__), flush=True)
    failed = [v for v in verdicts if not v.passed]
    summary = {
        "runs": len(verdicts),
        "killed": sum(v.killed for v in verdicts),
        "failed": len(failed),
        "requirements": len({v.rid for v in verdicts}),
        "skipped": skipped,
    }
    print("SUMMARY", json.dumps(summary), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
