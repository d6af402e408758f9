"""Times as people type them on a command line: epoch seconds or ISO 8601 with a zone."""

from __future__ import annotations

import datetime as dt
import math
import re

_EPOCH = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse_time(text: str) -> float:
    """Epoch seconds (``1798761600``, ``1798761600.5``) or ISO 8601 with ``Z`` or an offset
    (``2027-01-01T00:00:00Z``, ``2027-01-01T09:00:00.250+09:00``). A time without a zone is
    refused: a gate must not guess which zone a technician meant.

    Raises ``ValueError`` with a message that quotes the text.
    """
    text = text.strip()
    if _EPOCH.fullmatch(text):
        value = float(text) if "." in text else int(text)
        if not math.isfinite(value):
            raise ValueError(f"time {text!r} is out of range")
        return value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {text!r} is neither epoch seconds nor ISO 8601") from None
    if when.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone: add Z or an offset such as +09:00")
    return when.timestamp()
