"""gpiozero pin factories, made from a name given explicitly in the config, and THE default
pin table of a gate.

**Factories.** ``make_pin_factory("mock" | "lgpio" | "rpigpio")`` imports the one factory
named, lazily, and returns it. It never sets ``gpiozero.Device.pin_factory``: every device
the drivers create is handed the factory (``pin_factory=``), because a device created
without one makes gpiozero pick a default by trying factories in turn, and gpiozero has
shipped versions that fell back to a factory that then crashed. An unknown name, a library
that is not installed or a factory that cannot start (no ``/dev/gpiochip*``, no permission)
is a ``DriverConfigError`` naming the key (``door.pin_factory: ...``), never another factory.

- ``mock``: gpiozero's ``MockFactory``, the simulated gate and the tests.
- ``lgpio``: talks to ``/dev/gpiochip*``; the one that works on a Pi 5 (and on 3 and 4), and
  the one whose edge ticks are the kernel's timestamps, which Wiegand framing relies on.
  Its output pins are made with the level they must have from the first instant (see
  ``_GlitchFreeLGPIOPin``).
- ``rpigpio``: RPi.GPIO, Pi 4 and older only. Its edge ticks are the time the callback
  ran, not the time of the edge: good enough for door inputs, less so for Wiegand.

**Default pins** (BCM numbering; the physical header pin in brackets). They avoid I2C
(GPIO 2/3), the UART (14/15) and SPI0 (7-11), so a PN532 on UART or I2C, an SPI display and
the camera (its own CSI connector) all still work; SPI1 and PCM/I2S (16-21) must stay
disabled. Inputs are wired to GND with the internal pull-up, and each input's "active" level
is chosen so that a cut wire reads as the safe failure (door open, tamper, fire release);
the exit button and the lockdown switch are normally-open instead, so that an input nobody
wired never presses exit or locks the gate down.

==================  ====  ======  =========================================================
role                BCM   header  wiring (default polarity)
==================  ====  ======  =========================================================
relay               17    11      lock relay driver, active high (pin high = coil on)
green_led           27    13      green LED, active high
red_led             22    15      red LED, active high
buzzer              23    16      active buzzer (through a transistor), active high
door_contact        5     29      reed contact to GND, closed when the door is shut:
                                  high (open circuit) = door open
exit_button         6     31      normally-open button to GND: low = pressed
tamper              13    33      normally-closed tamper switch to GND: high = tampered
fire                19    35      fire panel's normally-closed contact to GND: high = fire
lockdown            26    37      normally-open key switch (or panel output) to GND:
                                  low = lockdown; unwired reads high = no lockdown
wiegand_d0          20    38      Wiegand DATA0 through a 5 V -> 3.3 V level shifter
wiegand_d1          21    40      Wiegand DATA1 through a 5 V -> 3.3 V level shifter
==================  ====  ======  =========================================================

``DEFAULT_PINS`` holds the same table as data, so the install guide and a wiring picture
can be drawn from it; a test checks it against gpiozero's own header map.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from drivers.errors import DriverConfigError


@dataclass(frozen=True, slots=True)
class PinDefault:
    """One row of the default pin table."""

    bcm: int  # the GPIO number (BCM), what gpiozero and the config use
    header: int  # the physical pin on the 40-pin header (J8)
    direction: str  # "output" or "input"
    wiring: str


DEFAULT_PINS: MappingProxyType[str, PinDefault] = MappingProxyType({
    "relay": PinDefault(17, 11, "output", "lock relay driver, active high (pin high = coil on)"),
    "green_led": PinDefault(27, 13, "output", "green LED, active high"),
    "red_led": PinDefault(22, 15, "output", "red LED, active high"),
    "buzzer": PinDefault(23, 16, "output", "active buzzer through a transistor, active high"),
    "door_contact": PinDefault(5, 29, "input", "reed contact to GND, closed when shut: high = door open"),
    "exit_button": PinDefault(6, 31, "input", "normally-open button to GND: low = pressed"),
    "tamper": PinDefault(13, 33, "input", "normally-closed tamper switch to GND: high = tampered"),
    "fire": PinDefault(19, 35, "input", "fire panel's normally-closed contact to GND: high = fire"),
    "lockdown": PinDefault(26, 37, "input", "normally-open lockdown switch to GND: low = lockdown"),
    "wiegand_d0": PinDefault(20, 38, "input", "Wiegand DATA0 through a 5 V -> 3.3 V level shifter"),
    "wiegand_d1": PinDefault(21, 40, "input", "Wiegand DATA1 through a 5 V -> 3.3 V level shifter"),
})

#: the factory names the config accepts -> ``module:Class`` (imported only when chosen)
PIN_FACTORIES: MappingProxyType[str, str] = MappingProxyType({
    "mock": "gpiozero.pins.mock:MockFactory",
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
})

_INSTALL_HINTS = {
    "lgpio": "pip install lgpio (wheels for 64-bit Pi OS), or apt install python3-lgpio with a venv "
             "made with --system-site-packages",
    "rpigpio": "pip install RPi.GPIO (Pi 4 and older; on a Pi 5 use lgpio)",
}


def make_pin_factory(name: str, key: str = "door.pin_factory") -> Any:
    """The gpiozero pin factory called ``name``; DriverConfigError naming ``key`` when the
    name is unknown or the factory cannot be imported or started. Never a fallback."""
    target = PIN_FACTORIES.get(name) if isinstance(name, str) else None
    if target is None:
        raise DriverConfigError(f"{key}: unknown pin factory {name!r} (known: {', '.join(PIN_FACTORIES)})")
    module_name, _, class_name = target.partition(":")
    try:
        factory_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(name)
        raise DriverConfigError(
            f"{key}: pin factory {name!r} cannot load ({exc})" + (f"; {hint}" if hint else "")) from None
    try:
        factory = factory_class()
    except Exception as exc:  # gpiozero and the GPIO libraries raise anything from OSError to RuntimeError
        raise DriverConfigError(f"{key}: pin factory {name!r} cannot start ({type(exc).__name__}: {exc})") from None
    if name == "lgpio":
        factory.pin_class = _glitch_free_lgpio_pin_class()
    return factory


def _glitch_free_lgpio_pin_class() -> type:
    """gpiozero 2.0's ``LGPIOPin`` makes an output with ``gpio_claim_output(handle, gpio)``,
    whose level defaults to 0, and only then writes the level asked for: an active-low relay
    (secured = high) would see a pulse at the released level each time the daemon starts.
    This subclass claims the line with its level in the same call."""
    import lgpio
    from gpiozero.pins.lgpio import LGPIOPin

    class _GlitchFreeLGPIOPin(LGPIOPin):
        def output_with_state(self, state: Any) -> None:
            if self._callback is not None:
                self._callback.cancel()
                self._callback = None
            lgpio.gpio_claim_output(self.factory._handle, self._number, 1 if state else 0)

    return _GlitchFreeLGPIOPin


def wrap_gpio_error(exc: BaseException, key: str) -> DriverConfigError:
    """A gpiozero error met while creating a device, as a config error naming ``key``: an
    invalid pin name, a pin already used by another device, a pull the pin cannot have."""
    return DriverConfigError(f"{key}: {type(exc).__name__}: {exc}")
