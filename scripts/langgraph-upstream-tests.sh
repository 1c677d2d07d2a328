#!/usr/bin/env bash
# LangGraph's own checkpointer-parametrized tests, run with cairnflow next to LangGraph's
# InMemorySaver and SqliteSaver:  bash scripts/langgraph-upstream-tests.sh [pytest args]
#
# 1. Takes the source of the installed langgraph release from its PyPI sdist (which
#    carries tests/), cached in .cache/lg-upstream/.
# 2. Installs, pinned, what LangGraph's test conftest imports (into .venv).
# 3. Unpacks the sdist into a fresh temporary directory, appends one import of
#    tests/langgraph/upstream/cairnflow_upstream.py to LangGraph's tests/conftest.py (it
#    rebinds the sync_checkpointer/async_checkpointer fixtures) and runs every test file
#    that uses those fixtures; tests that use neither are deselected.
# 4. Prints passed/failed per checkpointer side by side and cairnflow's failures grouped
#    by cause (tests/langgraph/upstream/summarize.py).
#
# Environment:
#   LG_UPSTREAM_CHECKPOINTERS  comma separated, default
#       InMemorySaver,SqliteSaver,cairnflow_memory,cairnflow_file,cairnflow_s3
#       (also: SqliteSaverAES)
#   LG_UPSTREAM_RESULTS   where to write the per-test JSON (default: in the temp dir)
#   LG_UPSTREAM_REPORT    where to write the markdown report (optional)
#   LG_UPSTREAM_WORKERS   pytest-xdist workers (default 2; 0 runs in one process)
#   LG_UPSTREAM_RERUN=0   do not run cairnflow-only failures a second time (see below)
#   LG_UPSTREAM_KEEP=1    keep the unpacked source and pytest log (path is printed)
# Exit status: 0 when every cairnflow checkpointer fails only tests SqliteSaver fails too,
# 1 when not, 2 when the run itself broke.
set -euo pipefail
# The whole script is one function, read before it runs: editing the file during a run
# (it takes minutes) cannot change what the run does.
main() {
cd "$(dirname "$0")/.."
repo=$PWD
py=$repo/.venv/bin/python
[ -x "$py" ] || { echo "no .venv: run bash scripts/setup.sh first" >&2; exit 2; }

version=$("$py" -c 'import importlib.metadata as m; print(m.version("langgraph"))')
cache=$repo/.cache/lg-upstream
sdist=$cache/langgraph-$version.tar.gz
mkdir -p "$cache"
if [ ! -s "$sdist" ]; then
  echo "== downloading the langgraph $version sdist (its tests/ are what we run)"
  tmpdl=$(mktemp -d)
  "$py" -m pip download --quiet --no-deps --no-binary :all: "langgraph==$version" -d "$tmpdl"
  mv "$tmpdl/langgraph-$version.tar.gz" "$sdist"
  rm -rf "$tmpdl"
fi

# What LangGraph's tests/conftest.py imports at the top (postgres and redis clients are
# imported, never connected to: the run sets NO_DOCKER=true), plus xdist. Pinned.
deps=(pytest-mock==3.17.0 syrupy==7.0.3 pycryptodome==4.5.0 pytest-xdist==3.8.0
  langgraph-checkpoint-postgres==3.2.0 "psycopg[binary]==3.3.9" psycopg-pool==3.3.3 redis==8.2.0)
if ! "$py" -c 'import pytest_mock, syrupy, Crypto, xdist, psycopg, psycopg_pool, redis, langgraph.checkpoint.postgres' 2>/dev/null; then
  echo "== installing LangGraph's test dependencies into .venv"
  "$py" -m pip install --quiet "${deps[@]}"
fi

work=$(mktemp -d -t lg-upstream-XXXXXX)
if [ "${LG_UPSTREAM_KEEP:-0}" != 1 ]; then trap 'rm -rf "$work"' EXIT; fi
tar xzf "$sdist" -C "$work"
src=$work/langgraph-$version
printf '\n# Added by cairnflow scripts/langgraph-upstream-tests.sh\nfrom cairnflow_upstream import async_checkpointer, sync_checkpointer  # noqa: E402,F401\n' \
  >>"$src/tests/conftest.py"
mapfile -t files < <(cd "$src" && grep -lE 'sync_checkpointer|async_checkpointer' tests/test_*.py | sort)
for arg in "$@"; do  # test paths given (tests/test_x.py[::name]): run those instead
  case $arg in tests/*) files=(); break ;; esac
done
results=${LG_UPSTREAM_RESULTS:-$work/results.json}
workers=${LG_UPSTREAM_WORKERS:-2}
xdist=(-p no:xdist)
[ "$workers" = 0 ] || xdist=(-n "$workers")

echo "== langgraph $version: ${#files[@]} test files (0: the paths given); checkpointers: ${LG_UPSTREAM_CHECKPOINTERS:-default}"
set +e
(cd "$src" && NO_DOCKER=true LG_UPSTREAM_RESULTS=$results \
  PYTHONPATH="$repo/tests/langgraph/upstream:$src" nice "$py" -m pytest "${files[@]}" \
  -p cairnflow_upstream -o addopts= -p no:cacheprovider -q --timeout=300 -W ignore --durations=15 \
  "${xdist[@]}" "$@") >"$work/pytest.log" 2>&1
rc=$?
set -e
grep -E '^FAILED|^ERROR|[0-9]+ (passed|failed).* in [0-9.]+s' "$work/pytest.log" | tail -n 40 || true
if [ ! -s "$results" ]; then
  echo "the run wrote no results (pytest exit $rc); its log follows" >&2
  tail -n 60 "$work/pytest.log" >&2
  exit 2
fi
summarize=("$py" "$repo/tests/langgraph/upstream/summarize.py" "$results")
mapfile -t suspects < <("${summarize[@]}" --suspects | grep .)  # grep: never an empty node id
rerun=()
if [ "${LG_UPSTREAM_RERUN:-1}" = 1 ] && [ "${#suspects[@]}" -gt 0 ]; then
  # A test that fails with cairnflow but passes with SqliteSaver is run again, alone and
  # in one process, so that a timing test failing under load is told apart (as "flaky").
  echo "== running ${#suspects[@]} cairnflow-only failures again, one process"
  set +e
  (cd "$src" && NO_DOCKER=true LG_UPSTREAM_RESULTS=$work/rerun.json \
    PYTHONPATH="$repo/tests/langgraph/upstream:$src" nice "$py" -m pytest "${suspects[@]}" \
    -p cairnflow_upstream -o addopts= -p no:cacheprovider -q --timeout=300 -W ignore -p no:xdist) \
    >"$work/rerun.log" 2>&1
  set -e
  tail -n 1 "$work/rerun.log"
  rerun=(--rerun "$work/rerun.json")
fi
[ "${LG_UPSTREAM_KEEP:-0}" != 1 ] || echo "kept: $work (pytest.log, results.json, source)"
report=()
[ -z "${LG_UPSTREAM_REPORT:-}" ] || report=(--markdown "$LG_UPSTREAM_REPORT")
"${summarize[@]}" "${rerun[@]}" "${report[@]}"
}
main "$@"
