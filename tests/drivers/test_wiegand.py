"""The Wiegand source on gpiozero mock pins.

Two ways of driving the pins: ``VirtualFactory`` stamps each edge with a tick the test
chooses (so frames at exact Wiegand timing, late callbacks and out-of-order lines are
deterministic), and plain ``MockFactory`` pins driven by a busy-waiting thread at real
timing, with jitter and a CPU-load thread, where what is expected is worked out from the
stamps the pins really recorded.
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin, PinState
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import Presentation
from drivers.door import DoorIO, DoorSettings
from drivers.errors import DriverConfigError
from drivers.registry import source_class
from drivers.wiegand import FORMATS, WiegandSource, card_text, pulse_frame, raw_text
from tests.support.waiting import wait_until

D0, D1 = 20, 21
GAP = 0.025


class VirtualPin(MockPin):
    """A mock pin whose edges carry the factory's virtual clock as their ticks."""

    def _change_state(self, value: Any) -> bool:
        if self._state != value:
            t = self.factory.ticks()
            self._state = value
            self.states.append(PinState(t - self._last_change, value))
            self._last_change = t
            return True
        return False

    def clear_states(self) -> None:
        self._last_change = self.factory.ticks()
        self.states = [PinState(0.0, self._state)]


class VirtualFactory(MockFactory):
    def __init__(self) -> None:
        self.clock = 1000.0
        super().__init__(pin_class=VirtualPin)

    def ticks(self) -> float:  # type: ignore[override]
        return self.clock


Edge = tuple[float, int, bool]  # (virtual time, pin, level)


def frame_edges(bits: Sequence[int], start: float, *, pulse: float = 50e-6, interval: float = 2e-3,
                lines: tuple[int, int] = (D0, D1)) -> list[Edge]:
    edges: list[Edge] = []
    for i, bit in enumerate(bits):
        pin = lines[1] if bit else lines[0]
        edges += [(start + i * interval, pin, False), (start + i * interval + pulse, pin, True)]
    return edges


def deliver(factory: VirtualFactory, edges: Sequence[Edge], lag: float = 0.0) -> None:
    """Drive the edges in the order given, each stamped with its own virtual time; ``lag``
    is real time slept between callbacks (a callback thread running late)."""
    for t, pin, level in edges:
        factory.clock = t
        mock = factory.pin(pin)
        mock.drive_high() if level else mock.drive_low()
        if lag:
            time.sleep(lag)


@pytest.fixture
def sources() -> Iterator[Callable[..., tuple[WiegandSource, queue.Queue]]]:
    made: list[WiegandSource] = []

    def make(factory: Any, **options: Any) -> tuple[WiegandSource, queue.Queue]:
        sink: queue.Queue = queue.Queue()
        source = WiegandSource("wiegand-1", sink, pin_factory=factory, **options)
        made.append(source)
        source.start()
        wait_until(lambda: source.health().up, 3.0)
        return source, sink

    yield make
    for source in made:
        source.close()


def drain(sink: queue.Queue, settle: float = 0.15) -> list[Presentation]:
    time.sleep(settle)
    out = []
    while not sink.empty():
        out.append(sink.get_nowait())
    return out


def dropped(source: WiegandSource) -> dict[str, int]:
    return source.health().extra["dropped"]  # type: ignore[return-value]


# -- independent packings, written from the published layouts, to check ours against ----------


def _bits(value: int, length: int) -> tuple[int, ...]:
    return tuple((value >> (length - 1 - i)) & 1 for i in range(length))


def _parity(value: int) -> int:
    return bin(value).count("1") & 1


def pack_h10301(fc: int, cn: int) -> tuple[int, ...]:
    word = (fc << 17) | (cn << 1)
    word |= (1 - _parity((word >> 1) & 0xFFF))  # odd over the last 12 data bits
    word |= _parity((word >> 13) & 0xFFF) << 25  # even over the first 12
    return _bits(word, 26)


def pack_h10306(fc: int, cn: int) -> tuple[int, ...]:
    word = (fc << 17) | (cn << 1)
    word |= (1 - _parity((word >> 1) & 0xFFFF))
    word |= _parity((word >> 17) & 0xFFFF) << 33
    return _bits(word, 34)


def pack_c1000(fc: int, cn: int) -> tuple[int, ...]:
    # The HID Corporate 1000 packing as two words: ``mid`` holds the first three bits sent.
    bot = ((cn & 0xFFFFF) << 1) | ((fc & 0x7FF) << 21)
    mid = (fc & 0x800) >> 11
    mid |= _parity((mid & 1) | ((bot & 0xB6DB6DB6) << 1)) << 1
    bot |= 1 - _parity((mid & 3) | ((bot & 0x6DB6DB6C) << 2))
    mid |= (1 - _parity((mid & 3) | (bot << 2))) << 2
    return _bits((mid << 32) | bot, 35)


def pack_37(data35: int) -> tuple[int, ...]:
    word = data35 << 1
    word |= 1 - _parity((word >> 1) & 0x3FFFF)  # odd over the last 18 data bits
    word |= _parity((word >> 18) & 0x3FFFF) << 36  # even over the first 18
    return _bits(word, 37)


PACKERS: dict[str, tuple[Callable[..., tuple[int, ...]], tuple[int, ...]]] = {
    "H10301": (pack_h10301, (8, 16)),
    "H10306": (pack_h10306, (16, 16)),
    "C1000-35": (pack_c1000, (12, 20)),
    "H10304": (lambda fc, cn: pack_37((fc << 19) | cn), (16, 19)),
    "H10302": (pack_37, (35,)),
}


def test_h10301_matches_a_published_frame():
    # Facility 90, card 324, as published with the wiegand-encoder package's README.
    assert "".join(map(str, pack_h10301(90, 324))) == "00101101000000001010001000"
    assert FORMATS["H10301"].encode((90, 324)) == pack_h10301(90, 324)


@given(st.sampled_from(sorted(PACKERS)), st.data())
def test_encoders_match_an_independent_packing_and_catch_every_single_bit_error(name, data):
    packer, widths = PACKERS[name]
    values = tuple(data.draw(st.integers(0, 2 ** w - 1)) for w in widths)
    frame = FORMATS[name].encode(values)
    assert frame == packer(*values)
    assert FORMATS[name].parity_ok(frame)
    assert FORMATS[name].values(frame) == values
    flip = data.draw(st.integers(0, len(frame) - 1))
    broken = list(frame)
    broken[flip] ^= 1
    assert not FORMATS[name].parity_ok(broken)


def test_card_text_is_zero_padded_and_unambiguous():
    assert card_text("H10301", 90, 324) == "W26:090:00324"
    assert card_text("H10306", 1, 65535) == "W34:00001:65535"
    assert card_text("C1000-35", 4095, 1) == "W35:4095:0000001"
    assert card_text("H10304", 65535, 524287) == "W37:65535:524287"
    assert card_text("H10302", 2 ** 35 - 1) == "W37:34359738367"  # over 32 bits, exact
    assert raw_text((1, 0, 1, 1, 1)) == "WRAW5:17"
    with pytest.raises(ValueError, match="does not fit"):
        card_text("H10301", 256, 1)


# -- reading frames --------------------------------------------------------------------------


@pytest.mark.parametrize(("formats", "name", "values", "text"), [
    (None, "H10301", (90, 324), "W26:090:00324"),
    (None, "H10306", (40000, 12), "W34:40000:00012"),
    (None, "C1000-35", (2048, 1000001), "W35:2048:1000001"),
    (None, "H10304", (7, 500000), "W37:00007:500000"),
    ([26, "H10302"], "H10302", (2 ** 34 + 5,), "W37:17179869189"),
])
def test_standard_frames_read_as_their_canonical_text(sources, formats, name, values, text):
    factory = VirtualFactory()
    source, sink = sources(factory, **({"formats": formats} if formats else {}))
    deliver(factory, frame_edges(FORMATS[name].encode(values), 1000.0))
    presentation = sink.get(timeout=2)
    assert (presentation.kind, presentation.payload, presentation.source) == ("legacy", text, "wiegand-1")
    assert presentation.payload == card_text(name, *values)
    assert drain(sink) == []
    assert dropped(source) == {"noise": 0, "length": 0, "parity": 0}


def test_frames_are_cut_by_edge_ticks_not_by_callback_time(sources):
    factory = VirtualFactory()
    source, sink = sources(factory)
    frames = [FORMATS["H10301"].encode((1, n)) for n in (11, 22, 33)]
    # Three 50 ms frames with 30 ms of silence between them on the ticks, delivered back to
    # back in real time (one late callback thread catching up): cut by their ticks.
    burst = [edge for i, bits in enumerate(frames) for edge in frame_edges(bits, 1000.0 + i * 0.080)]
    # Within each frame, all of D1's edges before D0's, as a reader of one line at a time
    # would hand them over: put back in order by their ticks.
    burst.sort(key=lambda edge: (int((edge[0] - 1000.0) / 0.080), edge[1]))
    deliver(factory, burst)
    # A frame whose callbacks run 15 ms apart in real time though its bits are 2 ms apart.
    deliver(factory, frame_edges(FORMATS["H10301"].encode((1, 44)), 2000.0), lag=0.0075)
    got = [p.payload for p in drain(sink, settle=0.3)]
    assert got == ["W26:001:00011", "W26:001:00022", "W26:001:00033", "W26:001:00044"]
    assert dropped(source) == {"noise": 0, "length": 0, "parity": 0}


def test_swapped_wires_read_with_swap_and_fail_parity_without(sources):
    bits = FORMATS["H10301"].encode((200, 4242))
    factory = VirtualFactory()
    _, sink = sources(factory, swap=True)
    deliver(factory, frame_edges(bits, 1000.0, lines=(D1, D0)))  # D0 and D1 wired the other way round
    assert sink.get(timeout=2).payload == "W26:200:04242"
    other = VirtualFactory()
    unswapped, unswapped_sink = sources(other)
    deliver(other, frame_edges(bits, 1000.0, lines=(D1, D0)))
    wait_until(lambda: dropped(unswapped)["parity"] == 1, 3.0)
    assert drain(unswapped_sink) == []


def test_raw_lengths_give_the_frame_as_hex(sources):
    factory = VirtualFactory()
    _, sink = sources(factory, raw_lengths=(40, 64))
    value = 0xDEADBEEF01
    deliver(factory, frame_edges([(value >> (39 - i)) & 1 for i in range(40)], 1000.0))
    deliver(factory, frame_edges([1] + [0] * 63, 1001.0))
    assert [p.payload for p in drain(sink, 0.3)] == ["WRAW40:DEADBEEF01", "WRAW64:8000000000000000"]


def test_bad_frames_are_counted_by_cause_and_never_presented(sources):
    factory = VirtualFactory()
    source, sink = sources(factory)
    good = FORMATS["H10301"].encode((5, 555))
    bad_parity = list(good)
    bad_parity[10] ^= 1
    cases: list[tuple[str, list[Edge]]] = [
        ("parity", frame_edges(bad_parity, 0)),
        ("length", frame_edges(good[:20], 0)),  # truncated
        ("length", frame_edges([*good, 0], 0)),  # 27 bits: not configured
        ("length", frame_edges([1, 0] * 100, 0)),  # 200 bits: over the bound
        ("noise", frame_edges(good, 0, pulse=2e-6)),  # spikes, not pulses
        ("noise", frame_edges(good, 0, pulse=5e-3, interval=8e-3)),  # a line held low for 5 ms
        ("noise", [*frame_edges(good[:5], 0), (0.0101, D0, False), (0.0102, D1, False),
                   (0.0103, D0, True), (0.0104, D1, True)]),  # both lines low at once
    ]
    expected = {"noise": 0, "length": 0, "parity": 0}
    for i, (cause, edges) in enumerate(cases):
        deliver(factory, [(1000.0 + i + t, pin, level) for t, pin, level in edges])
        expected[cause] += 1
        wait_until(lambda: dropped(source) == expected, 3.0)
    d1 = factory.pin(D1)  # a rise whose fall never reached the source
    callback, d1.when_changed = d1.when_changed, None
    deliver(factory, [(1100.0, D1, False)])
    d1.when_changed = callback
    deliver(factory, [(1100.00005, D1, True)])
    expected["noise"] += 1
    wait_until(lambda: dropped(source) == expected, 3.0)
    deliver(factory, frame_edges(good, 2000.0))  # and the reader still reads
    assert [p.payload for p in drain(sink, 0.3)] == ["W26:005:00555"]
    assert dropped(source) == expected


def test_a_stuck_line_is_noise_until_it_recovers(sources):
    factory = VirtualFactory()
    source, sink = sources(factory)
    deliver(factory, [(1000.0, D0, False)])  # DATA0 shorted to ground
    wait_until(lambda: dropped(source)["noise"] == 1, 3.0)
    deliver(factory, frame_edges(FORMATS["H10301"].encode((1, 1)), 1001.0, lines=(D1, D1)))
    wait_until(lambda: dropped(source)["noise"] == 2, 3.0)  # every frame meanwhile is noise
    deliver(factory, [(1002.0, D0, True)])  # the short is fixed: its rise is one more
    wait_until(lambda: dropped(source)["noise"] == 3, 3.0)
    deliver(factory, frame_edges(FORMATS["H10301"].encode((1, 2)), 1003.0))
    assert [p.payload for p in drain(sink, 0.3)] == ["W26:001:00002"]


def test_an_endless_frame_is_bounded_and_counted(sources):
    factory = VirtualFactory()
    source, sink = sources(factory)
    deliver(factory, frame_edges([0, 1] * 700, 1000.0, interval=1e-3))  # 2800 edges, no gap
    wait_until(lambda: dropped(source)["noise"] == 1, 3.0)
    assert len(source._edges) == 0
    deliver(factory, frame_edges(FORMATS["H10301"].encode((9, 9)), 1010.0))
    assert [p.payload for p in drain(sink, 0.3)] == ["W26:009:00009"]


def test_random_noise_bursts_are_counted_drops_never_a_crash(sources):
    factory = VirtualFactory()
    source, sink = sources(factory)
    rng = random.Random(20261130)
    for i in range(25):
        t, edges, low = 1000.0 + i, [], {D0: False, D1: False}
        for _ in range(rng.randint(1, 20)):
            t += rng.choice([1e-6, 5e-6, 30e-6, 400e-6, 2e-3, 8e-3])
            pin = rng.choice([D0, D1])
            low[pin] = not low[pin]
            edges.append((t, pin, not low[pin]))
        edges += [(t + 1e-3 * (k + 1), pin, True) for k, pin in enumerate(p for p in (D0, D1) if low[p])]
        deliver(factory, edges)
        wait_until(lambda n=i + 1: sum(dropped(source).values()) == n, 3.0)
        good = FORMATS["H10301"].encode((i, 1000 + i))
        deliver(factory, frame_edges(good, 1000.5 + i))
        assert sink.get(timeout=2).payload == card_text("H10301", i, 1000 + i)
    assert source.health().up and source.running


# -- real timing -------------------------------------------------------------------------------


def clean(pulses: list[tuple[float, float]]) -> bool:
    """Whether a frame went out as meant, by its pins' own stamps: every pulse within the
    source's width bounds and no silence inside it as long as the frame gap."""
    widths_ok = all(10e-6 <= rise - fell <= 1e-3 for fell, rise in pulses)
    gaps_ok = all(b[0] - a[1] < GAP for a, b in itertools.pairwise(pulses))
    return widths_ok and gaps_ok


def test_real_timing_with_jitter_truncation_and_cpu_load(sources):
    """Frames at real Wiegand timing from a busy-waiting thread while another thread loads
    the CPU. The pins' own stamps say which frames came out clean; every clean good frame is
    read, nothing else is, and every other frame is a counted drop."""
    factory = MockFactory()
    source, sink = sources(factory)
    d0, d1 = factory.pin(D0), factory.pin(D1)
    rng = random.Random(7)
    plans: list[tuple[str, list[int]]] = []
    for n in range(24):
        bits = list(FORMATS["H10301"].encode((n, 31000 + n)))
        kind = ("good", "good", "parity", "truncated")[n % 4]
        if kind == "parity":
            bits[rng.randrange(26)] ^= 1
        elif kind == "truncated":
            bits = bits[:rng.randrange(3, 25)]
        plans.append((kind, bits))

    stop = threading.Event()

    def load() -> None:
        blob = bytes(1 << 16)
        while not stop.is_set():
            hashlib.sha256(blob).digest()
            sum(i * i for i in range(2000))

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    stamps: list[list[tuple[float, float]]] = []  # per frame: (fall, rise) stamps of each pulse
    try:
        for _, bits in plans:
            pulses = []
            start = time.perf_counter()
            for i, bit in enumerate(bits):
                pin = d1 if bit else d0
                at = start + i * 2e-3 + rng.uniform(-0.8e-3, 0.8e-3)
                while time.perf_counter() < at:
                    pass
                pin.drive_low()
                fell = pin._last_change
                rise_at = time.perf_counter() + rng.uniform(30e-6, 80e-6)  # from the real fall
                while time.perf_counter() < rise_at:
                    pass
                pin.drive_high()
                pulses.append((fell, pin._last_change))
            stamps.append(pulses)
            time.sleep(0.06)
    finally:
        stop.set()
        loader.join()
    got = [p.payload for p in drain(sink, 0.3)]

    clean_frames = [clean(p) for p in stamps]
    # Unloaded, all 24 come out clean; with the machine's two cores busy elsewhere, ~14.
    assert sum(clean_frames) >= len(plans) // 4, "too few frames came out clean to test anything"
    expected = [card_text("H10301", n, 31000 + n) for n, ((kind, _), ok) in enumerate(zip(plans, clean_frames,
                                                                                           strict=True))
                if kind == "good" and ok]
    good_texts = {card_text("H10301", n, 31000 + n) for n, (kind, _) in enumerate(plans) if kind == "good"}
    assert [text for text in got if text in expected] == expected  # every clean good frame, in order
    assert set(got) <= good_texts  # never anything that was not sent as a good frame
    counts = dropped(source)
    not_read = len(plans) - len(got)
    assert sum(counts.values()) >= not_read
    assert counts["parity"] >= sum(1 for (k, _), ok in zip(plans, clean_frames, strict=True) if k == "parity" and ok)
    assert counts["length"] >= sum(1 for (k, _), ok in zip(plans, clean_frames, strict=True)
                                   if k == "truncated" and ok)


def test_pulse_frame_drives_a_readable_frame(sources):
    factory = MockFactory()
    source, sink = sources(factory)
    for attempt in range(5):  # the machine may deschedule the sender mid-frame: then it is a drop
        pulses = pulse_frame(factory.pin(D0), factory.pin(D1), FORMATS["C1000-35"].encode((321, 654321)))
        if clean(pulses):
            break
        wait_until(lambda n=attempt + 1: sum(dropped(source).values()) == n, 3.0)
    presentation = sink.get(timeout=2)
    assert presentation.payload == "W35:0321:0654321"
    assert len(pulses) == 35
    # The presentation follows the frame's last edge after the frame gap.
    assert presentation.read_at - pulses[-1][1] >= GAP
    assert drain(sink) == []


# -- configuration and lifecycle -------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"d0": 28}, "d0: 28 is not a GPIO number"),
    ({"d1": 20}, "d1: GPIO 20 is already d0"),
    ({"swap": "yes"}, "swap: 'yes'"),
    ({"formats": ["H10301", "W99"]}, "formats: unknown format 'W99'"),
    ({"formats": [37, "H10302"]}, "formats: H10302 and H10304 are both 37 bits"),
    ({"raw_lengths": [26]}, "raw_lengths: 26 is already the H10301 format"),
    ({"raw_lengths": [129]}, "raw_lengths: 129"),
    ({"frame_gap_s": 2}, "frame_gap_s: 2"),
    ({"min_pulse_s": 0.0005, "max_pulse_s": 0.0004}, "max_pulse_s: 0.0004 is not above"),
    ({"pin_factory": None}, "pin_factory: no pin factory given"),
])
def test_bad_settings_name_their_key(options, message):
    settings_ = {"pin_factory": MockFactory(), **options}
    with pytest.raises(DriverConfigError, match=message):
        WiegandSource("w", queue.Queue(), **settings_)


def test_a_pin_the_door_holds_is_a_config_error():
    factory = MockFactory()
    with DoorIO(DoorSettings(), factory):
        with pytest.raises(DriverConfigError, match="d0: GPIOPinInUse"):
            WiegandSource("w", queue.Queue(), pin_factory=factory, d0=17)
        # The default pins share the factory with the door.
        WiegandSource("w", queue.Queue(), pin_factory=factory).close()


def test_the_registry_knows_wiegand_and_close_releases_the_pins(sources):
    assert source_class("wiegand") is WiegandSource
    factory = MockFactory()
    source, _ = sources(factory)
    assert factory.pin(D0).when_changed is not None
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.0
    assert factory.pin(D0).when_changed is None and factory.pin(D1).when_changed is None
    assert not source.running and not source.health().up
