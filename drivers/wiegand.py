"""Wiegand card readers (125 kHz / 13.56 MHz readers on existing gates) as a credential source.

A reader sends a frame as low pulses on two lines, idle high: a pulse on DATA0 is a 0 bit,
on DATA1 a 1 bit, 20-100 us long and about 1-2 ms apart; ~25 ms of silence ends the frame.
Each frame with a configured length and good parity becomes one ``legacy`` presentation
whose payload is the card's canonical text (below), which the legacy card list decides
(spec 2.3: SHA-256 of that text). A card number on a wire is copyable: ``low`` assurance.

Decisions worth knowing before changing anything here:

- **Time comes from the edges.** gpiozero hands each edge to ``when_changed(ticks, state)``
  with the pin factory's tick stamp (lgpio: the kernel's timestamp of the edge; the mock: the
  instant the pin was driven). Callbacks lag under load and lgpio reads each line's events
  separately, so the callback only stores ``(ticks, line, level)``; the source's thread
  sorts them by ticks and cuts frames where two edges are ``frame_gap_s`` apart, and checks
  each pulse's width on the same ticks. It takes a batch once no edge has *arrived* for
  ``frame_gap_s`` (an edge that happened arrives later, never earlier, so its ticks are
  then at least as quiet). A callback thread stalled for longer than the gap in the middle
  of a frame cuts it in two: both halves are dropped (wrong length), never misread as one
  of the standard formats unless the first half passes that format's parity. RPi.GPIO
  stamps edges when its callback runs, so use the ``lgpio`` factory for Wiegand.
- **Drops are counted, never presented.** Per cause, in ``health().extra["dropped"]``:
  ``noise`` (a pulse shorter than ``min_pulse_s`` or longer than ``max_pulse_s``, both lines
  low at once, a rise without its fall, a line still low when the frame ends, a batch over
  ``_MAX_EDGES`` edges), ``length`` (not a configured length, or over ``_MAX_BITS``),
  ``parity``. A noisy line costs a bounded buffer and a counter, not a crash.
- **Canonical text** (stable and unambiguous; the legacy card list is keyed on it). Fields
  are zero-padded decimal, each to the digits of its largest value:

  =========  ======  ===================================  ===================
  format     bits    layout after the leading parity      text
  =========  ======  ===================================  ===================
  H10301     26      facility 8, card 16                  ``W26:FFF:CCCCC``
  H10306     34      facility 16, card 16                 ``W34:FFFFF:CCCCC``
  C1000-35   35      (2nd parity) company 12, card 20     ``W35:FFFF:CCCCCCC``
  H10304     37      facility 16, card 19                 ``W37:FFFFF:CCCCCC``
  H10302     37      card 35 (no facility)                ``W37:CCCCCCCCCCC``
  raw *n*    *n*     no parity known                      ``WRAW<n>:<hex>``
  =========  ======  ===================================  ===================

  Raw frames (lengths listed in ``raw_lengths``) are the frame's bits as one number, in
  uppercase hex zero-padded to ``ceil(n / 4)`` digits, parity bits included. Values of any
  size are exact (Python integers). ``card_text()`` gives the same text from a facility code
  and card number, for enrolment.
- **Latency** from a frame's last edge to its presentation is the frame gap plus the
  thread's wake-up: ~25-30 ms with the defaults.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from drivers.base import Sink, SourceBase
from drivers.errors import DeviceUnavailable, DriverConfigError
from drivers.pins import DEFAULT_PINS, wrap_gpio_error
from offline_cache.loghash import short_hash

log = logging.getLogger(__name__)

_MAX_BITS = 128  # a frame never grows past this; longer is a ``length`` drop
_MAX_EDGES = 1024  # edges held between two batches (a few frames delivered in one burst)
_MAX_BATCH_S = 1.0  # a line that never falls silent is taken (and dropped) after this long


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


@dataclass(frozen=True, slots=True)
class WiegandFormat:
    """A frame layout. Positions count from 0, the first bit sent."""

    name: str
    length: int
    prefix: str
    fields: tuple[tuple[int, int], ...]  # (first position, bit count): facility code, then card
    parity: tuple[tuple[int, tuple[int, ...], bool], ...]  # (parity bit, positions covered, odd)

    def parity_ok(self, bits: Sequence[int]) -> bool:
        return all((bits[p] ^ sum(bits[i] for i in covered)) % 2 == odd for p, covered, odd in self.parity)

    def values(self, bits: Sequence[int]) -> tuple[int, ...]:
        return tuple(_number(bits[first:first + count]) for first, count in self.fields)

    def text(self, values: Sequence[int]) -> str:
        return ":".join([self.prefix, *(f"{v:0{len(str(2 ** n - 1))}d}" for v, (_, n) in zip(values, self.fields,
                                                                                               strict=True))])

    def encode(self, values: Sequence[int]) -> tuple[int, ...]:
        """The frame for these field values, parity bits computed (simulators, tests)."""
        bits = [0] * self.length
        for value, (first, count) in zip(values, self.fields, strict=True):
            if not 0 <= value < 2 ** count:
                raise ValueError(f"{self.name}: {value} does not fit in {count} bits")
            bits[first:first + count] = [(value >> (count - 1 - i)) & 1 for i in range(count)]
        for p, covered, odd in self.parity:  # in order: a later parity may cover an earlier one
            bits[p] = (sum(bits[i] for i in covered) + odd) % 2
        return tuple(bits)


def _number(bits: Sequence[int]) -> int:
    return int("".join(map(str, bits)) or "0", 2)


_EVEN_FIRST_ODD_LAST = {  # the common shape: even parity over the first half, odd over the second
    26: ((0, _span(1, 12), False), (25, _span(13, 24), True)),
    34: ((0, _span(1, 16), False), (33, _span(17, 32), True)),
    37: ((0, _span(1, 18), False), (36, _span(18, 35), True)),
}
FORMATS: MappingProxyType[str, WiegandFormat] = MappingProxyType({
    "H10301": WiegandFormat("H10301", 26, "W26", ((1, 8), (9, 16)), _EVEN_FIRST_ODD_LAST[26]),
    "H10306": WiegandFormat("H10306", 34, "W34", ((1, 16), (17, 16)), _EVEN_FIRST_ODD_LAST[34]),
    # HID Corporate 1000: even parity at 1 over two of every three bits from 2, odd parity at 34
    # over the other pairing from 1, then odd parity at 0 over the whole frame.
    "C1000-35": WiegandFormat("C1000-35", 35, "W35", ((2, 12), (14, 20)), (
        (1, tuple(p for p in range(2, 34) if p % 3 != 1), False),
        (34, tuple(p for p in range(1, 34) if p % 3 != 0), True),
        (0, _span(1, 34), True))),
    "H10304": WiegandFormat("H10304", 37, "W37", ((1, 16), (17, 19)), _EVEN_FIRST_ODD_LAST[37]),
    "H10302": WiegandFormat("H10302", 37, "W37", ((1, 35),), _EVEN_FIRST_ODD_LAST[37]),
})
#: the standard lengths a config may give instead of a name
_BY_LENGTH = {26: "H10301", 34: "H10306", 35: "C1000-35", 37: "H10304"}
DEFAULT_FORMATS = ("H10301", "H10306", "C1000-35", "H10304")


def card_text(format_name: str, *values: int) -> str:
    """The canonical text of a card from its printed facility code and card number (or the
    card number alone for H10302): what enrolment hashes into the legacy card list."""
    fmt = FORMATS[format_name]
    fmt.encode(values)  # range check
    return fmt.text(values)


def raw_text(bits: Sequence[int]) -> str:
    return f"WRAW{len(bits)}:{_number(bits):0{(len(bits) + 3) // 4}X}"


#: the reader's own bounds by default (WiegandSource): a longer pulse is noise, a pause this long ends a frame
DEFAULT_MAX_PULSE_S = 1e-3
DEFAULT_FRAME_GAP_S = 0.025


def frame_went_out(pulses: Sequence[Sequence[float]], *, max_pulse_s: float = DEFAULT_MAX_PULSE_S,
                   frame_gap_s: float = DEFAULT_FRAME_GAP_S) -> bool:
    """Whether a frame sent by :func:`pulse_frame`, judged by the (fall, rise) stamps it
    returns, is one the reader accepts: the sender busy-waits beside other threads, and a
    thread switch can stretch a pulse past ``max_pulse_s`` or pause the frame for
    ``frame_gap_s`` and cut it in two; the reader then rightly drops it (noise, length). A
    simulator that sees this sends the frame again, as a person swipes again."""
    stretched = any(rise - fall > max_pulse_s for fall, rise in pulses)
    split = any(b[0] - a[0] >= frame_gap_s for a, b in itertools.pairwise(pulses))
    return bool(pulses) and not stretched and not split


def pulse_frame(d0: Any, d1: Any, bits: Sequence[int], *, pulse_s: float = 50e-6,
                interval_s: float = 2e-3) -> list[tuple[float, float]]:
    """Send a frame on two gpiozero mock pins at Wiegand timing (the simulated reader):
    busy-waits, since sleeping cannot make a 50 us pulse. Each rise is timed from its own
    fall, so a thread switch can stretch a pulse but never shorten it to a spike. Returns
    each pulse's (fall, rise) as the pins stamped them: on a busy machine the process can be
    descheduled mid-frame, and the stamps tell whether the frame went out as meant."""
    def until(t: float) -> None:
        while time.perf_counter() < t:
            pass

    pulses = []
    start = time.perf_counter()
    for i, bit in enumerate(bits):
        pin = d1 if bit else d0
        until(start + i * interval_s)
        pin.drive_low()
        fell = pin._last_change
        until(time.perf_counter() + pulse_s)
        pin.drive_high()
        pulses.append((fell, pin._last_change))
    return pulses


class WiegandSource(SourceBase):
    """Frames from a Wiegand reader on two GPIO inputs, as ``legacy`` presentations.

    ``formats`` are names from ``FORMATS`` (or 26, 34, 35, 37 for the standard one of that
    length), at most one per length; ``raw_lengths`` are other lengths taken as raw frames.
    ``swap`` exchanges D0 and D1 (a reader wired the other way round). ``pull_up`` turns on
    the Pi's internal pull-ups; an input board with its own pull-ups wants it off.
    """

    def __init__(self, name: str, sink: Sink, *, pin_factory: Any,
                 d0: int = DEFAULT_PINS["wiegand_d0"].bcm, d1: int = DEFAULT_PINS["wiegand_d1"].bcm,
                 swap: bool = False, formats: Sequence[str | int] = DEFAULT_FORMATS,
                 raw_lengths: Sequence[int] = (), frame_gap_s: float = DEFAULT_FRAME_GAP_S,
                 min_pulse_s: float = 10e-6, max_pulse_s: float = DEFAULT_MAX_PULSE_S, pull_up: bool = True) -> None:
        super().__init__(name, sink)
        if pin_factory is None:
            raise DriverConfigError("pin_factory: no pin factory given (never a gpiozero default)")
        for key, pin in (("d0", d0), ("d1", d1)):
            if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= 27:
                raise DriverConfigError(f"{key}: {pin!r} is not a GPIO number 0-27")
        if d0 == d1:
            raise DriverConfigError(f"d1: GPIO {d1} is already d0")
        if not isinstance(swap, bool):
            raise DriverConfigError(f"swap: {swap!r} is not true or false")
        self._formats: dict[int, WiegandFormat] = {}
        for item in formats:
            fmt = FORMATS.get(_BY_LENGTH.get(item, "") if isinstance(item, int) else item)
            if fmt is None:
                raise DriverConfigError(f"formats: unknown format {item!r} (known: {', '.join(FORMATS)}, "
                                        f"or one of {sorted(_BY_LENGTH)})")
            if fmt.length in self._formats:
                raise DriverConfigError(f"formats: {fmt.name} and {self._formats[fmt.length].name} "
                                        f"are both {fmt.length} bits")
            self._formats[fmt.length] = fmt
        self._raw_lengths = set()
        for n in raw_lengths:
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_BITS:
                raise DriverConfigError(f"raw_lengths: {n!r} is not a length from 1 to {_MAX_BITS}")
            if n in self._formats:
                raise DriverConfigError(f"raw_lengths: {n} is already the {self._formats[n].name} format")
            self._raw_lengths.add(n)
        for key, value, low, high in (("frame_gap_s", frame_gap_s, 0.005, 1.0),
                                      ("min_pulse_s", min_pulse_s, 0.0, 1e-3),
                                      ("max_pulse_s", max_pulse_s, 20e-6, 0.1)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
                raise DriverConfigError(f"{key}: {value!r} is not from {low} to {high} seconds")
        if max_pulse_s <= min_pulse_s:
            raise DriverConfigError(f"max_pulse_s: {max_pulse_s} is not above min_pulse_s {min_pulse_s}")
        self._factory = pin_factory
        self.pins = (d0, d1)
        self.swap = swap
        self.frame_gap_s, self.min_pulse_s, self.max_pulse_s = float(frame_gap_s), min_pulse_s, max_pulse_s
        self._pull_up = pull_up
        self._devices: list[Any] = []
        self._wake = threading.Condition(threading.Lock())
        self._edges: list[tuple[Any, int, bool]] = []  # (ticks, physical line, low), as they arrived
        self._edges_overflow = False
        self._batch_started = self._last_arrival = 0.0
        self._low = [False, False]  # each physical line's level at the end of the last batch
        self._dropped = {"noise": 0, "length": 0, "parity": 0}
        self._latency_ms = {"last": 0.0, "max": 0.0}
        self._open_inputs()  # a wrong or taken pin is a config error now, not a reconnect loop
        self._close_inputs()
        self._publish()

    # -- the pins ----------------------------------------------------------------------------

    def _open_inputs(self) -> None:
        from gpiozero import InputDevice
        from gpiozero.exc import GPIOZeroError

        for key, pin, callback in (("d0", self.pins[0], self._on_d0), ("d1", self.pins[1], self._on_d1)):
            try:
                device = InputDevice(pin, pull_up=self._pull_up if self._pull_up else None,
                                     active_state=None if self._pull_up else False, pin_factory=self._factory)
            except GPIOZeroError as exc:
                self._close_inputs()
                raise wrap_gpio_error(exc, key) from exc
            self._devices.append(device)
            device.pin.when_changed = callback

    def _close_inputs(self) -> None:
        for device in self._devices:
            try:
                device.pin.when_changed = None
                device.close()
            except Exception:
                log.exception("wiegand %s: cannot release %s", self.name, device)
        self._devices.clear()

    def _on_d0(self, ticks: Any, state: Any) -> None:
        self._edge(0, ticks, state)

    def _on_d1(self, ticks: Any, state: Any) -> None:
        self._edge(1, ticks, state)

    def _edge(self, line: int, ticks: Any, state: Any) -> None:
        """In the pin factory's callback thread: store the edge and return."""
        if state not in (0, 1):  # lgpio reports a watchdog timeout as level 2
            return
        arrival = time.monotonic()
        with self._wake:
            if not self._edges and not self._edges_overflow:
                self._batch_started = arrival
                self._wake.notify()
            if len(self._edges) < _MAX_EDGES:
                self._edges.append((ticks, line, not state))
            else:
                self._edges_overflow = True
            self._last_arrival = arrival

    # -- SourceBase ------------------------------------------------------------------------------

    def _open_device(self) -> None:
        with self._wake:
            self._edges.clear()
            self._edges_overflow = False
        try:
            self._open_inputs()
        except DriverConfigError as exc:
            raise DeviceUnavailable(str(exc)) from exc
        self._low = [not device.pin.state for device in self._devices]

    def _close_device(self) -> None:
        self._close_inputs()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        super().stop(timeout)

    def _read_once(self) -> None:
        with self._wake:
            if not self._edges and not self._edges_overflow:
                self._wake.wait(0.25)
                return
            now = time.monotonic()
            quiet_at = self._last_arrival + self.frame_gap_s
            if now < quiet_at and now - self._batch_started < _MAX_BATCH_S:
                self._wake.wait(quiet_at - now)
                return
            batch, overflow, last_arrival = self._edges, self._edges_overflow, self._last_arrival
            self._edges, self._edges_overflow = [], False
        if overflow:
            self._low = [not device.pin.state for device in self._devices]
            self._drop("noise", f"over {_MAX_EDGES} edges without a {self.frame_gap_s * 1000:.0f} ms gap")
            return
        for frame in self._frames(batch):
            self._take(frame, last_arrival)

    # -- framing -------------------------------------------------------------------------------

    def _frames(self, batch: list[tuple[Any, int, bool]]) -> list[list[tuple[float, int, bool]]]:
        """The batch in tick order, as seconds from its first edge, cut at each gap."""
        t0 = batch[0][0]
        timed = sorted(((float(self._factory.ticks_diff(ticks, t0)), line, low) for ticks, line, low in batch),
                       key=lambda edge: edge[0])
        frames: list[list[tuple[float, int, bool]]] = [[]]
        for edge in timed:
            if frames[-1] and edge[0] - frames[-1][-1][0] >= self.frame_gap_s:
                frames.append([])
            frames[-1].append(edge)
        return frames

    def _take(self, frame: list[tuple[float, int, bool]], last_arrival: float) -> None:
        bits: list[int] = []
        noise: str | None = None
        fell_at: list[float | None] = [None, None]
        for t, line, low in frame:
            if low:
                if self._low[line] or self._low[1 - line]:
                    noise = noise or "overlapping pulses (both lines low, or a rise lost)"
                self._low[line], fell_at[line] = True, t
                if len(bits) <= _MAX_BITS:
                    bits.append(line ^ self.swap)
            else:
                start = fell_at[line]
                if not self._low[line] or start is None:
                    noise = noise or "a rise without its fall"
                elif not self.min_pulse_s <= t - start <= self.max_pulse_s:
                    noise = noise or f"a {(t - start) * 1e6:.0f} us pulse"
                self._low[line], fell_at[line] = False, None
        if any(self._low):
            noise = noise or "a line still low at the end of the frame"
        if noise:
            self._drop("noise", noise)
            return
        fmt = self._formats.get(len(bits))
        if fmt is None and len(bits) not in self._raw_lengths:
            self._drop("length", f"{len(bits)} bits" if len(bits) <= _MAX_BITS else f"over {_MAX_BITS} bits")
            return
        if fmt is not None and not fmt.parity_ok(bits):
            self._drop("parity", f"{fmt.name} parity")
            return
        text = fmt.text(fmt.values(bits)) if fmt is not None else raw_text(bits)
        self._emit("legacy", text)
        latency_ms = (time.monotonic() - last_arrival) * 1000
        self._latency_ms = {"last": round(latency_ms, 3), "max": round(max(self._latency_ms["max"], latency_ms), 3)}
        self._publish()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("wiegand %s: %d-bit frame, card %s", self.name, len(bits), short_hash(text))

    def _drop(self, cause: str, detail: str) -> None:
        self._dropped[cause] += 1
        self._publish()
        # A noisy line can drop dozens of frames a second: the first of each cause and every
        # hundredth are worth a line in the journal, the counters hold the rest.
        level = logging.INFO if self._dropped[cause] % 100 == 1 else logging.DEBUG
        log.log(level, "wiegand %s: frame dropped (%s: %s; %d so far)", self.name, cause, detail,
                self._dropped[cause])

    def _publish(self) -> None:
        # A new dict each time: health() hands out the dict it holds.
        extra = {"d0": self.pins[0], "d1": self.pins[1], "swap": self.swap,
                 "dropped": dict(self._dropped), "latency_ms": dict(self._latency_ms)}
        with self._lock:
            self._health.extra = extra
