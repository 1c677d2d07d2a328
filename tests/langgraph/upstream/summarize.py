"""Counts per checkpointer and failure groups from a LangGraph upstream-suite run.

``python summarize.py RESULTS.json [--markdown OUT.md]`` reads what the
``cairnflow_upstream`` plugin wrote, prints one line per checkpointer (passed, failed,
errors, skipped, xfailed) side by side, then every cairnflow failure grouped by the
first line of its error, and the parity verdict: a cairnflow checkpointer is at parity
when each test it fails also fails with SqliteSaver (the same test, the same other
parameters). Exit status 0 at parity for every cairnflow checkpointer run, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REFERENCE = "SqliteSaver"
BAD = ("failed", "error")
#: "flaky": failed in the run, passed when run again alone (shown, never hidden).
OUTCOMES = ("passed", "flaky", "failed", "error", "skipped", "xfailed", "xpassed")


def same_test(nodeid: str, checkpointer_id: str) -> str:
    """The node id without the checkpointer's part of its id: the same test on another saver.

    One occurrence is removed: another parameter can have the same id ("memory" cache),
    and then removing either leaves the same text.
    """
    head, sep, params = nodeid.partition("[")
    if not sep:
        return nodeid
    parts = params[:-1].split("-")
    if checkpointer_id in parts:
        parts.remove(checkpointer_id)
    return f"{head}[{'-'.join(parts)}]" if parts else head


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def suspects(tests: dict[str, dict[str, str]]) -> list[str]:
    """Node ids cairnflow failed where SqliteSaver passed the same test: worth a second run."""
    reference = failures(tests, REFERENCE)
    return sorted(
        nodeid
        for nodeid, e in tests.items()
        if e["checkpointer"].startswith("cairnflow")
        and e["outcome"] in BAD
        and same_test(nodeid, e["id"]) not in reference
    )


def merge_rerun(data: dict[str, Any], rerun: dict[str, Any]) -> None:
    """Tests that failed in the run but passed when run again alone become "flaky"."""
    for nodeid, entry in rerun["tests"].items():
        first = data["tests"].get(nodeid)
        if first is not None and first["outcome"] in BAD and entry["outcome"] == "passed":
            first["outcome"] = "flaky"


def counts(tests: dict[str, dict[str, str]]) -> dict[str, Counter[str]]:
    result: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in tests.values():
        result[entry["checkpointer"]][entry["outcome"]] += 1
    return result


def failures(tests: dict[str, dict[str, str]], checkpointer: str) -> dict[str, str]:
    """test key -> first error line, for the tests ``checkpointer`` failed or errored."""
    return {
        same_test(nodeid, e["id"]): e["error"]
        for nodeid, e in tests.items()
        if e["checkpointer"] == checkpointer and e["outcome"] in BAD
    }


def cause(error: str) -> str:
    """The error line with ids, numbers and addresses blurred, so one cause groups together."""
    text = re.sub(r"0x[0-9a-f]+", "0x…", error)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f-]{14,}", "<uuid>", text)
    text = re.sub(r"'[^']{40,}'", "'…'", text)
    return text[:200]


def report(data: dict[str, Any]) -> tuple[list[str], bool]:
    tests: dict[str, dict[str, str]] = data["tests"]
    per = counts(tests)
    names = [n for n in data["selected"] if n in per] + sorted(set(per) - set(data["selected"]))
    lines = [
        "| checkpointer | " + " | ".join(OUTCOMES) + " | seconds | parity with SqliteSaver |",
        "|---" * (len(OUTCOMES) + 3) + "|",
    ]
    reference = failures(tests, REFERENCE) if REFERENCE in per else None
    parity_ok = True
    extra: dict[str, dict[str, str]] = {}
    for name in names:
        verdict = ""
        if name.startswith("cairnflow") and reference is not None:
            extra[name] = {k: v for k, v in failures(tests, name).items() if k not in reference}
            verdict = "yes" if not extra[name] else f"NO: {len(extra[name])} more failures"
            parity_ok = parity_ok and not extra[name]
        row = " | ".join(str(per[name][o]) for o in OUTCOMES)
        seconds = sum(float(e.get("seconds", 0)) for e in tests.values() if e["checkpointer"] == name)
        lines.append(f"| {name} | {row} | {seconds:.0f} | {verdict} |")
    flaky = sorted(n for n, e in tests.items() if e["outcome"] == "flaky")
    if flaky:
        lines += ["", f"### flaky: failed in the run, passed alone ({len(flaky)})", ""]
        lines += [f"- {n}: `{tests[n]['error']}`" for n in flaky]
    for name in names:
        fails = failures(tests, name)
        if not fails:
            continue
        groups: dict[str, list[str]] = defaultdict(list)
        for key, error in fails.items():
            groups[cause(error)].append(key)
        lines += ["", f"### {name}: {len(fails)} failing, {len(groups)} causes", ""]
        for text, keys in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"- **{len(keys)}x** `{text}`")
            lines += [f"  - {k}" for k in sorted(keys)]
    return lines, parity_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--rerun", type=Path, help="results of running the suspects again: merge them")
    parser.add_argument("--suspects", action="store_true", help="print the node ids worth a second run")
    args = parser.parse_args(argv)
    data = load(args.results)
    if args.suspects:
        for nodeid in suspects(data["tests"]):
            print(nodeid)
        return 0
    if args.rerun and args.rerun.exists():
        merge_rerun(data, load(args.rerun))
        args.results.write_text(json.dumps(data, indent=1))
    lines, parity_ok = report(data)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0 if parity_ok else 1


if __name__ == "__main__":
    sys.exit(main())
