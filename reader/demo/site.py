"""The simulated site: a centre with its TUF repository on loopback, one gate's files and
its simulated hardware (the daemon's child process is :mod:`reader.demo.process`).

Everything a gate would meet is real except the hardware: the centre's steps are
``gate-reader authority ...`` commands, the gate syncs with ``gate-reader sync``, and the
daemon is ``gate-reader run`` on a config whose ``[door]`` uses gpiozero's mock pins, read and
driven through the daemon's control socket (``sim`` commands). The phones are the ISO-DEP
emulator on nfcpy's udp driver, the camera plays a video file, the scanner is a pty.

Decisions:

- **Child processes, not threads.** The demo and the benchmark's process figures must show
  the daemon as it runs on a gate: its own process, its own log, signals, READY=1 on its
  notify socket. What the demo reports is read back from the daemon: its log lines, its
  journal (the cache, opened read-only), its control socket.
- **Sockets in a short temporary directory.** A unix socket path is limited to 107 bytes;
  the output folder a user names may be longer, so the control and notify sockets live in a
  ``mkdtemp`` directory under ``/tmp`` removed at the end.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from reader.errors import SiteError
from reader.gatepass.authority import Holder, Issuer, issue_credential

GATE_READER = (sys.executable, "-m", "reader")
LIST_URI = "https://status.demo.example/lists/main"
LIST_NAME = "main"
_CHILD_ENV_DROPPED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RUNTIME_DIRECTORY", "JOURNAL_STREAM")


def gate_reader(*args: object, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``gate-reader ARGS`` as a child process; SiteError with its stderr when it fails."""
    argv = [*GATE_READER, *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=child_env())
    if done.returncode != 0:
        raise SiteError(f"gate-reader {' '.join(map(str, args[:2]))} exited {done.returncode}: "
                        f"{done.stderr.strip() or done.stdout.strip()}")
    return done


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what systemd gives its own service."""
    env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROPPED}
    env.update(extra or {})
    return env


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the centre -------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the demo narrates; no access log
        pass


class LoopbackServer:
    """A static web server for a TUF repository's ``public/`` folder on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tuf-server", daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Employee:
    """A phone with its device key and the credential the centre issued for it."""

    name: str
    sub: str
    idx: int
    holder: Holder
    credential: bytes

    def qr(self) -> str:
        """A fresh QR text, as the phone shows it now."""
        return self.holder.present_qr(self.credential, iat=int(time.time()))

    def answer(self, challenge: bytes) -> bytes:
        """What the phone answers to the gate's NFC challenge."""
        return self.holder.answer_challenge(challenge, self.credential, iat=time.time())


class Centre:
    """The issuer and its TUF repository (``root/centre``): made and changed with the
    ``gate-reader authority`` commands an operator runs."""

    def __init__(self, root: Path) -> None:
        self.root = root / "centre"
        self.repo = self.root / "repo"
        self.key, self.cert = self.root / "issuer.key", self.root / "issuer.pem"
        self.issuer = Issuer.generate("ES256", common_name="Demo Ministry Issuer")
        self.issuer.save(self.key, self.cert)
        self.issuer_args = ("--issuer-key", self.key, "--issuer-cert", self.cert)

    def publish_initial(self, list_size: int) -> None:
        """A repository publishing the issuer's certificate and an empty status list."""
        gate_reader("authority", "publish", "--repo", self.repo, "--init", "--trust", self.cert)
        self.revoke(0, restore=True, new=list_size)

    def revoke(self, idx: int, *, restore: bool = False, new: int | None = None) -> float:
        """``gate-reader authority revoke``: the list changed, signed and published; its
        wall time in seconds."""
        extra: list[object] = ["--restore"] if restore else []
        if new is not None:
            extra += ["--uri", LIST_URI, "--size", new]
        started = time.monotonic()
        gate_reader("authority", "revoke", "--repo", self.repo, *self.issuer_args, "--list", LIST_NAME,
                    "--idx", idx, *extra)
        return time.monotonic() - started

    def publish_legacy(self, cards: dict[str, str]) -> None:
        """The legacy card list (card text -> subject), valid a year, published."""
        path = self.root / "legacy.cwt"
        card_args = [arg for text, sub in cards.items() for arg in ("--card", f"{text}={sub}")]
        gate_reader("authority", "legacy-list", *self.issuer_args, *card_args,
                    "--exp", int(time.time()) + 365 * 86_400, "--out", path)
        gate_reader("authority", "publish", "--repo", self.repo, "--legacy", path)

    def employee(self, name: str, idx: int, *, expired: bool = False, groups: list[str] | None = None) -> Employee:
        """A phone key and a credential at list index ``idx``, valid for a day (or expired
        yesterday)."""
        now = int(time.time())
        iat, exp = (now - 2 * 86_400, now - 86_400) if expired else (now - 60, now + 86_400)
        holder = Holder.generate("ES256")
        sub = f"E{1000 + idx}"
        credential = issue_credential(self.issuer, sub=sub, iat=iat, exp=exp, holder=holder,
                                      status=(LIST_URI, idx), name=name, groups=groups)
        return Employee(name, sub, idx, holder, credential)


# -- the gate's hardware ------------------------------------------------------------------------


class ScannerPty:
    """A serial barcode scanner: a pty whose other end the daemon opens through ``link``."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        name = os.ttyname(slave)
        os.close(slave)  # the daemon opens it by name; the master end keeps the pty alive
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(name)
        self.master = master

    def unplug(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def scan(self, text: str | bytes, end: bytes = b"\r\n") -> None:
        if self.master is None:
            raise SiteError("the scanner is unplugged")
        data = text.encode() if isinstance(text, str) else text
        os.write(self.master, data + end)


@dataclass(frozen=True)
class GatePaths:
    root: Path
    runtime: Path  # short: the sockets

    @property
    def config(self) -> Path:
        return self.root / "gate.toml"

    @property
    def cache(self) -> Path:
        return self.root / "cache.db"

    @property
    def socket(self) -> Path:
        return self.runtime / "control.sock"

    @property
    def scanner(self) -> Path:
        return self.root / "scanner"


def gate_config(paths: GatePaths, server_url: str, repo: Path, *, nfc_port: int, camera: str | None,
                release_s: float, held_open_s: float, timezone: str = "UTC", extra: str = "",
                health_interval_s: float = 1.0, legacy_schedule: str | None = "night", camera_loop: bool = False,
                queue_size: int = 64) -> str:
    """The demo gate's TOML: the four sources, mock pins, a sync from the loopback centre."""
    text = f'''# The demo gate (gate-reader demo): simulated hardware, a real daemon.
[gate]
id = "demo-gate-1"
key = "{paths.root / 'gate.key'}"
timezone = "{timezone}"

[cache]
path = "{paths.cache}"

[sync]
metadata_url = "{server_url}/metadata/"
targets_url = "{server_url}/targets/"
root = "{repo / 'public' / 'metadata' / 'root.json'}"
timeout_s = 5
total_timeout_s = 20

[policy]
legacy_cards = false                  # only where a reader says so

[door]
pin_factory = "mock"                  # gpiozero MockFactory: driven through the control socket
release_s = {release_s:g}
held_open_s = {held_open_s:g}
alarm_repeat_s = 30

[daemon]
runtime_dir = "{paths.runtime}"
level_poll_s = 0.1
health_interval_s = {health_interval_s:g}
source_stall_s = 5
queue_size = {queue_size}

[schedules.night]
windows = ["mon-sun 19:00-07:00"]

[[readers]]
name = "lobby-nfc"
driver = "nfc"
device = "udp:127.0.0.1:{nfc_port}"

[[readers]]
name = "lobby-scanner"
driver = "scanner"
device = "{paths.scanner}"

[[readers]]
name = "garage-wiegand"
driver = "wiegand"
device = [20, 21]
legacy_cards = true                   # old badges here only
'''
    if legacy_schedule is not None:
        text += f'legacy_schedule = "{legacy_schedule}"\n'
    if camera is not None:
        text += f'\n[[readers]]\nname = "lobby-camera"\ndriver = "camera"\ndevice = "{camera}"\nfps = 15\n'
        text += "loop = true\n" if camera_loop else ""
    return text + extra


def runtime_dir() -> Path:
    """A short directory for the sockets (see the module's decisions)."""
    return Path(tempfile.mkdtemp(prefix="gate-demo-"))


def remove_runtime(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
