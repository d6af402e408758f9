"""``gate-reader run`` as a child process from a simulated-hardware config, driven from outside:
a scanner on a pty, an NFC phone on nfcpy's udp driver, a camera playing PNG frames, mock
pins read and driven through the control socket, the centre's repository on loopback."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.camera_sim import background, centred, code_image, scene, write_png_sequence
from drivers.nfc_emulator import CardEmulator, GatePassHolder
from reader.gate.report import iso_time as _iso
from reader.gatepass.authority import Holder, issue_credential
from tests.support.centre import URI, Centre, ok
from tests.support.simgate import Scanner, SimGate, free_udp_port, pulses, wait_released
from tests.support.waiting import wait_for, wait_until


def gate_text(centre: Centre, root: Path, port: int, *, release_s: float = 0.6, camera: str | None = None,
              extra: str = "") -> str:
    text = Path(centre.config).read_text()  # type: ignore[attr-defined]
    text += (f'[door]\npin_factory = "mock"\nrelease_s = {release_s}\n'
             f'[daemon]\nruntime_dir = "{root / "run"}"\nlevel_poll_s = 0.1\nhealth_interval_s = 0.5\n'
             f'source_stall_s = 5\n[lockdown]\ngroups = ["security"]\n'
             f'[[readers]]\nname = "scan"\ndriver = "scanner"\ndevice = "{root / "scanner"}"\n'
             f'[[readers]]\nname = "nfc"\ndriver = "nfc"\ndevice = "udp:127.0.0.1:{port}"\n')
    if camera is not None:
        text += f'[[readers]]\nname = "cam"\ndriver = "camera"\ndevice = "{camera}"\nfps = 10\n'
    return text + extra


class Employee:
    def __init__(self, centre: Centre, idx: int, groups: list[str] | None = None) -> None:
        self.holder = Holder.generate("ES256")
        now = int(time.time())
        self.credential = issue_credential(centre.issuer, sub=f"E{idx}", iat=now - 60, exp=now + 86_400,
                                           holder=self.holder, status=(URI, idx), groups=groups)

    def qr(self) -> str:
        return self.holder.present_qr(self.credential, iat=int(time.time()))

    def phone(self) -> GatePassHolder:
        return GatePassHolder(lambda data: self.holder.answer_challenge(data, self.credential, iat=time.time()))


@pytest.fixture
def sim(centre: Centre, tmp_path: Path) -> Iterator[tuple[Centre, SimGate, Scanner, int]]:
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    port = free_udp_port()
    scanner = Scanner(tmp_path / "scanner")
    gate = SimGate(tmp_path, gate_text(centre, tmp_path, port))
    try:
        yield centre, gate, scanner, port
    finally:
        gate.kill()
        scanner.unplug()


def _scanner_up(gate: SimGate) -> bool:
    return bool(gate.status()["sources"]["scan"]["up"])


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
            assert wait_for(lambda: _scanner_up(gate), 10.0)
            gate.wait_decisions(1)  # the camera's file is played once at start
            scanner.scan(Employee(centre, 1).qr())
            wait_released(gate, True)
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


def test_a_revocation_synced_while_the_daemon_runs_denies_the_next_presentation(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.start()
    assert wait_for(lambda: _scanner_up(gate), 10.0)
    employee = Employee(centre, 7)
    scanner.scan(employee.qr())
    gate.wait_decisions(1)
    centre.revoke("--idx", 7, name="main")
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    time.sleep(0.3)  # the worker polls the change marker on every turn (<= 0.05 s)
    scanner.scan(employee.qr())
    assert gate.wait_decisions(2)[-1] == ("scan", "deny", "revoked")


def test_sigkill_during_a_release_then_restart_the_door_is_secured_and_the_grant_journaled(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.config.write_text(gate.config.read_text().replace("release_s = 0.6", "release_s = 20"))
    gate.start()
    assert wait_for(lambda: _scanner_up(gate), 10.0)
    scanner.scan(Employee(centre, 4).qr())
    wait_released(gate, True)
    assert gate.stop(signal.SIGKILL) == -signal.SIGKILL
    assert gate.decisions() == [("scan", "grant", "granted")]
    # The mock relay died with the process; the restarted daemon claims it at the secured level.
    gate.start()
    relay = gate.relay()
    assert not gate.released() and pulses(relay["history"], relay["active_high"]) == 0
    starts = [r.detail for r in gate.records("door") if r.reason == "started"]
    assert len(starts) == 2 and starts[-1] == "door secured"
    assert gate.stop() == 0


def test_sighup_during_a_release_reloads_without_a_relay_glitch(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.config.write_text(gate.config.read_text().replace("release_s = 0.6", "release_s = 1.5"))
    gate.start()
    assert wait_for(lambda: _scanner_up(gate), 10.0)
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
        assert wait_for(lambda: _scanner_up(gate), 10.0)
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


def test_lockdown_on_and_off_through_the_cli(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.start()
    assert wait_for(lambda: _scanner_up(gate), 10.0)
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
    # A second daemon for the same gate refuses to start, before it touches a pin.
    second = gate.gate_reader("run", "--config", str(gate.config), timeout=30)
    assert second.returncode == 2 and "already answers" in second.stderr
    assert gate.stop() == 0
    assert gate.gate_reader("lockdown", "on", "--config", str(gate.config)).returncode == 1  # nobody answers


def test_a_source_that_vanishes_shows_down_while_the_others_keep_granting(sim) -> None:
    centre, gate, scanner, port = sim
    with CardEmulator(port) as phone_reader:
        gate.start()
        assert wait_for(lambda: _scanner_up(gate), 10.0)
        scanner.unplug()
        wait_until(lambda: not _scanner_up(gate), 10.0)
        assert gate.status()["sources"]["scan"]["last_error"]
        assert phone_reader.tap(Employee(centre, 11).phone(), timeout=10.0)
        assert gate.wait_decisions(1) == [("nfc", "grant", "granted")]
        scanner.plug()  # back at the same path: the source reconnects by itself
        assert wait_for(lambda: _scanner_up(gate), 15.0)
        scanner.scan(Employee(centre, 12).qr())
        assert gate.wait_decisions(2)[-1] == ("scan", "grant", "granted")
    assert gate.stop() == 0


def test_the_nfc_reader_comes_back_after_each_restart(sim) -> None:
    centre, gate, _scanner, port = sim
    with CardEmulator(port) as phone_reader:
        for round_ in range(3):
            gate.start()
            assert phone_reader.tap(Employee(centre, 20 + round_).phone(), timeout=10.0)
            gate.wait_decisions(round_ + 1)
            assert gate.stop() == 0
    assert [d[1] for d in gate.decisions()] == ["grant"] * 3


def test_sigterm_during_a_release_secures_the_door_and_keeps_the_grant(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.config.write_text(gate.config.read_text().replace("release_s = 0.6", "release_s = 20"))
    gate.start()
    assert wait_for(lambda: _scanner_up(gate), 10.0)
    scanner.scan(Employee(centre, 13).qr())
    wait_released(gate, True)
    assert gate.stop(signal.SIGTERM) == 0
    door = [(r.reason, r.detail) for r in gate.records("door")]
    assert door[-2:] == [("relocked", "release ended by shutdown"), ("stopped", "door secured")]
    assert gate.decisions() == [("scan", "grant", "granted")]
