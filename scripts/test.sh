#!/usr/bin/env bash
# Run the default test suite: lint (ruff), type check of the public modules (mypy), then pytest
# (slow training tests are marked `slow` and left out; run them with `-m slow`).
# Extra arguments go to pytest. Assumes scripts/setup.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RHYTHMICNET_VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"
echo "== ruff"
ruff check .
echo "== mypy"
mypy rhythmicnet models offline export realtime
echo "== pytest"
python -m pytest "$@"
