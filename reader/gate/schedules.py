"""Weekly time windows, named schedules, holidays and the site's time zone: the "when" of
the reader policy (:mod:`reader.gate.policy`, which re-exports these names).

Pure: no clock reads; a time is passed in as the site's local ``datetime``. The one thing
read is the time zone database, through ``zoneinfo`` (which caches each zone), when a zone
name is checked or an epoch is turned into the site's wall-clock time.

Decisions:

- A window is ``"DAYS HH:MM-HH:MM"``: days ``mon..sun`` and ``hol``, in comma lists and
  ranges (``fri-mon`` wraps through the weekend; ``hol`` stands alone); ``24:00`` only as an
  end; start == end is refused (a whole day is written ``00:00-24:00``); the start minute is
  included, the end minute excluded.
- A window whose end is before its start runs overnight. It belongs to the day it STARTS
  on: its part after midnight is allowed whatever the next day is, so ``mon-fri 19:00-07:00``
  allows Saturday 06:00 but not Monday 06:00.
- A holiday date counts as day ``hol`` ONLY: its weekday's windows do not apply, to its
  evening nor to the morning after it (that morning belongs to the holiday's night). So
  "weekdays but not holidays" is the natural reading, and a site writes ``hol`` windows where
  holidays are open.
- Local time is read by its wall-clock fields: in the autumn's repeated hour a window is
  evaluated twice, in the spring's skipped hour never.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOLIDAY = "hol"
MAX_NAME_CHARS = 64
MAX_WINDOW_CHARS = 80
# Weekday titles from a table, not strftime("%a"), which follows the process's locale.
_TITLES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TIME = re.compile(r"(\d\d):(\d\d)\Z")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
# IANA zone names: no dots, so no path games and no non-zone file of the tz database.
_ZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*\Z")


def check_name(value: object, what: str) -> str:
    """A reader, schedule or area name: letters, digits, ``_ . -``, 1 to 64 (they appear in
    details, the journal and key paths)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{what} must be 1-{MAX_NAME_CHARS} letters, digits, '_', '.' or '-', not {value!r}")
    return value


def check_group(value: object) -> str:
    """A group name as a credential's ``grp`` may hold it: printable text, 1 to 64."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS or not value.isprintable():
        raise ValueError(f"a group must be printable text of 1-{MAX_NAME_CHARS} characters, not {value!r}")
    return value


def day_label(day: date, holidays: frozenset[date]) -> str:
    """``hol`` for a holiday, else the weekday's name (``mon``..``sun``)."""
    return HOLIDAY if day in holidays else DAYS[day.weekday()]


def describe_time(local: datetime, holidays: frozenset[date] = frozenset()) -> str:
    """``"Tue 10:15"``, or ``"Fri 10:15 (holiday)"``: how a refusal names the time."""
    text = f"{_TITLES[local.weekday()]} {local.hour:02d}:{local.minute:02d}"
    return f"{text} (holiday)" if local.date() in holidays else text


@dataclass(frozen=True, slots=True)
class Window:
    """Days and minutes of the day, ``start_min`` included, ``end_min`` excluded; an end
    before the start runs overnight into the next day (see the module's decisions)."""

    days: frozenset[str]
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        if not self.days or not self.days <= {*DAYS, HOLIDAY}:
            raise ValueError(f"days must be among {', '.join((*DAYS, HOLIDAY))}, not {sorted(self.days)}")
        if not 0 <= self.start_min < 1440 or not 0 <= self.end_min <= 1440 or self.start_min == self.end_min:
            raise ValueError(f"minutes {self.start_min}-{self.end_min}: start 0..1439, end 0..1440, not equal")

    def contains(self, local: datetime, holidays: frozenset[date]) -> bool:
        minute = local.hour * 60 + local.minute
        today = local.date()
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min and day_label(today, holidays) in self.days
        if minute >= self.start_min:
            return day_label(today, holidays) in self.days
        # Before the end: the tail of the night that started yesterday.
        return minute < self.end_min and day_label(today - timedelta(days=1), holidays) in self.days

    def __str__(self) -> str:
        days = ",".join(d for d in (*DAYS, HOLIDAY) if d in self.days)
        return f"{days} {_hhmm(self.start_min)}-{_hhmm(self.end_min)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_days(text: str) -> frozenset[str]:
    days: set[str] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        if not dash:
            if item not in DAYS and item != HOLIDAY:
                raise ValueError(f"unknown day {item!r} (days: mon..sun, hol)")
            days.add(item)
        elif first in DAYS and last in DAYS:
            i, j = DAYS.index(first), DAYS.index(last)
            days.update(DAYS[(i + k) % 7] for k in range((j - i) % 7 + 1))  # fri-mon wraps
        else:
            raise ValueError(f"day range {item!r} must join two of mon..sun (hol stands alone)")
    return frozenset(days)


def _parse_time(text: str, end: bool) -> int:
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"time {text!r} is not HH:MM")
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(f"time {text!r} is not 00:00..23:59 (24:00 only as an end)")
    return hours * 60 + minutes


def parse_window(text: object) -> Window:
    """``"mon-fri 07:00-19:00"``, ``"sat,sun 00:00-24:00"``, ``"hol 00:00-24:00"``,
    ``"mon-fri 19:00-07:00"`` (overnight). ValueError says what is wrong; the caller adds
    the key path."""
    if not isinstance(text, str) or len(text) > MAX_WINDOW_CHARS:
        raise ValueError(
            f"a window is a text of at most {MAX_WINDOW_CHARS} characters like 'mon-fri 07:00-19:00', not {text!r}"
        )
    parts = text.split()
    if len(parts) != 2 or "-" not in parts[1]:
        raise ValueError(f"{text!r} is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 07:00-19:00')")
    start_text, _, end_text = parts[1].partition("-")
    start, end = _parse_time(start_text, False), _parse_time(end_text, True)
    if start == end:
        raise ValueError(f"{text!r} starts where it ends (a whole day is 00:00-24:00)")
    return Window(_parse_days(parts[0]), start, end)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Named windows; a time is allowed when any window contains it (no window: never)."""

    name: str
    windows: tuple[Window, ...]

    def allows(self, local: datetime, holidays: frozenset[date]) -> bool:
        return any(window.contains(local, holidays) for window in self.windows)


def zone(name: object) -> ZoneInfo:
    """An IANA time zone; ValueError naming it when unknown (or path-like)."""
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not _ZONE.match(name):
        raise ValueError(f"timezone must be an IANA name like 'Europe/Berlin', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a directory: OSError
        raise ValueError(f"timezone {name!r} is not a known IANA time zone") from None


def site_time(epoch: float, timezone: str | None) -> datetime:
    """The wall-clock time at ``epoch`` in ``timezone`` (None: the system's), aware."""
    if timezone is None:
        return datetime.fromtimestamp(epoch).astimezone()
    return datetime.fromtimestamp(epoch, zone(timezone))
