"""The README's main job as a user runs it: ``bash scripts/demo.sh`` with ``--out`` relative to
the folder they are in (not the clone's), so a relative path the demo writes into the gate's
config, whose relative paths are taken from its own folder, is never doubled
(``demo-out/gate/demo-out/centre/...`` once stopped the demo at its first sync). And a Wiegand
frame that a thread switch stretched or cut is swiped again, as a person would, not lost."""

from __future__ import annotations

import inspect
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from drivers.wiegand import DEFAULT_FRAME_GAP_S as FRAME_GAP_S
from drivers.wiegand import DEFAULT_MAX_PULSE_S as MAX_PULSE_S
from drivers.wiegand import WiegandSource, frame_went_out
from reader.demo.process import WIEGAND_SENDS, DaemonProcess
from reader.demo.site import GatePaths
from reader.errors import SiteError

ROOT = Path(__file__).resolve().parents[2]


def test_a_relative_demo_out_is_the_callers_folder_and_never_doubled(tmp_path: Path) -> None:
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), "--fast", "--out", "rel-out"], cwd=caller,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Demo complete" in done.stdout
    out = caller / "rel-out"
    assert (out / "gate" / "cache.db").is_file() and not (out / "gate" / "rel-out").exists()
    assert not (ROOT / "rel-out").exists()
    config = tomllib.loads((out / "gate" / "gate.toml").read_text())
    assert Path(config["sync"]["root"]).is_absolute() and Path(config["sync"]["root"]).is_file()


def _pulses(widths: list[float], gap: float = 2e-3) -> list[list[float]]:
    return [[i * gap, i * gap + width] for i, width in enumerate(widths)]


def test_a_wiegand_frame_stretched_or_cut_by_a_thread_switch_is_not_one_a_reader_accepts() -> None:
    defaults = inspect.signature(WiegandSource).parameters  # judged by the reader's own bounds
    assert (defaults["max_pulse_s"].default, defaults["frame_gap_s"].default) == (MAX_PULSE_S, FRAME_GAP_S)
    assert frame_went_out(_pulses([50e-6] * 26))
    assert not frame_went_out(_pulses([50e-6] * 12 + [MAX_PULSE_S + 30e-6] + [50e-6] * 13))  # stretched: noise
    cut = _pulses([50e-6] * 26)
    cut[13:] = [[fall + FRAME_GAP_S, rise + FRAME_GAP_S] for fall, rise in cut[13:]]
    assert not frame_went_out(cut)  # two frames of 13 bits: length
    assert not frame_went_out([])


class _Daemon(DaemonProcess):
    """The demo's daemon handle with its control socket answered by a script: the answers the
    daemon's ``sim wiegand`` gives (the pins' stamps)."""

    def __init__(self, tmp_path: Path, answers: list[list[list[float]]]) -> None:
        super().__init__(GatePaths(tmp_path, tmp_path), tmp_path / "log")
        self.answers = answers
        self.sent: list[dict[str, Any]] = []

    def ctl(self, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        self.sent.append(payload)
        return {"bits": 26, "pulses": self.answers.pop(0)}


def test_a_stretched_wiegand_frame_is_sent_again_until_one_goes_out(tmp_path: Path) -> None:
    good, bad = _pulses([50e-6] * 26), _pulses([50e-6] * 25 + [2e-3])
    daemon = _Daemon(tmp_path, [bad, bad, good])
    assert daemon.wiegand("garage-wiegand", format="H10301", values=[90, 324]) == 3
    assert len(daemon.sent) == 3 and all(p["reader"] == "garage-wiegand" for p in daemon.sent)
    daemon = _Daemon(tmp_path, [bad] * WIEGAND_SENDS)
    with pytest.raises(SiteError, match="too busy to pulse at Wiegand timing"):
        daemon.wiegand("garage-wiegand", format="H10301", values=[90, 324])
