#!/usr/bin/env bash
# The one command: set up .venv-bench, start the emulators behind the counting proxy,
# run every workload, write benchmarks/results/*.json, render docs/benchmarks.md and
# docs/img/*.png. Under 15 minutes on a 2-core machine, setup included.
#
#   bash benchmarks/run.sh            # full run (updates the docs)
#   bash benchmarks/run.sh --quick    # smaller sizes, benchmarks/results/quick/, docs untouched
#   bash benchmarks/run.sh langgraph  # only the LangGraph chat-turn cost and race (benchmarks/lg_cost.py)
#
# Other options go to benchmarks/run.py (--only imports,exec,lg; --budget SECONDS).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_T0=${BENCH_T0:-$(date +%s.%N)}
bash benchmarks/setup.sh
if [ "${1:-}" = langgraph ]; then
  shift
  exec .venv-bench/bin/python -m benchmarks.lg_cost "$@"
fi
exec .venv-bench/bin/python -m benchmarks.run "$@"
