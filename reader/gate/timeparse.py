"""Times and durations from outside (a command line, a JSON request), checked before they
reach a clock or a policy.

A clock of NaN makes every comparison false, so an expired credential with an old QR code
passes every check; a clock of 10**400 cannot even become a float. So a time must be finite
and inside what both a NumericDate and ``datetime`` can represent, and a duration finite and
not negative; anything else is refused with a ``ValueError`` that quotes what was given.
"""

from __future__ import annotations

import datetime as dt
import math
import re

_EPOCH = re.compile(r"[0-9]+(\.[0-9]+)?")
#: 9999-12-31T23:59:59Z, the last whole second ``datetime`` can show (year 10000 cannot be
#: built); well inside a NumericDate's 2**63 - 1.
MAX_TIME = 253_402_300_799
#: A window, skew or age longer than the whole clock range means nothing.
MAX_DURATION_S = MAX_TIME
#: Longer than any epoch or ISO 8601 text; refused before int() or a regex looks at it.
_MAX_TEXT = 64


def shown(value: object) -> str:
    """The value for an error message, without printing a 400-digit number in full (and
    without str() of a huge int, which Python refuses past 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return f"a text of {len(value)} characters"
    return repr(value)


def check_time(value: object, what: str | None = None) -> float:
    """``value`` as epoch seconds: an int or a finite float, from 0 to :data:`MAX_TIME`.
    Booleans, NaN, infinities and out-of-range numbers are a ``ValueError`` whose message
    starts with ``what`` (default: "time" and the value)."""
    what = what or f"time {shown(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what}: must be epoch seconds")
    # The range test compares an int as an int: float(10**400) would raise, not refuse.
    if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= MAX_TIME:
        raise ValueError(f"{what}: out of range (epoch seconds from 0 to {MAX_TIME}, 9999-12-31T23:59:59Z)")
    return float(value)


def check_duration(value: object, what: str | None = None) -> float:
    """``value`` as seconds: an int or a finite float from 0 to :data:`MAX_DURATION_S`
    (a ``ValueError`` otherwise, its message starting with ``what``)."""
    what = what or f"duration {shown(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what}: must be a number of seconds")
    if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= MAX_DURATION_S:
        raise ValueError(f"{what}: out of range (a finite number of seconds from 0 to {MAX_DURATION_S})")
    return float(value)


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds as typed (``30``, ``0.5``, ``1e3``); ``nan``, ``inf`` and negatives are refused."""
    if len(text) > _MAX_TEXT:
        raise ValueError(f"{what} {shown(text)}: not a number of seconds")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r}: not a number of seconds") from None
    return check_duration(value, f"{what} {text!r}")


def parse_time(text: str) -> float:
    """Epoch seconds (``1798761600``, ``1798761600.5``) or ISO 8601 with ``Z`` or an offset
    (``2027-01-01T00:00:00Z``, ``2027-01-01T09:00:00.250+09:00``). A time without a zone is
    refused: a gate must not guess which zone a technician meant. Whole epoch seconds come
    back as an int (the authority writes them into CBOR as integers); the result is finite
    but not range-checked: a clock needs :func:`parse_clock`.

    Raises ``ValueError`` with a message that quotes the text.
    """
    if len(text) > _MAX_TEXT:
        raise ValueError(f"time {shown(text)} is neither epoch seconds nor ISO 8601")
    text = text.strip()
    if _EPOCH.fullmatch(text):
        if "." not in text:
            return int(text)  # at most 64 digits: cheap, and compared as an int by callers
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"time {text!r}: out of range")
        return value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {text!r} is neither epoch seconds nor ISO 8601") from None
    if when.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone: add Z or an offset such as +09:00")
    try:
        return when.timestamp()
    except (OverflowError, ValueError):  # year 1 with a positive offset lies before year 1
        raise ValueError(f"time {text!r}: out of range") from None


def parse_clock(text: str) -> float:
    """A time for a clock: :func:`parse_time`, then :func:`check_time` (0 .. year 9999)."""
    return check_time(parse_time(text), f"time {text.strip()!r}" if len(text) <= _MAX_TEXT else None)
