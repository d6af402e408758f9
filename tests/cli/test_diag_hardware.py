"""The diagnostics on a gate's real hardware, run by a technician on the Pi:

    GATE_HARDWARE=1 .venv/bin/python -m pytest -s -m hardware tests/cli/test_diag_hardware.py

Each test runs the command a technician runs by hand, ``gate-reader diag CHECK`` (README,
install guide section 6), against GATE_CONFIG (default /etc/gate-reader/gate-reader.toml), and
must PASS; a part the gate does not have ("not checked", exit 3) is skipped. ``-s`` lets the
technician answer the questions (did the LED light?) and see the live lines. Skipped unless
GATE_HARDWARE=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = os.environ.get("GATE_CONFIG", "/etc/gate-reader/gate-reader.toml")

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(os.environ.get("GATE_HARDWARE") != "1",
                       reason="needs the gate's hardware (GATE_HARDWARE=1); by hand: gate-reader diag CHECK"),
]


@pytest.mark.parametrize(("check", "options"), [
    ("clock", ()), ("cache", ()), ("sync", ()),
    ("inputs", ("--seconds", "30")), ("relay", ("--yes", "--times", "2")), ("leds", ()), ("buzzer", ()),
    ("nfc", ()), ("camera", ("--png", "/tmp/gate-reader-camera.png")), ("scanner", ()), ("wiegand", ()),
    ("selftest", ()),
])
def test_the_diagnostic_passes_on_the_real_hardware(check: str, options: tuple[str, ...]) -> None:  # pragma: no cover
    result = subprocess.run([sys.executable, "-m", "reader", "diag", check, "--config", CONFIG, *options], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, timeout=300, check=False)
    print(result.stdout)
    if result.returncode == 3:
        pytest.skip(f"gate-reader diag {check}: not checked here ({result.stdout.splitlines()[0]})")
    assert result.returncode == 0, f"gate-reader diag {check} failed:\n{result.stdout}"
