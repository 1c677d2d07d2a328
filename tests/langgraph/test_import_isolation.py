"""Only cairnflow.langgraph may import LangGraph: the core and the backends never do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import cairnflow, cairnflow.core, cairnflow.savers
from cairnflow.core import codec, counting, executor, keys, log
from cairnflow.savers import open_saver
saver = open_saver("file://" + sys.argv[1])
head = saver.append("t", None, [{"op": "x"}], status="running")
assert saver.latest("t").seq == head.seq
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("langgraph", "langchain_core", "boto3"))
print(",".join(heavy))
"""


def test_core_and_file_backend_never_import_langgraph(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"


def test_cairnflow_langgraph_does_import_langgraph() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, cairnflow.langgraph; print('langgraph' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "True"
