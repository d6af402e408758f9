#!/usr/bin/env bash
# Create or refresh the project's virtual environment at .venv/ in the repo root.
# Needs only python3 (3.11 or newer). Re-installs when pyproject.toml changed since the
# last run, so a fresh clone and an old checkout end up with the same environment.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: $python is older than Python 3.11; set PYTHON=/path/to/python3.11+" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.gate-reader-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    log=.venv/bootstrap.log
    # pip's build warnings are noise on success; on failure the whole log is shown.
    if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
           .venv/bin/python -m pip install --quiet -e ".[test]"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "bootstrap: installing the project into .venv failed (log above, also in $log)" >&2
        exit 1
    fi
    echo "$wanted" > "$stamp"
fi
