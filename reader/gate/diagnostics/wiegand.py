"""``gate-reader diag wiegand``: every frame a Wiegand reader sends, with its bit count and
parity, also the frames the gate would drop (a length it does not take, a bad parity), and
the idle levels of D0 and D1 (both high when the reader and the level shifter are right).

Frames are cut and timed by the gate's own Wiegand source (``drivers.wiegand``): this module
only looks at each frame before the source decides on it. A card's number is never shown
(it is the credential): its format, facility code and a short hash are.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from drivers.wiegand import FORMATS, WiegandSource
from offline_cache.loghash import short_hash
from reader.gate.diagnostics.result import CheckResult, Report, failed, passed


class _Watched(WiegandSource):
    """The Wiegand source, keeping each frame's bits and what it made of them (the card's
    text, or None: dropped) in ``frames``, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[tuple[float, list[int], str | None]] = []
        self._text: str | None = None

    def _emit(self, kind: Any, payload: str | bytes, challenge: bytes | None = None) -> None:
        self._text = str(payload)
        super()._emit(kind, payload, challenge)

    def _take(self, frame: list[tuple[float, int, bool]], last_arrival: float) -> None:
        self._text = None
        super()._take(frame, last_arrival)
        self.frames.append((time.monotonic(), [line ^ self.swap for _t, line, low in frame if low], self._text))


def describe_frame(bits: list[int]) -> dict[str, Any]:
    """Bit count, and for each standard format of that length whether its parity holds."""
    formats = {fmt.name: fmt.parity_ok(bits) for fmt in FORMATS.values() if fmt.length == len(bits)}
    return {"bits": len(bits), "formats": formats}


def _line(index: int, at: float, bits: list[int], text: str | None) -> str:
    info = describe_frame(bits)
    parity = ", ".join(f"{name} parity {'ok' if ok else 'BAD'}" for name, ok in info["formats"].items())
    kept = f"read as {text.split(':')[0]} card {short_hash(text)}" if text else "dropped by the gate"
    return f"+{at:6.2f} s  frame {index}: {len(bits)} bits, {parity or 'no standard format of that length'}; {kept}"


def check_idle(pin_factory: Any, d0: int, d1: int, pull_up: bool = True) -> CheckResult:
    """Both lines at their idle (high) level: a line held low is a wiring fault."""
    from gpiozero import InputDevice

    levels = {}
    devices = []
    try:
        for name, pin in (("D0", d0), ("D1", d1)):
            devices.append(InputDevice(pin, pull_up=pull_up if pull_up else None,
                                       active_state=None if pull_up else False, pin_factory=pin_factory))
            levels[name] = "high" if devices[-1].pin.state else "LOW"
    finally:
        for device in devices:
            device.close()
    values = {"d0": f"GPIO {d0} {levels['D0']}", "d1": f"GPIO {d1} {levels['D1']}"}
    low = [name for name, level in levels.items() if level == "LOW"]
    if low:
        return failed("wiegand", f"{' and '.join(low)} held low while idle",
                      "a short to GND, the level shifter's 3.3 V side unpowered, or the reader not powered",
                      "check the level shifter's two supplies and the common GND (install guide, section 2)", **values)
    return passed("wiegand", f"D0 and D1 idle high (GPIO {d0}, {d1})", **values)


def check_frames(pin_factory: Any, d0: int, d1: int, *, seconds: float, need_frame: bool, report: Report,
                 options: dict[str, Any] | None = None, on_ready: Callable[[], None] | None = None) -> CheckResult:
    """Show every frame for ``seconds`` (with ``need_frame``: until the first card read, and
    FAIL without one). ``options``: the reader's own keys (formats, swap, raw_lengths...)."""
    source = _Watched("diag-wiegand", queue.Queue(), pin_factory=pin_factory, d0=d0, d1=d1, **(options or {}))
    started = time.monotonic()
    shown = 0
    source.start()
    try:
        if on_ready is not None:
            on_ready()
        deadline = started + seconds
        while time.monotonic() < deadline and not (need_frame and any(text for _t, _b, text in source.frames)):
            time.sleep(0.05)
            for at, bits, text in source.frames[shown:]:
                shown += 1
                report(_line(shown, at - started, bits, text))
        time.sleep(source.frame_gap_s * 2)  # a frame still being cut
        for at, bits, text in source.frames[shown:]:
            shown += 1
            report(_line(shown, at - started, bits, text))
        dropped = source.health().extra.get("dropped", {})
    finally:
        source.close()
    frames = [bits for _t, bits, _text in source.frames]
    read = sum(1 for _t, _b, text in source.frames if text)
    values = {"d0": d0, "d1": d1, "frames": len(frames), "cards": read, "dropped": dropped}
    if need_frame and not frames:
        return failed("wiegand", f"no frame in {seconds:g} s", "no card shown, D0/D1 not reaching the Pi (the level "
                      "shifter, the common GND), or the reader not powered", "show a card; check the wiring "
                      "(install guide, section 2)", **values)
    if need_frame and not read:
        info = describe_frame(frames[-1])
        cause = (f"{info['bits']}-bit frames with a bad parity: D0 and D1 swapped, or noise on the lines"
                 if info["formats"] else f"{info['bits']}-bit frames: a format the config does not list")
        return failed("wiegand", f"{len(frames)} frame(s), none read as a card", cause,
                      "set swap = true, or add the format (or raw_lengths) to the reader in the config", **values)
    return passed("wiegand", f"{len(frames)} frame(s), {read} read as cards" if frames else "no frame", **values)
