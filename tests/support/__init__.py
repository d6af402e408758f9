"""Helpers the tests share (not test modules): the loopback HTTP servers (``http``,
``collector``), the test centre and the command run in-process (``centre``), waiting and
draining (``waiting``), running the command as another user (``unprivileged``), and where
the repository's files are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The worked GatePass vectors (docs/formats.md), shared by the core's and the command's tests.
VECTORS = REPO / "tests" / "data" / "gatepass-v1"
EXAMPLE_CONFIG = REPO / "config" / "gate-reader.example.toml"
