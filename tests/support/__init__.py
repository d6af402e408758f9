"""Helpers the tests share (not test modules): the loopback HTTP servers (``http``,
``collector``), the test centre and the command run in-process (``centre``), waiting and
draining (``waiting``), running the command as another user (``unprivileged``), a strict
reader of the Prometheus text format (``promtext``), where the repository's files are, and a
loopback port nothing listens on."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The worked GatePass vectors (docs/formats.md), shared by the core's and the command's tests.
VECTORS = REPO / "tests" / "data" / "gatepass-v1"
EXAMPLE_CONFIG = REPO / "config" / "gate-reader.example.toml"


def closed_tcp_port() -> int:
    """A loopback TCP port nothing listens on (a server that is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
