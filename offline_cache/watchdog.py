"""A deadline for everything one sync does on the network, the response head included.

A socket timeout bounds each wait for bytes, not a request: a server that trickles its
response head (a byte every second) keeps resetting it, and while http.client reads the
head there is no hook between bytes. The fetcher in offline_cache/sync.py checks its
deadline between body reads; this module covers the rest (the head, the TLS handshake) by
ending the connections themselves when the deadline passes.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import urllib3


class Watchdog:
    """Ends every connection of one sync when its deadline passes.

    Each socket the sync opens is registered here as a duplicate of its descriptor: the TLS
    wrapper detaches the original socket object, the duplicate still reaches the connection.
    A timer thread shuts them all down at the deadline; a read blocked in another thread
    then returns at once, and the fetcher reports the deadline. The duplicates hold the
    connections open until :meth:`close` (the end of the sync, seconds at most), which
    costs a descriptor per connection and nothing else."""

    def __init__(self, total_timeout_s: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(total_timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        watched = sock.dup()
        with self._lock:
            self._sockets.append(watched)
            if not self.expired:
                return
        _shut(watched)  # opened after the deadline: end it at once

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        """Stop the timer and drop the duplicates; idempotent."""
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer or by urllib3
        sock.shutdown(socket.SHUT_RDWR)


def watched_pool_classes(watchdog: Watchdog) -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """urllib3 pool classes whose connections register each new socket with ``watchdog``."""

    class Connection(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watchdog.watch(sock)
            return sock

    class SecureConnection(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watchdog.watch(sock)
            return sock

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}
