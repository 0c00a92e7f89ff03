#!/usr/bin/env bash
# Run one benchmark with everything set up: bash scripts/bench.sh NAME [ARGS...]
# (NAME is a module under benchmarks/, e.g. provisioning_latency); scripts/setup.sh
# installs everything they need (matplotlib for the plots included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
name=${1:?usage: bash scripts/bench.sh NAME [ARGS...]}
shift
exec .venv/bin/python -m "benchmarks.${name}" "$@"
