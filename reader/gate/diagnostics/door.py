"""The door diagnostics: ``relay`` (release N times, confirmed by the door contact where one
is wired), ``leds``, ``buzzer`` and ``inputs`` (a live view of the door contact, exit
button, tamper, fire and lockdown input; in the selftest, their levels now).

They work on a :class:`DoorChannel`: the door I/O in this process (:class:`LocalDoor`, when
no daemon runs: the pins are free) or the running daemon's, through its control socket (it
holds the pins; the command line makes that channel, since this layer does not import the
daemon). A simulated channel (mock pins) also plays the person at the gate: it pushes the
door open during a release and works each input, so every check runs in CI; a real one asks
the technician what only a person can see or hear.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol

from drivers.door import INPUTS, DoorIO, DoorSettings, Step
from offline_cache.journal import Journal
from reader.gate.diagnostics.result import Ask, CheckResult, Report, failed, passed, skipped, wait_until

#: the patterns the LED and buzzer checks show (the daemon's door has them too)
DIAG_OVERLAYS: Mapping[str, tuple[Step, ...]] = MappingProxyType({
    "diag_green": (Step(1.0, green=True),),
    "diag_red": (Step(1.0, red=True),),
    "diag_buzzer": (Step(0.5, buzzer=True),),
})
#: what each input's active level means, for the live view and the selftest
MEANING = {"door_contact": ("door open", "door closed"), "exit_button": ("exit pressed", "exit released"),
           "tamper": ("TAMPER (case open or loop cut)", "tamper quiet"), "fire": ("FIRE input active", "fire quiet"),
           "lockdown": ("LOCKDOWN switch on", "lockdown switch off")}
_SHOWN = {"green_led": ("diag_green", "the green LED light"), "red_led": ("diag_red", "the red LED light"),
          "buzzer": ("diag_buzzer", "the buzzer sound")}
_PINS = {"door_contact": "the reed contact", "exit_button": "the exit button", "tamper": "the tamper switch",
         "fire": "the fire panel's contact", "lockdown": "the lockdown switch"}


def with_diag_overlays(settings: DoorSettings) -> DoorSettings:
    """The settings with the diagnostics' patterns added (times only: no output changes)."""
    return replace(settings, overlays=MappingProxyType({**settings.overlays, **DIAG_OVERLAYS}))


@dataclass(frozen=True)
class DoorView:
    released: bool  # the lock output at its released level
    inputs: dict[str, bool]  # each configured input, debounced: True = active


class DoorChannel(Protocol):
    """How a diagnostic reaches the door."""

    via: str  # said in the results: "mock pins in this process", "the running daemon"...
    settings: DoorSettings
    simulated: bool  # mock pins: drive_input and output_history work

    def release(self, who: str) -> None: ...  # journaled first; RuntimeError when refused
    def view(self) -> DoorView: ...
    def indicate(self, overlay: str) -> None: ...
    def drive_input(self, name: str, active: bool) -> None: ...
    def output_history(self, name: str) -> list[bool]: ...  # the output's levels so far (mock pins)
    def close(self) -> None: ...


class LocalDoor:
    """The door I/O in this process, on a pin factory the caller made (``mock`` for --sim);
    a release is journaled in ``journal`` before the relay moves, as the daemon does."""

    def __init__(self, settings: DoorSettings, factory: Any, journal: Journal | None, *, via: str) -> None:
        self.settings = settings
        self.factory = factory
        self.journal = journal
        self.via = via
        from gpiozero.pins.mock import MockFactory

        self.simulated = isinstance(factory, MockFactory)  # mock pins: this process plays the person too
        self.door = DoorIO(with_diag_overlays(settings), factory)

    def release(self, who: str) -> None:
        if self.journal is None:
            raise RuntimeError("no journal to record the release in: not carried out")
        self.journal.append(time=time.time(), kind="system", reason="door_diagnostic",
                            detail=f"release requested by {who}")
        self.door.release()

    def view(self) -> DoorView:
        state = self.door.state()
        return DoorView(state.released, dict(state.inputs))

    def indicate(self, overlay: str) -> None:
        self.door.indicate(overlay)

    def drive_input(self, name: str, active: bool) -> None:
        spec = getattr(self.settings, name)
        pin = self.factory.pin(spec.pin)
        (pin.drive_high if active == spec.active_high else pin.drive_low)()

    def output_history(self, name: str) -> list[bool]:
        spec = getattr(self.settings, name)
        return [bool(state.state) == spec.active_high for state in self.factory.pin(spec.pin).states]

    def close(self) -> None:
        self.door.close()


def _pin_text(settings: DoorSettings, name: str) -> str:
    spec = getattr(settings, name)
    return f"GPIO {spec.pin}" if spec is not None else "not wired"


def check_relay(door: DoorChannel, times: int, who: str, report: Report) -> CheckResult:
    """Release the door ``times`` times, each until it secures again by its own timer; with a
    door contact, the door must show open during each release (someone pushes it; a
    simulated channel does)."""
    settings, relay = door.settings, _pin_text(door.settings, "relay")
    contact = settings.door_contact is not None and settings.lock_type != "turnstile"
    hold = settings.turnstile_pulse_s if settings.lock_type == "turnstile" else settings.release_s
    released_ms: list[float] = []
    held_s: list[float] = []
    opened = 0
    before = door.view()
    if before.inputs.get("fire"):  # fire holds the door released: no release can be told apart
        return failed("relay", "the fire input is active: the door is held released",
                      f"the fire panel's contact on {_pin_text(settings, 'fire')} reads fire (or its loop is cut)",
                      "`gate-reader diag inputs`; with the fire panel's technician, restore the loop", via=door.via)
    if before.released and not wait_until(lambda: not door.view().released, hold + 3.0):
        return failed("relay", "the door is released and does not secure", "a release that does not end",
                      "stop the gate (systemctl stop gate-reader) and report this", via=door.via, relay=relay)
    for attempt in range(1, times + 1):
        started = time.monotonic()
        try:
            door.release(who)
        except (RuntimeError, OSError, ValueError) as exc:
            return failed("relay", f"release {attempt} of {times} refused: {exc}",
                          "the release could not be journaled or the door I/O refused it",
                          "check `gate-reader status` (journal, daemon) and run the check again", via=door.via)
        if not wait_until(lambda: door.view().released, 2.0):
            return failed("relay", f"release {attempt} of {times}: the lock output never went released",
                          "the door I/O did not drive the relay", "look at the daemon's log: journalctl -u gate-reader",
                          via=door.via, relay=relay)
        released_ms.append((time.monotonic() - started) * 1000)
        report(f"release {attempt}/{times}: relay released ({relay}); " +
               ("push the door open now" if contact and not door.simulated else "waiting for it to secure"))
        was_open = False
        if door.simulated and contact:  # the person at the gate: pushes the door, lets it close
            door.drive_input("door_contact", True)
        deadline = started + hold + 3.0
        while time.monotonic() < deadline and door.view().released:
            view = door.view()
            if view.inputs.get("door_contact"):
                if not was_open:
                    report(f"release {attempt}/{times}: door contact shows the door open")
                was_open = True
                if door.simulated:
                    door.drive_input("door_contact", False)
            time.sleep(0.02)
        if door.view().released:
            return failed("relay", f"release {attempt} of {times}: still released {hold + 3:g} s later",
                          "the door's own timer did not secure it", "stop the gate (systemctl stop gate-reader) and "
                          "report this: the door must secure by itself", via=door.via, relay=relay)
        held_s.append(time.monotonic() - started)
        opened += was_open
        if door.simulated and contact:
            wait_until(lambda: not door.view().inputs.get("door_contact"), 2.0)
    values = {"via": door.via, "relay": relay, "lock_type": settings.lock_type, "releases": times,
              "released_after_ms": round(max(released_ms), 1), "secured_after_s": round(max(held_s), 2)}
    if not contact:
        return passed("relay", f"{times}x released and secured again by itself (no door contact to confirm: "
                               "listen for the relay and push the door during the release)", **values)
    values["door_opened"] = f"{opened}/{times}"
    if opened < times:
        return failed("relay", f"the door contact showed the door open in {opened} of {times} releases",
                      "nobody pushed the door during a release, the lock did not let go (its supply or wiring), "
                      f"or the door contact is not on {_pin_text(settings, 'door_contact')}",
                      "run it again pushing the door each time; `gate-reader diag inputs` shows the contact alone",
                      **values)
    return passed("relay", f"{times}x released, the door opened each time and secured again by itself", **values)


def check_indicators(door: DoorChannel, names: tuple[str, ...], ask: Ask, report: Report) -> CheckResult:
    """Show each output of ``names`` (green_led, red_led, buzzer) alone for a moment: seen in
    the mock pins' history, or said by the technician."""
    check = "buzzer" if names == ("buzzer",) else "leds"
    present = [n for n in names if getattr(door.settings, n) is not None]
    if not present:
        return skipped(check, f"no {' or '.join(names)} in [door]", via=door.via)
    values: dict[str, Any] = {"via": door.via}
    for name in present:
        overlay, what = _SHOWN[name]
        before = door.output_history(name) if door.simulated else []
        report(f"{name} ({_pin_text(door.settings, name)}): on for {DIAG_OVERLAYS[overlay][0].seconds:g} s")
        door.indicate(overlay)
        time.sleep(DIAG_OVERLAYS[overlay][0].seconds + 0.2)
        if door.simulated:
            new = door.output_history(name)[len(before):]
            seen = True in new and new[-1] is False
            values[name] = "went on and off" if seen else "never went on"
        else:
            seen = ask(f"Did {what} for a moment?")  # type: ignore[assignment]
            values[name] = {True: "confirmed", False: "NOT seen", None: "driven, not confirmed (nobody asked)"}[seen]
        if seen is False:
            return failed(check, f"{name}: {values[name]}",
                          f"the {name.replace('_', ' ')} is wired the wrong way round, has no resistor or power, or "
                          f"is not on {_pin_text(door.settings, name)}",
                          "check its wiring against the table in the install guide (section 3)", **values)
    return passed(check, ", ".join(f"{n} {values[n]}" for n in present), **values)


def check_inputs(door: DoorChannel, seconds: float, report: Report) -> CheckResult:
    """The inputs' levels now, then (``seconds`` > 0) every change for that long, as it
    happens. FAIL when tamper or fire is active at the end, or (a live view) when an input
    never changed although the technician had the time to work it."""
    wired = [name for name in INPUTS if getattr(door.settings, name) is not None]
    if not wired:
        return skipped("inputs", "no inputs in [door]", via=door.via)
    levels = door.view().inputs
    for name in wired:
        report(f"{name} ({_pin_text(door.settings, name)}): {MEANING[name][0 if levels.get(name) else 1]}")
    changes = dict.fromkeys(wired, 0)
    if seconds > 0:
        if door.simulated:  # the person at the gate works each input once
            for name in wired:
                first = bool(levels.get(name))
                for level in (not first, first):
                    door.drive_input(name, level)
                    _follow(door, levels, changes, 1.0, report, until=lambda n=name, v=level: levels[n] == v)
        else:
            _follow(door, levels, changes, seconds, report)
    values: dict[str, Any] = {"via": door.via, **{n: "active" if levels.get(n) else "inactive" for n in wired}}
    if seconds > 0:
        values["changes"] = changes
    alarm = [n for n in ("tamper", "fire") if levels.get(n)]
    if alarm:
        name = alarm[0]
        return failed("inputs", f"{name} is active: {MEANING[name][0]}",
                      f"{_pin_text(door.settings, name)} reads its active level: {_PINS[name]} is open, its "
                      "normally-closed loop is cut, or the switch is normally-open (the wrong kind)",
                      "close the case / restore the loop, then `gate-reader diag inputs` again", **values)
    if seconds > 0 and not all(changes.values()):
        still = [n for n in wired if not changes[n]]
        return failed("inputs", f"no change seen on {', '.join(still)}",
                      f"{' and '.join(_PINS[n] for n in still)} never changed: not worked during the view, not "
                      "between its pin and GND, or on another pin",
                      "run it again working each input; check the wiring table (install guide, section 3)", **values)
    return passed("inputs", ", ".join(f"{n} {values[n]}" for n in wired), **values)


def _follow(door: DoorChannel, levels: dict[str, bool], changes: dict[str, int], seconds: float,
            report: Report, until: Callable[[], bool] | None = None) -> None:
    """Report each change of an input for ``seconds`` (or until ``until()`` holds)."""
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline and not (until is not None and until()):
        now = door.view().inputs
        for name in changes:
            if bool(now.get(name)) != bool(levels.get(name)):
                levels[name] = bool(now.get(name))
                changes[name] += 1
                report(f"+{time.monotonic() - started:5.1f} s  {name}: {MEANING[name][0 if levels[name] else 1]}")
        time.sleep(0.05)
