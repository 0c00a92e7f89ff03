#!/usr/bin/env bash
# Static checks: ruff (ruff.toml) on the whole tree and mypy ([mypy] in setup.cfg:
# ryu_apps/), with the checkout's .venv (scripts/setup.sh makes it). Installs the
# pinned checkers into .venv when they are missing. Runs both, prints every
# finding, exits non-zero when either found something.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
CHECKERS=(ruff==0.17.6 mypy==2.4.1 types-PyYAML==6.0.12.20261122)

if [ ! -x "$VENV/bin/python" ]; then
  echo "[check] no $VENV here: run scripts/setup.sh first" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/ruff" ] || [ ! -x "$VENV/bin/mypy" ] \
    || ! "$VENV/bin/python" -m pip show -q types-PyYAML >/dev/null 2>&1; then
  echo "[check] installing ${CHECKERS[*]} into $VENV"
  "$VENV/bin/python" -m pip -q --disable-pip-version-check install "${CHECKERS[@]}" || exit 2
fi

status=0
echo "[check] ruff check ."
"$VENV/bin/ruff" check . || status=1
echo "[check] mypy"
"$VENV/bin/mypy" || status=1
if [ "$status" -eq 0 ]; then
  echo "[check] clean"
else
  echo "[check] FAILED: findings above" >&2
fi
exit "$status"
