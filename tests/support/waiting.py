"""Waiting for a thread to get somewhere, and taking what it put in a queue: the polling the
source and server tests share (a test never sleeps a fixed time and hopes)."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds (asked once more at the
    end, so a slow last step still counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> None:
    """:func:`wait_for`, failing the test when the condition never came true."""
    if not wait_for(condition, timeout, interval):
        raise AssertionError("condition not met in time")


def take(sink: queue.Queue, count: int, timeout: float) -> list[Any]:
    """Exactly ``count`` items, each within ``timeout`` (queue.Empty otherwise)."""
    return [sink.get(timeout=timeout) for _ in range(count)]


def drain(sink: queue.Queue, count: int | None = None, timeout: float = 0.0) -> list[Any]:
    """What the queue holds: everything there now (``count`` None, no ``timeout``), or up
    to ``count`` items arriving within ``timeout`` seconds."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while count is None or len(got) < count:
        try:
            got.append(sink.get_nowait())
            continue
        except queue.Empty:
            pass
        if time.monotonic() >= deadline:
            return got
        with contextlib.suppress(queue.Empty):
            got.append(sink.get(timeout=0.05))
    return got
