#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), run the static checks (scripts/check.sh:
# ruff and mypy), then every test: the pure-core unit tests and the integration
# tests on real OVS bridges and Mininet hosts.
# Extra arguments go to pytest (e.g. -k templates).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check.sh
DYNPROV_REQUIRE_INTEGRATION=1 exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
