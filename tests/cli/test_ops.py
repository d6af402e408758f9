"""gate-reader check-config and --version from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gate.test_config_check import MANY_MISTAKES
from tests.support.centre import run


def test_check_config_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(MANY_MISTAKES.replace('device = 0\n', 'device = 0\nfps = "fast"\n'))
    code, out, err = run("check-config", "--config", config)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[-1] == f"{config}: 10 errors, 0 warnings: the gate would NOT start"
    assert "error: readers[1].fps: must be a number (like 15.0), not 'fast'" in lines  # the driver's own check
    assert "error: door.relay.pin: 40 is not a GPIO number 0-27" in lines
    code, out, _err = run("check-config", "--config", config, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and len(report["errors"]) == 10
    assert report["errors"][0] == {"key": "cache.colour", "message": "cache.colour: unknown key (known keys: path, "
                                                                        "start_empty)"}


def test_check_config_passes_a_good_config_with_warnings(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "g"\n[cache]\npath = "c.db"\n[door]\npin_factory = "mock"\n'
                      '[[readers]]\nname = "s"\ndriver = "scanner"\ndevice = "/dev/gate/none"\n')
    code, out, _err = run("check-config", "--config", config)
    assert code == 0
    assert out.splitlines() == [
        "warning: readers[0].device: /dev/gate/none does not exist (yet): the scanner reader s shows down until "
        "it is there (plugged in, or its udev name right)",
        f"{config}: 0 errors, 1 warning: the gate would start"]


def test_check_config_refuses_a_pin_factory_this_environment_cannot_load(tmp_path: Path) -> None:
    """run stops at its start on it (door.pin_factory: ... cannot load): check-config, and diag's
    config row, say so first. RPi.GPIO is no dependency of gate-reader: never in its environment."""
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "g"\n[cache]\npath = "c.db"\n[door]\npin_factory = "rpigpio"\n')
    code, out, _err = run("check-config", "--config", config)
    assert code == 1, out
    assert out.splitlines()[0].startswith("error: door.pin_factory: pin factory 'rpigpio' cannot load in this "
                                          "environment (No module named 'RPi')")
    assert out.splitlines()[-1] == f"{config}: 1 error, 0 warnings: the gate would NOT start"
    code, out, _err = run("diag", "selftest", "--config", config, "--json")
    (row,) = [r for r in json.loads(out) if r["check"] == "config"]
    assert code == 1 and row["status"] == "FAIL" and "door.pin_factory" in row["summary"]


def test_check_config_refuses_what_run_refuses_a_config_without_a_door(tmp_path: Path) -> None:
    """run stops at once without [door]; check-config said "would start". diag still serves such
    a gate (its sync, clock and cache rows need no door)."""
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "g"\n[cache]\npath = "c.db"\n')
    code, out, _err = run("check-config", "--config", config)
    assert code == 1, out
    assert out.splitlines() == [
        'error: door: gate-reader run needs a [door] table (the pins it drives; [door] pin_factory = "mock" for a '
        'simulated door)', f"{config}: 1 error, 0 warnings: the gate would NOT start"]
    code, out, _err = run("diag", "selftest", "--config", config, "--json")
    (row,) = [r for r in json.loads(out) if r["check"] == "config"]
    assert row["status"] == "PASS", row


def test_check_config_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = run("check-config", "--config", tmp_path / "none.toml")
    assert code == 2 and out == "" and "none.toml" in err


def test_version_names_the_program_and_python() -> None:
    code, out, _err = run("--version")
    assert code == 0 and out.startswith("gate-reader 0.1.0") and ", Python 3." in out
