"""``gate-reader run`` as a child process from a simulated-hardware config, driven from outside:
a scanner on a pty, an NFC phone on nfcpy's udp driver, a camera playing PNG frames, mock
pins read and driven through the control socket, the centre's repository on loopback."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from drivers.camera_sim import background, centred, code_image, scene, write_png_sequence
from drivers.nfc_emulator import CardEmulator
from reader.demo.site import ScannerPty as Scanner
from reader.demo.site import free_udp_port
from reader.gate.report import iso_time as _iso
from tests.support.centre import Centre, ok
from tests.support.simgate import Employee, SimGate, gate_text, pulses, scanner_up, wait_released
from tests.support.waiting import wait_for


def test_grants_from_scanner_nfc_and_camera_drive_the_relay_and_sigterm_leaves_it_secured(
        centre: Centre, tmp_path: Path) -> None:
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    port = free_udp_port()
    scanner = Scanner(tmp_path / "scanner")
    frames_code = Employee(centre, 3).qr()
    frame = scene(background(640, 480), [centred(code_image(frames_code, 4), 640, 480)])
    (tmp_path / "frames").mkdir()
    pattern = write_png_sequence([frame] * 5, tmp_path / "frames")
    gate = SimGate(tmp_path, gate_text(centre, tmp_path, port, camera=pattern))
    try:
        with CardEmulator(port) as phone_reader:
            gate.start()
            assert wait_for(lambda: scanner_up(gate), 10.0)
            gate.wait_decisions(1)  # the camera's file is played once at start
            scanner.scan(Employee(centre, 1).qr())
            wait_released(gate, True)
            # The reader polls as hardware does (a tap is read within ~50 ms): tap once the
            # door is secured again, so the NFC grant releases it anew instead of extending.
            wait_released(gate, False, timeout=5.0)
            assert phone_reader.tap(Employee(centre, 2).phone(), timeout=10.0)
            got = gate.wait_decisions(3)
        assert sorted(got) == [("cam", "grant", "granted"), ("nfc", "grant", "granted"),
                               ("scan", "grant", "granted")]
        wait_released(gate, False, timeout=5.0)
        relay = gate.relay()
        assert pulses(relay["history"], relay["active_high"]) >= 2  # each grant released the door
        # status (another process) shows the live daemon: sources and the door.
        done = gate.gate_reader("status", "--config", str(gate.config), "--json")
        report = json.loads(done.stdout)
        assert report["daemon"]["origin"] == "live", done.stderr
        assert {name: s["up"] for name, s in report["daemon"]["sources"].items()}["nfc"] is True
        assert report["daemon"]["door"]["state"] == "secured"
        assert gate.stop(signal.SIGTERM) == 0
        kinds = [(r.kind, r.reason) for r in gate.records()]
        assert kinds[-2:] == [("door", "stopped"), ("system", "daemon_stopped")]
        # Stopped: status falls back to the stored health, marked stale soon after.
        done = gate.gate_reader("status", "--config", str(gate.config), "--json")
        stored = json.loads(done.stdout)
        assert stored["daemon"]["origin"] == "stored" and stored["daemon"]["stopped"] is True
        assert [p for p in stored["problems"] if p.startswith(("daemon", "source"))] == [
            f"daemon: stopped at {stored['daemon']['at'] and _iso(stored['daemon']['at'])} (not running)"]
    finally:
        gate.kill()
        scanner.unplug()


def test_lockdown_on_and_off_through_the_cli(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    done = gate.gate_reader("lockdown", "on", "--config", str(gate.config))
    assert done.returncode == 0 and "lockdown on" in done.stdout, done.stderr
    scanner.scan(Employee(centre, 8, groups=["staff"]).qr())
    scanner.scan(Employee(centre, 9, groups=["security"]).qr())
    assert gate.wait_decisions(2) == [("scan", "deny", "not_authorized"), ("scan", "grant", "granted")]
    assert gate.records("decision")[0].detail == "lockdown: only groups security pass"
    assert gate.gate_reader("lockdown", "off", "--config", str(gate.config)).returncode == 0
    scanner.scan(Employee(centre, 10, groups=["staff"]).qr())
    assert gate.wait_decisions(3)[-1] == ("scan", "grant", "granted")
    door = [(r.reason, r.detail) for r in gate.records("door") if r.reason.startswith("lockdown")]
    assert [reason for reason, _ in door] == ["lockdown_on", "lockdown_off"] and "uid" in door[0][1]
    # The lockdown switch, worked through the sim command as the other inputs are.
    answer = gate.ctl({"cmd": "sim", "action": "input", "input": "lockdown", "active": True})
    assert (answer["input"], answer["active"]) == ("lockdown", True)
    assert wait_for(lambda: gate.status()["door"]["lockdown_by"] == ["input"], 5.0)
    done = gate.gate_reader("status", "--config", str(gate.config))
    assert "lockdown ON (by input)" in done.stdout, done.stdout + done.stderr
    scanner.scan(Employee(centre, 11, groups=["staff"]).qr())
    assert gate.wait_decisions(4)[-1] == ("scan", "deny", "not_authorized")
    gate.ctl({"cmd": "sim", "action": "input", "input": "lockdown", "active": False})
    assert wait_for(lambda: not gate.status()["lockdown"], 5.0)
    assert [r.detail for r in gate.records("door") if r.reason.startswith("lockdown")][-2:] == [
        "by input", "by input"]
    # A second daemon for the same gate refuses to start, before it touches a pin.
    second = gate.gate_reader("run", "--config", str(gate.config), timeout=30)
    assert second.returncode == 2 and "already answers" in second.stderr
    assert gate.stop() == 0
    assert gate.gate_reader("lockdown", "on", "--config", str(gate.config)).returncode == 1  # nobody answers


