"""Faults on the daemon's inputs, with the real daemon (``gate-reader run`` in a child process
on simulated hardware): what a noisy or hostile input can do is a counted refusal or a drop,
never a crash and never a release."""

from __future__ import annotations

import time

from tests.support.simgate import pulses, scanner_up
from tests.support.waiting import wait_for

# Each door input's default debounce (drivers.door.DoorSettings) and a glitch well inside it.
GLITCHES = {"fire": 0.05, "door_contact": 0.03, "tamper": 0.03, "exit_button": 0.015}


def test_input_glitches_shorter_than_the_debounce_never_release_or_alarm(sim) -> None:
    # The worker also reads every input's level every level_poll_s (0.1 s here) to heal a
    # missed edge; a glitch caught by that read must not count as a change either (a fire
    # glitch would hold every lock released, a contact glitch raise door_forced).
    _centre, gate, _scanner, _port = sim
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    for _ in range(25):
        for name, width in GLITCHES.items():
            gate.ctl({"cmd": "sim", "action": "input", "input": name, "active": True})
            time.sleep(width)
            gate.ctl({"cmd": "sim", "action": "input", "input": name, "active": False})
            time.sleep(0.02)
    time.sleep(0.5)  # past every debounce and a few level reads
    relay = gate.relay()
    assert pulses(relay["history"], relay["active_high"]) == 0
    assert [r.reason for r in gate.records("door")] == ["started"]
    status = gate.status()
    assert status["door"]["state"] == "secured" and status["door"]["alarms"] == []
    assert gate.stop() == 0
