"""Cold-start cost of cairnflow in AWS Lambda: import time and deployment package size.

    .venv/bin/python benchmarks/coldstart.py [--repeat 11] [--top 15] [--json out.json] [--no-boto3-package]

What it measures, each in fresh interpreter processes, median of ``--repeat`` runs:

1. The deployment package of examples/aws_lambda for the S3 extra, boto3 excluded
   (the Lambda runtime provides it): the cairnflow wheel (built from this checkout
   in a temporary copy) installed with ``pip install --no-deps --no-compile --target``,
   plus ``handler.py`` and ``approval_flow.py``, zipped; bytes zipped and unzipped.
   For comparison, the same with boto3 and its dependencies bundled
   (``cairnflow[s3]``; needs the package index; ``--no-boto3-package`` skips it).
2. ``python -X importtime`` of ``import cairnflow.core`` and of ``import handler``
   (the Lambda handler module, which also builds its boto3 client and saver), both
   from that package directory with boto3 from this interpreter's site-packages, as
   in Lambda; with the top modules by cumulative import time. Twice: with the
   package's ``.pyc`` files cached, and with none (``PYTHONDONTWRITEBYTECODE``, as
   in Lambda's read-only ``/var/task`` when no ``.pyc`` is shipped).
3. Wall time of ``import handler`` (imports plus building the client), and of an
   empty interpreter start for reference.

No network access: the handler's client is built but sends no request.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_DIR = ROOT / "examples" / "aws_lambda"
HANDLER_FILES = ("handler.py", "approval_flow.py")
MARK = "@@cairnflow-coldstart-mark"
#: What handler.py imports, without running its module body (which builds the client).
HANDLER_IMPORTS = (
    "import boto3, botocore.config, approval_flow, cairnflow.savers, cairnflow.savers.s3, "
    "cairnflow.driver, cairnflow.driver.aws"
)
HANDLER_ENV = {
    "CAIRNFLOW_URL": "s3://coldstart-bench/approvals",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "-q", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise subprocess.CalledProcessError(proc.returncode, proc.args)


def tree_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def zip_dir(src: Path, dest: Path) -> int:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src))
    return dest.stat().st_size


def build_wheel(work: Path) -> Path:
    """The cairnflow wheel, built from a copy of the checkout (the tree stays untouched)."""
    tree = work / "src-tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("src", "core", "savers"):
        shutil.copytree(ROOT / name, tree / name, ignore=ignore)
    pip("wheel", "--no-deps", "-w", str(work / "wheel"), str(tree))
    [wheel] = (work / "wheel").glob("cairnflow-*.whl")
    return wheel


def build_package(work: Path, wheel: Path, name: str, *, with_boto3: bool) -> dict[str, Any]:
    pkg = work / name
    if with_boto3:
        pip("install", "--no-compile", "--target", str(pkg), f"{wheel}[s3]")
    else:
        pip("install", "--no-deps", "--no-compile", "--target", str(pkg), str(wheel))
    for file in HANDLER_FILES:
        shutil.copy2(LAMBDA_DIR / file, pkg / file)
    unzipped, files = tree_size(pkg)
    zipped = zip_dir(pkg, work / f"{name}.zip")
    return {"dir": str(pkg), "zip_bytes": zipped, "unzipped_bytes": unzipped, "files": files}


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, depth, self us, cumulative us) for each import after the marker."""
    rows = []
    seen_mark = False
    for line in stderr.splitlines():
        if line.startswith(MARK):
            seen_mark = True
            continue
        if not seen_mark or not line.startswith("import time:") or "[us]" in line:
            continue
        fields = line[len("import time:") :].split("|")
        raw_name = fields[2]
        stripped = raw_name.lstrip(" ")
        depth = (len(raw_name) - len(stripped) - 1) // 2
        rows.append((stripped, depth, int(fields[0]), int(fields[1])))
    return rows


def importtime_run(statement: str, pythonpath: Path, env: dict[str, str]) -> list[tuple[str, int, int, int]]:
    code = f"import sys; sys.stderr.write({MARK!r} + '\\n'); {statement}"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env={**os.environ, **env, "PYTHONPATH": str(pythonpath)},
        cwd=pythonpath,
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_importtime(proc.stderr)


def measure_imports(
    statement: str, pythonpath: Path, env: dict[str, str], repeat: int, top: int
) -> dict[str, Any]:
    runs = [importtime_run(statement, pythonpath, env) for _ in range(repeat)]
    totals = [sum(cum for _, depth, _, cum in rows if depth == 0) for rows in runs]
    per_module: dict[str, dict[str, list[int]]] = {}
    depth_of: dict[str, int] = {}
    for rows in runs:
        for name, depth, self_us, cum in rows:
            entry = per_module.setdefault(name, {"self": [], "cumulative": []})
            entry["self"].append(self_us)
            entry["cumulative"].append(cum)
            depth_of.setdefault(name, depth)
    table: list[dict[str, Any]] = sorted(
        (
            {
                "module": name,
                "depth": depth_of[name],
                "cumulative_ms": statistics.median(v["cumulative"]) / 1000,
                "self_ms": statistics.median(v["self"]) / 1000,
            }
            for name, v in per_module.items()
        ),
        key=lambda row: -float(row["cumulative_ms"]),
    )
    return {
        "statement": statement,
        "total_ms": statistics.median(totals) / 1000,
        "min_ms": min(totals) / 1000,
        "modules": len(runs[0]),
        "top": table[:top],
    }


def wall_time(code: str, pythonpath: Path, env: dict[str, str], repeat: int) -> float:
    """Median seconds for ``code`` measured inside fresh processes (it prints its own duration)."""
    samples = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env, "PYTHONPATH": str(pythonpath)},
            cwd=pythonpath,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def process_start(repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def print_imports(title: str, result: dict[str, Any]) -> None:
    print(
        f"\n{title}: {result['total_ms']:.1f} ms median (min {result['min_ms']:.1f}), "
        f"{result['modules']} modules"
    )
    print(f"  {'cumulative ms':>13} {'self ms':>8}  module")
    for row in result["top"]:
        indent = "  " * int(row["depth"])
        print(f"  {row['cumulative_ms']:13.1f} {row['self_ms']:8.2f}  {indent}{row['module']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-boto3-package", action="store_true", help="skip the package with boto3 bundled")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "repeat": args.repeat,
    }
    print(f"cairnflow cold start, {report['date']}, Python {report['python']}, {report['machine']}")
    with tempfile.TemporaryDirectory(prefix="cairnflow-coldstart-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        report["wheel_bytes"] = wheel.stat().st_size
        package = build_package(work, wheel, "package", with_boto3=False)
        report["package"] = {k: v for k, v in package.items() if k != "dir"}
        print(
            f"\nLambda package (cairnflow + handler, boto3 excluded): {package['zip_bytes']:,} bytes zipped, "
            f"{package['unzipped_bytes']:,} unzipped, {package['files']} files "
            f"(wheel {wheel.stat().st_size:,})"
        )
        if not args.no_boto3_package:
            try:
                bundled = build_package(work, wheel, "package-boto3", with_boto3=True)
            except subprocess.CalledProcessError as exc:
                print(f"(package with boto3 bundled: not built, {exc})")
            else:
                report["package_with_boto3"] = {k: v for k, v in bundled.items() if k != "dir"}
                print(
                    f"Same with boto3 bundled (cairnflow[s3]): {bundled['zip_bytes']:,} bytes zipped, "
                    f"{bundled['unzipped_bytes']:,} unzipped, {bundled['files']} files"
                )

        pkg = Path(package["dir"])
        report["process_start_ms"] = process_start(args.repeat) * 1000
        print(f"\nEmpty interpreter start (python -c pass): {report['process_start_ms']:.1f} ms")
        for label, env in (
            ("no_pyc", {"PYTHONDONTWRITEBYTECODE": "1"}),
            ("pyc", {}),
        ):
            if label == "pyc":  # write the package's .pyc files once, then measure with them
                subprocess.run([sys.executable, "-m", "compileall", "-q", str(pkg)], check=True)
            core = measure_imports("import cairnflow.core", pkg, env, args.repeat, args.top)
            handler = measure_imports("import handler", pkg, {**HANDLER_ENV, **env}, args.repeat, args.top)
            timed = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
            wall = wall_time(timed.format("import handler"), pkg, {**HANDLER_ENV, **env}, args.repeat)
            imports_only = wall_time(timed.format(HANDLER_IMPORTS), pkg, env, args.repeat)
            report[label] = {
                "core": core,
                "handler": handler,
                "handler_wall_ms": wall * 1000,
                "handler_imports_only_wall_ms": imports_only * 1000,
            }
            what = (
                "package .pyc cached" if label == "pyc" else "no .pyc for the package (read-only /var/task)"
            )
            print(f"\n=== {what}")
            print_imports("import cairnflow.core", core)
            print_imports("import handler", handler)
            print(
                f"\nimport handler, wall time: {wall * 1000:.1f} ms, of which the same imports without "
                f"building the client and saver: {imports_only * 1000:.1f} ms"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
