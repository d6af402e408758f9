#!/usr/bin/env bash
# The technician's diagnostics, a thin wrapper around `gate-reader diag` (README, install guide
# section 6). On an installed gate it runs the installed program (/opt/gate-reader) against the
# gate's own config; elsewhere, from a clone, it sets up .venv/ first (scripts/bootstrap.sh).
#
#   scripts/diag.sh selftest                 every check that needs no person (exit 0: all pass)
#   scripts/diag.sh relay --times 3          release the door 3 times (asks first), journaled
#   scripts/diag.sh nfc | camera | scanner | wiegand | inputs | leds | buzzer | clock | cache | sync
#   scripts/diag.sh selftest --sim           against the simulators: no hardware (the CI form)
#
# Every option is gate-reader diag's (scripts/diag.sh CHECK --help).
set -euo pipefail
if [ $# -eq 0 ]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
if [ -x /opt/gate-reader/.venv/bin/gate-reader ]; then  # an installed gate: its own program
    exec /opt/gate-reader/.venv/bin/gate-reader diag "$@"
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$repo/pyproject.toml" ] && [ -f "$repo/scripts/bootstrap.sh" ]; then
    bash "$repo/scripts/bootstrap.sh"  # a clone: its own environment, made or refreshed
    exec "$repo/.venv/bin/gate-reader" diag "$@"
fi
echo "diag.sh: no gate-reader here: run it from the gate-reader folder, or install the gate (scripts/install.sh)" >&2
exit 2
