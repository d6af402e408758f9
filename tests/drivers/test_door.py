"""The door I/O against gpiozero's MockFactory: the relay pin's recorded history is the
evidence (every level it was driven to, and when).

``RecordingPin`` also records how each output was claimed: a real pin factory should set a
pin's direction and level in one step (``output_with_state``), so the first thing an output
ever drives is its initial level. Times are checked with tolerances that only bound from
below tightly (a release never ends early) and loosely from above (a loaded machine is late).
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from drivers.door import (
    DEFAULT_OVERLAYS,
    INPUTS,
    DoorIO,
    DoorSettings,
    Indicators,
    InputEvent,
    InputPin,
    OutputPin,
    Step,
)
from drivers.errors import DriverConfigError, DriverError
from drivers.pins import DEFAULT_PINS, make_pin_factory

RELAY = DEFAULT_PINS["relay"].bcm
CONTACT = DEFAULT_PINS["door_contact"].bcm
LATE = 0.5  # how late a timer may be on a loaded 2-core machine before a test calls it wrong


class RecordingPin(MockPin):
    """A mock pin that records each claim as an output and each write, with its level."""

    def __init__(self, factory: Any, info: Any) -> None:
        super().__init__(factory, info)
        self.driven: list[tuple[str, bool]] = []

    def output_with_state(self, state: Any) -> None:
        # Direction and level in one step, as a glitch-free factory does it.
        self.driven.append(("claim", bool(state)))
        self._function = "output"
        self._change_state(bool(state))

    def _set_state(self, value: Any) -> None:
        self.driven.append(("write", bool(value)))
        super()._set_state(value)


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def levels(pin: MockPin) -> list[bool]:
    return [bool(s.state) for s in pin.states]


def durations(pin: MockPin) -> list[float]:
    """How long each recorded level lasted (the last one: until now)."""
    stamps = [s.timestamp for s in pin.states]
    return [*stamps[1:], time.monotonic() - pin._last_change]


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory(pin_class=RecordingPin)


@pytest.fixture
def doors(factory: MockFactory) -> Iterator[Callable[..., tuple[DoorIO, list[InputEvent]]]]:
    made: list[DoorIO] = []

    def make(**settings: Any) -> tuple[DoorIO, list[InputEvent]]:
        events: list[InputEvent] = []
        door = DoorIO(DoorSettings(**settings), factory, on_event=events.append)
        made.append(door)
        return door, events

    yield make
    for door in made:
        door.close()


# -- the relay ----------------------------------------------------------------------------


@pytest.mark.parametrize("lock_type", ["fail_secure", "fail_safe", "turnstile"])
@pytest.mark.parametrize("active_high", [True, False])
def test_outputs_are_created_secured_without_a_glitch(doors, factory, lock_type, active_high):
    door, _ = doors(lock_type=lock_type, relay=OutputPin(RELAY, active_high=active_high))
    relay = factory.pin(RELAY)
    energised_when_secured = lock_type == "fail_safe"
    secured_level = energised_when_secured == active_high
    assert relay.function == "output"
    # Claimed at the secured level, and nothing else driven since.
    assert relay.driven == [("claim", secured_level)]
    assert relay.state == secured_level
    assert door.state().released is False
    # Every indicator starts off, claimed at its off level.
    for role in ("green_led", "red_led", "buzzer"):
        assert factory.pin(DEFAULT_PINS[role].bcm).driven == [("claim", False)]


def test_release_ends_on_its_own_timer(doors, factory):
    door, _ = doors(release_s=0.2)
    relay = factory.pin(RELAY)
    door.release()
    assert relay.state is True and door.state().released
    wait_until(lambda: relay.state is False)
    assert levels(relay) == [False, True, False]
    assert 0.2 <= durations(relay)[1] < 0.2 + LATE
    assert door.state().released is False


def test_re_release_extends_the_release_without_a_toggle(doors, factory):
    door, _ = doors(release_s=0.3)
    relay = factory.pin(RELAY)
    door.release()
    time.sleep(0.15)
    door.release()  # extends to now + 0.3
    door.release(0.05)  # a shorter release never cuts a longer one short
    wait_until(lambda: relay.state is False)
    assert levels(relay) == [False, True, False]
    assert 0.45 <= durations(relay)[1] < 0.45 + LATE


def test_secure_ends_a_release_at_once(doors, factory):
    door, _ = doors(release_s=5.0)
    relay = factory.pin(RELAY)
    door.release()
    door.secure()
    assert levels(relay) == [False, True, False]
    assert durations(relay)[1] < 0.1


def test_active_low_relay_polarity(doors, factory):
    door, _ = doors(release_s=0.15, relay=OutputPin(RELAY, active_high=False))
    relay = factory.pin(RELAY)
    assert relay.state is True  # secured: coil off, pin high
    door.release()
    assert relay.state is False
    wait_until(lambda: relay.state is True)
    assert [level for _, level in relay.driven] == [True, False, True]


def test_fail_safe_maglock_is_powered_when_secured(doors, factory):
    door, _ = doors(lock_type="fail_safe", release_s=0.15)
    relay = factory.pin(RELAY)
    assert relay.state is True  # powered = secured
    door.release()
    assert relay.state is False and door.state().released
    wait_until(lambda: relay.state is True)
    assert levels(relay)[-2:] == [False, True]
    assert 0.15 <= durations(relay)[-2] < 0.15 + LATE


def test_turnstile_gets_one_pulse_per_passage(doors, factory):
    door, _ = doors(lock_type="turnstile", turnstile_pulse_s=0.1, turnstile_gap_s=0.1)
    relay = factory.pin(RELAY)
    for _ in range(3):
        door.release(30)  # a door's release time does not stretch a turnstile pulse
    assert door.state().pulses_pending == 2
    wait_until(lambda: len(relay.states) == 7 and relay.state is False)
    time.sleep(0.3)  # and no fourth pulse
    assert levels(relay) == [False, True, False, True, False, True, False]
    spans = durations(relay)
    for on, off in ((1, 2), (3, 4), (5, 6)):
        assert 0.1 <= spans[on] < 0.1 + LATE
        if off < 6:
            assert spans[off] >= 0.1  # the gap lets the turnstile count both


def test_bad_release_times_are_refused(doors, factory):
    door, _ = doors(max_release_s=10.0)
    for seconds in (0, -1, 11, float("nan"), True):
        with pytest.raises(ValueError, match="release"):
            door.release(seconds)
    assert levels(factory.pin(RELAY)) == [False]


# -- fire, closing -----------------------------------------------------------------------------


def test_fire_hold_overrides_release_secure_and_close(doors, factory):
    door, _ = doors(release_s=0.1)
    relay = factory.pin(RELAY)
    door.hold_released(True)
    assert relay.state is True and door.state().fire_hold
    door.secure()
    door.release()
    time.sleep(0.25)  # the release ran out: the hold still holds
    assert relay.state is True
    door.close()
    assert relay.state is True  # closing does not secure a door held by fire
    door.hold_released(False)  # the fire clears after close: secured
    assert relay.state is False
    assert levels(relay) == [False, True, False]


def test_fire_clear_returns_to_the_running_release(doors, factory):
    door, _ = doors(release_s=0.3)
    relay = factory.pin(RELAY)
    door.hold_released(True)
    door.release()
    door.hold_released(False)  # a release still runs: stays released until it ends
    assert relay.state is True
    wait_until(lambda: relay.state is False)
    assert levels(relay) == [False, True, False]


def test_close_secures_and_is_idempotent(factory):
    door = DoorIO(DoorSettings(release_s=5.0), factory)
    relay = factory.pin(RELAY)
    door.release()
    door.close()
    door.close()
    assert levels(relay) == [False, True, False]
    assert relay.function == "output"  # still driven: a floating line could power a maglock off
    with pytest.raises(DriverError):
        door.release()
    # The inputs and indicators were released back to the factory.
    assert factory.pin(CONTACT).when_changed is None


def test_close_secures_a_fail_safe_lock_by_keeping_it_powered(factory):
    with DoorIO(DoorSettings(lock_type="fail_safe"), factory) as door:
        door.release()
    relay = factory.pin(RELAY)
    assert relay.state is True and relay.function == "output"


# -- settings at run time ------------------------------------------------------------------------


def test_settings_change_at_run_time_does_not_touch_outputs(doors, factory):
    door, _ = doors(release_s=0.3)
    relay, green = factory.pin(RELAY), factory.pin(DEFAULT_PINS["green_led"].bcm)
    door.release()
    door.indicate("grant")
    before = {pin: list(pin.driven) for pin in (relay, green)}
    overlays = dict(DEFAULT_OVERLAYS, grant=(Step(0.05, green=True),))
    slower_contact = InputPin(CONTACT, active_high=True, debounce_s=0.3)
    door.apply_settings(DoorSettings(release_s=0.1, overlays=overlays, door_contact=slower_contact))
    for pin, driven in before.items():
        assert pin.driven == driven  # not one write, not one re-claim
    # The running release keeps its end; the next one takes the new time.
    wait_until(lambda: relay.state is False)
    assert 0.3 <= durations(relay)[1] < 0.3 + LATE
    door.release()
    wait_until(lambda: relay.state is False)
    assert 0.1 <= durations(relay)[3] < 0.1 + LATE
    assert door.settings.door_contact == slower_contact


@pytest.mark.parametrize("change", [
    {"lock_type": "fail_safe"},
    {"relay": OutputPin(RELAY, active_high=False)},
    {"relay": OutputPin(24)},
    {"door_contact": InputPin(CONTACT, active_high=False)},
    {"tamper": None},
])
def test_settings_that_need_new_outputs_are_refused_at_run_time(doors, factory, change):
    door, _ = doors()
    relay = factory.pin(RELAY)
    with pytest.raises(DriverConfigError, match=f"door.{next(iter(change))}: changing it needs a restart"):
        door.apply_settings(DoorSettings(**change))
    assert relay.driven == [("claim", False)]
    assert door.settings == DoorSettings()


# -- indicators --------------------------------------------------------------------------------


def test_overlays_end_by_themselves_over_the_base(doors, factory):
    overlays = {"grant": (Step(0.1, green=True, buzzer=True), Step(0.1, green=True))}
    door, _ = doors(overlays=overlays)
    green, red, buzzer = (factory.pin(DEFAULT_PINS[r].bcm) for r in ("green_led", "red_led", "buzzer"))
    door.set_base(Indicators(red=True))
    assert red.state is True
    door.indicate("grant")
    assert (green.state, red.state, buzzer.state) == (True, False, True)
    assert door.state().overlay == "grant"
    wait_until(lambda: red.state is True)
    assert (green.state, buzzer.state) == (False, False)
    assert levels(buzzer) == [False, True, False]
    assert 0.1 <= durations(buzzer)[1] < 0.1 + LATE
    assert 0.2 <= durations(green)[1] < 0.2 + LATE
    assert door.state().overlay is None
    with pytest.raises(ValueError, match="unknown overlay"):
        door.indicate("party")


# -- inputs ------------------------------------------------------------------------------------


def test_inputs_start_inactive_on_mock_pins(doors):
    door, events = doors()
    assert door.read_inputs() == dict.fromkeys(INPUTS, False)
    assert door.state().inputs == dict.fromkeys(INPUTS, False)
    time.sleep(0.3)
    assert events == []


def test_input_bounce_gives_one_event_stamped_at_the_first_edge(doors, factory):
    door, events = doors(door_contact=InputPin(CONTACT, active_high=True, debounce_s=0.05))
    contact = factory.pin(CONTACT)
    contact.drive_high()  # the door opens, and the contact bounces for ~15 ms
    first_edge = contact._last_change  # the mock pin's stamp of that edge
    for _ in range(3):
        time.sleep(0.004)
        contact.drive_low()
        time.sleep(0.001)
        contact.drive_high()
    wait_until(lambda: len(events) == 1)
    time.sleep(0.1)
    assert len(events) == 1
    event = events[0]
    assert (event.input, event.active, event.kind) == ("door_contact", True, "door_opened")
    assert abs(event.at - first_edge) < 0.001  # not the last bounce, 15 ms later
    assert door.state().inputs["door_contact"] is True


def test_a_glitch_shorter_than_the_debounce_is_no_event(doors, factory):
    _, events = doors(exit_button=InputPin(DEFAULT_PINS["exit_button"].bcm, active_high=False, debounce_s=0.05))
    button = factory.pin(DEFAULT_PINS["exit_button"].bcm)
    button.drive_low()
    time.sleep(0.01)
    button.drive_high()
    time.sleep(0.2)
    assert events == []
    button.drive_low()  # a real press
    wait_until(lambda: len(events) == 1)
    assert events[0].kind == "exit_pressed"


def test_a_missed_edge_is_caught_by_the_level_read(doors, factory):
    door, events = doors(tamper=InputPin(DEFAULT_PINS["tamper"].bcm, active_high=True, debounce_s=0.02))
    tamper = factory.pin(DEFAULT_PINS["tamper"].bcm)
    callback = tamper.when_changed
    tamper.when_changed = None
    tamper.drive_high()  # the edge is lost
    tamper.when_changed = callback
    time.sleep(0.1)
    assert events == []
    assert door.read_inputs()["tamper"] is True
    wait_until(lambda: len(events) == 1)
    assert events[0].kind == "tamper_on"


def test_the_lockdown_switch_is_debounced_and_a_missed_edge_is_read_back(doors, factory):
    """The lockdown input is an input like the others: active low on its default pin (a
    normally-open switch closing to GND), debounced, and healed by the level read."""
    door, events = doors()
    switch = factory.pin(DEFAULT_PINS["lockdown"].bcm)
    assert door.state().inputs["lockdown"] is False and switch.state  # pulled high: no lockdown
    switch.drive_low()
    time.sleep(0.02)
    switch.drive_high()  # a bounce shorter than its 0.1 s debounce
    time.sleep(0.25)
    assert events == []
    switch.drive_low()
    wait_until(lambda: len(events) == 1)
    assert (events[0].input, events[0].active, events[0].kind) == ("lockdown", True, "lockdown_on")
    callback = switch.when_changed
    switch.when_changed = None
    switch.drive_high()  # the switch turned off, and the edge is lost
    switch.when_changed = callback
    time.sleep(0.2)
    assert len(events) == 1 and door.state().inputs["lockdown"] is True
    assert door.read_inputs()["lockdown"] is False
    wait_until(lambda: len(events) == 2)
    assert events[1].kind == "lockdown_off" and door.state().inputs["lockdown"] is False


def test_an_unwired_lockdown_input_reads_no_lockdown():
    """Nothing wired to the lockdown pin: the pull-up holds it high, which is its inactive
    level, so a gate without a switch is never locked down by it (tamper and fire, loops
    that read active when open, are the opposite)."""
    spec = DoorSettings().lockdown
    assert spec is not None and spec.pull == "up" and spec.active_high is False
    assert DoorIO._active(spec, 1) is False and DoorIO._active(spec, 0) is True


def test_a_slow_event_consumer_never_delays_the_relay(factory):
    gate = threading.Event()
    door = DoorIO(DoorSettings(release_s=0.1), factory, on_event=lambda e: gate.wait(5))
    try:
        relay = factory.pin(RELAY)
        factory.pin(CONTACT).drive_high()  # an event the consumer will sit on
        time.sleep(0.2)
        door.release()
        wait_until(lambda: relay.state is False, timeout=1.0)
        assert 0.1 <= durations(relay)[1] < 0.1 + LATE
    finally:
        gate.set()
        door.close()


# -- configuration ------------------------------------------------------------------------------


def test_default_pin_table_matches_the_header_and_keeps_buses_free():
    board = MockFactory().board_info
    for role, row in DEFAULT_PINS.items():
        (_, info), = board.find_pin(row.bcm)
        assert info.number == row.header, role
        assert {"i2c", "uart"}.isdisjoint(info.interfaces) or role == "relay", role
    bus_pins = {0, 1, 2, 3, 7, 8, 9, 10, 11, 14, 15}  # ID EEPROM, I2C, SPI0, UART
    assert bus_pins.isdisjoint(row.bcm for row in DEFAULT_PINS.values())
    assert len({row.bcm for row in DEFAULT_PINS.values()}) == len(DEFAULT_PINS)
    settings = DoorSettings()
    for role in ("relay", "green_led", "red_led", "buzzer", *INPUTS):
        assert getattr(settings, role).pin == DEFAULT_PINS[role].bcm


def test_pin_factories_are_explicit_and_never_fall_back():
    assert isinstance(make_pin_factory("mock"), MockFactory)
    with pytest.raises(DriverConfigError, match=r"door.pin_factory: unknown pin factory 'native'"):
        make_pin_factory("native")
    for name in ("lgpio", "rpigpio"):
        if importlib_available(name):
            continue  # on a Pi: the library is there, and this is not the test for it
        with pytest.raises(DriverConfigError, match=rf"gate.pins: pin factory '{name}' cannot load"):
            make_pin_factory(name, key="gate.pins")
    with pytest.raises(DriverConfigError, match=r"door\.pin_factory: no pin factory given"):
        DoorIO(DoorSettings(), None)
    assert Device.pin_factory is None  # nothing above set a global default


def importlib_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec({"lgpio": "lgpio", "rpigpio": "RPi"}[name]) is not None


@pytest.mark.parametrize(("settings", "key"), [
    ({"lock_type": "magnetic"}, "door.lock_type"),
    ({"green_led": OutputPin(RELAY)}, "door.green_led.pin: GPIO 17 is already door.relay"),
    ({"tamper": InputPin(28, active_high=True)}, "door.tamper.pin"),
    ({"fire": InputPin(19, active_high=True, pull="weak")}, "door.fire.pull"),
    ({"release_s": 120.0}, "door.release_s"),
    ({"overlays": {"grant": ()}}, "door.overlays.grant"),
    ({"overlays": {"grant": (Step(0),)}}, r"door.overlays.grant\[0\].seconds"),
])
def test_bad_settings_name_their_key(factory, settings, key):
    with pytest.raises(DriverConfigError, match=key):
        DoorIO(DoorSettings(**settings), factory)
    assert not factory.pins  # nothing was claimed


def test_a_pin_in_use_is_a_config_error_and_frees_what_it_took(doors, factory):
    first, _ = doors()
    relay = factory.pin(RELAY)
    with pytest.raises(DriverConfigError, match=r"other\.relay\.pin: GPIOPinInUse"):
        DoorIO(DoorSettings(), factory, key="other")
    assert relay.driven == [("claim", False)]
    first.release(0.1)  # the first door is unharmed
    assert relay.state is True


def test_lgpio_outputs_are_claimed_at_their_secured_level(monkeypatch):
    """gpiozero's own LGPIOPin claims an output at level 0 and then writes the level; ours
    claims it at its level in one call. Checked against a stand-in for the lgpio library."""
    calls: list[tuple[Any, ...]] = []
    modes: dict[int, int] = {}

    def claim_output(handle: int, gpio: int, level: int = 0, flags: int = 0) -> None:
        calls.append(("claim_output", gpio, level))
        modes[gpio] = 2  # GPIO_IS_OUT

    fake = types.SimpleNamespace(
        SET_PULL_NONE=0, SET_PULL_UP=1, SET_PULL_DOWN=2, BOTH_EDGES=3, RISING_EDGE=1, FALLING_EDGE=2,
        error=RuntimeError, gpio_claim_output=claim_output,
        gpio_claim_input=lambda handle, gpio, flags=0: modes.__setitem__(gpio, 0),
        gpio_write=lambda handle, gpio, level: calls.append(("write", gpio, level)),
        gpio_get_mode=lambda handle, gpio: modes.get(gpio, 0),
    )
    monkeypatch.setitem(sys.modules, "lgpio", fake)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
    from gpiozero.pins.lgpio import LGPIOPin

    from drivers.pins import _glitch_free_lgpio_pin_class

    (_, info), = MockFactory().board_info.find_pin(RELAY)
    chip = types.SimpleNamespace(_handle=7)
    stock, ours = LGPIOPin(chip, info), _glitch_free_lgpio_pin_class()(chip, info)
    stock.output_with_state(True)
    assert calls == [("claim_output", RELAY, 0), ("write", RELAY, True)]  # the blip at level 0
    calls.clear()
    ours.output_with_state(True)
    assert calls == [("claim_output", RELAY, 1)]
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
