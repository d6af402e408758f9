"""sd_notify(3) in a few lines: READY=1, WATCHDOG=1, STOPPING=1, STATUS=... as datagrams to
the socket systemd names in ``NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
namespace). No dependency: the protocol is one datagram per message.

Without ``NOTIFY_SOCKET`` (a terminal, the tests that do not ask for it) every call does
nothing. A send that fails is logged once per kind and never raised: the daemon's job is the
door, and systemd's watchdog notices a daemon whose pings stop arriving anyway.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def watchdog_interval_s() -> float | None:
    """How often to ping: half of ``WATCHDOG_USEC`` (sd_watchdog_enabled(3)), None when
    systemd set no watchdog for this process."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class Notifier:
    """Sends sd_notify messages to ``address`` (None: does nothing)."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        self._failed: set[str] = set()
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._target = "\0" + self.address[1:] if self.address and self.address.startswith("@") else self.address

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        """One datagram of ``KEY=VALUE`` lines; whether it went out."""
        if self._sock is None or self._target is None:
            return False
        kind = lines[0].partition("=")[0] if lines else ""
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8"), self._target)
        except OSError as exc:
            if kind not in self._failed:
                self._failed.add(kind)
                log.warning("sd_notify %s to %s failed: %s", kind, self.address, exc.strerror or exc)
            return False
        self._failed.discard(kind)
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={' '.join(text.split())[:200]}")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
