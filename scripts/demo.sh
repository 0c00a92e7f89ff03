#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), then run the demo on the default
# topology and template library. Extra arguments go to `dynprov demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dynprov demo "$@"
