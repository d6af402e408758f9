"""The parser of the centre-overridable part of the reader policy (:mod:`reader.gate.policy`
re-exports it and lays its result over the local policy with ``merge``). The same parser
reads the local config's root tables and the centre's signed ``policy/<gate group>.toml``:

    timezone = "Europe/Berlin"
    [readers.lobby-qr]                      # per reader name; every key optional
    kinds = ["qr"]                          # among qr, nfc, legacy
    groups = ["staff"]                      # [] = any group
    schedule = "office"                     # for everyone
    group_schedules = { cleaning = "night" }
    legacy_schedule = "night-weekend"
    [schedules.office]
    windows = ["mon-fri 07:00-19:00", "sat 08:00-12:00"]
    [holidays]
    dates = ["2026-12-25", 2026-12-26]      # TOML dates or YYYY-MM-DD texts
    [lockdown]
    groups = ["security", "fire-marshal"]   # [] = nobody passes a lockdown

Decisions:

- Strict: unknown keys are refused; every error is a ValueError ``"<where>: <key path>:
  <what>"``, the key path as ``schedules.night.windows[1]``. ``where`` names the source
  (the config file, or ``central policy/hq.toml``); the local config passes only the tables
  above (reader tables: only :data:`READER_RULE_KEYS`), the rest of its file is its own.
- Bounded before anything is iterated, since the central file comes from the network
  (signed, but still): at most 64 KiB of TOML, 256 readers, 256 schedules, 64 windows per
  schedule, 1024 holidays, 256 groups per list and 256 group schedules per reader.
- What is absent is None: keep the local value. TOML has no null, so a centre cannot unset
  a reader's schedule; it names a schedule that allows always instead.
- Pins, devices, static passes, legacy-card enabling, directions, areas and anti-passback
  settings are not in these tables: they stay local.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from reader.gate.schedules import Schedule, check_group, check_name, parse_window, zone

KINDS = frozenset({"qr", "nfc", "legacy"})
MAX_POLICY_BYTES = 64 * 1024
MAX_READERS = 256
MAX_SCHEDULES = 256
MAX_WINDOWS = 64
MAX_HOLIDAYS = 1024
MAX_GROUPS = 256
READER_RULE_KEYS = ("kinds", "groups", "schedule", "group_schedules", "legacy_schedule")
TOP_KEYS = ("readers", "schedules", "holidays", "lockdown", "timezone")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
T = TypeVar("T")


@dataclass(frozen=True)
class ReaderRules:
    """The overridable part of one reader's policy; None = not given (keep the local)."""

    kinds: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    schedule: str | None = None
    group_schedules: Mapping[str, str] | None = None
    legacy_schedule: str | None = None


@dataclass(frozen=True)
class PolicyTables:
    """Parsed tables; None (or no reader entry) = not given. ``origin`` is the ``where``."""

    readers: Mapping[str, ReaderRules]
    schedules: Mapping[str, Schedule] | None
    holidays: frozenset[date] | None
    lockdown_groups: frozenset[str] | None
    timezone: str | None
    origin: str


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _table(value: object, path: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{path or 'the policy'}: must be a table, not {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValueError(f"{_join(path, unknown[0])}: unknown key (known: {', '.join(known)})")
    return value


def _bounded(value: object, path: str, kind: type, limit: int, what: str) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"{path}: must be a {'list' if kind is list else 'table'} of {what}")
    if len(value) > limit:  # type: ignore[arg-type]
        raise ValueError(f"{path}: at most {limit} {what}, not {len(value)}")  # type: ignore[arg-type]
    return value


def _item(path: str, check: Callable[[Any], T], value: Any) -> T:
    try:
        return check(value)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _groups(value: object, path: str) -> frozenset[str]:
    items = _bounded(value, path, list, MAX_GROUPS, "groups")
    return frozenset(_item(f"{path}[{i}]", check_group, g) for i, g in enumerate(items))


def _kind(value: object) -> str:
    if value not in KINDS:
        raise ValueError(f"must be qr, nfc or legacy, not {value!r}")
    return value  # type: ignore[return-value]


def parse_reader_rules(data: object, path: str) -> ReaderRules:
    """One reader's table (``path`` like ``readers.lobby-qr``); ValueError names the key."""
    table = _table(data, path, READER_RULE_KEYS)
    kinds = groups = group_schedules = None
    if "kinds" in table:
        items = _bounded(table["kinds"], f"{path}.kinds", list, len(KINDS), "kinds (qr, nfc, legacy)")
        kinds = frozenset(_item(f"{path}.kinds[{i}]", _kind, k) for i, k in enumerate(items))
    if "groups" in table:
        groups = _groups(table["groups"], f"{path}.groups")
    names = {
        key: _item(f"{path}.{key}", lambda v: check_name(v, "a schedule name"), table[key])
        for key in ("schedule", "legacy_schedule") if key in table
    }
    if "group_schedules" in table:
        where = f"{path}.group_schedules"
        items = _bounded(table["group_schedules"], where, Mapping, MAX_GROUPS, "group = schedule entries")
        group_schedules = MappingProxyType({
            _item(where, check_group, group): _item(f"{where}.{group}", lambda v: check_name(v, "a schedule name"), s)
            for group, s in items.items()
        })
    return ReaderRules(kinds, groups, names.get("schedule"), group_schedules, names.get("legacy_schedule"))


def _schedule(name: str, data: object, path: str) -> Schedule:
    table = _table(data, path, ("windows",))
    if "windows" not in table:
        raise ValueError(f"{path}.windows: missing")
    items = _bounded(table["windows"], f"{path}.windows", list, MAX_WINDOWS, "windows")
    return Schedule(name, tuple(_item(f"{path}.windows[{i}]", parse_window, w) for i, w in enumerate(items)))


def _holiday(value: object) -> date:
    # datetime is a date too: a TOML date-time is not a holiday.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"must be a date like 2026-12-25, not {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date") from None


def _required(table: Mapping[str, Any], path: str, key: str) -> Any:
    if key not in table:
        raise ValueError(f"{_join(path, key)}: missing")
    return table[key]


def _parse(data: object) -> tuple[Any, ...]:
    root = _table(data, "", TOP_KEYS)
    readers: dict[str, ReaderRules] = {}
    if "readers" in root:
        items = _bounded(root["readers"], "readers", Mapping, MAX_READERS, "reader tables")
        for name, rules in items.items():
            check = _item(f"readers.{name}", lambda v: check_name(v, "a reader name"), name)
            readers[check] = parse_reader_rules(rules, f"readers.{name}")
    schedules = None
    if "schedules" in root:
        items = _bounded(root["schedules"], "schedules", Mapping, MAX_SCHEDULES, "schedule tables")
        schedules = {
            _item(f"schedules.{name}", lambda v: check_name(v, "a schedule name"), name):
            _schedule(name, table, f"schedules.{name}")
            for name, table in items.items()
        }
    holidays = lockdown = timezone = None
    if "holidays" in root:
        dates = _required(_table(root["holidays"], "holidays", ("dates",)), "holidays", "dates")
        dates = _bounded(dates, "holidays.dates", list, MAX_HOLIDAYS, "dates")
        holidays = frozenset(_item(f"holidays.dates[{i}]", _holiday, d) for i, d in enumerate(dates))
    if "lockdown" in root:
        groups = _required(_table(root["lockdown"], "lockdown", ("groups",)), "lockdown", "groups")
        lockdown = _groups(groups, "lockdown.groups")
    if "timezone" in root:
        timezone = root["timezone"]
        _item("timezone", zone, timezone)
    return readers, schedules, holidays, lockdown, timezone


def parse_policy_tables(data: Mapping[str, Any], *, where: str) -> PolicyTables:
    """Parse the TOML-derived tables above; ValueError ``"<where>: <key path>: <what>"``."""
    try:
        readers, schedules, holidays, lockdown, timezone = _parse(data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return PolicyTables(
        MappingProxyType(readers), None if schedules is None else MappingProxyType(schedules),
        holidays, lockdown, timezone, where,
    )


def parse_policy_toml(raw: bytes, *, where: str) -> PolicyTables:
    """The centre's ``policy/<gate group>.toml`` as fetched: bounded, UTF-8, TOML, then
    :func:`parse_policy_tables`."""
    if len(raw) > MAX_POLICY_BYTES:
        raise ValueError(f"{where}: {len(raw)} bytes, more than the {MAX_POLICY_BYTES} a policy may have")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML ({exc})") from None
    return parse_policy_tables(data, where=where)
