"""The ``[door]`` table: the door I/O's settings (``drivers.door.DoorSettings``), the pin
factory named explicitly, and the door state machine's times.

    [door]
    pin_factory = "lgpio"                  # mock, lgpio or rpigpio: required, never a fallback
    lock_type = "fail_secure"              # fail_secure, fail_safe or turnstile
    relay = { pin = 17, active_high = true }
    green_led = { pin = 27 }               # false leaves an output out
    door_contact = { pin = 5, active_high = true, pull = "up", debounce_s = 0.1 }
    exit_button = false                    # false leaves an input out
    lockdown = { pin = 26, active_high = false }  # the lockdown switch (default: on GPIO 26,
                                           # active low); false when the gate has none
    release_s = 5                          # and max_release_s, turnstile_pulse_s, turnstile_gap_s
    held_open_s = 30                       # the door machine: open longer = door_held_open alarm
    alarm_repeat_s = 30

Every pin and time defaults to ``DoorSettings``' own defaults (the pin table of
``drivers/pins.py``): ``[door] pin_factory = "mock"`` alone is a working simulated door.
Nothing here touches a pin: the daemon makes the factory and the outputs at start. The
settings are checked here (``DoorSettings.check``), so a wrong pin or time stops the program
at start with its key path, as every other key does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from drivers.door import INPUTS, DoorSettings, InputPin, OutputPin
from drivers.errors import DriverConfigError
from drivers.pins import PIN_FACTORIES
from reader.gate.config_table import Table, key_of

OUTPUTS = ("relay", "green_led", "red_led", "buzzer")
_TIMES = ("release_s", "max_release_s", "turnstile_pulse_s", "turnstile_gap_s")


@dataclass(frozen=True)
class DoorConfig:
    settings: DoorSettings
    pin_factory: str
    held_open_s: float = 30.0
    alarm_repeat_s: float = 30.0

    @property
    def has_contact(self) -> bool:
        return self.settings.door_contact is not None


def _pin_table(table: Table, name: str, default: Any, optional: bool) -> Any:
    """An output or input: a table of its keys, or ``false`` to leave it out."""
    value = table.raw(name)
    if value is None:
        return default
    if value is False and optional:
        return None
    if not isinstance(value, dict):
        what = "a table like { pin = 17 }" + (" or false" if optional else "")
        return table.fail(f"door.{name}: must be {what}, not {value!r}", default)
    sub = Table(value, f"door.{name}", table.base, table.errors)
    base = default or (OutputPin(0) if name in OUTPUTS else InputPin(0, active_high=True))
    pin = sub.number("pin", -1, minimum=0, inclusive=True, integer=True)
    if pin == -1:
        if default is None:
            return sub.fail(f"door.{name}.pin: missing", None)
        pin = base.pin
    changes: dict[str, Any] = {"pin": pin, "active_high": sub.flag("active_high", base.active_high)}
    if isinstance(base, InputPin):
        changes["pull"] = sub.choice("pull", base.pull, ("up", "down", "none"))
        changes["debounce_s"] = sub.number("debounce_s", base.debounce_s, inclusive=True)
    sub.done()
    return replace(base, **changes)


def _checked(table: Table, settings: DoorSettings) -> DoorSettings:
    """``DoorSettings.check`` (the pins 0-27, each used once, the times): its first mistake
    raised; when collecting, each one recorded and the wrong pin taken out of the way (an
    input or output left out, the relay moved to a free pin) to find the next; a wrong time
    ends the check."""
    for _ in range(len(OUTPUTS) + len(INPUTS) + 1):
        try:
            settings.check("door")
            return settings
        except DriverConfigError as exc:
            table.fail(str(exc))
            parts = key_of(exc).split(".")
            name = parts[1] if len(parts) > 1 else ""
            if name == "relay":
                taken = {spec.pin for n in (*OUTPUTS[1:], *INPUTS) if (spec := getattr(settings, n)) is not None}
                free = next(pin for pin in range(28) if pin not in taken)
                settings = replace(settings, relay=replace(settings.relay, pin=free))
            elif name in (*OUTPUTS, *INPUTS):
                settings = replace(settings, **{name: None})
            else:
                return settings
    return settings


def parse_door(table: Table) -> DoorConfig:
    defaults = DoorSettings()
    factory = table.text("pin_factory", required=True)
    if factory is not None and factory not in PIN_FACTORIES:
        factory = table.fail(f"door.pin_factory: must be one of {', '.join(PIN_FACTORIES)}, not {factory!r}")
    values: dict[str, Any] = {
        "lock_type": table.choice("lock_type", defaults.lock_type, ("fail_secure", "fail_safe", "turnstile")),
    }
    for name in (*OUTPUTS, *INPUTS):
        values[name] = _pin_table(table, name, getattr(defaults, name), optional=name != "relay")
    for name in _TIMES:
        values[name] = float(table.number(name, getattr(defaults, name)))
    if values["relay"] is None:  # refused above, only when collecting: a placeholder to check the rest with
        values["relay"] = defaults.relay
    known = {f.name for f in fields(DoorSettings)}
    settings = _checked(table, DoorSettings(**{k: v for k, v in values.items() if k in known}))
    return DoorConfig(
        settings,
        factory,  # type: ignore[arg-type]
        held_open_s=float(table.number("held_open_s", 30.0)),
        alarm_repeat_s=float(table.number("alarm_repeat_s", 30.0)),
    )
