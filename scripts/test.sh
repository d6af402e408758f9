#!/usr/bin/env bash
# The project's test command (README, and exactly what .ci/run runs): set up .venv/ if
# needed, lint, then run the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check --quiet .
exec .venv/bin/python -m pytest -q "$@"
