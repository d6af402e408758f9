"""The reader's own policy, applied after the GatePass decision (issue 10, item 4): which
kinds of presentation a reader admits, which groups, when (schedules and holidays), during a
lockdown, and anti-passback between a gate's paired entry and exit readers.

Pure: no I/O, no clock reads, no logging; every time is passed in. Imports only
``reader.gatepass``, its two siblings below and the standard library. This module is the
one the daemon imports; it re-exports the windows and schedules of
:mod:`reader.gate.schedules` and the table parser of :mod:`reader.gate.policy_tables` (split
off only to keep modules small), and lays a parsed centre policy over the local one
(:func:`merge`).

Decisions (the daemon codes against them):

- **Where each rule lives.** Static passes, legacy cards and the reader's groups go into the
  per-reader gatepass :class:`Policy` (:func:`gatepass_policy`), so the core gives the spec's
  reasons (``static_not_allowed``, ``legacy_not_allowed``, ``not_authorized``) at their place
  in section 7's order. :func:`authorize` then checks, on a granted decision only, what the
  core cannot know, in this order: kind, lockdown, groups (again, naming the reader, and for
  legacy cards), schedule, anti-passback. The first failing rule refuses; a denied decision
  comes back unchanged, since its reason is earlier in section 7's order.
- **Groups are an argument.** The core's ``Decision`` has no groups; ``authorize`` takes the
  credential's ``groups`` explicitly (legacy cards: always empty).
- **Legacy cards** are admitted only where ``legacy_cards`` is set locally AND the kinds hold
  ``"legacy"`` (a centre may take legacy away from a reader, never enable it where the local
  config refuses it). They carry no groups, so a reader restricted to groups refuses them
  (fail closed: enabling legacy cards on such a reader must not open it to every card), and a
  lockdown never lets one pass. Their schedule is ``legacy_schedule``, else the reader's.
- **Schedules.** A credential passes when ANY of its groups that the reader admits allows
  now: a group's schedule from ``group_schedules``, else the reader's ``schedule``; no
  schedule at all means always. A credential with no groups the reader admits (possible only
  on a reader without a group list) is judged by the reader's schedule. Groups the reader
  does not admit never count: a visitor group without a schedule must not lift a cleaning
  crew's. Window semantics (overnight, holidays as ``hol`` only): :mod:`reader.gate.schedules`.
- **Lockdown only refuses more**: a credential of a lockdown group must still pass every
  other rule. An empty ``lockdown_groups`` lets nobody in.
- **Local time** is the site's wall clock (``SitePolicy.timezone``, else the system's):
  :meth:`SitePolicy.local_time` turns an epoch into it.
- **Anti-passback** applies to readers with both ``area`` and ``direction``. Entering an area
  twice without leaving is refused (``hard``) or granted with a warning (``soft``) until
  ``passback_reset_s`` has passed; exits are never refused (an exit reader must never trap
  anyone inside), they only record. A decision with no subject cannot be tracked and is
  refused. Memory is per (subject, area), bounded, least recently recorded dropped first,
  in-memory only: a restart forgets it (a lost entry can only let someone in, never trap).
- A refusal is a NEW decision (``not_authorized``, ``detail`` naming the rule) keeping the
  subject, issuer, kid, assurance, credential id, checks and warnings.
- **Merging a centre policy**: per reader name, every rule the centre gives replaces the
  local one (kinds, groups, schedule, group schedules, legacy schedule); schedules merge by
  name (the centre's win); holidays, lockdown groups and the time zone, when given, replace
  the local ones (the centre's calendar is the calendar: a union could never drop a day).
  Reader names the gate does not have are skipped (one file serves a gate group);
  :func:`unmatched_readers` lists them for a warning. The result is checked as a whole: a
  reader naming a schedule nobody defines refuses the centre's file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Literal

from reader.gate.policy_tables import (
    KINDS,
    PolicyTables,
    ReaderRules,
    parse_policy_tables,
    parse_policy_toml,
    parse_reader_rules,
)
from reader.gate.schedules import (
    Schedule,
    Window,
    check_group,
    check_name,
    describe_time,
    parse_window,
    site_time,
    zone,
)
from reader.gatepass.verdict import Decision, Policy

__all__ = [
    "KINDS",
    "PassbackMemory",
    "PolicyTables",
    "ReaderPolicy",
    "ReaderRules",
    "Schedule",
    "SitePolicy",
    "Window",
    "authorize",
    "gatepass_policy",
    "merge",
    "parse_policy_tables",
    "parse_policy_toml",
    "parse_reader_rules",
    "parse_window",
    "unmatched_readers",
]

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class ReaderPolicy:
    """One reader's policy. ``kinds``: "qr" (camera and scanner 2D texts), "nfc" (a GatePass
    over NFC), "legacy" (UID cards, 1D barcodes, Wiegand). Empty ``groups`` admits any."""

    kinds: frozenset[str] = KINDS
    groups: frozenset[str] = frozenset()
    static_passes: bool = False
    legacy_cards: bool = False
    schedule: str | None = None
    group_schedules: Mapping[str, str] = field(default_factory=dict)
    legacy_schedule: str | None = None
    direction: Direction | None = None
    area: str | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down: the daemon shares one policy between threads.
        object.__setattr__(self, "kinds", frozenset(self.kinds))
        object.__setattr__(self, "groups", frozenset(self.groups))
        object.__setattr__(self, "group_schedules", MappingProxyType(dict(self.group_schedules)))
        if not self.kinds <= KINDS:
            raise ValueError(f"kinds must be among qr, nfc, legacy, not {sorted(self.kinds)}")
        for group in (*self.groups, *self.group_schedules):
            check_group(group)
        for _, name in self.schedule_names():
            check_name(name, "a schedule name")
        if self.direction not in ("in", "out", None):
            raise ValueError(f"direction must be 'in' or 'out', not {self.direction!r}")
        if self.area is not None:
            check_name(self.area, "an area")

    def schedule_names(self) -> Iterable[tuple[str, str]]:
        """(what names it, schedule name) for every schedule this reader refers to."""
        if self.schedule is not None:
            yield "schedule", self.schedule
        if self.legacy_schedule is not None:
            yield "legacy_schedule", self.legacy_schedule
        for group, name in self.group_schedules.items():
            yield f"group_schedules.{group}", name


@dataclass(frozen=True)
class SitePolicy:
    """The gate's policy: its readers', schedules, holidays, lockdown groups, time zone and
    anti-passback settings. Consistent by construction: every schedule a reader names exists."""

    readers: Mapping[str, ReaderPolicy] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    lockdown_groups: frozenset[str] = frozenset()
    timezone: str | None = None
    passback_reset_s: float = 12 * 3600.0
    passback: Literal["hard", "soft"] = "hard"
    origin: str = "local"

    def __post_init__(self) -> None:
        object.__setattr__(self, "readers", MappingProxyType(dict(self.readers)))
        object.__setattr__(self, "schedules", MappingProxyType(dict(self.schedules)))
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "lockdown_groups", frozenset(self.lockdown_groups))
        self.check()

    def check(self) -> None:
        """ValueError naming the first reader or setting that does not hold together."""
        if self.passback not in ("hard", "soft"):
            raise ValueError(f"passback must be 'hard' or 'soft', not {self.passback!r}")
        reset = self.passback_reset_s
        if not isinstance(reset, int | float) or isinstance(reset, bool) or not 0 < reset <= 1e9:
            raise ValueError(f"passback_reset_s must be a number of seconds above 0, at most 1e9, not {reset!r}")
        if self.timezone is not None:
            zone(self.timezone)
        for key, schedule in self.schedules.items():
            if not isinstance(schedule, Schedule) or schedule.name != key:
                raise ValueError(f"schedules.{key}: must hold the Schedule named {key!r}")
        for group in self.lockdown_groups:
            check_group(group)
        for name, reader in self.readers.items():
            check_name(name, "a reader name")
            if not isinstance(reader, ReaderPolicy):
                raise ValueError(f"readers.{name}: not a ReaderPolicy")
            for where, schedule in reader.schedule_names():
                if schedule not in self.schedules:
                    known = ", ".join(sorted(self.schedules)) or "none"
                    raise ValueError(f"readers.{name}.{where}: no schedule {schedule!r} (defined: {known})")

    def local_time(self, epoch: float) -> datetime:
        """The site's wall-clock time at ``epoch`` (aware), for :func:`authorize`."""
        return site_time(epoch, self.timezone)


def gatepass_policy(base: Policy, reader: ReaderPolicy) -> Policy:
    """The gatepass Policy this reader decides with: the gate-wide numbers of ``base``, and
    the reader's static passes, legacy cards (only when its kinds hold "legacy") and groups."""
    return replace(
        base,
        allow_static=reader.static_passes,
        allow_legacy=reader.legacy_cards and "legacy" in reader.kinds,
        groups=reader.groups,
    )


def _refuse(decision: Decision, detail: str) -> Decision:
    return Decision(
        False, "not_authorized", dict(decision.checks), decision.subject, decision.issuer, decision.kid,
        decision.assurance, decision.credential_id, detail, decision.warnings, decision.groups,
    )


def _schedule_refusal(
    reader_name: str, reader: ReaderPolicy, legacy: bool, groups: tuple[str, ...], site: SitePolicy,
    local: datetime,
) -> str | None:
    """The schedule rule: None when allowed, else the refusal's detail."""
    wanted: dict[str, list[str]] = {}  # schedule name -> who it applies to
    if legacy:
        name = reader.legacy_schedule or reader.schedule
        who = [f"reader {reader_name}"] if reader.legacy_schedule is None else ["legacy cards"]
        if name is None:
            return None
        wanted[name] = who
    else:
        eligible = [g for g in groups if not reader.groups or g in reader.groups]
        if not eligible:
            if reader.schedule is None:
                return None
            wanted[reader.schedule] = [f"reader {reader_name}"]
        for group in eligible:
            name = reader.group_schedules.get(group, reader.schedule)
            if name is None:
                return None  # a group without any schedule: always
            wanted.setdefault(name, []).append(f"group {group}")
    missing = [name for name in wanted if name not in site.schedules]
    if missing:  # SitePolicy.check rules this out for its own readers; fail closed for others
        return f"schedule {missing[0]} (reader {reader_name}) is not defined"
    if any(site.schedules[name].allows(local, site.holidays) for name in wanted):
        return None
    parts = [f"{name} ({', '.join(who)})" for name, who in wanted.items()]
    what = f"schedule {parts[0]} does" if len(parts) == 1 else f"schedules {', '.join(parts)} do"
    return f"{what} not allow {describe_time(local, site.holidays)}"


def authorize(
    decision: Decision,
    *,
    reader_name: str,
    reader: ReaderPolicy,
    kind: str,
    groups: tuple[str, ...],
    site: SitePolicy,
    local_time: datetime,
    lockdown: bool,
    passback: PassbackMemory,
    now: float,
) -> Decision:
    """Apply the reader's policy to a core decision (see the module's decisions for the
    order). ``now`` is the anti-passback clock (monotonic is best); ``local_time`` the
    site's wall clock. ValueError for an unknown kind or groups given with a legacy card."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of qr, nfc, legacy, not {kind!r}")
    legacy = kind == "legacy"
    if legacy and groups:
        raise ValueError("a legacy card carries no groups")
    if not decision.granted:
        return decision
    if kind not in reader.kinds:
        return _refuse(decision, f"reader {reader_name} does not admit {kind}")
    if lockdown:
        only = ", ".join(sorted(site.lockdown_groups))
        rule = f"lockdown: only groups {only} pass" if only else "lockdown: no credential passes"
        if legacy:
            return _refuse(decision, f"{rule}; legacy cards never do" if only else rule)
        if not site.lockdown_groups.intersection(groups):
            return _refuse(decision, rule)
    if reader.groups:
        rule = f"reader {reader_name} admits only groups {', '.join(sorted(reader.groups))}"
        if legacy:
            return _refuse(decision, f"{rule}; legacy cards carry none")
        if not reader.groups.intersection(groups):
            return _refuse(decision, rule)
    refusal = _schedule_refusal(reader_name, reader, legacy, groups, site, local_time)
    if refusal is not None:
        return _refuse(decision, refusal)
    if reader.area is not None and reader.direction is not None:
        if decision.subject is None:
            return _refuse(decision, "anti-passback: the credential names no subject to track")
        found = passback.check(
            decision.subject, reader.area, reader.direction, now,
            reset_s=site.passback_reset_s, local_time=local_time,
        )
        if found is not None:
            if site.passback == "hard":
                return _refuse(decision, found)
            return replace(decision, warnings=(*decision.warnings, f"{found} (soft anti-passback: granted)"))
    return decision


class PassbackMemory:
    """Who is inside which area: (subject, area) -> (direction, at), at most ``max_entries``
    (the least recently recorded dropped first). ``now`` is any clock that does not jump
    (monotonic); the daemon calls :meth:`record` only after the door was released."""

    def __init__(self, max_entries: int = 10_000, reset_s: float = 12 * 3600.0) -> None:
        if max_entries < 1 or not reset_s > 0:
            raise ValueError("max_entries must be at least 1 and reset_s above 0")
        self.max_entries = max_entries
        self.reset_s = reset_s
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def check(
        self, subject: str, area: str, direction: str, now: float, *,
        reset_s: float | None = None, local_time: datetime | None = None,
    ) -> str | None:
        """The refusal's detail when ``subject`` would enter ``area`` a second time without
        having left within the reset time; None otherwise (always None for an exit)."""
        if direction == "out":
            return None
        entry = self._entries.get((subject, area))
        if entry is None or entry[0] != "in" or now - entry[1] >= (reset_s or self.reset_s):
            return None
        if local_time is None:
            return f"anti-passback: already inside area {area} for {max(0, int(now - entry[1])) // 60} min"
        since = local_time - timedelta(seconds=max(0.0, now - entry[1]))
        when = f"{since:%H:%M}" if since.date() == local_time.date() else describe_time(since)
        return f"anti-passback: already inside area {area} since {when}"

    def record(self, subject: str, area: str, direction: str, now: float) -> None:
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        key = (subject, area)
        self._entries.pop(key, None)
        self._entries[key] = (direction, now)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def prune(self, now: float, reset_s: float | None = None) -> None:
        """Forget entries past the reset time (they no longer refuse anyone)."""
        limit = reset_s or self.reset_s
        for key in [k for k, (_, at) in self._entries.items() if now - at >= limit]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def merge(local: SitePolicy, central: PolicyTables) -> SitePolicy:
    """``local`` with the centre's tables laid over it (see the module's decisions);
    ValueError naming the centre's file when the result does not hold together."""
    readers = dict(local.readers)
    for name, rules in central.readers.items():
        if name in readers:
            given = {key: value for key, value in vars(rules).items() if value is not None}
            readers[name] = replace(readers[name], **given)
    try:
        return replace(
            local,
            readers=readers,
            schedules={**local.schedules, **(central.schedules or {})},
            holidays=local.holidays if central.holidays is None else central.holidays,
            lockdown_groups=local.lockdown_groups if central.lockdown_groups is None else central.lockdown_groups,
            timezone=local.timezone if central.timezone is None else central.timezone,
            origin=f"{central.origin} over {local.origin}",
        )
    except ValueError as exc:
        raise ValueError(f"{central.origin}: {exc}") from None


def unmatched_readers(local: SitePolicy, central: PolicyTables) -> tuple[str, ...]:
    """Reader names the centre's tables give that this gate does not have."""
    return tuple(sorted(set(central.readers) - set(local.readers)))
