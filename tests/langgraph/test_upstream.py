"""LangGraph's own checkpointer tests pass on cairnflow wherever they pass on SqliteSaver.

Runs ``scripts/langgraph-upstream-tests.sh`` once (LangGraph's released test suite, from
its PyPI sdist, with SqliteSaver and cairnflow on memory://, file:// and s3:// on moto
as the checkpointers) and checks, per cairnflow backend, that every test it fails also
fails on SqliteSaver in the same run. Gaps still open under issue 15 are listed, one per
line, in ``upstream/known_gaps.txt``; a failure outside SqliteSaver's and that list fails
this test. Slow (about ten minutes on two cores) and needs PyPI the first time. The fast tests at the
end check the bookkeeping (which test is "the same test" on another checkpointer, parity).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.langgraph.upstream.summarize import REFERENCE, counts, failures, merge_rerun, report, same_test

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "langgraph-upstream-tests.sh"
GAPS = Path(__file__).parent / "upstream" / "known_gaps.txt"
CAIRNFLOW = ["cairnflow_memory", "cairnflow_file", "cairnflow_s3"]
#: LangGraph 1.2.x has about 650 checkpointer-parametrized tests per checkpointer.
MIN_TESTS = 500


def known_gaps(checkpointer: str) -> set[str]:
    """Test keys listed as open gaps for ``checkpointer`` ("<checkpointer> <test key>" lines)."""
    gaps = set()
    for line in GAPS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, key = line.partition(" ")
            if name in (checkpointer, "*"):
                gaps.add(key.strip())
    return gaps


@pytest.fixture(scope="module")
def upstream_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("lg-upstream")
    results = out / "results.json"
    env = {
        **os.environ,
        "LG_UPSTREAM_CHECKPOINTERS": ",".join([REFERENCE, *CAIRNFLOW]),
        "LG_UPSTREAM_RESULTS": str(results),
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=2600, check=False
    )
    sys.stdout.write(proc.stdout[-20000:])  # the side-by-side counts, shown with -s or on failure
    if proc.returncode not in (0, 1) or not results.exists():
        pytest.fail(
            f"{SCRIPT.name} broke (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    data: dict[str, Any] = json.loads(results.read_text())
    return data


@pytest.mark.slow
@pytest.mark.timeout(2700)
@pytest.mark.parametrize("checkpointer", CAIRNFLOW)
def test_fails_only_what_sqlite_fails(upstream_run: dict[str, Any], checkpointer: str) -> None:
    tests = upstream_run["tests"]
    per = counts(tests)
    ran = sum(per[REFERENCE].values())
    assert ran >= MIN_TESTS, f"only {ran} upstream tests ran on {REFERENCE}: the suite did not really run"
    assert sum(per[checkpointer].values()) == ran, f"{checkpointer} ran {dict(per[checkpointer])}"
    reference = failures(tests, REFERENCE)
    gaps = known_gaps(checkpointer)
    mine = failures(tests, checkpointer)
    unexpected = {key: error for key, error in mine.items() if key not in reference and key not in gaps}
    fixed = sorted(gaps - set(mine))
    if fixed:  # progress: the list should shrink (not a failure, the list is a ceiling)
        sys.stdout.write(f"{checkpointer}: known gaps now passing, remove them: {fixed}\n")
    listing = "\n".join(f"  {key}: {error}" for key, error in sorted(unexpected.items()))
    assert not unexpected, f"{checkpointer} fails {len(unexpected)} tests SqliteSaver passes:\n{listing}"


# ---------------------------------------------------------------------- the bookkeeping itself


def _entry(checkpointer: str, test_id: str, outcome: str, error: str = "") -> dict[str, str]:
    return {"checkpointer": checkpointer, "id": test_id, "outcome": outcome, "error": error}


def test_same_test_removes_only_the_checkpointer_part() -> None:
    # The "memory" cache parameter has the same id as LangGraph's InMemorySaver.
    assert same_test("t.py::f[memory-memory]", "memory") == "t.py::f[memory]"
    assert same_test("t.py::f[cairnflow_s3-memory]", "cairnflow_s3") == "t.py::f[memory]"
    assert same_test("t.py::f[sqlite_aio]", "sqlite_aio") == "t.py::f"
    assert same_test("t.py::f[False-sqlite-both]", "sqlite") == "t.py::f[False-both]"


def test_parity_is_a_subset_of_sqlite_failures() -> None:
    tests = {
        "t.py::a[sqlite]": _entry("SqliteSaver", "sqlite", "failed", "E1"),
        "t.py::a[cairnflow_file]": _entry("cairnflow_file", "cairnflow_file", "failed", "E1"),
        "t.py::b[sqlite]": _entry("SqliteSaver", "sqlite", "passed"),
        "t.py::b[cairnflow_file]": _entry("cairnflow_file", "cairnflow_file", "passed"),
        "t.py::b[cairnflow_s3]": _entry("cairnflow_s3", "cairnflow_s3", "error", "ConflictError: x"),
    }
    data = {"selected": ["SqliteSaver", "cairnflow_file", "cairnflow_s3"], "tests": tests}
    lines, parity_ok = report(data)
    assert not parity_ok
    assert any(line.startswith("| cairnflow_file |") and line.endswith("| yes |") for line in lines)
    assert any(line.startswith("| cairnflow_s3 |") and "NO: 1 more" in line for line in lines)
    assert "  - t.py::b" in lines
    # Run again alone, the s3 failure passes: it is counted as flaky, and parity holds.
    merge_rerun(data, {"tests": {"t.py::b[cairnflow_s3]": _entry("cairnflow_s3", "cairnflow_s3", "passed")}})
    assert tests["t.py::b[cairnflow_s3]"]["outcome"] == "flaky"
    assert report(data)[1]
