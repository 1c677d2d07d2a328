"""Fault soak: workflows with parallel tasks and an interrupt complete correctly under 10 % faults.

Cloud backends (s3, gcs, azure) get their faults over HTTP: a
:class:`~tests.reliability.faults.SoakProxy` sits between the SDK and the
emulator and, for 10 % of requests drawn by a seeded RNG, answers 5xx or
throttling itself, drops the connection before or after forwarding, delays,
or cuts the answer in the middle of its body. The local and memory backends
get theirs at the store seam (:class:`~tests.reliability.faults.FaultyStore`):
``TransientStoreError`` before a request is applied, after a write landed, after
a read, or in the middle of a listing.

Each workflow (:mod:`tests.reliability.soakflow`) is driven through its
interrupt to completion; durability modes rotate sync/async/exit. Then,
through a fault-free client of the same bucket: every result is right, each
task position is recorded exactly once, every side effect ran (exactly once
for workflows where no error escaped the retries), and ``verify()`` reports
no problem at all.

Retries under test: the core retries transient errors 5 times
(``DEFAULT_STORE_RETRY``: 0.05 s initial, doubling, full jitter, capped at 2 s)
around the SDK's own retries, kept small and fast here: botocore standard
mode with 2 attempts (its backoff, up to 1 s, cannot be shortened),
google-api-core retries with 10-50 ms delays within a 1 s deadline, Azure
``retry_total=2`` without waits. Read timeouts are 1 s; the policy's
``timeout`` faults hold a request 1.5 s, so the client gives up, retries, and
the held request may land after the retry. One store call is therefore
bounded by about 5 x (2-3 attempts x 1 s + backoff), and no escaped error was
seen at 10 % (escapes would be resumed by the driver and counted).

Environment: ``CAIRNFLOW_SOAK_WORKFLOWS`` (workflows per backend; default: the
CI counts below), ``CAIRNFLOW_SOAK_SEED``, ``CAIRNFLOW_SOAK_CONCURRENCY``
(default 4), ``CAIRNFLOW_SOAK_REPORT`` (append one JSON line per backend to
this file; ``benchmarks/soak.py`` uses it).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import ObjectStore
from tests.reliability.faults import FaultPolicy, FaultyStore, SoakProxy
from tests.reliability.soakflow import LEDGER, check, make_jobs, require_clean, run_jobs, summary

#: Workflows per backend in CI: enough for >= 100 injected faults each, well under a minute.
CI_WORKFLOWS = {"memory": 200, "local": 200, "s3": 80, "gcs": 80, "azure": 80}
RATE = 0.10
#: Client read timeout through the proxy; the policy's "timeout" faults hold a request longer (1.5 s).
READ_TIMEOUT = 1.0
PREFIX = "soak/"


@dataclass
class Rig:
    """A saver through the faults, a fault-free saver of the same store, and the fault counters."""

    faulty: CheckpointLog
    direct: CheckpointLog
    faults: Callable[[], Counter[str]]
    requests: Callable[[], int]
    stop_faults: Callable[[], None]


def _seam_rig(inner: ObjectStore, seed: int) -> Rig:
    faulty = FaultyStore(inner, seed, rate=RATE)

    def stop() -> None:
        faulty.enabled = False

    return Rig(
        CheckpointLog(faulty, prefix=PREFIX),
        CheckpointLog(inner, prefix=PREFIX),
        lambda: faulty.faults,
        lambda: faulty.requests,
        stop,
    )


def _http_rig(policy: FaultPolicy, through: ObjectStore, direct: ObjectStore) -> Rig:
    def stop() -> None:
        policy.enabled = False

    return Rig(
        CheckpointLog(through, prefix=PREFIX),
        CheckpointLog(direct, prefix=PREFIX),
        lambda: Counter(policy.faults),
        lambda: policy.requests,
        stop,
    )


@contextlib.contextmanager
def rig_for(
    backend: str, seed: int, request: pytest.FixtureRequest
) -> Iterator[tuple[Rig, SoakProxy | None]]:
    if backend in ("memory", "local"):
        inner: ObjectStore = request.getfixturevalue(f"{backend}_store")
        yield _seam_rig(inner, seed), None
        return
    policy = FaultPolicy(backend, seed, rate=RATE)
    if backend == "s3":
        from cairnflow.savers.s3 import S3Store
        from tests.emulators.s3 import make_s3_client, new_bucket

        server_url: str = request.getfixturevalue("s3_server_url")
        bucket = new_bucket(server_url)
        with SoakProxy(server_url) as proxy:
            proxy.set_fault(policy)
            client = make_s3_client(
                proxy.url,
                retries={"mode": "standard", "total_max_attempts": 2},
                max_pool_connections=32,
                connect_timeout=5,
                read_timeout=READ_TIMEOUT,
            )
            through = S3Store(bucket, client=client, probe_prefix=PREFIX)
            direct = S3Store(
                bucket,
                client=make_s3_client(server_url),
                probe_prefix=PREFIX,
                verify_conditional_writes=False,
            )
            yield _http_rig(policy, through, direct), proxy
        return
    if backend == "gcs":
        from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

        factory = request.getfixturevalue("gcs_store_factory")
        fast = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05, multiplier=2.0).with_timeout(1.0)
        with SoakProxy(factory.server_url) as proxy:
            proxy.set_fault(policy)
            through = factory(endpoint=proxy.url, retry=fast, timeout=(5.0, READ_TIMEOUT))
            yield _http_rig(policy, through, factory()), proxy
        return
    if backend == "azure":
        from tests.emulators.azure import ACCOUNT, FAST_RETRY, fresh_container, make_store

        server = request.getfixturevalue("azure_server")
        with fresh_container(server) as container, SoakProxy(server.upstream) as proxy:
            proxy.set_fault(policy)
            options = {**FAST_RETRY, "read_timeout": READ_TIMEOUT, "connection_timeout": 5}
            through = make_store(container, f"{proxy.url}/{ACCOUNT}", retry_total=2, client_options=options)
            direct = make_store(container, server.url)
            try:
                yield _http_rig(policy, through, direct), proxy
            finally:
                through.close()
                direct.close()
        return
    raise AssertionError(backend)


def _workflows(backend: str) -> int:
    value = os.environ.get("CAIRNFLOW_SOAK_WORKFLOWS")
    return int(value) if value else CI_WORKFLOWS[backend]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory", "local", "s3", "gcs", "azure"])
def test_workflows_complete_exactly_once_under_ten_percent_faults(
    backend: str, request: pytest.FixtureRequest
) -> None:
    seed = int(os.environ.get("CAIRNFLOW_SOAK_SEED") or random.SystemRandom().randrange(2**32))
    count = _workflows(backend)
    concurrency = int(os.environ.get("CAIRNFLOW_SOAK_CONCURRENCY") or 4)
    context = f"backend={backend} seed={seed} (replay: CAIRNFLOW_SOAK_SEED={seed})"
    print(f"fault soak {context} workflows={count}")
    jobs = make_jobs(count, seed)
    LEDGER.reset()
    with rig_for(backend, seed, request) as (rig, proxy):
        try:
            seconds = run_jobs(rig.faulty, jobs, concurrency)
        except Exception as exc:
            raise AssertionError(f"{context}: a workflow failed: {type(exc).__name__}: {exc}") from exc
        finally:
            rig.stop_faults()
        faults = rig.faults()
        found = check(rig.direct, jobs)
        effects: dict[str, Any] = dict(proxy.effects) if proxy is not None else {}
    line = summary(backend, seed, jobs, found, faults, rig.requests(), seconds)
    print(line)
    report = os.environ.get("CAIRNFLOW_SOAK_REPORT")
    if report:
        with open(report, "a") as out:
            out.write(
                json.dumps(
                    {
                        "backend": backend,
                        "seed": seed,
                        "workflows": found.workflows,
                        "completed": found.completed,
                        "requests": rig.requests(),
                        "faults": sum(faults.values()),
                        "fault_kinds": dict(faults),
                        "mid_body_effects": effects,
                        "escaped": found.escaped,
                        "duplicates": len(found.duplicates),
                        "corruptions": len(found.corruptions),
                        "objects_verified": found.objects_checked,
                        "seconds": round(seconds, 2),
                    }
                )
                + "\n"
            )
    require_clean(found, context)
    assert found.completed == count, f"{context}: {found.completed} of {count} completed"
    # The faults must really have been injected, at about the configured rate.
    assert sum(faults.values()) >= count, f"{context}: only {sum(faults.values())} faults injected: {line}"
