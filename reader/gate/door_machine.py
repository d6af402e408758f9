"""The door's state machine (issue 10, item 2): what the door should do after a grant, a
denial, an exit request, an input edge, a periodic level read or the passing of time. The
daemon executes the actions it returns through ``drivers/door.py``'s ``DoorIO`` and appends
the ``Record`` actions to the journal as ``door`` events.

Pure: no threads, no clock reads, no I/O, no logging; every time is passed in, on one clock
that does not jump (``time.monotonic()``, the clock ``DoorIO`` stamps its input edges with).

States: ``secured`` (locked, door closed as far as known), ``released`` (unlocked by a grant,
an exit request or the fire input; door closed), ``open`` (the door contact reads open).

Decisions:

- **Late edges are judged at their own time.** ``DoorIO`` stamps an input event with the
  time of its edge and delivers it after its debounce, so a door opened just before a
  release ran out arrives after the tick that relocked it. Opening is legitimate when a
  release, an exit request or a fire hold covered the edge's time: the machine keeps the
  last :data:`PERMIT_HISTORY` such intervals. Timers (release expiry, held open) run on the
  latest time seen; an earlier time never moves them back, equal times are fine.
- **Forced** = opened while no grant, exit request (each releases for ``release_s``) or fire
  hold covered the edge: ``door_forced`` (alarm). The alarm stays active until the door
  closes (the ``door_closed`` record ends it).
- **Held open** = open for ``held_open_s`` (counted from the opening, from the end of a fire
  hold, or from the first level read that found it open): ``door_held_open`` once, then
  ``held_open_cleared`` when it closes. Not while fire holds the door (evacuation).
- **Alarm indication** (``Indicate("alarm")``, the buzzer pattern) on door_forced,
  door_held_open and tamper, and again every ``alarm_repeat_s`` from :meth:`tick` while any
  of them is active (a single 3 s pattern is easy to miss). Fire is recorded as an alarm but
  not buzzed, and silences the repeats while it lasts: the building's fire system sounds.
- **Turnstiles, doors without a contact.** Forced and held-open detection needs a door
  contact, and a turnstile's rotation sensor is not one: ``turnstile=True`` or
  ``has_contact=False`` disables both. A turnstile's contact still ends a release at once
  when the passage completes (opened then closed). Without a contact, ``door_contact``
  inputs are a ValueError (the daemon wired something that is not there).
- **Relock is an event of its own**: ``relocked`` is recorded whenever a release by this
  machine (grant, exit, fire hold) ends: the door closing (``Secure()`` at once; the door
  layer's timer would anyway), the release running out, fire clearing, shutdown.
- **Fire overrides everything**: fire on -> ``HoldReleased(True)`` FIRST, then
  ``fire_release``; it ends any running release (the hold covers it); until fire off no
  ``Release`` or ``Secure`` is emitted, a grant is recorded (``grant_during_fire``) and shown
  but changes nothing, an opening is never forced. Fire off -> ``HoldReleased(False)``,
  ``fire_cleared``, ``Secure()``, ``relocked``.
- **Lockdown only flags**: :func:`reader.gate.policy.authorize` refuses credentials; the
  exit button still releases (an exit must never be blocked). Lockdown is held per source
  (``by``: e.g. "input", "cli") and is on while any source holds it, so the periodic read of
  a lockdown switch that is off cannot end a lockdown set from the command line. The
  ``lockdown`` input is held as "input": its edges and level reads set and end that source.
  ``lockdown_on``/``lockdown_off`` when the whole flag changes, ``lockdown_source`` when only
  the set of sources does.
- **Level reads** (:meth:`levels`): a level that differs from the one known is handled as
  the missed edge would have been (judged against the permits since the previous read),
  followed by ``level_resync``. The first reading of an input establishes its level without
  a resync: a door found open is recorded ``door_opened`` (held open counts from then), a
  pressed exit button is not a request (a stuck button would hold the door released), an
  active fire, tamper or lockdown input is handled as its edge.
- **Start and shutdown** secure the door (``Secure()``, recorded ``started``/``stopped``)
  unless fire holds it. After :meth:`shutdown` every event method raises RuntimeError until
  :meth:`start`: nothing may release a door the daemon has stopped driving.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INPUTS: tuple[str, ...] = ("door_contact", "exit_button", "tamper", "fire", "lockdown")
# The order a level read reconciles in: fire first, so a door found open under a fire hold
# is not forced; lockdown before anything that could release; the exit button last.
_LEVEL_ORDER: tuple[str, ...] = ("fire", "tamper", "lockdown", "door_contact", "exit_button")
LOCKDOWN_INPUT = "input"  # the lockdown source the lockdown input holds
OVERLAYS = frozenset({"grant", "deny", "alarm"})
#: The closed set of ``door`` journal events.
EVENTS = frozenset({
    "door_opened", "door_closed", "relocked", "released_by_exit", "door_forced", "door_held_open",
    "held_open_cleared", "tamper", "tamper_cleared", "fire_release", "fire_cleared", "grant_during_fire",
    "lockdown_on", "lockdown_off", "lockdown_source", "level_resync", "started", "stopped",
})
ALARMS = frozenset({"door_forced", "door_held_open", "tamper", "fire"})
_BUZZED = frozenset({"door_forced", "door_held_open", "tamper"})
PERMIT_HISTORY = 16


@dataclass(frozen=True, slots=True)
class Release:
    seconds: float | None


@dataclass(frozen=True, slots=True)
class Secure:
    pass


@dataclass(frozen=True, slots=True)
class HoldReleased:
    on: bool


@dataclass(frozen=True, slots=True)
class Indicate:
    overlay: str

    def __post_init__(self) -> None:
        if self.overlay not in OVERLAYS:
            raise ValueError(f"overlay must be grant, deny or alarm, not {self.overlay!r}")


@dataclass(frozen=True, slots=True)
class Record:
    """A journal ``door`` event; ``alarm`` marks the ones that raise an alarm."""

    event: str
    detail: str
    alarm: bool = False

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown door event {self.event!r}")


Action = Release | Secure | HoldReleased | Indicate | Record


def _seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1e9:
        raise ValueError(f"{what} must be a number of seconds above 0, at most 1e9, not {value!r}")
    return float(value)


class DoorMachine:
    """One door (or turnstile) of the gate; see the module's decisions."""

    def __init__(
        self, *, release_s: float, held_open_s: float, turnstile: bool, has_contact: bool, now: float,
        alarm_repeat_s: float = 30.0,
    ) -> None:
        self.release_s = _seconds(release_s, "release_s")
        self.held_open_s = _seconds(held_open_s, "held_open_s")
        self.alarm_repeat_s = _seconds(alarm_repeat_s, "alarm_repeat_s")
        self.turnstile = bool(turnstile)
        self.has_contact = bool(has_contact)
        self._detect = self.has_contact and not self.turnstile  # forced and held-open detection
        self._now = self._time(now)
        self._levels: dict[str, bool] = dict.fromkeys(INPUTS, False)
        self._known: set[str] = set()  # inputs whose level an edge or a level read established
        self._levels_at = self._now  # the previous level read (or the start)
        # [start, end) intervals. The running release (or fire hold) is always among the
        # last two: a permit is added only when none runs, or by fire, which ends a release.
        self._permits: deque[list[float]] = deque(maxlen=PERMIT_HISTORY)
        self._release: list[float] | None = None  # the running release's permit
        self._fire_permit: list[float] | None = None
        self._open_since: float | None = None
        self._alarms: set[str] = set()
        self._alarm_shown_at = -math.inf
        self._lockdown: set[str] = set()
        self._stopped = False

    # -- properties -------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self._levels["door_contact"]:
            return "open"
        return "released" if self._levels["fire"] or self._release is not None else "secured"

    @property
    def fire(self) -> bool:
        return self._levels["fire"]

    @property
    def tamper(self) -> bool:
        return self._levels["tamper"]

    @property
    def lockdown(self) -> bool:
        return bool(self._lockdown)

    @property
    def alarms(self) -> frozenset[str]:
        return frozenset(self._alarms)

    def snapshot(self) -> dict[str, Any]:
        """The status report's view of the door (JSON-ready)."""
        until = self._release[1] if self._release is not None else self._now
        return {
            "state": self.state,
            "door_open": self._levels["door_contact"] if self.has_contact else None,
            "open_for_s": None if self._open_since is None else round(max(0.0, self._now - self._open_since), 3),
            "release_remaining_s": round(max(0.0, until - self._now), 3),
            "exit_button": self._levels["exit_button"],
            "fire": self.fire,
            "tamper": self.tamper,
            "lockdown": self.lockdown,
            "lockdown_by": sorted(self._lockdown),
            "alarms": sorted(self._alarms),
            "turnstile": self.turnstile,
            "has_contact": self.has_contact,
            "stopped": self._stopped,
        }

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _time(now: float) -> float:
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise ValueError(f"a time must be a finite number of seconds, not {now!r}")
        return float(now)

    def _advance(self, now: float) -> float:
        """Check ``now`` and move the clock forward to it (never back); returns ``now``."""
        if self._stopped:
            raise RuntimeError("the door machine is shut down; start() it first")
        now = self._time(now)
        self._now = max(self._now, now)
        return now

    def _permitted(self, start: float, end: float) -> bool:
        """Whether a release, exit request or fire hold covered any time of [start, end]."""
        return any(p_start <= end and start < p_end for p_start, p_end in self._permits)

    def _alarm(self, name: str, detail: str) -> list[Action]:
        self._alarms.add(name)
        actions: list[Action] = [Record(name, detail, alarm=True)]
        if name in _BUZZED:
            actions.append(Indicate("alarm"))
            self._alarm_shown_at = self._now
        return actions

    def _start_release(self, now: float) -> list[Action]:
        """A grant's or exit's release: a new permit, or the running one extended."""
        until = max(now, self._now) + self.release_s
        if self._release is None:
            self._release = [now, until]
            self._permits.append(self._release)
        else:
            self._release[1] = max(self._release[1], until)
        return [Release(self.release_s)]

    def _end_release(self, at: float, why: str) -> list[Action]:
        """End the running release now (Secure + relocked); nothing when none runs."""
        if self._release is None:
            return []
        self._release[1] = min(self._release[1], max(at, self._release[0]))
        self._release = None
        return [Secure(), Record("relocked", why)]

    # -- events -----------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """At start (and after a crash): secure, unless fire holds the door released."""
        self._stopped = False
        now = self._advance(now)
        self._levels_at = now
        if self.fire:
            return [Record("started", "fire holds the door released", alarm=True)]
        if self._release is not None:  # a start without a shutdown: what ran is over
            self._release[1] = min(self._release[1], max(now, self._release[0]))
            self._release = None
        return [Secure(), Record("started", "door secured")]

    def shutdown(self, now: float) -> list[Action]:
        """At shutdown: secure unless fire holds the door; then refuse events until start."""
        now = self._advance(now)
        self._stopped = True
        if self.fire:
            return [Record("stopped", "fire holds the door released", alarm=True)]
        actions = self._end_release(now, "release ended by shutdown")
        if not actions:
            actions.append(Secure())
        return [*actions, Record("stopped", "door secured")]

    def grant(self, now: float) -> list[Action]:
        now = self._advance(now)
        if self.fire:
            return [Indicate("grant"), Record("grant_during_fire", "fire already holds the door released")]
        return [*self._start_release(now), Indicate("grant")]

    def deny(self, now: float) -> list[Action]:
        self._advance(now)
        return [Indicate("deny")]

    def exit_request(self, now: float) -> list[Action]:
        """Release without a credential (also during a lockdown: an exit is never blocked)."""
        now = self._advance(now)
        if self.fire:
            return [Record("released_by_exit", "exit request while fire holds the door released")]
        return [*self._start_release(now), Record("released_by_exit", "exit request")]

    def set_lockdown(self, on: bool, by: str, now: float) -> list[Action]:
        """Lockdown held (or let go) by source ``by``; only flags and records."""
        self._advance(now)
        if not isinstance(on, bool):
            raise ValueError(f"on must be True or False, not {on!r}")
        if not isinstance(by, str) or not by or len(by) > 64:
            raise ValueError(f"by must name the lockdown's source in 1-64 characters, not {by!r}")
        was = bool(self._lockdown)
        if on == (by in self._lockdown):
            return []
        if on:
            self._lockdown.add(by)
        else:
            self._lockdown.discard(by)
        if was != bool(self._lockdown):
            return [Record("lockdown_on" if on else "lockdown_off", f"by {by}")]
        holders = ", ".join(sorted(self._lockdown))
        return [Record("lockdown_source", f"{by} {'on' if on else 'off'}; lockdown stays on by {holders}")]

    def input(self, name: str, active: bool, now: float) -> list[Action]:
        """A debounced input edge at time ``now`` (the edge's own time)."""
        self._check_input(name, active)
        now = self._advance(now)
        self._known.add(name)
        if self._levels[name] == active:
            return []  # a repeated level: nothing changed
        return self._change(name, active, now, now)

    def levels(self, levels: Mapping[str, bool], now: float) -> list[Action]:
        """The periodic level read: reconcile every input whose level differs."""
        for name, active in levels.items():  # all checked before anything is applied
            self._check_input(name, active)
        now = self._advance(now)
        actions: list[Action] = []
        for name in _LEVEL_ORDER:
            if name not in levels:
                continue
            active, first = levels[name], name not in self._known
            self._known.add(name)
            if self._levels[name] == active:
                continue
            if not first:
                actions += self._change(name, active, self._levels_at, now)
                state = "active" if active else "inactive"
                actions.append(Record("level_resync", f"{name} read {state}: its edge was missed"))
            elif name == "door_contact":
                self._levels[name] = True
                self._open_since = now
                actions.append(Record("door_opened", "found open at the first level read"))
            elif name == "exit_button":
                self._levels[name] = True  # a held button is not a request: only an edge is
            else:
                actions += self._change(name, active, now, now)
        self._levels_at = now
        return actions

    def tick(self, now: float) -> list[Action]:
        """The passing of time: release expiry, held open, the alarm's repeat."""
        now = self._advance(now)
        actions: list[Action] = []
        if self._release is not None and self._release[1] <= now:
            self._release = None
            actions += [Secure(), Record("relocked", "release ran out")]
        opened = self._open_since
        held = opened is not None and now - opened >= self.held_open_s
        if held and self._detect and not self.fire and "door_held_open" not in self._alarms:
            actions += self._alarm("door_held_open", f"open for more than {self.held_open_s:g} s")
        if self._alarms & _BUZZED and not self.fire and now - self._alarm_shown_at >= self.alarm_repeat_s:
            self._alarm_shown_at = now
            actions.append(Indicate("alarm"))
        return actions

    # -- inputs -----------------------------------------------------------------------

    def _check_input(self, name: str, active: object) -> None:
        if name not in INPUTS:
            raise ValueError(f"unknown input {name!r} (inputs: {', '.join(INPUTS)})")
        if name == "door_contact" and not self.has_contact:
            raise ValueError("door_contact input on a door configured without a contact")
        if not isinstance(active, bool):
            raise ValueError(f"{name}: a level is True or False, not {active!r}")

    def _change(self, name: str, active: bool, since: float, at: float) -> list[Action]:
        """Input ``name`` became ``active`` at ``at``, its edge somewhere in [since, at]."""
        self._levels[name] = active
        if name == "door_contact":
            return self._opened(since, at) if active else self._closed(at)
        if name == "exit_button":
            return self.exit_request(at) if active else []
        if name == "lockdown":
            return self.set_lockdown(active, LOCKDOWN_INPUT, at)
        if name == "tamper":
            if active:
                return self._alarm("tamper", "tamper switch active")
            self._alarms.discard("tamper")
            return [Record("tamper_cleared", "tamper switch quiet")]
        return self._fire_on(at) if active else self._fire_off(at)

    def _opened(self, since: float, at: float) -> list[Action]:
        self._open_since = at
        if not self._detect or self._permitted(since, at):
            return [Record("door_opened", "opened")]
        return self._alarm("door_forced", "opened while secured, without a grant or exit request")

    def _closed(self, at: float) -> list[Action]:
        self._open_since = None
        actions: list[Action] = [Record("door_closed", "closed")]
        self._alarms.discard("door_forced")
        if "door_held_open" in self._alarms:
            self._alarms.discard("door_held_open")
            actions.append(Record("held_open_cleared", "closed"))
        if self.fire:
            return actions
        ended = self._end_release(at, "door closed")
        # A forced door closing: secure anyway (idempotent), but nothing was relocked.
        return actions + (ended or [Secure()])

    def _fire_on(self, at: float) -> list[Action]:
        # The hold first: nothing may come between the fire input and the door's release.
        actions: list[Action] = [HoldReleased(True)]
        if self._release is not None:
            self._release[1] = min(self._release[1], max(at, self._release[0]))
            self._release = None  # the hold covers it; fire off ends it with a relock
        self._fire_permit = [at, math.inf]
        self._permits.append(self._fire_permit)
        self._alarms.add("fire")
        return [*actions, Record("fire_release", "fire input: every lock output held released", alarm=True)]

    def _fire_off(self, at: float) -> list[Action]:
        if self._fire_permit is not None:
            self._fire_permit[1] = max(at, self._fire_permit[0])
            self._fire_permit = None
        self._alarms.discard("fire")
        if self._open_since is not None:
            self._open_since = max(self._open_since, at)  # held open counts from the end of the hold
        return [HoldReleased(False), Record("fire_cleared", "fire input quiet"), Secure(),
                Record("relocked", "fire hold ended")]
