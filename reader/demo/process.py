"""The gate's daemon as a child process (``gate-reader run``), driven from outside as a
technician or systemd would: READY=1 and the watchdog pings on a notify socket of ours, its
log lines kept as they come (and copied to a file), its control socket (status, the mock
pins' ``sim`` commands), signals, and its journal read from the cache (read-only)."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.wiegand import DEFAULT_FRAME_GAP_S, frame_went_out
from offline_cache.journal import Journal, JournalRecord
from offline_cache.store import Store
from reader.daemon.control import ControlError, request
from reader.demo.site import GATE_READER, GatePaths, child_env
from reader.errors import SiteError

#: the daemon's decision log line (reader.daemon.pipeline)
DECISION_LINE = re.compile(r"decision reader=(?P<reader>\S+) kind=(?P<kind>\S+) decision=(?P<decision>\S+) "
                           r"reason=(?P<reason>\S+) credential=(?P<credential>\S+) latency_ms=(?P<latency>[\d.]+)")

#: sends of one Wiegand frame before the demo gives up (a machine that busy this long is named)
WIEGAND_SENDS = 5


@dataclass(frozen=True)
class LogLine:
    at: float  # time.monotonic() when the line arrived
    text: str


class DaemonProcess:
    """``gate-reader run --config CONFIG`` as a child process: READY=1 on a notify socket of
    ours, its stderr kept (and copied to ``log_path``), its control socket and journal."""

    def __init__(self, paths: GatePaths, log_path: Path, *, on_line: Callable[[LogLine], None] | None = None) -> None:
        self.paths = paths
        self.log_path = log_path
        self.on_line = on_line
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[LogLine] = []
        self._lines_lock = threading.Lock()
        self.started_at = 0.0
        self.ready_s: float | None = None
        self._ready = threading.Event()
        self._notify: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.notifications: list[tuple[float, str]] = []  # (time.monotonic(), sd_notify message)

    def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> float:
        """Start and wait for READY=1; the seconds it took (from the fork)."""
        self.paths.runtime.mkdir(parents=True, exist_ok=True)
        notify_path = self.paths.runtime / "notify.sock"
        with contextlib.suppress(FileNotFoundError):
            notify_path.unlink()
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._notify.bind(str(notify_path))
        self._notify.settimeout(0.2)
        self.ready_s = None
        self._ready.clear()
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [*GATE_READER, "run", "--config", str(self.paths.config)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1,
            env=child_env({"NOTIFY_SOCKET": str(notify_path), **(env or {})}))
        self._threads = [threading.Thread(target=self._read_log, args=(self.process,), name="daemon-log", daemon=True),
                         threading.Thread(target=self._read_notify, args=(self._notify,), name="daemon-notify",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()
        deadline = self.started_at + timeout
        while not self._ready.wait(0.05):
            if self.process.poll() is not None:
                raise SiteError(f"the daemon exited with {self.process.returncode} before READY=1:\n"
                                + self.log_tail())
            if time.monotonic() > deadline:
                self.kill()
                raise SiteError(f"the daemon sent no READY=1 within {timeout:g} s:\n" + self.log_tail())
        assert self.ready_s is not None
        return self.ready_s

    def _read_notify(self, sock: socket.socket) -> None:
        """sd_notify messages as they come: READY=1 timed, every message kept."""
        while True:
            try:
                message = sock.recv(4096).decode("utf-8", "replace")
            except TimeoutError:
                continue
            except OSError:
                return  # closed: the daemon stopped
            now = time.monotonic()
            self.notifications.append((now, message))
            if "READY=1" in message.splitlines() and self.ready_s is None:
                self.ready_s = now - self.started_at
                self._ready.set()

    def _read_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        with self.log_path.open("a", encoding="utf-8") as copy:
            for raw in process.stderr:
                line = LogLine(time.monotonic(), raw.rstrip("\n"))
                copy.write(raw)
                copy.flush()
                with self._lines_lock:
                    self.lines.append(line)
                if self.on_line is not None:
                    self.on_line(line)

    def log_since(self, index: int) -> list[LogLine]:
        with self._lines_lock:
            return self.lines[index:]

    def log_tail(self, count: int = 20) -> str:
        with self._lines_lock:
            return "\n".join(line.text for line in self.lines[-count:])

    @property
    def pid(self) -> int:
        if self.process is None:
            raise SiteError("the daemon is not running")
        return self.process.pid

    def ctl(self, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """One control-socket request; SiteError with the daemon's refusal."""
        try:
            return request(self.paths.socket, payload, timeout=timeout)
        except ControlError as exc:
            raise SiteError(f"control socket: {exc}") from None

    def status(self) -> dict[str, Any]:
        return self.ctl({"cmd": "status"})["daemon"]

    def pin(self, name: str) -> dict[str, Any]:
        return self.ctl({"cmd": "sim", "action": "pin", "name": name})

    def drive(self, input_name: str, active: bool) -> None:
        self.ctl({"cmd": "sim", "action": "input", "input": input_name, "active": active})

    def wiegand(self, reader: str, **frame: Any) -> int:
        """Swipe a card: the frame pulsed on the reader's mock pins, sent again when the pins'
        stamps show it did not go out as a reader accepts it (see :func:`frame_went_out`); the
        number of sends. SiteError after WIEGAND_SENDS."""
        for sends in range(1, WIEGAND_SENDS + 1):
            answer = self.ctl({"cmd": "sim", "action": "wiegand", "reader": reader, **frame})
            if frame_went_out(answer.get("pulses") or []):
                return sends
            time.sleep(2 * DEFAULT_FRAME_GAP_S)  # the reader ends (and drops) the frame that went wrong first
        raise SiteError(f"wiegand {reader}: {WIEGAND_SENDS} frames in a row were stretched or cut by thread switches "
                        "(the machine is too busy to pulse at Wiegand timing)")

    def send(self, sig: int) -> None:
        if self.process is None or self.process.poll() is not None:
            raise SiteError("the daemon is not running")
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal it and wait; its exit status (negative: killed by that signal)."""
        self.send(sig)
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SiteError(f"the daemon did not stop within {timeout:g} s after signal {sig}") from None
        self._finish()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._finish()

    def _finish(self) -> None:
        """After the process ended: its log read to the end, the notify socket closed."""
        notify, self._notify = self._notify, None
        if notify is not None:
            notify.close()
        for thread in self._threads:
            thread.join(5.0)
        self._threads = []
        with contextlib.suppress(FileNotFoundError):
            (self.paths.runtime / "notify.sock").unlink()

    def records(self, since: int = 0) -> list[JournalRecord]:
        """The journal after seq ``since`` (read-only); SiteError if its hash chain breaks."""
        with Store.open(self.paths.cache, readonly=True) as store:
            rows = Journal(store).records(since=since)
        broken = [record.seq for record, ok in rows if not ok]
        if broken:
            raise SiteError(f"the journal's hash chain does not check out at seq {broken[0]}")
        return [record for record, _ok in rows]


def relay_changes(pin: dict[str, Any]) -> list[tuple[float, bool]]:
    """The mock relay's recorded history as (seconds since the pin was made, released)."""
    out, at = [], 0.0
    for delta, state in pin["history"]:
        at += float(delta)
        out.append((at, bool(state) == bool(pin["active_high"])))
    return out
