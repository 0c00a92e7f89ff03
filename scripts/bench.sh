#!/usr/bin/env bash
# Run one benchmark with everything set up: bash scripts/bench.sh NAME [ARGS...]
# (NAME is a module under benchmarks/, e.g. provisioning_latency). Installs what the
# benchmarks alone need (matplotlib for plots) on top of scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c "import matplotlib" >/dev/null 2>&1; then
  echo "[bench] installing matplotlib (plots)"
  .venv/bin/python -m pip -q --disable-pip-version-check install matplotlib
fi
name=${1:?usage: bash scripts/bench.sh NAME [ARGS...]}
shift
exec .venv/bin/python -m "benchmarks.${name}" "$@"
