"""The core is standard library only and cheap to import; the local backends import no cloud SDK.

Each check runs in a fresh interpreter, so that modules imported by pytest or
by other tests cannot hide (or fake) an import.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.core.support import REPO

# The cloud SDKs, sync and asyncio (aiobotocore, gcloud-aio-*, azure's aio over aiohttp).
FORBIDDEN = [
    "boto3",
    "botocore",
    "aiobotocore",
    "aiohttp",
    "gcloud",
    "google",
    "azure",
    "obstore",
    "langgraph",
    "langchain_core",
]


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def _imported_modules(code: str) -> list[str]:
    """Every module ``python -X importtime -c code`` imported, in import order.

    ``-X importtime`` also reports imports that failed (e.g. ``copy`` tries
    ``org.python.core``, Jython's, and falls back): keep only modules that are
    in ``sys.modules`` when the program ends.
    """
    proc = _python("-X", "importtime", "-c", f"{code}\nimport sys\nprint(*sys.modules, sep='\\n')")
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    modules = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _, _, name = line.rpartition("|")
        name = name.strip()
        if name and name != "imported package" and name in loaded:  # skip the header, failed imports
            modules.append(name)
    return modules


def test_importing_the_core_imports_only_stdlib_and_cairnflow() -> None:
    # Whatever the interpreter imports at startup (site, .pth hooks of the environment) is
    # not cairnflow's doing: take it out by comparing with an empty program.
    baseline = set(_imported_modules("pass"))
    # Every public name, so that every module they live in is imported (the package is lazy).
    imported = _imported_modules("from cairnflow.core import *")
    assert "cairnflow.core" in imported and "cairnflow.core.executor" in imported, imported
    offenders = sorted(
        {
            name
            for name in imported
            if name not in baseline
            and name.partition(".")[0] not in sys.stdlib_module_names
            and name.partition(".")[0] != "cairnflow"
        }
    )
    assert not offenders, f"import cairnflow.core imported non-stdlib modules: {offenders}"


_CHECK_FORBIDDEN = f"""
import sys
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {FORBIDDEN!r})
assert not loaded, f"imported: {{loaded}}"
print("CLEAN")
"""


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_workflow_with_interrupt_on_local_stores_imports_no_sdk(scheme: str, tmp_path: Path) -> None:
    url = "memory://imports" if scheme == "memory" else f"file://{tmp_path}/store"
    code = textwrap.dedent(
        f"""
        from cairnflow.core import interrupt, task, workflow
        from cairnflow.savers import open_saver

        @task
        def double(x):
            return 2 * x

        @workflow
        def flow(x):
            first = double(x).result()
            answer = interrupt({{"first": first}})
            return double(first + answer).result()

        saver = open_saver({url!r})
        paused = flow.run(5, thread_id="t1", saver=saver)
        assert paused.status == "interrupted" and paused.interrupt == {{"first": 10}}, paused
        done = flow.resume(1, thread_id="t1", saver=saver)
        assert done.status == "completed" and done.result == 22, done
        """
    )
    proc = _python("-c", code + _CHECK_FORBIDDEN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CLEAN"
    if scheme == "file":
        assert any((tmp_path / "store").rglob("*")), "the file store holds no checkpoint"


def test_savers_package_and_file_saver_import_no_sdk(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import cairnflow.savers
        from cairnflow.savers import open_saver

        saver = open_saver({f"file://{tmp_path}/store"!r})
        head = saver.append("t", None, [{{"op": "note"}}], status="running")
        assert saver.latest("t").records == ({{"op": "note"}},)
        """
    )
    proc = _python("-c", code + _CHECK_FORBIDDEN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CLEAN"


def test_async_openers_and_async_file_saver_import_no_sdk(tmp_path: Path) -> None:
    """``open_async_store``/``open_async_saver`` know the cloud schemes but import no async SDK."""
    code = textwrap.dedent(
        f"""
        import asyncio
        from cairnflow.savers import _ASYNC_SCHEMES, open_async_store

        assert {{"s3", "gs", "az"}} <= set(_ASYNC_SCHEMES), _ASYNC_SCHEMES

        async def main():
            store, _ = open_async_store({f"file://{tmp_path}/store"!r})
            async with store:
                await store.put("k", b"v")
                assert (await store.get("k")).data == b"v"
            memory, _ = open_async_store("memory://imports-async")
            await memory.put("k", b"v")

        asyncio.run(main())
        """
    )
    proc = _python("-c", code + _CHECK_FORBIDDEN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CLEAN"


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("cairnflow.savers.gcs_async", "google.cloud.storage"),  # GCS's table lives in _gcs_rules
        ("cairnflow.savers.gcs", "gcloud"),
        ("cairnflow.savers.s3", "aiobotocore"),
    ],
)
def test_one_flavour_of_a_cloud_does_not_import_the_others_sdk(module: str, absent: str) -> None:
    proc = _python("-c", f"import sys, {module}\nassert {absent!r} not in sys.modules, {absent!r}")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", ["aiobotocore", "aiohttp"])
def test_forbidden_module_check_sees_async_clients(module: str) -> None:
    """The check sees the asyncio clients too (opening an async S3 store imports them)."""
    proc = _python("-c", f"import {module}\n" + _CHECK_FORBIDDEN)
    assert proc.returncode != 0
    assert module in proc.stderr


def test_forbidden_module_check_can_fail() -> None:
    """The check above does see an SDK when one is imported (here: botocore, installed for S3)."""
    proc = _python("-c", "import botocore\n" + _CHECK_FORBIDDEN)
    assert proc.returncode != 0
    assert "botocore" in proc.stderr


# --------------------------------------------------------------------------- import cost

#: Standard-library modules too costly to import with ``import cairnflow.core``.
HEAVY = ["concurrent.futures", "logging", "inspect", "pathlib", "pickle", "decimal"]
#: The issue's budget for ``import cairnflow.core`` (cumulative, median of 5 runs).
IMPORT_BUDGET_US = 35_000


def _bare_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``-S`` (no site, so no .pth hooks preloading pathlib & co.) on the
    installed package layout, given as a tree of symlinks (as scripts/typecheck.sh does)."""
    root = tmp_path / "layout"
    package = root / "cairnflow"
    package.mkdir(parents=True, exist_ok=True)
    for entry in (REPO / "src" / "cairnflow").iterdir():
        if not (package / entry.name).exists():
            (package / entry.name).symlink_to(entry)
    for name in ("core", "savers"):
        if not (package / name).exists():
            (package / name).symlink_to(REPO / name)
    program = f"import sys\nsys.path.insert(0, {str(root)!r})\n{code}"
    return subprocess.run(
        [sys.executable, "-S", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


_LOADED = """
import json, sys
before = set(sys.modules)
import {module}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("cairnflow.core", HEAVY),
        ("cairnflow.core.errors", HEAVY),
        ("cairnflow.core.keys", HEAVY),
        # dataclasses imports inspect: the typed Header and Envelope pay for it, nothing more.
        ("cairnflow.core.format", [m for m in HEAVY if m != "inspect"]),
        ("cairnflow.core.codec", [m for m in HEAVY if m != "inspect"]),
    ],
)
def test_importing_the_core_leaves_heavy_stdlib_modules_out(
    module: str, heavy: list[str], tmp_path: Path
) -> None:
    proc = _bare_python(_LOADED.format(module=module), tmp_path)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout))
    assert module in loaded
    assert not loaded & set(heavy), f"import {module} imported {sorted(loaded & set(heavy))}"


def test_heavy_module_check_can_fail(tmp_path: Path) -> None:
    """The check above sees a heavy module when one is imported (the executor needs inspect)."""
    proc = _bare_python(_LOADED.format(module="cairnflow.core.executor"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "inspect" in json.loads(proc.stdout)


def test_import_cairnflow_core_is_within_budget() -> None:
    """Cumulative ``-X importtime`` of ``import cairnflow.core``, median of 5 fresh interpreters.

    Measured about 1.5 ms (the package is lazy); the budget is the issue's 35 ms, so a
    loaded machine cannot make it flake, but an eager import of the executor would.
    """
    times = []
    for _ in range(5):
        proc = _python("-X", "importtime", "-c", "import cairnflow.core")
        assert proc.returncode == 0, proc.stderr
        line = [row for row in proc.stderr.splitlines() if row.rstrip().endswith("| cairnflow.core")][-1]
        times.append(int(line.split("|")[1]))
    assert statistics.median(times) <= IMPORT_BUDGET_US, times


def test_the_lazy_package_exports_exactly_its_public_names() -> None:
    import cairnflow.core as core

    assert set(core._HOMES) == set(core.__all__)
    for name in core.__all__:
        assert getattr(core, name) is not None, name
    assert core.log.CheckpointLog is core.CheckpointLog  # submodules resolve as attributes too
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = core.nope


def test_observation_without_a_destination_imports_nothing(tmp_path: Path) -> None:
    # Spans and events are reported in every run; with no OpenTelemetry provider and no
    # logging configured they must not import logging, OpenTelemetry or cairnflow.telemetry.
    code = textwrap.dedent(
        """
        from cairnflow.core import observe
        with observe.span("cairnflow.run", thread_id="t"):
            observe.event("cairnflow.resume")
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("logging", "opentelemetry")))
        print("cairnflow.telemetry" in sys.modules)
        """
    )
    proc = _bare_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "False"]
