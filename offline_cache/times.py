"""Times as the cache keeps and shows them: epoch seconds, formatted as ISO 8601 UTC.

A time can reach a formatter from places nobody checked when it was written: a status list
validly signed with ``exp`` in the year 10000 (a NumericDate goes up to 2^63 - 1), a journal
row edited by hand (``time = 1e20``, or text), a clock far off. ``datetime`` holds only years
1 to 9999 and raises on anything else, and one raise in a report used to take the whole
report (and the heartbeat, and the upload) down with it. So every formatter here answers
for every input: an ISO string when the value is a time the gate can have, a short
description otherwise, never an exception.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# The gate's times are between the epoch and the last second datetime can show
# (9999-12-31T23:59:59Z). Nothing before 1970 is a time a gate records or a list carries.
MIN_TIME = 0.0
MAX_TIME = 253_402_300_799.0

_MAX_SHOWN = 40  # a bad value is quoted, but an edited row may hold a long text: cut it


def usable_time(value: Any) -> float | None:
    """``value`` as float when it is an int or float (not a bool), finite, and between
    MIN_TIME and MAX_TIME; None otherwise."""
    if type(value) not in (int, float):
        return None
    t = float(value)
    if not math.isfinite(t) or not MIN_TIME <= t <= MAX_TIME:
        return None
    return t


def format_time(value: Any, timespec: str = "seconds") -> str | None:
    """ISO 8601 UTC with a ``Z`` for a usable time, None for anything else."""
    t = usable_time(value)
    if t is None:
        return None
    try:
        # Rounding to the timespec can still step past 9999-12-31T23:59:59.999999.
        return datetime.fromtimestamp(t, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return None


def describe_time(value: Any) -> str:
    """What a technician reads for a value that is not a usable time: the value itself,
    quoted and cut short, and why it is not shown as a date."""
    shown = repr(value)
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    if type(value) in (int, float):
        return f"{shown} (not a time between 1970 and 9999)"
    return f"{shown} (not a number of seconds)"


def show_time(value: Any, timespec: str = "seconds") -> str:
    """``format_time`` when it can, ``describe_time`` when it cannot: for reports."""
    return format_time(value, timespec) or describe_time(value)
