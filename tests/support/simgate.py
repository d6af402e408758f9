"""A simulated gate run as ``gate-reader run`` in a child process, driven from outside as a
technician or the centre would: mock pins (through the control socket's ``sim`` commands),
a scanner on a pty (behind a symlink, so it can vanish and come back at the same path), an
NFC reader on nfcpy's udp driver (``drivers.nfc_emulator`` on the other end), a camera
playing a PNG sequence. Each gate has its own directory and UDP port.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drivers.nfc_emulator import GatePassHolder
from offline_cache.journal import Journal, JournalRecord
from offline_cache.store import Store
from reader.daemon.control import ControlError, request
from reader.gatepass.authority import Holder, issue_credential
from tests.support.centre import URI, Centre
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
GATE_READER = [sys.executable, "-m", "reader"]


class SimGate:
    """One gate directory: its config, the child process, its control socket and cache."""

    def __init__(self, root: Path, config_text: str) -> None:
        self.root = root
        self.config = root / "gate.toml"
        self.config.write_text(config_text)
        self.socket = root / "run" / "control.sock"
        self.cache = root / "gate" / "cache.db"
        self.process: subprocess.Popen[str] | None = None
        self.log = root / "daemon.log"

    def start(self, env: dict[str, str] | None = None, wait_ready: bool = True) -> SimGate:
        environment = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC",
                                                                          "RUNTIME_DIRECTORY", "JOURNAL_STREAM")}
        environment.update(env or {})
        self._log = self.log.open("a")
        self.process = subprocess.Popen([*GATE_READER, "run", "--config", str(self.config)], cwd=ROOT,
                                        env=environment, stdout=self._log, stderr=subprocess.STDOUT, text=True)
        if wait_ready and not wait_for(self._answers, 30.0, 0.05):
            self.kill()
            raise AssertionError(f"the daemon did not come up:\n{self.log.read_text()}")
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.process.returncode}:\n{self.log.read_text()}")
        try:
            request(self.socket, {"cmd": "status"}, timeout=2.0)
        except ControlError:
            return False
        return True

    def ctl(self, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return request(self.socket, payload, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.ctl({"cmd": "status"})["daemon"]

    def relay(self) -> dict[str, Any]:
        return self.ctl({"cmd": "sim", "action": "pin", "name": "relay"})

    def released(self) -> bool:
        pin = self.relay()
        return pin["state"] == pin["active_high"]

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        finally:
            self._log.close()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        with contextlib.suppress(AttributeError):
            self._log.close()

    def records(self, kind: str | None = None) -> list[JournalRecord]:
        with Store.open(self.cache, readonly=True) as store:
            rows = Journal(store).records()
        assert all(ok for _record, ok in rows), "the journal's hash chain must check out"
        return [record for record, _ok in rows if kind is None or record.kind == kind]

    def decisions(self) -> list[tuple[str | None, str | None, str | None]]:
        return [(r.reader, r.decision, r.reason) for r in self.records("decision")]

    def wait_decisions(self, count: int, timeout: float = 10.0) -> list[tuple[str | None, str | None, str | None]]:
        if not wait_for(lambda: len(self.records("decision")) >= count, timeout, 0.05):
            raise AssertionError(f"{count} decisions expected, got {self.decisions()}\n{self.log.read_text()}")
        return self.decisions()

    def gate_reader(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GATE_READER, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              check=False)


def wait_released(gate: SimGate, released: bool, timeout: float = 5.0) -> None:
    if not wait_for(lambda: gate.released() == released, timeout, 0.02):
        raise AssertionError(f"relay {'never released' if released else 'still released'}: {gate.relay()}")


def pulses(history: list[list[Any]], active_high: bool) -> int:
    """How many times the pin went to its active level (a release) in its recorded history."""
    levels = [state for _t, state in history]
    return sum(1 for before, after in itertools.pairwise(levels)
               if after == active_high and before != active_high)


def now() -> int:
    return int(time.time())


def gate_text(centre: Centre, root: Path, port: int, *, release_s: float = 0.6, camera: str | None = None,
              extra: str = "") -> str:
    """The config of a simulated gate syncing from ``centre``: mock pins, a scanner on
    ``root/scanner``, NFC on udp ``port``, optionally a camera playing ``camera``."""
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
    """A phone with a credential of ``centre``'s issuer at list index ``idx``."""

    def __init__(self, centre: Centre, idx: int, groups: list[str] | None = None) -> None:
        self.holder = Holder.generate("ES256")
        now = int(time.time())
        self.credential = issue_credential(centre.issuer, sub=f"E{idx}", iat=now - 60, exp=now + 86_400,
                                           holder=self.holder, status=(URI, idx), groups=groups)

    def qr(self) -> str:
        return self.holder.present_qr(self.credential, iat=int(time.time()))

    def phone(self) -> GatePassHolder:
        return GatePassHolder(lambda data: self.holder.answer_challenge(data, self.credential, iat=time.time()))


def scanner_up(gate: SimGate, name: str = "scan") -> bool:
    return bool(gate.status()["sources"][name]["up"])
