#!/usr/bin/env bash
# Create or refresh the project's virtual environment at .venv/ in the repo root.
# Needs only python3 (3.11 or newer). Re-installs when pyproject.toml changed since the
# last run, so a fresh clone and an old checkout end up with the same environment.
set -euo pipefail
cd "$(dirname "$0")/.."

usable() {  # Python 3.11 or newer, able to make a virtual environment with pip in it
    "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
# The interpreter: $PYTHON when set. Otherwise the distribution's /usr/bin/python3 when it
# will do, because that is what a gate runs (Raspberry Pi OS and Debian build it with PGO
# and LTO); a version manager's build (pyenv compiles without them by default) runs
# pure-Python code ~40 % slower here, and a decision's parsing is pure Python. Then python3
# from PATH.
if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
    if ! usable "$python"; then
        echo "bootstrap: PYTHON=$python is not Python 3.11+ with venv and ensurepip" >&2
        exit 2
    fi
elif usable /usr/bin/python3; then
    python=/usr/bin/python3
elif usable python3; then
    python=python3
else
    echo "bootstrap: no Python 3.11+ with venv and ensurepip found; set PYTHON=/path/to/python3.11+" >&2
    exit 2
fi
# An environment made from another interpreter is made again, so that every checkout runs
# on the interpreter chosen above.
wanted_python=$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')
if [ -f .venv/pyvenv.cfg ]; then
    made_with=$(sed -n 's/^executable = //p' .venv/pyvenv.cfg)
    if [ -z "$made_with" ] || [ "$(realpath -m "$made_with")" != "$wanted_python" ]; then
        echo "bootstrap: .venv was made with ${made_with:-an unknown interpreter}; making it again with $wanted_python" >&2
        rm -rf .venv
    fi
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
