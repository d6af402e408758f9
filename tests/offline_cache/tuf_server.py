"""A loopback HTTP server for the TUF tests (helpers, not a test module).

It serves ``metadata/`` and ``targets/`` of a repository directory as a static web server
would (and nothing else: ``keys/`` sits beside them), logs every request path, and injects
faults per path: another body, an HTTP status, a delay before the headers, the headers or
the body dribbled byte by byte, a connection dropped mid-body. Use it as a context manager or ``start()`` /
``stop()``; it binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
    server: _Server

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
        """Quiet: the request log is ``TufServer.requests``."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: TufServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up (as the sync does on a refused download) is not news."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class TufServer:
    """Serve ``repo_dir`` over HTTP on 127.0.0.1 with a request log and fault hooks."""

    def __init__(self, repo_dir: Path) -> None:
        self.repo_dir = Path(repo_dir).resolve()
        self.requests: list[str] = []
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> TufServer:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port; idempotent. Dribbling handlers give up at once."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TufServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

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
        file = self.repo_dir.joinpath(*parts)
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
