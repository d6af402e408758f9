"""gate-reader diag against the simulators (--sim): every check passes on a simulated gate,
and the selftest is the CI form (a clean clone, no hardware, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.centre import run


def test_selftest_sim_passes_every_check_that_needs_no_person() -> None:
    code, out, err = run("diag", "selftest", "--sim")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].split() == ["check", "result", "details"]
    rows = {line.split("  ")[0].strip(): line for line in lines[1:] if line and not line.startswith("selftest")}
    assert set(rows) >= {"config", "clock", "daemon", "inputs", "cache", "sync", "nfc sim-nfc", "camera sim-camera",
                         "scanner sim-scanner", "wiegand sim-wiegand"}
    assert "SKIP" in rows["daemon"]  # none runs: the door and readers are checked in this process
    assert lines[-1] == "selftest: 9 passed, 0 failed, 1 not checked: all pass"
    code, out, _err = run("diag", "selftest", "--sim", "--json")
    assert code == 0 and {r["status"] for r in json.loads(out)} == {"PASS", "SKIP"}


@pytest.mark.parametrize(("check", "summary"), [
    ("relay", "3x released, the door opened each time and secured again by itself"),
    ("leds", "green_led went on and off, red_led went on and off"),
    ("buzzer", "buzzer went on and off"),
    ("inputs", "door_contact inactive, exit_button inactive, tamper inactive, fire inactive, lockdown inactive"),
    ("nfc", "GatePass holder: "),
    ("camera", " fps, 640x480, brightness "),
    ("scanner", "1 line(s) read at 9600 8N1"),
    ("wiegand", "1 frame(s), 1 read as cards"),
    ("clock", "synchronised, trusted, no clock chip"),
    ("cache", "1 list(s), the oldest "),
    ("sync", "ok in "),
])
def test_each_diagnostic_passes_against_the_simulators(tmp_path: Path, check: str, summary: str) -> None:
    extra = ["--png", str(tmp_path / "camera.png")] if check == "camera" else []
    code, out, err = run("diag", check, "--sim", *extra)
    assert code == 0, out + err
    first = next(line for line in out.splitlines() if line.startswith(("PASS", "FAIL")))
    assert first.startswith(f"PASS  {check}: ") and summary in first, out
    if check == "camera":  # the frame saved, the code outlined
        assert (tmp_path / "camera.png").stat().st_size > 1000


def test_a_diagnostic_as_json_is_one_object_with_its_values() -> None:
    code, out, _err = run("diag", "wiegand", "--sim", "--json")
    result = json.loads(out)
    assert code == 0 and result["check"] == "wiegand" and result["status"] == "PASS"
    assert result["values"]["frames"] == 1 and result["cause"] is None
