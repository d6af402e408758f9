"""The installer's last step (``post_install_check`` in scripts/install.sh), run for real with
the installed ``gate-reader`` standing in for /opt's: on a live system it runs the selftest,
and a failing one (the sync server down at install time) does not fail the install but says
what is missing and how to fix it; under --root it checks the config only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.install.trees import INSTALL, REPO, SITE_CONFIG
from tests.support import closed_tcp_port
from tests.support.centre import Centre


def _step(tmp_path: Path, config: Path, live: bool) -> subprocess.CompletedProcess[str]:
    text = INSTALL.read_text()
    function = re.search(r"^post_install_check\(\) \{\n.*?^\}\n", text, re.S | re.M)
    assert function is not None
    opt = tmp_path / "opt"
    (opt / "venvs" / "TAG").mkdir(parents=True)
    (opt / ".venv" / "bin").mkdir(parents=True)
    wrapper = opt / ".venv" / "bin" / "gate-reader"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m reader "$@"\n')
    wrapper.chmod(0o755)
    script = "\n".join([
        "set -euo pipefail",
        "say() { printf 'install: %s\\n' \"$*\"; }",
        "warn() { printf 'install: WARNING: %s\\n' \"$*\" >&2; }",
        "not_run() { say \"not run here: $*\"; }",
        'declare -A SITE=([interval_s]=30 [lock_type]=fail_secure [relay]="BCM 17 active high" '
        "[pin_factory]=mock [readers]=0)",
        f'ROOT="" OPT="{opt}" TAG=TAG CONFIG="{config}" LIVE={int(live)}',
        function.group(0),
        "post_install_check",
        "echo step-done",
    ])
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=180, check=False)


def test_the_sync_server_down_at_install_the_install_completes_and_the_selftest_says_how_to_fix_it(
        tmp_path: Path) -> None:
    centre = Centre(tmp_path / "centre")  # its repository exists; its server is not started: down
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "state" / "c.db"}"\n[sync]\n'
                      f'metadata_url = "http://127.0.0.1:{closed_tcp_port()}/metadata/"\n'
                      'targets_url = "http://127.0.0.1:9/targets/"\n'
                      f'root = "{centre.repo / "public" / "metadata" / "root.json"}"\ntimeout_s = 1\n'
                      'total_timeout_s = 2\n')
    result = _step(tmp_path, config, live=True)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("step-done"), result.stdout + result.stderr
    out = result.stdout
    assert "install: selftest (gate-reader diag selftest --config /etc/gate-reader/gate-reader.toml):" in out
    assert re.search(r"^install:   sync +FAIL +server unreachable: cannot connect to", out, re.M), out
    assert "install:     likely cause: the centre's server does not answer" in out
    assert "install:     next step: check the network and [sync] metadata_url" in out
    assert "install:     next step: sudo systemctl start gate-reader-sync" in out  # the cache's: no lists yet
    assert result.stderr == ("install: WARNING: installed, but the selftest found problems (above): each FAIL names "
                             "its likely cause and the next step; fix them, then run: sudo gate-reader diag selftest\n")


def test_under_root_the_selftest_is_said_not_run(tmp_path: Path) -> None:
    """Under --root nothing runs the gate; the config was checked before anything changed
    (check_site_config, tests/install/test_installer.py), so this step only says so."""
    config = tmp_path / "gate.toml"
    config.write_text(SITE_CONFIG)
    result = _step(tmp_path, config, live=False)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("step-done")
    assert "install: not run here: gate-reader diag selftest --config /etc/gate-reader/gate-reader.toml" \
        in result.stdout
    assert "check-config" not in result.stdout and result.stderr == ""


def test_the_diag_wrapper_runs_gate_reader_diag(tmp_path: Path) -> None:
    """scripts/diag.sh is gate-reader diag (from a clone: after bootstrap, which finds .venv ready)."""
    wrapper = REPO / "scripts" / "diag.sh"
    result = subprocess.run(["bash", str(wrapper), "wiegand", "--sim", "--json"], capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0 and '"check": "wiegand", "status": "PASS"' in result.stdout, result.stderr
    usage = subprocess.run(["bash", str(wrapper)], capture_output=True, text=True, timeout=30, check=False)
    assert usage.returncode == 2 and "scripts/diag.sh selftest --sim" in usage.stdout
