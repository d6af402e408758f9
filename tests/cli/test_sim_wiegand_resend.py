"""``diag wiegand --sim`` (part of ``diag selftest --sim``, the CI form) on a busy machine: the
simulated reader's frame, pulsed by a thread, can be cut in two by a thread switch; the gate's
Wiegand source then rightly drops the pieces. The simulator sees that in the pins' stamps and
swipes again, as a person would, so the check does not fail for the machine's load."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import drivers.wiegand
from tests.support.centre import run


def test_diag_wiegand_sim_swipes_again_a_frame_a_thread_switch_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    real = drivers.wiegand.pulse_frame
    calls = []

    def first_one_cut(d0: Any, d1: Any, bits: list[int], **timing: float) -> list[tuple[float, float]]:
        calls.append(len(bits))
        if len(calls) > 1:
            return real(d0, d1, bits, **timing)
        head = real(d0, d1, bits[:13], **timing)
        time.sleep(2 * drivers.wiegand.DEFAULT_FRAME_GAP_S)  # descheduled mid-frame
        return head + real(d0, d1, bits[13:], **timing)

    monkeypatch.setattr(drivers.wiegand, "pulse_frame", first_one_cut)
    code, out, err = run("diag", "wiegand", "--sim", "--seconds", "10", "--json")
    result = json.loads(out)
    assert code == 0 and result["status"] == "PASS", out + err
    assert calls == [26, 26]
    assert result["values"]["cards"] == 1 and result["values"]["frames"] >= 2  # the pieces, then the card
