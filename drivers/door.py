"""The door's I/O through gpiozero: the lock relay, green and red LEDs, a buzzer, and the
door contact, exit button, tamper switch, fire-alarm and lockdown inputs.

Callers speak of the door as *secured* or *released*; this module turns that into coil on or
off (the lock type) and pin high or low (the relay polarity), set apart in the settings:

- ``fail_secure`` (electric strike): coil on = released;
- ``fail_safe`` (maglock): coil on = secured, so "secured" means powered;
- ``turnstile``: coil on = one passage; each ``release()`` is one pulse.

Decisions worth knowing before changing anything here:

- **No glitch, ever.** Outputs are created once, in the secured state from the first
  instant (gpiozero's ``initial_value`` sets the level in the same step that makes the pin an
  output), and never re-created: ``apply_settings()`` changes times, debounces and overlay
  patterns and touches no output. An access-control unit that pulses its relay at start or
  on a settings change is a known way to open doors.
- **Releases end by themselves.** One timer thread of this object, on the monotonic clock,
  secures the door when a release runs out, so nothing upstream (a stuck worker, a wall
  clock jump) can leave it released. A release is capped at ``max_release_s``.
- **Fire overrides everything.** ``hold_released(True)`` holds the lock output released
  until ``hold_released(False)``, whatever ``release()``/``secure()``/``close()`` say. A
  turnstile is then held with its coil on (free passage where it is wired that way).
- **Indicators** have a steady base state (``set_base``) plus timed overlays (``indicate``:
  grant, deny, alarm, or any pattern in the settings) that end by themselves.
- **Inputs** are debounced here, in software (gpiozero's mock pins ignore ``bounce_time``
  and kernel debounce differs by factory): a level counts once it has held for
  ``debounce_s``. Each event carries the time of the edge that started the change, taken from
  the pin factory's ticks, not the time a callback ran. ``read_inputs()`` reads the pins'
  levels now, for the caller's periodic check, and feeds any edge that was missed back into
  the debounce, so the events heal too. On gpiozero's mock pins each input starts at its
  inactive level (a closed, quiet door), since nothing is wired to hold it there.
- **close()** secures the door (unless fire holds it released), stops the threads, releases
  the inputs and indicators, and leaves the relay pin claimed and driven: letting the line
  float could power a maglock off. Whoever owns the pin factory releases it at exit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal

from drivers.errors import DriverConfigError, DriverError
from drivers.pins import DEFAULT_PINS, wrap_gpio_error

log = logging.getLogger(__name__)

LockType = Literal["fail_secure", "fail_safe", "turnstile"]
InputName = Literal["door_contact", "exit_button", "tamper", "fire", "lockdown"]
INPUTS: tuple[InputName, ...] = ("door_contact", "exit_button", "tamper", "fire", "lockdown")
_EVENT_NAMES = {
    "door_contact": ("door_opened", "door_closed"), "exit_button": ("exit_pressed", "exit_released"),
    "tamper": ("tamper_on", "tamper_off"), "fire": ("fire_on", "fire_off"),
    "lockdown": ("lockdown_on", "lockdown_off"),
}


@dataclass(frozen=True, slots=True)
class OutputPin:
    pin: int
    active_high: bool = True  # True: pin high = coil / LED / buzzer on


@dataclass(frozen=True, slots=True)
class InputPin:
    pin: int
    active_high: bool  # the level that means active: door open, button pressed, tamper, fire, lockdown
    pull: Literal["up", "down", "none"] = "up"
    debounce_s: float = 0.05


@dataclass(frozen=True, slots=True)
class Indicators:
    green: bool = False
    red: bool = False
    buzzer: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an overlay pattern: these indicator levels for ``seconds``."""

    seconds: float
    green: bool = False
    red: bool = False
    buzzer: bool = False


def _beeps(n: int, **lit: bool) -> tuple[Step, ...]:
    return tuple(s for _ in range(n) for s in (Step(0.25, buzzer=True, **lit), Step(0.25, **lit)))


DEFAULT_OVERLAYS: Mapping[str, tuple[Step, ...]] = MappingProxyType({
    "grant": (Step(0.15, green=True, buzzer=True), Step(1.85, green=True)),
    "deny": (*_beeps(2, red=True), Step(0.5, red=True)),
    "alarm": tuple(s for _ in range(6) for s in (Step(0.25, red=True, buzzer=True), Step(0.25))),
})


def _pin(role: str) -> int:
    return DEFAULT_PINS[role].bcm


@dataclass(frozen=True)
class DoorSettings:
    """The ``[door]`` settings; every pin defaults to the table in ``drivers.pins``, so the
    defaults alone are a working door on mock pins. ``None`` leaves an output or input out.

    The lockdown input (a key switch or the alarm panel's output: while active, every
    credential is refused but the lockdown groups') is on by default and **active low**, a
    normally-open switch to GND, as the exit button is. The other way round (a
    normally-closed loop, active high, like tamper and fire) would make a gate with nothing
    wired to GPIO 26 read its pull-up as "lockdown" and refuse everyone; active low, an
    unwired pin reads inactive, so a gate without a switch is never locked down by it. Nor
    is it ever opened by it: lockdown only refuses more. The cost, said in the install
    guide: a cut wire cannot signal a lockdown (``gate-reader lockdown on`` still can)."""

    lock_type: LockType = "fail_secure"
    relay: OutputPin = OutputPin(_pin("relay"))
    green_led: OutputPin | None = OutputPin(_pin("green_led"))
    red_led: OutputPin | None = OutputPin(_pin("red_led"))
    buzzer: OutputPin | None = OutputPin(_pin("buzzer"))
    door_contact: InputPin | None = InputPin(_pin("door_contact"), active_high=True, debounce_s=0.1)
    exit_button: InputPin | None = InputPin(_pin("exit_button"), active_high=False, debounce_s=0.05)
    tamper: InputPin | None = InputPin(_pin("tamper"), active_high=True, debounce_s=0.1)
    fire: InputPin | None = InputPin(_pin("fire"), active_high=True, debounce_s=0.2)
    lockdown: InputPin | None = InputPin(_pin("lockdown"), active_high=False, debounce_s=0.1)
    release_s: float = 5.0
    max_release_s: float = 60.0
    turnstile_pulse_s: float = 0.3
    turnstile_gap_s: float = 0.3  # between two queued pulses, so the turnstile counts both
    overlays: Mapping[str, tuple[Step, ...]] = field(default_factory=lambda: DEFAULT_OVERLAYS)

    def check(self, key: str = "door") -> None:
        """DriverConfigError naming the key of the first wrong value."""
        if self.lock_type not in ("fail_secure", "fail_safe", "turnstile"):
            raise DriverConfigError(f"{key}.lock_type: {self.lock_type!r} is not fail_secure, fail_safe or turnstile")
        if not isinstance(self.relay, OutputPin):
            raise DriverConfigError(f"{key}.relay: the lock relay is required")
        used: dict[int, str] = {}
        for name in ("relay", "green_led", "red_led", "buzzer", *INPUTS):
            spec = getattr(self, name)
            if spec is None:
                continue
            if not isinstance(spec.pin, int) or isinstance(spec.pin, bool) or not 0 <= spec.pin <= 27:
                raise DriverConfigError(f"{key}.{name}.pin: {spec.pin!r} is not a GPIO number 0-27")
            if spec.pin in used:
                raise DriverConfigError(f"{key}.{name}.pin: GPIO {spec.pin} is already {key}.{used[spec.pin]}")
            used[spec.pin] = name
            if isinstance(spec, InputPin):
                if spec.pull not in ("up", "down", "none"):
                    raise DriverConfigError(f"{key}.{name}.pull: {spec.pull!r} is not up, down or none")
                _check_seconds(f"{key}.{name}.debounce_s", spec.debounce_s, 0.0, 5.0)
        _check_seconds(f"{key}.max_release_s", self.max_release_s, 0.1, 3600.0)
        _check_seconds(f"{key}.release_s", self.release_s, 0.1, self.max_release_s)
        _check_seconds(f"{key}.turnstile_pulse_s", self.turnstile_pulse_s, 0.02, 5.0)
        _check_seconds(f"{key}.turnstile_gap_s", self.turnstile_gap_s, 0.02, 5.0)
        for name, steps in self.overlays.items():
            if not steps or len(steps) > 64:
                raise DriverConfigError(f"{key}.overlays.{name}: 1 to 64 steps")
            for i, step in enumerate(steps):
                _check_seconds(f"{key}.overlays.{name}[{i}].seconds", step.seconds, 0.01, 60.0)


def _check_seconds(key: str, value: object, low: float, high: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise DriverConfigError(f"{key}: {value!r} is not a number of seconds from {low} to {high}")


#: what apply_settings may change while running; anything else is wired into an output
_LIVE_FIELDS = {"release_s", "max_release_s", "turnstile_pulse_s", "turnstile_gap_s", "overlays"}


@dataclass(frozen=True, slots=True)
class InputEvent:
    input: InputName
    active: bool
    at: float  # time.monotonic() of the edge that started the change

    @property
    def kind(self) -> str:
        """``door_opened``, ``exit_pressed``, ``tamper_off``, ``fire_on``, ``lockdown_on``, ..."""
        on, off = _EVENT_NAMES[self.input]
        return on if self.active else off


@dataclass(frozen=True, slots=True)
class DoorState:
    released: bool  # the lock output is at its released level now
    fire_hold: bool
    release_remaining_s: float  # 0 when no timed release runs
    pulses_pending: int  # turnstile passages queued behind the current pulse
    lock_type: LockType
    inputs: dict[str, bool]  # debounced levels of the configured inputs (True = active)
    overlay: str | None
    base: Indicators
    events_dropped: int


@dataclass(slots=True, eq=False)
class _Input:
    name: InputName
    spec: InputPin
    device: Any
    stable: bool  # the debounced level (True = active)
    raw: bool  # the level of the last edge seen
    last_edge_at: float  # monotonic
    change_started_at: float | None = None  # first edge away from ``stable``
    callback: Any = None  # gpiozero keeps only a weak reference to it: this is the strong one


class DoorIO:
    """The door's outputs and inputs on one gpiozero pin factory, passed explicitly.

    Thread-safe: the decision worker, the timer thread and the pins' callbacks may all call
    in at once. ``on_event`` is called from a thread of its own, in order, never while a lock
    is held, so it may call back into this object; an event it is too slow to take is counted
    in ``state().events_dropped`` and logged, and the periodic ``read_inputs()`` heals it.
    """

    def __init__(self, settings: DoorSettings, pin_factory: Any, *,
                 on_event: Callable[[InputEvent], None] | None = None, key: str = "door") -> None:
        if pin_factory is None:
            raise DriverConfigError(f"{key}.pin_factory: no pin factory given (never a gpiozero default)")
        settings.check(key)
        self._settings = settings
        self._factory = pin_factory
        self._key = key
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._on_event = on_event
        self._events: queue.Queue[InputEvent | None] = queue.Queue(maxsize=256)
        self._events_dropped = 0
        self._release_until = 0.0
        self._pulse_on_until = 0.0  # turnstile: coil on until then
        self._pulse_next = 0.0  # turnstile: the earliest start of a queued pulse
        self._pulses_pending = 0
        self._fire_hold = False
        self._base = Indicators()
        self._overlay: tuple[str, tuple[Step, ...]] | None = None
        self._overlay_index = 0
        self._overlay_next = 0.0
        self._outputs: dict[str, Any] = {}
        self._inputs: dict[str, _Input] = {}
        try:
            self._create_devices()
        except BaseException:
            self._close_devices(keep_relay=False)
            raise
        self._timer = threading.Thread(target=self._timer_loop, name=f"{key}-timer", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name=f"{key}-events", daemon=True)
        self._timer.start()
        self._dispatcher.start()

    # -- creation ----------------------------------------------------------------------------

    def _create_devices(self) -> None:
        from gpiozero import InputDevice, OutputDevice
        from gpiozero.exc import GPIOZeroError
        from gpiozero.pins.mock import MockPin

        s = self._settings
        # The relay first, at the secured level from the first instant.
        specs = [("relay", s.relay, self._energised(released=False)),
                 ("green_led", s.green_led, False), ("red_led", s.red_led, False), ("buzzer", s.buzzer, False)]
        for name, spec, initial in specs:
            if spec is None:
                continue
            try:
                self._outputs[name] = OutputDevice(spec.pin, active_high=spec.active_high,
                                                   initial_value=initial, pin_factory=self._factory)
            except GPIOZeroError as exc:
                raise wrap_gpio_error(exc, f"{self._key}.{name}.pin") from exc
        self._lock_released = False
        now = time.monotonic()
        for name in INPUTS:
            spec = getattr(s, name)
            if spec is None:
                continue
            pull = {"up": True, "down": False, "none": None}[spec.pull]
            try:
                device = InputDevice(spec.pin, pull_up=pull, active_state=True if pull is None else None,
                                     pin_factory=self._factory)
            except GPIOZeroError as exc:
                raise wrap_gpio_error(exc, f"{self._key}.{name}.pin") from exc
            if isinstance(device.pin, MockPin):
                # Nothing is wired to a mock pin: its pull alone would read as an open circuit
                # (door open, tamper, fire). A simulated door starts closed and quiet.
                (device.pin.drive_high if spec.active_high is False else device.pin.drive_low)()
            level = self._active(spec, device.pin.state)
            inp = _Input(name, spec, device, stable=level, raw=level, last_edge_at=now)
            self._inputs[name] = inp
            inp.callback = self._edge_callback(inp)
            device.pin.when_changed = inp.callback

    @staticmethod
    def _active(spec: InputPin, state: object) -> bool:
        return bool(state) == spec.active_high

    def _energised(self, *, released: bool) -> bool:
        # fail_safe: coil on = secured; fail_secure and turnstile: coil on = released
        return released != (self._settings.lock_type == "fail_safe")

    # -- the lock ------------------------------------------------------------------------------

    def release(self, seconds: float | None = None) -> None:
        """Release for ``seconds`` (default ``release_s``); a release while released extends it
        to now + seconds. A turnstile gets one pulse per call (``seconds`` does not apply):
        a call during a pulse queues one more passage."""
        with self._lock:
            self._check_open()
            s = self._settings
            now = time.monotonic()
            if s.lock_type == "turnstile":
                if now >= self._pulse_on_until and now >= self._pulse_next and not self._pulses_pending:
                    self._pulse_on_until = now + s.turnstile_pulse_s
                    self._pulse_next = self._pulse_on_until + s.turnstile_gap_s
                else:
                    self._pulses_pending = min(self._pulses_pending + 1, 16)
            else:
                span = s.release_s if seconds is None else seconds
                if not isinstance(span, int | float) or isinstance(span, bool) or not 0 < span <= s.max_release_s:
                    raise ValueError(f"release: {span!r} s is not in (0, {s.max_release_s}]")
                self._release_until = max(self._release_until, now + span)
            self._drive_lock(now)
            self._wake.notify()

    def secure(self) -> None:
        """Secure now: ends any release and drops queued turnstile passages (a fire hold
        still keeps the output released)."""
        with self._lock:
            self._check_open()
            self._release_until = 0.0
            self._pulse_on_until = 0.0
            self._pulses_pending = 0
            self._drive_lock(time.monotonic())
            self._wake.notify()

    def hold_released(self, flag: bool) -> None:
        """The fire release: while set, the lock output stays released whatever else is
        asked; when cleared, the door follows its timers again (secured if none runs)."""
        with self._lock:
            self._fire_hold = bool(flag)
            # Also after close(): the relay pin stays claimed, and fire overrides everything.
            self._drive_lock(time.monotonic())

    def _drive_lock(self, now: float) -> None:
        s = self._settings
        if self._fire_hold:
            released = True
        elif s.lock_type == "turnstile":
            released = now < self._pulse_on_until
        else:
            released = now < self._release_until
        if released != self._lock_released:
            self._write("relay", self._energised(released=released))
            self._lock_released = released

    # -- indicators -------------------------------------------------------------------------

    def set_base(self, base: Indicators) -> None:
        """The steady state the indicators show when no overlay runs."""
        with self._lock:
            self._check_open()
            self._base = base
            if self._overlay is None:
                self._show(base)

    def indicate(self, overlay: str) -> None:
        """Start the named overlay now (replacing any running one); it ends by itself."""
        with self._lock:
            self._check_open()
            steps = self._settings.overlays.get(overlay)
            if steps is None:
                raise ValueError(f"indicate: unknown overlay {overlay!r} (known: {', '.join(self._settings.overlays)})")
            self._overlay, self._overlay_index = (overlay, steps), 0
            self._overlay_next = time.monotonic() + steps[0].seconds
            self._show(steps[0])
            self._wake.notify()

    def _show(self, levels: Indicators | Step) -> None:
        for name, value in (("green_led", levels.green), ("red_led", levels.red), ("buzzer", levels.buzzer)):
            self._write(name, value)

    def _write(self, name: str, value: bool) -> None:
        device = self._outputs.get(name)
        if device is None:
            return
        try:
            device.value = value
        except Exception:  # a pin that fails to write must not stop the timer thread
            log.exception("%s: cannot drive %s", self._key, name)

    # -- inputs ----------------------------------------------------------------------------------

    def _edge_callback(self, inp: _Input) -> Callable[[Any, Any], None]:
        def changed(ticks: Any, state: Any) -> None:
            if state not in (0, 1):  # lgpio reports a watchdog timeout as level 2
                return
            self._edge(inp, self._edge_time(ticks), self._active(inp.spec, state))
        return changed

    def _edge_time(self, ticks: Any) -> float:
        """The monotonic time of an edge stamped ``ticks`` by the factory: now minus its
        age in the factory's ticks. An age that makes no sense (a factory whose ticks are not
        comparable with its own ``ticks()``) counts as now."""
        try:
            age = float(self._factory.ticks_diff(self._factory.ticks(), ticks))
        except Exception:
            return time.monotonic()
        now = time.monotonic()
        return now - age if 0.0 <= age < 5.0 else now

    def _edge(self, inp: _Input, at: float, active: bool) -> None:
        with self._lock:
            if self._closed or active == inp.raw:
                return
            inp.raw, inp.last_edge_at = active, at
            # A bounce back to the stable level keeps the start: if the new level then
            # settles, the change began at the first edge of the burst.
            if active != inp.stable and inp.change_started_at is None:
                inp.change_started_at = at
            self._wake.notify()

    def read_inputs(self) -> dict[str, bool]:
        """Each configured input's level read from its pin now (True = active). A level that
        differs from the last edge seen is an edge that was missed: it enters the debounce as
        if it had just happened, so the events follow."""
        levels: dict[str, bool] = {}
        with self._lock:
            self._check_open()
            for name, inp in self._inputs.items():
                levels[name] = self._active(inp.spec, inp.device.pin.state)
                if levels[name] != inp.raw:
                    self._edge(inp, time.monotonic(), levels[name])
        return levels

    def _settle(self, now: float) -> list[InputEvent]:
        events = []
        for inp in self._inputs.values():
            if inp.change_started_at is None or now - inp.last_edge_at < inp.spec.debounce_s:
                continue
            level = self._active(inp.spec, inp.device.pin.state)
            if level != inp.raw:  # an edge went missing while it settled: start again
                inp.raw, inp.last_edge_at = level, now
                continue
            if inp.raw == inp.stable:  # a glitch: it came back and stayed
                inp.change_started_at = None
                continue
            inp.stable = inp.raw
            events.append(InputEvent(inp.name, inp.stable, inp.change_started_at))
            inp.change_started_at = None
        return events

    # -- the timer thread ----------------------------------------------------------------------

    def _next_deadline(self) -> float | None:
        times = [t for t in (self._release_until, self._pulse_on_until) if t]
        if self._pulses_pending:
            times.append(self._pulse_next)
        if self._overlay is not None:
            times.append(self._overlay_next)
        times += [i.last_edge_at + i.spec.debounce_s for i in self._inputs.values() if i.change_started_at is not None]
        return min(times) if times else None

    def _service(self, now: float) -> list[InputEvent]:
        s = self._settings
        if self._release_until and now >= self._release_until:
            self._release_until = 0.0
        if self._pulse_on_until and now >= self._pulse_on_until:
            self._pulse_on_until = 0.0
            self._pulse_next = now + s.turnstile_gap_s  # the gap counts from the real end
        if self._pulses_pending and now >= self._pulse_next and not self._pulse_on_until:
            self._pulses_pending -= 1
            self._pulse_on_until = now + s.turnstile_pulse_s
            self._pulse_next = self._pulse_on_until + s.turnstile_gap_s
        self._drive_lock(now)
        while self._overlay is not None and now >= self._overlay_next:
            steps = self._overlay[1]
            self._overlay_index += 1
            if self._overlay_index >= len(steps):
                self._overlay = None
                self._show(self._base)
            else:
                self._show(steps[self._overlay_index])
                self._overlay_next += steps[self._overlay_index].seconds
        return self._settle(now)

    def _timer_loop(self) -> None:
        with self._lock:
            while not self._closed:
                try:
                    events = self._service(time.monotonic())
                except Exception:
                    log.exception("%s: timer step failed", self._key)
                    events = []
                for event in events:
                    self._queue_event(event)
                deadline = self._next_deadline()
                # Condition.wait times out on the monotonic clock: a wall clock jump changes nothing.
                self._wake.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _queue_event(self, event: InputEvent) -> None:
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self._events_dropped += 1
            log.warning("%s: event queue full, %s dropped (the level check will catch up)", self._key, event.kind)

    def _dispatch_loop(self) -> None:
        while (event := self._events.get()) is not None:
            if self._on_event is None:
                continue
            try:
                self._on_event(event)
            except Exception:
                log.exception("%s: the event consumer failed on %s", self._key, event.kind)

    # -- settings, status, closing -----------------------------------------------------------------

    def apply_settings(self, settings: DoorSettings) -> None:
        """Take new times, debounces and overlay patterns without touching any output. A
        change to a pin, a polarity, a pull or the lock type needs a restart: DriverConfigError."""
        settings.check(self._key)
        old = self._settings
        for f in fields(DoorSettings):
            new_value, old_value = getattr(settings, f.name), getattr(old, f.name)
            if f.name in _LIVE_FIELDS or new_value == old_value:
                continue
            if isinstance(new_value, InputPin) and isinstance(old_value, InputPin) and \
                    replace(new_value, debounce_s=old_value.debounce_s) == old_value:
                continue
            raise DriverConfigError(f"{self._key}.{f.name}: changing it needs a restart (outputs are created once)")
        with self._lock:
            self._check_open()
            self._settings = settings
            for name, inp in self._inputs.items():
                inp.spec = getattr(settings, name)
            self._wake.notify()

    @property
    def settings(self) -> DoorSettings:
        return self._settings

    def state(self) -> DoorState:
        with self._lock:
            now = time.monotonic()
            return DoorState(
                released=self._lock_released, fire_hold=self._fire_hold,
                release_remaining_s=max(0.0, self._release_until - now) if self._release_until else 0.0,
                pulses_pending=self._pulses_pending, lock_type=self._settings.lock_type,
                inputs={name: inp.stable for name, inp in self._inputs.items()},
                overlay=self._overlay[0] if self._overlay else None, base=self._base,
                events_dropped=self._events_dropped)

    def _check_open(self) -> None:
        if self._closed:
            raise DriverError(f"{self._key}: the door I/O is closed")

    def close(self) -> None:
        """Secure the door (unless a fire hold keeps it released), stop the threads, release
        the inputs and indicators; the relay pin stays claimed and driven. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._release_until = self._pulse_on_until = 0.0
            self._pulses_pending = 0
            self._drive_lock(time.monotonic())
            self._closed = True
            self._overlay = None
            self._show(Indicators())
            self._wake.notify()
        try:
            self._events.put(None, timeout=1.0)
        except queue.Full:  # a consumer stuck on an event: its thread is a daemon, leave it
            log.warning("%s: the event consumer is stuck; closing without it", self._key)
        for thread in (self._timer, self._dispatcher):
            if thread is not threading.current_thread():
                thread.join(2.0)
        with self._lock:
            self._close_devices(keep_relay=True)

    def _close_devices(self, *, keep_relay: bool) -> None:
        for inp in self._inputs.values():
            try:
                inp.device.pin.when_changed = None
                inp.device.close()
            except Exception:
                log.exception("%s: cannot release %s", self._key, inp.name)
        self._inputs.clear()
        for name in [n for n in self._outputs if not (keep_relay and n == "relay")]:
            try:
                self._outputs.pop(name).close()
            except Exception:
                log.exception("%s: cannot release %s", self._key, name)

    def __enter__(self) -> DoorIO:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
