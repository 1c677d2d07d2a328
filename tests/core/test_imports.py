"""The core is standard library only, and the local backends import no cloud SDK.

Each check runs in a fresh interpreter, so that modules imported by pytest or
by other tests cannot hide (or fake) an import.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.core.support import REPO

FORBIDDEN = ["boto3", "botocore", "google", "azure", "langgraph", "langchain_core"]


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
    imported = _imported_modules("import cairnflow.core")
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


def test_forbidden_module_check_can_fail() -> None:
    """The check above does see an SDK when one is imported (here: botocore, installed for S3)."""
    proc = _python("-c", "import botocore\n" + _CHECK_FORBIDDEN)
    assert proc.returncode != 0
    assert "botocore" in proc.stderr
