"""The tests' loopback HTTP servers (helpers, not a test module).

:class:`LoopbackServer` is the one server: ``http.server`` on 127.0.0.1 (an ephemeral port,
or the same port again after ``stop()``: a server coming back), in a thread of its own, used
as a context manager or with ``start()`` / ``stop()``, quiet about clients that hang up. Two
kinds build on it:

- :class:`StaticServer` serves ``metadata/`` and ``targets/`` of a directory as a static web
  server would (a TUF repository's ``public/``, and nothing else: ``keys/`` sits beside it),
  logs every request path, and injects faults per path: another body, an HTTP status, a
  delay before the headers, the headers or the body dribbled byte by byte, a connection
  dropped mid-body;
- ``tests.support.collector.Collector``, the CloudEvents collector the uploads go to (HTTPS
  with a throwaway PKI, or plain HTTP), with its own faults.
"""

from __future__ import annotations

import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

SERVED_DIRS = ("metadata", "targets")


@dataclass
class Fault:
    """What to do instead of serving a path normally (combine as needed)."""

    body: bytes | None = None  # serve these bytes instead of the file
    status: int | None = None  # answer with this HTTP status
    delay_s: float = 0.0  # wait before sending the response headers
    dribble_s: float = 0.0  # send the body one byte at a time, this long apart
    header_dribble_s: float = 0.0  # send the status line and headers one byte at a time, this long apart
    drop_after: int | None = None  # send this many body bytes (Content-Length says all), then hang up
    times: int | None = None  # apply to this many requests, then serve normally


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server; every answer has a Content-Length
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: QuietServer

    def do_GET(self) -> None:
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path)
        owner._record(path)
        fault = owner._take_fault(path)
        if fault is not None and fault.delay_s and owner._stopping.wait(fault.delay_s):
            return
        status = fault.status if fault is not None and fault.status else 200
        body = fault.body if fault is not None and fault.body is not None else None
        if body is None and status == 200:
            body = owner._read(path)
            if body is None:
                status = 404
        if body is None:
            body = f"{status}\n".encode()
        if fault is not None and fault.header_dribble_s:
            self._dribble_headers(status, len(body), fault.header_dribble_s, owner._stopping)
            if not self.close_connection:
                self.wfile.write(body)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self._send_body(body, fault, owner._stopping)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dribble_headers(self, status: int, length: int, gap_s: float, stopping: threading.Event) -> None:
        """A server that trickles its response head: each byte arrives well inside any
        socket timeout, so only a deadline on the whole request can stop the client."""
        head = (f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").encode()
        try:
            for i in range(len(head)):
                self.wfile.write(head[i : i + 1])
                self.wfile.flush()
                if stopping.wait(gap_s):
                    self.close_connection = True
                    return
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_body(self, body: bytes, fault: Fault | None, stopping: threading.Event) -> None:
        if fault is not None and fault.drop_after is not None:
            self.wfile.write(body[: fault.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.dribble_s:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                if stopping.wait(fault.dribble_s):
                    self.close_connection = True
                    return
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the request log is ``StaticServer.requests``."""


class QuietServer(ThreadingHTTPServer):
    """A threading server whose handler threads never hold the process or ``stop()`` up,
    and which says nothing of a client hanging up (as the sync does on a refused download)."""

    daemon_threads = True
    block_on_close = False
    owner: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass(kw_only=True)
class LoopbackServer:
    """A server on 127.0.0.1 in a thread of its own. Subclasses give ``make_server()``."""

    port: int = 0  # 0: any free port; after start(), the port it listens on
    _httpd: QuietServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def make_server(self) -> QuietServer:
        raise NotImplementedError

    def start(self) -> Any:
        """Listen (again, on the same port after ``stop()``)."""
        self._stopping.clear()
        httpd = self.make_server()
        httpd.owner = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def closed(self, httpd: QuietServer) -> None:
        """Called once the port is closed (a collector drops its keep-alive connections)."""

    def stop(self) -> None:
        """Stop serving and close the port; idempotent. Handlers waiting on ``_stopping``
        (a delay, a dribble) give up at once."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self.closed(self._httpd)
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"


@dataclass
class StaticServer(LoopbackServer):
    """Serve ``root``'s metadata/ and targets/ over HTTP with a request log and fault hooks."""

    root: Path
    requests: list[str] = field(default_factory=list)
    _faults: dict[str, Fault] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    def make_server(self) -> QuietServer:
        return QuietServer(("127.0.0.1", self.port), _Handler)

    # -- addresses --

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.base_url}/targets/"

    # -- log and faults --

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def log(self) -> list[str]:
        """A copy of the request paths so far, in order."""
        with self._lock:
            return list(self.requests)

    def fault(self, path: str, **kwargs: object) -> None:
        """Inject a fault for the URL path (e.g. ``/metadata/timestamp.json``); see Fault."""
        with self._lock:
            self._faults[path] = Fault(**kwargs)  # type: ignore[arg-type]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _record(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self._faults.get(path)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[path]
            return fault

    def _read(self, path: str) -> bytes | None:
        """The file under metadata/ or targets/ for a URL path, or None (404)."""
        parts = path.lstrip("/").split("/")
        if len(parts) < 2 or parts[0] not in SERVED_DIRS or any(p in ("", ".", "..") for p in parts):
            return None
        file = self.root.joinpath(*parts)
        try:
            return file.read_bytes() if file.is_file() else None
        except OSError:
            return None


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (bound then closed: the kernel refuses it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
