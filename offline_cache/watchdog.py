"""A deadline for a whole HTTP request, the response head included.

A socket timeout bounds each wait for bytes, not a request: a server that trickles its
response head (a byte every second) keeps resetting it, and while http.client reads the
head there is no hook between bytes. The sync's fetcher checks its deadline between body
reads, but nothing reaches inside the head or the TLS handshake, and the uploader had only
the socket timeout. So the connections themselves are ended when the deadline passes: each
socket a watched connection opens is registered here, and a timer shuts them down.

Used two ways: the sync arms one deadline for everything it does (``total_timeout_s``);
the uploader arms one per POST (``upload.total_timeout_s``) on connections it keeps alive
between batches.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import urllib3


class Watchdog:
    """Shuts down every watched connection when an armed deadline passes.

    A connection's socket is held as a duplicate of its descriptor: the TLS wrapper
    detaches the original socket object, the duplicate still reaches the connection. A read
    blocked in another thread then returns at once and the caller, seeing :attr:`expired`,
    reports the deadline. A connection forgets its duplicate when it closes, so a long-lived
    uploader holds one descriptor per live connection and no more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[Any, socket.socket] = {}
        self._timer: threading.Timer | None = None
        self._generation = 0
        self.expired = False

    def arm(self, seconds: float) -> None:
        """Start (or restart) the deadline ``seconds`` from now."""
        with self._lock:
            self._cancel()
            self._generation += 1
            self.expired = False
            self._timer = threading.Timer(seconds, self._expire, args=(self._generation,))
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        """The request finished in time: no deadline until the next ``arm``."""
        with self._lock:
            self._cancel()
            self._generation += 1  # a timer already firing finds itself outdated

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def watch(self, owner: Any, sock: socket.socket) -> None:
        """Watch ``sock``, the socket ``owner`` (a connection) now uses."""
        watched = sock.dup()
        with self._lock:
            old = self._sockets.pop(owner, None)
            self._sockets[owner] = watched
            late = self.expired
        if old is not None:
            old.close()
        if late:
            _shut(watched)  # opened after the deadline: end it at once

    def forget(self, owner: Any) -> None:
        with self._lock:
            watched = self._sockets.pop(owner, None)
        if watched is not None:
            watched.close()

    def _expire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self.expired = True
            sockets = list(self._sockets.values())
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        """Stop the timer and drop every duplicate; idempotent."""
        with self._lock:
            self._cancel()
            self._generation += 1
            sockets, self._sockets = list(self._sockets.values()), {}
        for sock in sockets:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer or by urllib3
        sock.shutdown(socket.SHUT_RDWR)


def watched_pool_classes(watchdog: Watchdog) -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """urllib3 pool classes whose connections register each new socket with ``watchdog``
    (set them as a PoolManager's ``pool_classes_by_scheme``)."""

    class Watched:
        """Mixed in before urllib3's connection class: registers each new socket."""

        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()  # type: ignore[misc]
            watchdog.watch(self, sock)
            return sock

        def close(self) -> None:
            try:
                super().close()  # type: ignore[misc]
            finally:
                watchdog.forget(self)

    class Connection(Watched, urllib3.connection.HTTPConnection):
        pass

    class SecureConnection(Watched, urllib3.connection.HTTPSConnection):
        pass

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}
