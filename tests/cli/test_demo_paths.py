"""The demo's Wiegand swipes: a frame that a thread switch stretched or cut is swiped again, as a
person would, not lost. (The README's main job run from another folder with a relative
``--out`` is tests/daemon/test_demo.py's end-to-end run.)"""

from __future__ import annotations

import inspect
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
