"""Trusted time (spec section 6): the gate's clock is trusted unless it is more than the
skew below the persisted time floor, which only ever rises."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from typing import Protocol

from reader.gatepass.verdict import Clock

log = logging.getLogger(__name__)

_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def gate_clock(now: float, floor: float | None, skew_s: float) -> Clock:
    """The clock a gate decides with: untrusted while ``now`` is more than the skew below
    the floor, so a centre whose clock runs a little fast cannot lock gates out."""
    trusted = floor is None or now >= floor - skew_s
    return Clock(now, trusted=trusted, floor=floor)


class _Timex(ctypes.Structure):
    # struct timex is 208 bytes on 64-bit Linux; only the return value matters here.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 204)]


def system_clock_synchronised() -> bool | None:
    """True when the kernel says NTP (or chrony, or systemd-timesyncd) keeps the clock in
    sync, False when it says it does not, None when it cannot be asked (not Linux)."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        libc = ctypes.CDLL(path, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        log.debug("adjtimex failed (errno %s)", ctypes.get_errno())
        return None
    return state != _TIME_ERROR


class TimeSource(Protocol):
    """The one injectable clock of the daemon: ``monotonic()`` for timers, the door and
    latencies, ``time()`` (epoch seconds) for decisions and the journal. Tests pass a fake
    they move."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemTime:
    """The real clocks."""

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    @staticmethod
    def time() -> float:
        return time.time()
