#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), run the static checks (scripts/check.sh:
# ruff and mypy), then every test: the pure-core unit tests and the integration
# tests on real OVS bridges and Mininet hosts.
#
# Two phases, so the whole run stays short without making any figure unfair:
#   1. every test not marked `serial`, in parallel worker processes (one test
#      module per worker: module-scoped test beds stay whole; bridge names,
#      datapath ids and ports are unique per process);
#   2. the `serial` tests, one at a time: those whose assertions rest on
#      measured loss, rates or outages, which other test beds' load would skew.
# Extra arguments go to both pytest runs (e.g. -k templates). DYNPROV_TEST_WORKERS
# sets the number of parallel workers (default 3; 0 runs phase 1 serially).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check.sh
export DYNPROV_REQUIRE_INTEGRATION=1
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider)
workers=${DYNPROV_TEST_WORKERS:-3}
parallel=()
[ "$workers" -gt 0 ] && parallel=(-n "$workers" --dist loadfile)

status=0
"${PYTEST[@]}" "${parallel[@]}" -m "not serial" "$@" || status=$?
# Exit status 5 means that a filter given by the caller left nothing to run here.
[ "$status" -eq 5 ] && status=0
serial_status=0
"${PYTEST[@]}" -m serial "$@" || serial_status=$?
[ "$serial_status" -eq 5 ] && serial_status=0
[ "$status" -ne 0 ] && exit "$status"
exit "$serial_status"
