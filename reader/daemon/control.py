"""The local control socket: how ``gate-reader lockdown``, ``status`` and the door
diagnostics reach the running daemon (a second process cannot take the GPIO pins the daemon
holds), and how tests and the demo drive a simulated gate in another process.

A unix stream socket in the runtime directory (``$RUNTIME_DIRECTORY`` when systemd sets it,
else ``[daemon] runtime_dir``), mode 0660: the owner and the group only. One JSON request
per connection, at most :data:`MAX_REQUEST` bytes, ended by a newline or by the client
shutting its side; one JSON answer (``{"ok": true, ...}`` or ``{"ok": false, "error":
"..."}``) and the connection closes. Who asked is the peer's uid (``SO_PEERCRED``): a
lockdown is journaled with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reader.errors import ControlError

__all__ = ["MAX_REQUEST", "ControlError", "ControlServer", "answers", "peer_uid", "request"]

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
_CONNECTION_TIMEOUT_S = 5.0

Handler = Callable[[dict[str, Any], int], dict[str, Any]]


def peer_uid(conn: socket.socket) -> int:
    """The connecting process's uid (SO_PEERCRED: pid, uid, gid)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _read_request(conn: socket.socket) -> dict[str, Any]:
    data = bytearray()
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError(f"request longer than {MAX_REQUEST} bytes")
    try:
        request = json.loads(bytes(data).split(b"\n", 1)[0].decode("utf-8"),
                             parse_constant=lambda name: (_ for _ in ()).throw(ValueError(f"{name} is not JSON")))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a JSON request: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ValueError('a request is a JSON object with "cmd"')
    return request


class ControlServer:
    """Serves ``handler(request, uid)`` on ``path`` from a thread of its own."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = Path(path)
        self._handler = handler
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise OSError(f"{self.path} exists and is not a socket: not replaced")
            if answers(self.path):
                raise OSError(f"{self.path}: another daemon answers there (two daemons for one gate?)")
            self.path.unlink()  # left by a daemon that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o117)  # created 0660 from the first instant, not chmod-ed after
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        sock.listen(8)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("control socket: accept failed")
                continue
            # One at a time: requests are few and short, and the worker serialises them anyway.
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(_CONNECTION_TIMEOUT_S)
        try:
            uid = peer_uid(conn)
            request = _read_request(conn)
            answer = {"ok": True, **self._handler(request, uid)}
        except (ValueError, KeyError, TypeError, TimeoutError, RuntimeError, OSError) as exc:
            answer = {"ok": False, "error": str(exc) or type(exc).__name__}
        except Exception as exc:
            log.exception("control socket: request failed")
            answer = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(answer, default=str).encode("utf-8") + b"\n")

    def close(self) -> None:
        self._stop.set()
        sock, self._sock = self._sock, None
        if self._thread is not None:
            self._thread.join(2.0)
        if sock is not None:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def answers(path: Path) -> bool:
    """Whether something accepts connections at ``path`` (a running daemon)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def request(path: Path, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the daemon at ``path``; its answer. ControlError when nothing
    answers there or the daemon refused the request (its message)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(payload).encode("utf-8") + b"\n")
            sock.shutdown(socket.SHUT_WR)
            data = bytearray()
            while chunk := sock.recv(65536):
                data += chunk
                if len(data) > 16 * MAX_REQUEST:
                    raise ControlError("the daemon's answer is too long")
        except FileNotFoundError:
            raise ControlError(f"no daemon is running (no control socket at {path})") from None
        except ConnectionRefusedError:
            raise ControlError(f"no daemon is running (nothing answers at {path})") from None
        except PermissionError:
            raise ControlError(f"{path}: permission denied (the socket is for the daemon's user and group)") from None
        except TimeoutError:
            raise ControlError(f"the daemon at {path} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ControlError(f"{path}: {exc.strerror or exc}") from None
    try:
        answer = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlError("the daemon's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError("the daemon's answer is not a JSON object")
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error") or "refused"))
    return answer
