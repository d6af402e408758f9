"""``gate-reader diag scanner``: the raw lines a serial scanner sends, with their timing, and
a wrong baud rate told apart from a quiet scanner.

A scanner at another baud rate than the port's still sends bytes, but the UART frames them
wrongly: what arrives is mostly not text (bytes above 0x7E, control characters) and seldom a
line end. So the bytes are counted: printable ASCII, CR, LF and TAB against the rest. Lines
are shown by length, timing and a short hash (a scanned GatePass code is a credential),
and its first characters (``GP1:`` lines their prefix only).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline_cache.loghash import short_hash
from reader.gate.diagnostics.result import CheckResult, Report, failed, passed

_TEXT = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
GARBAGE_SHARE = 0.2  # over this share of bytes that are not text: a wrong baud rate (or parity)


def _shown(line: bytes) -> str:
    text = line.decode("ascii", "replace")
    head = text[:4] if text.startswith("GP1:") else text[:3]
    return f"{len(line)} bytes, starts {head!r}..., {short_hash(line)}"


def open_port(port: str, settings: dict[str, Any]) -> Any:
    import serial

    return serial.serial_for_url(port, timeout=0.05, **settings)


def check_scanner(port: str, settings: dict[str, Any], *, seconds: float, need_line: bool,
                  report: Report, on_ready: Callable[[], None] | None = None) -> CheckResult:
    """Read the port for ``seconds`` (with ``need_line``, until the first line, and FAIL
    without one). ``settings``: baudrate, bytesize, parity, stopbits as pyserial takes them."""
    import serial

    baud = settings.get("baudrate", 9600)
    shape = f"{baud} {settings.get('bytesize', 8)}{settings.get('parity', 'N')}{settings.get('stopbits', 1):g}"
    if "://" not in port and not Path(port).exists():
        return failed("scanner", f"{port} does not exist", "the scanner is not plugged in, is still in keyboard "
                      "(HID) mode, or its device name is wrong", "scan its \"USB COM port\" programming code; "
                      "`ls /dev/gate/ /dev/serial/by-id/` lists the serial devices", port=port)
    if "://" not in port and not os.access(port, os.R_OK | os.W_OK):
        return failed("scanner", f"{port}: permission denied", "this user is not in the group dialout",
                      "run it as root (sudo) or as the gate-reader user", port=port)
    try:
        handle = open_port(port, settings)
    except (serial.SerialException, OSError, ValueError) as exc:
        busy = "busy" in str(exc).lower() or "lock" in str(exc).lower()
        return failed("scanner", f"{port} does not open ({exc})",
                      "the running daemon (or another program) has it" if busy else "the port cannot be opened",
                      "sudo systemctl stop gate-reader, run this again, then sudo systemctl start gate-reader"
                      if busy else "check the device name and the cable", port=port)
    if need_line:
        report(f"{port} open at {shape}: scan a test code within {seconds:g} s")
    if on_ready is not None:
        on_ready()
    lines: list[dict[str, Any]] = []
    received = text_bytes = 0
    partial = bytearray()
    first_byte_at: float | None = None
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds and not (need_line and lines):
            data = handle.read(4096)
            now = time.monotonic()
            if not data:
                continue
            received += len(data)
            text_bytes += sum(1 for b in data if b in _TEXT)
            for byte in data:
                if byte in (0x0A, 0x0D):
                    if partial:
                        line = {"at_s": round((first_byte_at or now) - started, 3), "bytes": len(partial),
                                "took_ms": round((now - (first_byte_at or now)) * 1000, 1)}
                        lines.append(line)
                        report(f"+{line['at_s']:6.2f} s  line of {_shown(bytes(partial))} in {line['took_ms']} ms")
                        partial.clear()
                        first_byte_at = None
                    continue
                if first_byte_at is None:
                    first_byte_at = now
                if len(partial) < 8192:
                    partial.append(byte)
    finally:
        handle.close()
    values: dict[str, Any] = {"port": port, "settings": shape, "bytes": received, "lines": len(lines)}
    if received:
        values["not_text_share"] = round(1 - text_bytes / received, 3)
    if received and (received - text_bytes) / received > GARBAGE_SHARE:
        return failed("scanner", f"{received} bytes arrived, {values['not_text_share']:.0%} of them not text: "
                      f"the scanner does not send at {shape}",
                      f"a wrong baud rate (or parity): the port is at {shape}, the scanner at something else",
                      "set the reader's baudrate (and bytesize, parity, stopbits) to the scanner's, commonly 9600 "
                      "or 115200 8N1, or program the scanner to the config's", **values)
    if need_line and not lines:
        cause = ("bytes came but no line end: the scanner does not end codes with CR or LF" if received
                 else "nothing was scanned, or the scanner is in keyboard (HID) mode and types into the console")
        return failed("scanner", f"no line in {seconds:g} s", cause, "scan a test code; program the scanner to "
                      "\"USB COM port\" mode with CR or LF after each code", **values)
    if lines:
        return passed("scanner", f"{len(lines)} line(s) read at {shape}", **values)
    return passed("scanner", f"{port} opens at {shape}", **values)
