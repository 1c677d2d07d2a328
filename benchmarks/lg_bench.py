"""Workload (b): LangGraph checkpointers side by side on the same stores and workloads.

* **chat** -- :func:`benchmarks.lg_contenders.chat_graph`, one ``invoke`` per turn
  (the user's message in, one reply appended; LangGraph's default ``async``
  durability), on one thread per contender, turn after turn. Every turn is
  counted at the proxy (requests by kind, bytes, sequential round trips) and
  timed with no injected latency; in a *window* of 5 turns ending at turn N
  (N = 10, 100, 200, 1000) the proxy injects 10 ms per request. After turn N a NEW
  checkpointer instance (new client, empty caches; same process) is built and
  ``graph.get_state`` is called through it (10 ms RTT). Every turn
  checks that the returned state holds 2 x turn messages.
* **functional** -- :func:`benchmarks.lg_contenders.functional_flow` with N
  sequential tasks, one ``invoke``, no injected latency.

Time is bounded: every contender first runs to turn 100 and the functional
workload; the rest of the time goes to growing threads further (see ``run``);
a contender that runs out of its share stops where it is (``reached``) and its
larger-N cells stay empty.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from benchmarks import lg_contenders as lc
from benchmarks.common import StackInfo, Timer, total, unique, writes

WINDOW = 5
RTT_MS = 10
#: The order in which contenders get time to grow towards turn 1000.
PRIORITY = (
    "cairnflow-s3",
    "InMemorySaver",
    "SqliteSaver",
    "lg-checkpoint-s3",
    "lg-checkpoint-tigris",
    "lg-checkpoint-objectstorage",
    "lg-s3-checkpointer",
    "cairnflow-local",
    "cairnflow-gcs",
    "cairnflow-azure",
)

#: The functional workload's N = 1000 run is skipped when N = 100 predicts more than this.
FN_LIMIT_S = 30.0


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


class Runner:
    """One contender's chat thread, grown turn by turn."""

    def __init__(self, name: str, info: StackInfo) -> None:
        self.name = name
        self.info = info
        self.store, self.label = lc.CONTENDERS[name]
        self.prefix = unique(f"lg-{name}")
        self.thread = unique("chat")
        self.turn = 0
        self.per_turn: dict[str, list[Any]] = {
            k: []
            for k in ("wall_ms", "rtt_ms", "requests", "writes", "bytes_in", "bytes_out", "chain", "counts")
        }
        self.windows: dict[int, dict[str, Any]] = {}
        self.cold: dict[int, dict[str, Any]] = {}
        self.functional: dict[int, dict[str, Any]] = {}
        self.error: str | None = None
        self.error_at: str | None = None
        self.first_wrong_turn: int | None = None
        self.wrong_detail: str | None = None
        self.contender: lc.Contender | None = None
        self.graph: Any = None
        self.grow_s = 0.0
        try:
            self.contender = lc.build(name, info, self.prefix)
            self.graph = lc.chat_graph(self.contender.saver)
        except Exception as exc:
            self.fail(exc, "build")

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, exc: BaseException, where: str) -> None:
        self.error = _err(exc)
        self.error_at = where
        self.tb = traceback.format_exc(limit=-4)

    def one_turn(self, rtt: float) -> None:
        assert self.contender is not None
        meter = self.contender.meter
        self.turn += 1
        config = {"configurable": {"thread_id": self.thread}}
        meter.reset()
        t0 = time.perf_counter()
        out = self.graph.invoke(lc.user_message(self.turn), config)
        wall = time.perf_counter() - t0
        stats = meter.stats()
        counts = stats["counts"]
        row = self.per_turn
        row["wall_ms"].append(round(wall * 1000, 3))
        row["rtt_ms"].append(rtt)
        row["requests"].append(total(counts))
        row["writes"].append(writes(counts))
        row["bytes_in"].append(sum(stats["bytes_in"].values()))
        row["bytes_out"].append(sum(stats["bytes_out"].values()))
        row["chain"].append(stats.get("chain"))
        row["counts"].append(counts)
        got = len(out.get("messages", [])) if isinstance(out, dict) else -1
        if got != 2 * self.turn and self.first_wrong_turn is None:
            self.first_wrong_turn = self.turn
            self.wrong_detail = f"turn {self.turn} returned {got} messages, expected {2 * self.turn}"

    def grow_to(self, target: int, *, deadline: float | None = None) -> bool:
        """Run turns up to ``target`` (the last WINDOW of them with injected RTT). False if out of time."""
        if not self.ok or self.contender is None:
            return False
        meter = self.contender.meter
        t0 = time.monotonic()
        try:
            while self.turn < target:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                in_window = self.turn + 1 > target - WINDOW
                rtt = RTT_MS if in_window else 0
                meter.set_rtt(rtt)
                self.one_turn(rtt)
            meter.set_rtt(0)
        except Exception as exc:
            meter.set_rtt(0)
            self.fail(exc, f"chat turn {self.turn}")
            return False
        finally:
            self.grow_s += time.monotonic() - t0
        self._window(target)
        self._cold(target)
        return True

    def _window(self, n: int) -> None:
        rows = self.per_turn
        idx = [i for i in range(max(0, n - WINDOW), n) if rows["rtt_ms"][i] == RTT_MS]
        idx0 = list(range(max(0, n - 2 * WINDOW), max(0, n - WINDOW)))
        if not idx:
            return

        def mean(key: str, ids: list[int]) -> float | None:
            vals = [rows[key][i] for i in ids if rows[key][i] is not None]
            return sum(vals) / len(vals) if vals else None

        counts: dict[str, float] = {}
        for i in idx:
            for kind, c in rows["counts"][i].items():
                counts[kind] = counts.get(kind, 0) + c / len(idx)
        self.windows[n] = {
            "turns": [i + 1 for i in idx],
            "ms_per_turn_rtt": mean("wall_ms", idx),
            "ms_per_turn_0": mean("wall_ms", idx0) if idx0 else None,
            "requests": mean("requests", idx),
            "writes": mean("writes", idx),
            "counts": counts,
            "bytes_in": mean("bytes_in", idx),
            "bytes_out": mean("bytes_out", idx),
            "chain": mean("chain", idx),
        }

    def _cold(self, n: int) -> None:
        """get_state through a NEW checkpointer instance (new client, empty caches), 10 ms RTT."""
        if self.store == "memory" or not self.ok:
            return
        fresh: lc.Contender | None = None
        try:
            fresh = lc.build(self.name, self.info, self.prefix)
            graph = lc.chat_graph(fresh.saver)
            meter = fresh.meter
            meter.set_rtt(RTT_MS)
            meter.reset()
            t0 = time.perf_counter()
            state = graph.get_state({"configurable": {"thread_id": self.thread}})
            wall = time.perf_counter() - t0
            stats = meter.stats()
            meter.set_rtt(0)
        except Exception as exc:
            self.cold[n] = {"error": _err(exc)}
            return
        finally:
            if fresh is not None:
                fresh.meter.set_rtt(0)
                fresh.close()
        messages = len((state.values or {}).get("messages", [])) if state is not None else 0
        self.cold[n] = {
            "counts": stats["counts"],
            "requests": total(stats["counts"]),
            "bytes_read": sum(stats["bytes_out"].values()),
            "chain": stats.get("chain"),
            "wall_ms": wall * 1000,
            "messages": messages,
            "correct": messages == 2 * n,
        }

    def run_functional(self, n: int) -> None:
        if not self.ok or self.contender is None:
            return
        meter = self.contender.meter
        try:
            flow = lc.functional_flow(self.contender.saver)
            meter.set_rtt(0)
            meter.reset()
            t0 = time.perf_counter()
            result = flow.invoke(n, {"configurable": {"thread_id": unique("fn")}})
            wall = time.perf_counter() - t0
            stats = meter.stats()
        except Exception as exc:
            self.functional[n] = {"error": _err(exc)}
            return
        counts = stats["counts"]
        self.functional[n] = {
            "wall_ms": wall * 1000,
            "ms_per_task": wall * 1000 / n,
            "counts": counts,
            "requests_per_task": total(counts) / n,
            "writes_per_task": writes(counts) / n,
            "bytes_in_per_task": sum(stats["bytes_in"].values()) / n,
            "chain_per_task": (stats["chain"] / n) if stats.get("chain") is not None else None,
            "correct": result == n * (n - 1) // 2,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "store": self.store,
            "reached": self.turn,
            "grow_s": self.grow_s,
            "error": self.error,
            "error_at": self.error_at,
            "first_wrong_turn": self.first_wrong_turn,
            "wrong_detail": self.wrong_detail,
            "windows": self.windows,
            "cold": self.cold,
            "functional": self.functional,
            "per_turn": self.per_turn,
        }

    def close(self) -> None:
        if self.contender is not None:
            self.contender.close()


def run(info: StackInfo, *, quick: bool, deadline: float, log: Any = print) -> dict[str, Any]:
    """Run workload (b) until ``deadline`` (time.monotonic()) at the latest."""
    timer = Timer()
    marks = (10, 100) if quick else (10, 100, 200, 1000)
    fn_sizes = (10, 100) if quick else (10, 100, 1000)
    runners = {name: Runner(name, info) for name in PRIORITY}
    for name, r in runners.items():
        if not r.ok:
            log(f"lg: {name} could not be built: {r.error}")

    def grow(r: Runner, target: int, share: float | None = None) -> None:
        until = None if share is None else time.monotonic() + share
        for m in marks:
            if r.turn < m <= target and not r.grow_to(m, deadline=until):
                break
        log(
            f"lg: {r.name} chat at turn {r.turn} ({r.grow_s:.0f}s) at {timer.elapsed():.0f}s"
            + (f" ERROR {r.error}" if r.error else "")
        )

    # Phase 1: every contender to turn 100, in priority order.
    for name in PRIORITY:
        grow(runners[name], 100)

    # Phase 2: the functional workload. N = 1000 only when N = 100 suggests it takes
    # under FN_LIMIT_S (per-task cost may grow with N: objectstorage's does).
    for name in PRIORITY:
        r = runners[name]
        for n in fn_sizes:
            t100 = r.functional.get(100, {}).get("wall_ms")
            if n == 1000 and t100 is not None and t100 * 10 * 1.5 / 1000 > FN_LIMIT_S:
                r.functional[n] = {"skipped": f"predicted over {FN_LIMIT_S:.0f} s"}
                continue
            r.run_functional(n)
        log(f"lg: {name} functional done at {timer.elapsed():.0f}s")

    # Phase 3: grow towards the larger marks with the time that is left: ours on S3 and
    # the in-process baselines to 1000 (ours may take up to 45% of what is left), then
    # the public S3 checkpointers to 200 in equal shares, then the rest as time allows.
    if not quick:
        plan: list[tuple[str, int, float]] = [
            ("cairnflow-s3", 1000, 0.45),
            ("InMemorySaver", 1000, 0.2),
            ("SqliteSaver", 1000, 0.2),
        ]
        public = [n for n in PRIORITY if n.startswith("lg-")]
        for i, name in enumerate(public):
            plan.append((name, 200, 1.0 / (len(public) - i + 1)))
        for name in ("cairnflow-local", "cairnflow-gcs", "cairnflow-azure"):
            plan.append((name, 200, 0.34))
        for name in [*public, "cairnflow-local", "cairnflow-gcs", "cairnflow-azure"]:
            plan.append((name, 1000, 0.25))
        for name, target, fraction in plan:
            r = runners[name]
            left = deadline - time.monotonic()
            if left <= 5:
                break
            if r.ok and r.turn < target:
                grow(r, target, share=left * fraction)

    out = {name: r.summary() for name, r in runners.items()}
    for r in runners.values():
        r.close()
    return {
        "contenders": out,
        "marks": list(marks),
        "window": WINDOW,
        "rtt_ms": RTT_MS,
        "elapsed_s": timer.elapsed(),
        "quick": quick,
    }
