#!/usr/bin/env bash
# The main job (README): set up .venv/ if needed, then run the gate daemon on simulated
# hardware through a scenario and watch what it decides and what the door does
# (`gate-reader demo`; its options pass through: --fast, --out DIR, default demo-out/).
# Exit 0 when every step did what it should, 1 naming the first that did not.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/gate-reader demo "$@"
