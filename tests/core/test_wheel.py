"""The wheel: built from the sources, installed alone into a fresh venv, it runs a workflow.

The build runs on a copy of the files the build needs (``pyproject.toml``,
the readme and licence if present, and every directory named in
``[tool.setuptools] package-dir``), so that it leaves no ``build/`` or
``*.egg-info`` behind in the work tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.core.support import REPO


def _run(cmd: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _package_dirs(pyproject: str) -> set[str]:
    """The directories of ``[tool.setuptools] package-dir``."""
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10: the table is one inline line
        line = re.search(r"^package-dir\s*=\s*\{(.*)\}\s*$", pyproject, re.MULTILINE)
        assert line is not None, "no package-dir in pyproject.toml"
        return set(re.findall(r'"[^"]+"\s*=\s*"([^"]+)"', line.group(1)))
    return set(tomllib.loads(pyproject)["tool"]["setuptools"]["package-dir"].values())


def _copy_sources(dest: Path) -> None:
    dest.mkdir()
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    for pattern in ("README*", "LICENSE*", "LICENCE*", "NOTICE*"):
        for path in REPO.glob(pattern):
            if path.is_file():
                shutil.copy2(path, dest / path.name)
    package_dirs = _package_dirs((REPO / "pyproject.toml").read_text())
    assert {"core", "savers"} <= package_dirs, package_dirs
    for directory in sorted(package_dirs):
        shutil.copytree(
            REPO / directory, dest / directory, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )


_WORKFLOW = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import cairnflow
    from cairnflow.core import interrupt, task, workflow
    from cairnflow.savers import open_saver

    venv = Path(sys.argv[1]).resolve()
    assert Path(cairnflow.__file__).resolve().is_relative_to(venv), cairnflow.__file__
    try:
        import core  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("a top-level 'core' package is importable")

    @task
    def add(a, b):
        return a + b

    @workflow
    def flow(x):
        total = add(x, 1).result()
        answer = interrupt({"total": total})
        return add(total, answer).result()

    saver = open_saver(sys.argv[2])
    if sys.argv[3] == "run":
        run = flow.run(41, thread_id="wheel", saver=saver)
        assert run.status == "interrupted" and run.interrupt == {"total": 42}, run
    else:
        run = flow.resume(100, thread_id="wheel", saver=saver)
        assert run.status == "completed" and run.result == 142, run
    print("OK", run.status)
    """
)


@pytest.mark.slow  # builds a wheel and installs it into a new venv
def test_wheel_contents_and_install_into_a_fresh_venv(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    _copy_sources(sources)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(sources)], cwd=tmp_path)
    wheels = list(dist.glob("cairnflow-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(metadata_name).decode()
    core_modules = sorted(p.name for p in (REPO / "core").glob("*.py"))
    saver_modules = sorted(p.name for p in (REPO / "savers").glob("*.py"))
    assert "executor.py" in core_modules and "local.py" in saver_modules
    missing = [f"cairnflow/core/{m}" for m in core_modules if f"cairnflow/core/{m}" not in names]
    missing += [f"cairnflow/savers/{m}" for m in saver_modules if f"cairnflow/savers/{m}" not in names]
    missing += [n for n in ("cairnflow/__init__.py", "cairnflow/py.typed") if n not in names]
    # Every module under src/cairnflow, subpackages included (a package missing from
    # pyproject's list would install without it).
    source = REPO / "src" / "cairnflow"
    modules = sorted(f"cairnflow/{p.relative_to(source).as_posix()}" for p in source.rglob("*.py"))
    assert "cairnflow/driver/worker.py" in modules
    missing += [m for m in modules if m not in names]
    assert not missing, f"missing from the wheel: {missing}"
    stray = [n for n in names if not (n.startswith("cairnflow/") or n.startswith("cairnflow-"))]
    assert not stray, f"unexpected top-level entries in the wheel: {stray}"
    assert not [n for n in names if n.startswith(("core/", "savers/", "src/", "tests/"))]
    # The core is standard library only: every requirement belongs to an extra, except rich,
    # which only the CLI imports (lazily), and the installed core below runs without it.
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert all("extra ==" in line or line.startswith("Requires-Dist: rich") for line in requires), requires

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    _run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", str(wheel)], cwd=tmp_path)

    script = tmp_path / "flow.py"
    script.write_text(_WORKFLOW)
    store = f"file://{tmp_path}/store"
    workdir = tmp_path / "elsewhere"  # not the repo: nothing there can shadow the installed package
    workdir.mkdir()
    first = _run([str(python), str(script), str(venv), store, "run"], cwd=workdir)
    assert first.stdout.strip() == "OK interrupted"
    second = _run([str(python), str(script), str(venv), store, "resume"], cwd=workdir)
    assert second.stdout.strip() == "OK completed"
