"""Run the AWS conformance package's own validation pipeline against cairnflow.

``aws-durable-execution-conformance-tests`` deploys a SAM stack and then, per
requirement, calls its ``Invoker`` (Lambda ``invoke``), reads the execution and its
history (``get_durable_execution[_history]``), sends callbacks and reads CloudWatch
logs, all through boto3 clients it is handed. Here those clients are in-process:

* ``lambda``: :class:`cairnflow.aws_durable.lambda_api.LocalLambda`, the runner
  behind boto3's method names, on a local directory or an S3 (moto) bucket;
* ``cloudformation``: the "stack" maps each function's logical id to itself;
* ``logs``: lines the handlers wrote (``logging`` records as Lambda's JSON log
  format, and ``print``-ed lines) while this harness ran.

Everything else, from placeholder resolution to history matching, the polling
validator and the log assertions, is the package's code (``app._validate_descriptions``
calls ``validate.validate_description`` for each requirement). The only change to
it: the CloudWatch retriever does not sleep 10 s for log propagation (our logs are
written before the execution ends), see :class:`_ImmediateLogRetriever`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import logging
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_durable_execution_conformance_tests import app, validate
from aws_durable_execution_conformance_tests.cloudwatch import CloudWatchLogRetriever
from aws_durable_execution_conformance_tests.config import TESTS_DIR
from aws_durable_execution_conformance_tests.extensions import RequirementCase, load_extensions
from aws_durable_execution_conformance_tests.sam import Invoker
from aws_durable_execution_conformance_tests.validate import DescriptionResult

from cairnflow.aws_durable import CairnflowDurableClient
from cairnflow.aws_durable.lambda_api import LocalLambda
from cairnflow.core.log import CheckpointLog

from . import registry
from .handlers import load_all

__all__ = ["Outcome", "function_name", "requirements", "run"]

STACK = "cairnflow-conformance"


def function_name(rid: str) -> str:
    """The function deployed for requirement ``rid`` (its logical id in the fake stack)."""
    return f"req-{rid}"


def requirements(selection: list[str] | None = None) -> dict[str, RequirementCase]:
    """The package's requirements (id -> case), filtered by ids and/or suite names."""
    cases = load_extensions(TESTS_DIR, entry_points=[]).discover_requirements("all")
    if not selection or "all" in selection:
        return cases
    return {rid: c for rid, c in cases.items() if rid in selection or c.suite.name in selection}


# ---------------------------------------------------------------------- logs


class _Capture(logging.Handler):
    """Every log line written while the harness runs, as CloudWatch would hold it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[int, int, str]] = []
        self._lock = threading.Lock()
        self._seq = 0

    def add(self, line: str) -> None:
        if not line.strip():
            return
        with self._lock:
            self._seq += 1
            self.lines.append((int(time.time() * 1000), self._seq, line))

    def emit(self, record: logging.LogRecord) -> None:
        # Lambda's JSON log format: level, message, logger, plus the record's extra fields.
        doc: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
                doc[key] = value
        self.add(json.dumps(doc, default=str))


_STANDARD_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _Tee(io.TextIOBase):
    """stdout that also keeps each line the handlers print."""

    def __init__(self, inner: Any, capture: _Capture) -> None:
        self.inner, self.capture = inner, capture
        self._partial = threading.local()

    def write(self, text: str) -> int:
        self.inner.write(text)
        buffered = getattr(self._partial, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._partial.text = rest
        for line in lines:
            self.capture.add(line)
        return len(text)

    def flush(self) -> None:
        self.inner.flush()


class FakeLogs:
    """``filter_log_events`` over the captured lines of one execution (by its ARN in the JSON)."""

    _ARN = re.compile(r'\$\.durableExecutionArn = "([^"]+)"')

    def __init__(self, capture: _Capture) -> None:
        self.capture = capture

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        found = self._ARN.search(str(kwargs.get("filterPattern") or ""))
        arn = found.group(1).replace('\\"', '"') if found else None
        events = []
        for ts, seq, line in list(self.capture.lines):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            if arn is None or arn in (doc.get("durableExecutionArn"), doc.get("executionArn")):
                events.append({"timestamp": ts, "ingestionTime": seq, "message": line})
        return {"events": events}


class _ImmediateLogRetriever(CloudWatchLogRetriever):
    """The package's retriever minus the wait for CloudWatch ingestion (our lines are already there)."""

    EVENT_POLL_TIMEOUT_SECONDS = 0.0

    def get_execution_log_events(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        kwargs["wait_seconds"] = 0
        return super().get_execution_log_events(*args, **kwargs)


class FakeCloudFormation:
    """The deployed "stack": every function's physical name is its logical id."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_stack_resources", operation
        summaries = [
            {"LogicalResourceId": n, "PhysicalResourceId": n, "ResourceType": "AWS::Lambda::Function"}
            for n in self.names
        ]

        class _Pages:
            def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
                yield {"StackResourceSummaries": summaries}

        return _Pages()

    def describe_stack_resource(self, *, StackName: str, LogicalResourceId: str) -> dict[str, Any]:
        del StackName
        return {"StackResourceDetail": {"PhysicalResourceId": LogicalResourceId}}


# ---------------------------------------------------------------------- killing the runner


class Killed(BaseException):
    """The runner "died" here (a BaseException: nothing in the runner or SDK catches it)."""


class _Chaos:
    """Where the runners die: a seeded coin, tossed at each runner-side service call."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate, self.random = rate, random.Random(seed)
        self.lock = threading.Lock()
        self.kills: list[str] = []

    def toss(self, where: str, arn: str) -> None:
        with self.lock:
            if self.random.random() >= self.rate:
                return
            self.kills.append(f"{where} {arn.rsplit('/', 1)[-1][:8]}")
        raise Killed(where)


class _MortalClient(CairnflowDurableClient):
    """The service as one runner process sees it: the process may die around its own calls.

    Only the runner's calls die (beginning and ending an invocation, before or after
    the write lands); the SDK's checkpoints and the validator's reads and callbacks
    do not. A restarted runner gets a new instance: a cold process with no cache.
    """

    def __init__(self, saver: CheckpointLog, chaos: _Chaos) -> None:
        super().__init__(saver)
        self.chaos = chaos

    def begin_invocation(self, arn: str) -> Any:
        self.chaos.toss("before begin", arn)
        out = super().begin_invocation(arn)
        self.chaos.toss("after begin", arn)
        return out

    def end_invocation(self, arn: str, token: str, output: Any, **kwargs: Any) -> bool:
        self.chaos.toss("before end", arn)
        out = super().end_invocation(arn, token, output, **kwargs)
        self.chaos.toss("after end", arn)
        return out


class _MortalLambda(LocalLambda):
    """LocalLambda whose runner dies at random points and is restarted (a fresh process)."""

    def __init__(self, saver: CheckpointLog, functions: dict[str, Any], chaos: _Chaos, **kw: Any) -> None:
        super().__init__(CairnflowDurableClient(saver), functions, **kw)
        self.saver, self.chaos = saver, chaos

    def _drive(self, function: str, arn: str) -> Any:
        for _ in range(50):
            runner = self._runner(function)
            runner.client = _MortalClient(self.saver, self.chaos)  # this "process" dies, the next is new
            try:
                return runner.drive(arn)
            except Killed:
                continue
        raise RuntimeError(f"{arn}: the runner died 50 times in a row")


# ---------------------------------------------------------------------- running


@dataclass
class Outcome:
    """The package's verdict on each requirement run, by id."""

    results: dict[str, DescriptionResult]
    suites: dict[str, str]
    background_errors: list[str]
    kills: list[str]

    def passed(self) -> list[str]:
        return [rid for rid, r in self.results.items() if r.passed]

    def failed(self) -> dict[str, list[str]]:
        return {rid: list(r.errors) for rid, r in self.results.items() if not r.passed}

    def per_suite(self) -> dict[str, tuple[int, int]]:
        """suite -> (passed, total)."""
        counts: dict[str, tuple[int, int]] = {}
        for rid, result in self.results.items():
            passed, total = counts.get(self.suites[rid], (0, 0))
            counts[self.suites[rid]] = (passed + int(result.passed), total + 1)
        return counts


def _validator_patches() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    original = validate.CloudWatchLogRetriever
    validate.CloudWatchLogRetriever = _ImmediateLogRetriever  # type: ignore[misc]
    stack.callback(setattr, validate, "CloudWatchLogRetriever", original)
    return stack


def run(
    saver: CheckpointLog,
    selection: list[str] | None = None,
    *,
    workers: int = 8,
    history_dir: str | None = None,
    quiet: bool = True,
    kill_rate: float = 0.0,
    seed: int = 0,
) -> Outcome:
    """Validate the selected requirements (ids or suite names; None: all) on ``saver``'s store.

    With ``kill_rate`` the runner dies (and is restarted) at each of its service calls
    with that probability (seeded by ``seed``): the executions must still complete
    with histories the package validates. ``Outcome.kills`` lists where it died.
    """
    load_all()
    cases = requirements(selection)
    descriptions = [
        (function_name(rid), rid) for rid in sorted(cases, key=_order) if rid in registry.REQUIREMENTS
    ]
    missing = {
        rid: DescriptionResult(rid, function_name(rid), passed=False, errors=["no handler written for it"])
        for rid in cases
        if rid not in registry.REQUIREMENTS
    }
    functions = {function_name(rid): registry.REQUIREMENTS[rid] for _, rid in descriptions}
    functions.update(registry.FUNCTIONS)
    capture = _Capture()
    errors: list[str] = []
    chaos = _Chaos(kill_rate, seed)

    def report(arn: str, exc: BaseException) -> None:
        errors.append(f"{arn}: {exc!r}")

    lam: LocalLambda
    if kill_rate > 0:
        lam = _MortalLambda(saver, functions, chaos, on_error=report)
    else:
        lam = LocalLambda(CairnflowDurableClient(saver), functions, on_error=report)
    clients = {
        "lambda": lam,
        "cloudformation": FakeCloudFormation(list(functions)),
        "logs": FakeLogs(capture),
    }
    invoker = Invoker(
        stack_name=STACK, region="local", lambda_client=lam, cfn_client=clients["cloudformation"]
    )
    root = logging.getLogger()
    old_level = root.level
    with contextlib.ExitStack() as stack:
        stack.enter_context(_validator_patches())
        stack.callback(lam.close)
        root.addHandler(capture)
        stack.callback(root.removeHandler, capture)
        root.setLevel(min(old_level, logging.INFO) if old_level else logging.INFO)
        stack.callback(root.setLevel, old_level)
        tee = _Tee(sys.stdout, capture)
        stack.enter_context(contextlib.redirect_stdout(tee))
        if quiet:  # the package narrates every step; keep handler output, drop its narration
            tee.inner = io.StringIO()
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cairnflow-conformance-"))
        args = argparse.Namespace(
            max_workers=workers,
            history_dir=history_dir or str(Path(tmp) / "history"),
            region="local",
            language="python",
        )
        results = app._validate_descriptions(
            descriptions, requirements=cases, invoker=invoker, tmp_dir=tmp, args=args, aws_clients=clients
        )
    by_id = {r.description_id: r for r in results}
    by_id.update(missing)
    return Outcome(
        results={rid: by_id[rid] for rid in sorted(by_id, key=_order)},
        suites={rid: c.suite.name for rid, c in cases.items()},
        background_errors=errors,
        kills=chaos.kills,
    )


def _order(rid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in rid.split("-") if p.isdigit())
