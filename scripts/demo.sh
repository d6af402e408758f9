#!/usr/bin/env bash
# The main job (README): set up .venv/ if needed, then run the gate daemon on simulated
# hardware through a scenario and watch what it decides and what the door does
# (`gate-reader demo`; its options pass through: --fast, --out DIR, default demo-out/).
# Exit 0 when every step did what it should, 1 naming the first that did not.
# No cd: a relative --out is the caller's, taken from the folder this is run in.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/bootstrap.sh"
exec "$repo/.venv/bin/gate-reader" demo "$@"
