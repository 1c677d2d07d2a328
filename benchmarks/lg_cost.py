"""What a LangGraph chat turn costs with each checkpointer: requests, round trips, bytes, dollars.

    bash benchmarks/run.sh langgraph            # sets up .venv-bench, runs this, renders the doc
    .venv-bench/bin/python -m benchmarks.lg_cost [--quick] [--out NAME] [--no-report]

**Workload.** :func:`benchmarks.lg_contenders.chat_graph`: one ``invoke`` per turn
(the user's message in, one ~230-byte reply appended, LangGraph's default
durability). For each mark N (10, 100, 1000) every contender gets a NEW thread
whose history is built quickly, then real turns are counted:

* N = 10: turns 1..10 are run for real;
* otherwise the thread is *seeded* through the checkpointer's own ``put`` with the
  checkpoint LangGraph itself produced after turn N - W - 1 (taken from one
  reference run on ``InMemorySaver``), then one real warm-up turn is run.

The last W turns up to N (N = 10: 5; N = 100 and 1000: :data:`WINDOW` = 80, a
whole snapshot cycle) are measured one by one: requests by kind, request/response body
bytes and (over the last :data:`RTT_TURNS`) sequential round trips at the proxy
(``benchmarks/meter.py``), DynamoDB calls and request units at
:class:`benchmarks.lg_ddb.CapacityMeter`. Every turn checks that the state holds
2 x turn messages. After the window, the same instance runs turn N + 1 with
``durability="exit"`` and turn N + 2 through ``ainvoke``; a NEW checkpointer
instance runs turn N + 3 (a serverless worker: new process, empty caches) and
another NEW instance reads ``get_state`` (cold read).

**Dollars** per 1,000 turns at list prices (:data:`PRICES`): S3 requests by
class, DynamoDB on-demand request units. Storage and data transfer are not
included (checkpoint retention is the user's choice; in-region transfer is free).

**Race** (:mod:`benchmarks.lg_race`): two instances resume one thread from the same
checkpoint at once; does the second commit fork the thread or fail?

Nothing is timed: every figure is a count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import lg_contenders as lc
from benchmarks.common import (
    ACCESS_KEY,
    BUCKET,
    REGION,
    RESULTS,
    ROOT,
    SECRET_KEY,
    StackInfo,
    start_moto,
    start_proxy,
    unique,
    versions,
)

CONTENDERS = (
    "cairnflow-s3",
    "InMemorySaver",
    "SqliteSaver",
    "lg-checkpoint-s3",
    "lg-checkpoint-tigris",
    "lg-checkpoint-objectstorage",
    "lg-s3-checkpointer",
    "DynamoDBSaver",
)
IN_PROCESS = ("InMemorySaver", "SqliteSaver")
MARKS = (10, 100, 1000)
#: Turns measured per mark. Long enough to hold a whole snapshot cycle of a saver that
#: writes a list channel as a growing suffix and a full snapshot now and then (cairnflow's
#: format 2: about every 33 turns of this chat at N = 1000; a fixed 32 KiB limit made it
#: every 73), so the mean is the amortised cost, not a point on the sawtooth.
WINDOW = 80
#: Of those, the last few run with RTT_MS injected, for the round-trip count.
RTT_TURNS = 5
#: Injected per request while measuring, so that requests sent in parallel overlap on the
#: wire and the proxy counts them as one round trip (on loopback a "parallel" pair can
#: finish one before the other starts). Only the round-trip count depends on it.
RTT_MS = 20

#: US East (N. Virginia) list prices, USD, checked 2026-12-07 (see docs/benchmarks.md).
PRICES = {
    "s3_write_per_1k": 0.005,  # S3 Standard PUT, COPY, POST, LIST requests, per 1,000
    "s3_read_per_1k": 0.0004,  # S3 Standard GET, SELECT and all other requests, per 1,000
    "ddb_wru_per_million": 0.625,  # DynamoDB on-demand write request units, per million
    "ddb_rru_per_million": 0.125,  # DynamoDB on-demand read request units, per million
}
S3_WRITE_CLASS = ("PUT", "POST", "LIST")
S3_READ_CLASS = ("GET", "HEAD")


def dollars(s3: dict[str, float], wru: float = 0.0, rru: float = 0.0) -> float:
    """List-price request cost of one operation (DELETE is free on S3)."""
    writes = sum(s3.get(k, 0) for k in S3_WRITE_CLASS)
    reads = sum(s3.get(k, 0) for k in S3_READ_CLASS)
    return (
        writes * PRICES["s3_write_per_1k"] / 1000
        + reads * PRICES["s3_read_per_1k"] / 1000
        + wru * PRICES["ddb_wru_per_million"] / 1e6
        + rru * PRICES["ddb_rru_per_million"] / 1e6
    )


def measure(c: lc.Contender, fn: Any, *, rtt: bool = True) -> tuple[Any, dict[str, Any]]:
    """Run ``fn()`` with the contender's meters reset; return its result and the counts."""
    c.meter.reset()
    if c.capacity is not None:
        c.capacity.reset()
    c.meter.set_rtt(RTT_MS if rtt else 0)
    try:
        result = fn()
    finally:
        c.meter.set_rtt(0)
    stats = c.meter.stats()
    counts = dict(stats["counts"])
    row: dict[str, Any] = {
        "requests": sum(counts.values()),
        "chain": stats.get("chain"),
        "bytes_written": sum(stats["bytes_in"].values()),
        "bytes_read": sum(stats["bytes_out"].values()),
    }
    if not rtt:
        row["chain"] = None  # counted only with latency injected (see RTT_MS)
    s3 = dict(counts)
    if c.capacity is not None:
        cap = c.capacity.stats()
        # DynamoDB calls are POSTs on the wire: the rest of the POSTs are S3's.
        s3["POST"] = s3.get("POST", 0) - sum(cap["calls"].values())
        if s3["POST"] < 0:
            # The wrapper saw calls the wire did not: the two counts disagree.
            row["ddb_count_mismatch"] = -s3["POST"]
        s3 = {k: v for k, v in s3.items() if v}
        row.update(ddb_calls=cap["calls"], wru=cap["wru"], rru=cap["rru"])
        row["by_kind"] = {**s3, **cap["calls"]}
    else:
        row["by_kind"] = counts
    row["s3"] = s3
    row["usd"] = dollars(s3, row.get("wru", 0.0), row.get("rru", 0.0))
    return result, row


def _messages(state: Any) -> int:
    values = state.get("messages", []) if isinstance(state, dict) else []
    return len(values)


class Reference:
    """One InMemorySaver thread run turn by turn; the checkpoints to seed other threads with."""

    def __init__(self, seeds: list[int]) -> None:
        from langgraph.checkpoint.memory import InMemorySaver

        self.saver = InMemorySaver()
        graph = lc.chat_graph(self.saver)
        config = {"configurable": {"thread_id": "reference"}}
        self.at: dict[int, tuple[Any, Any]] = {}
        for turn in range(1, max(seeds, default=0) + 1):
            graph.invoke(lc.user_message(turn), config)
            if turn in seeds:
                got = self.saver.get_tuple(config)
                assert got is not None
                self.at[turn] = (got.checkpoint, got.metadata)


def reversioned(checkpoint: Any, saver: Any) -> Any:
    """The reference checkpoint with channel versions in ``saver``'s own scheme.

    InMemorySaver's versions are strings (``"<counter>.<random>"``); several savers keep
    the base class's integers and cannot continue from a string. The k-th version of the
    reference becomes the k-th version ``saver.get_next_version`` makes.
    """
    made: dict[int, Any] = {0: None}

    def conv(v: Any) -> Any:
        k = int(str(v).split(".")[0])
        top = max(made)
        while top < k:
            made[top + 1] = saver.get_next_version(made[top], None)
            top += 1
        return made[k]

    out = dict(checkpoint)
    out["channel_versions"] = {ch: conv(v) for ch, v in checkpoint["channel_versions"].items()}
    out["versions_seen"] = {
        node: {ch: conv(v) for ch, v in seen.items()} for node, seen in checkpoint["versions_seen"].items()
    }
    return out


def plan(n: int) -> tuple[int, int]:
    """(seed turn or 0 for a thread run from turn 1, turns measured) for mark ``n``."""
    if n <= 20:
        return 0, n // 2
    window = min(WINDOW, n - 20)
    return n - window - 1, window


def run_mark(
    name: str, c: lc.Contender, info: StackInfo, prefix: str, n: int, ref: Reference
) -> dict[str, Any]:
    seed, window = plan(n)
    graph = lc.chat_graph(c.saver)
    thread = unique(f"chat{n}")
    config = {"configurable": {"thread_id": thread}}
    out: dict[str, Any] = {"seeded_at": seed, "window": window, "turns": []}
    turn = 0
    if seed:
        checkpoint, metadata = ref.at[seed]
        checkpoint = reversioned(checkpoint, c.saver)
        put_config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        c.saver.put(put_config, checkpoint, metadata, dict(checkpoint["channel_versions"]))
        turn = seed
    while turn < n:
        turn += 1
        if turn <= n - window:
            state = graph.invoke(lc.user_message(turn), config)
            row = None
        else:
            state, row = measure(
                c, lambda t=turn: graph.invoke(lc.user_message(t), config), rtt=turn > n - RTT_TURNS
            )
            row["turn"] = turn
            out["turns"].append(row)
        if _messages(state) != 2 * turn and "wrong" not in out:
            out["wrong"] = f"turn {turn} returned {_messages(state)} messages, expected {2 * turn}"
    if name in IN_PROCESS:
        return out
    # The same warm instance, one turn with durability "exit" (one write at the end).
    state, row = measure(c, lambda: graph.invoke(lc.user_message(n + 1), config, durability="exit"))
    row["correct"] = _messages(state) == 2 * (n + 1)
    out["exit_turn"] = row
    # The same warm instance through LangGraph's async API (one event loop per call).
    try:
        state, row = measure(c, lambda: asyncio.run(graph.ainvoke(lc.user_message(n + 2), config)))
        row["correct"] = _messages(state) == 2 * (n + 2)
        out["async_turn"] = row
    except Exception as exc:
        out["async_turn"] = {"error": _err(exc)}
    # A serverless worker: a NEW instance (empty caches) runs the next turn. (The async
    # turn may not have happened: count from what the thread holds, read uncounted.)
    expected = len(graph.get_state(config).values.get("messages", [])) + 2
    fresh = lc.build(name, info, prefix)
    try:
        fgraph = lc.chat_graph(fresh.saver)
        state, row = measure(fresh, lambda: fgraph.invoke(lc.user_message(n + 3), config))
        row["correct"] = _messages(state) == expected
        out["new_instance_turn"] = row
    finally:
        fresh.close()
    cold = lc.build(name, info, prefix)
    try:
        cgraph = lc.chat_graph(cold.saver)
        snap, row = measure(cold, lambda: cgraph.get_state(config))
        row["correct"] = _messages(snap.values) == expected
        out["cold_get_state"] = row
    finally:
        cold.close()
    return out


def summarise(mark: dict[str, Any]) -> dict[str, Any]:
    """Means over the measured window."""
    rows = mark["turns"]
    if not rows:
        return {}
    k = len(rows)

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    kinds: dict[str, float] = {}
    for r in rows:
        for kind, v in r["by_kind"].items():
            kinds[kind] = kinds.get(kind, 0) + v / k
    out = {
        "requests": mean("requests"),
        "chain": mean("chain"),
        "bytes_written": mean("bytes_written"),
        "bytes_read": mean("bytes_read"),
        "usd_per_1000_turns": 1000 * (mean("usd") or 0.0),
        "by_kind": kinds,
        "max_bytes_written": max(r["bytes_written"] for r in rows),
    }
    if any("wru" in r for r in rows):
        out["wru"] = mean("wru")
        out["rru"] = mean("rru")
    return out


@contextlib.contextmanager
def s3_stack() -> Iterator[StackInfo]:
    """moto (S3 and DynamoDB) behind one counting proxy; the bucket created uncounted."""
    import boto3

    work = Path(tempfile.mkdtemp(prefix="cairnflow-lgcost-"))
    procs = []
    try:
        moto = start_moto(work)
        procs.append(moto)
        proxy = start_proxy(moto.url, "s3", work)
        procs.append(proxy)
        boto3.client(
            "s3",
            endpoint_url=moto.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ).create_bucket(Bucket=BUCKET)
        local = work / "local"
        local.mkdir()
        env = {
            "AWS_ENDPOINT_URL_S3": proxy.url,
            "AWS_ENDPOINT_URL": proxy.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "LANGSMITH_TRACING": "false",
            "LANGCHAIN_TRACING_V2": "false",
        }
        info = StackInfo({"s3": moto.url}, {"s3": proxy.url}, str(local), env)
        info.apply_env()
        yield info
    finally:
        for proc in reversed(procs):
            proc.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _err(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def run(info: StackInfo, *, quick: bool, log: Any) -> dict[str, Any]:
    from benchmarks import lg_race

    marks = MARKS[:2] if quick else MARKS
    seeds = [plan(n)[0] for n in marks if plan(n)[0]]
    t0 = time.monotonic()
    ref = Reference(seeds)
    log(f"reference thread to turn {max(seeds, default=0)} in {time.monotonic() - t0:.0f}s")
    results: dict[str, Any] = {}
    for name in CONTENDERS:
        store, label = lc.CONTENDERS[name]
        entry: dict[str, Any] = {"label": label, "store": store, "marks": {}, "summary": {}}
        results[name] = entry
        prefix = unique(f"lgc-{name}")
        try:
            c = lc.build(name, info, prefix)
        except Exception as exc:
            entry["error"] = f"build: {_err(exc)}"
            log(f"{name}: could not be built: {entry['error']}")
            continue
        try:
            for n in marks:
                t1 = time.monotonic()
                try:
                    mark = run_mark(name, c, info, prefix, n, ref)
                except Exception as exc:
                    entry["marks"][str(n)] = {"error": _err(exc), "trace": traceback.format_exc(limit=-3)}
                    log(f"{name}: N = {n} FAILED {_err(exc)}")
                    continue
                entry["marks"][str(n)] = mark
                entry["summary"][str(n)] = summarise(mark)
                s = entry["summary"][str(n)]
                log(
                    f"{name}: N = {n}: {s.get('requests', 0):.1f} req, {s.get('chain') or 0:.1f} rt, "
                    f"{s.get('bytes_written', 0) / 1024:.1f} KiB written, "
                    f"${s.get('usd_per_1000_turns', 0):.4f}/1k turns ({time.monotonic() - t1:.0f}s)"
                )
        finally:
            c.close()
        try:
            entry["race"] = lg_race.race(name, info, unique(f"lgr-{name}"))
        except Exception as exc:
            entry["race"] = {"outcome": "error", "error": _err(exc)}
        log(f"{name}: race: {entry['race'].get('outcome')}")
    return {
        "contenders": results,
        "marks": list(marks),
        "window": WINDOW,
        "rtt_turns": RTT_TURNS,
        "prices": PRICES,
        "elapsed_s": time.monotonic() - t0,
    }


def _git_head() -> str:
    """The last commit that changed cairnflow's code (what the cairnflow rows measure)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        fmt = ["--format=%h %cd", "--date=format:%Y-%m-%d %H:%M"]
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", *fmt, "--", "src", "core", "savers"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip()
    return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LangGraph chat-turn cost per checkpointer")
    parser.add_argument("--quick", action="store_true", help="N = 10 and 100 only; results/quick/")
    parser.add_argument("--out", default="langgraph_cost", help="results file name (no .json)")
    parser.add_argument("--no-report", action="store_true", help="do not render docs/benchmarks.md")
    parser.add_argument(
        "--commit", default=None, help="label of the cairnflow code measured (default: its last commit)"
    )
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        sys.stderr.write(f"[lg-cost {time.strftime('%H:%M:%S')}] {msg}\n")
        sys.stderr.flush()

    started = time.monotonic()
    commit = args.commit or _git_head()
    with s3_stack() as info:
        payload = run(info, quick=args.quick, log=log)
    payload.update(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        commit=commit,
        versions={**versions(), **_extra_versions()},
        command="bash benchmarks/run.sh langgraph" + (" --quick" if args.quick else ""),
        run_s=time.monotonic() - started,
    )
    out_dir = RESULTS / "quick" if args.quick else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.quick:
        (out_dir / ".gitignore").write_text("*\n")  # development output
    path = out_dir / f"{args.out}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=None, separators=(",", ":"), default=str) + "\n")
    os.replace(tmp, path)
    log(f"wrote {path.relative_to(ROOT)} in {payload['run_s']:.0f}s")
    if not args.no_report and not args.quick:
        from benchmarks import lg_report

        log(f"rendered {lg_report.render()}")
    return 0


def _extra_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("langgraph-checkpoint-aws",):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


if __name__ == "__main__":
    sys.exit(main())
