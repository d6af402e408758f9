"""Faults of the daemon's life, with the real daemon (``gate-reader run`` in a child process on
simulated hardware): signals during a release, a policy reload, a wedged decision worker,
and many stops and starts. The door must end secured, the journal must hold every grant, and
the relay's recorded history (the mock pin, read through the control socket) shows what the
lock did."""

from __future__ import annotations

import contextlib
import signal
import socket
import statistics
import time
from pathlib import Path

from drivers.nfc_emulator import CardEmulator
from tests.support.simgate import Employee, pulses, scanner_up, wait_released
from tests.support.waiting import wait_for


def test_sigterm_and_sigkill_during_a_release_leave_the_door_secured_and_the_grant_journaled(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.config.write_text(gate.config.read_text().replace("release_s = 0.6", "release_s = 20"))
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    scanner.scan(Employee(centre, 13).qr())
    wait_released(gate, True)
    assert gate.stop(signal.SIGTERM) == 0  # 19 s of release left
    door = [(r.reason, r.detail) for r in gate.records("door")]
    assert door[-2:] == [("relocked", "release ended by shutdown"), ("stopped", "door secured")]
    assert gate.decisions() == [("scan", "grant", "granted")]
    # SIGKILL: nothing runs at all; the grant was journaled before the relay moved.
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    scanner.scan(Employee(centre, 4).qr())
    wait_released(gate, True)
    assert gate.stop(signal.SIGKILL) == -signal.SIGKILL
    assert gate.decisions() == [("scan", "grant", "granted")] * 2
    last = gate.records()[-1]
    assert (last.kind, last.decision) == ("decision", "grant")  # the grant is in; nothing of a clean stop
    # The mock relay died with the process; the restarted daemon claims it at the secured level.
    gate.start()
    relay = gate.relay()
    assert not gate.released() and pulses(relay["history"], relay["active_high"]) == 0
    starts = [r.detail for r in gate.records("door") if r.reason == "started"]
    assert len(starts) == 3 and starts[-1] == "door secured"
    assert gate.stop() == 0


def test_sighup_idle_and_during_a_release_leaves_no_glitch_on_the_relay(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.config.write_text(gate.config.read_text().replace("release_s = 0.6", "release_s = 1.5"))
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    gate.send(signal.SIGHUP)  # idle
    scanner.scan(Employee(centre, 5).qr())
    wait_released(gate, True)
    gate.send(signal.SIGHUP)  # during the release
    time.sleep(0.3)
    assert gate.released()
    wait_released(gate, False, timeout=5.0)
    relay = gate.relay()
    states = [state for _t, state in relay["history"]]
    active = relay["active_high"]
    # Secured from the first instant, one release, secured again: nothing else on the pin.
    assert states == [not active, active, not active]
    assert gate.log.read_text().count("policy reloaded") == 2  # both reloads happened
    assert gate.stop() == 0


def test_a_wedged_worker_stops_the_watchdog_pings_and_the_door_relocks_by_itself(sim, tmp_path: Path) -> None:
    centre, gate, scanner, _port = sim
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(0.1)
        gate.start(env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"})

        def messages(seconds: float) -> list[str]:
            got, end = [], time.monotonic() + seconds
            while time.monotonic() < end:
                with contextlib.suppress(TimeoutError):
                    got.append(notify.recv(256).decode())
            return got

        first = messages(1.0)
        assert any(m.startswith("READY=1") for m in first)  # queued in the socket while it started
        assert first.count("WATCHDOG=1") >= 3
        assert wait_for(lambda: scanner_up(gate), 10.0)
        scanner.scan(Employee(centre, 6).qr())
        wait_released(gate, True)
        gate.ctl({"cmd": "sim", "action": "wedge", "seconds": 2.5})
        messages(0.4)  # what was queued before the worker stopped turning
        wedged = messages(1.0)
        assert "WATCHDOG=1" not in wedged, "a wedged decision loop must not ping"
        # The door layer's own timer secured it (release_s = 0.6), the worker being stuck.
        pin = gate.ctl({"cmd": "sim", "action": "pin", "name": "relay"})
        assert pin["state"] != pin["active_high"]
        assert "WATCHDOG=1" in messages(2.5)  # it turns again
        gate.send(signal.SIGTERM)
        assert "STOPPING=1" in messages(2.0)
        assert gate.process is not None and gate.process.wait(10) == 0


def test_the_nfc_reader_comes_back_after_50_stops_and_starts(sim) -> None:
    # A phone lies on the reader throughout: each daemon that starts must open the reader,
    # find the phone and have it answer a fresh challenge; each SIGTERM must release the
    # reader for the next start.
    centre, gate, _scanner, port = sim
    employee = Employee(centre, 20)
    cycles = []
    with CardEmulator(port) as phone_reader:
        phone_reader.present(employee.phone())
        for cycle in range(50):
            started = time.monotonic()
            gate.start()
            gate.wait_decisions(cycle + 1)
            assert gate.stop() == 0
            cycles.append(time.monotonic() - started)
    assert gate.decisions() == [("nfc", "grant", "granted")] * 50
    assert phone_reader.activations >= 50
    print(f"50 stop/start cycles: median {statistics.median(cycles):.2f} s, max {max(cycles):.2f} s")
