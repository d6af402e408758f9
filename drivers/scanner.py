"""A serial barcode scanner (pyserial) as a credential source.

The scanner is a byte stream: it sends each code it reads as one line ended by CR, LF or
CRLF. This module frames those lines and hands each one over untouched except for its
terminator (spec 2.1: "sources strip only their own line terminators"); deciding what the
text means is the verifier's job, not ours.

Decisions worth knowing before changing anything here:

- **Framing.** CR and LF each end a line and empty lines are dropped, so a CRLF is one
  terminator even when its two bytes arrive in different reads (the LF then ends an empty
  line, which is ignored), and a line is emitted the moment its CR arrives without waiting
  to see whether an LF follows.
- **Text decoding.** A line is decoded as strict UTF-8, because spec 2.3 hashes a legacy
  identifier "as UTF-8": a scanner that sends UTF-8 then round-trips exactly, and ASCII (all
  that GatePass texts and 1D symbologies use) is the same in every encoding. A line that
  is not valid UTF-8 is never a legacy barcode: it goes to the verifier as QR text decoded
  with ``errors="replace"``, so the verifier sees U+FFFD (outside base45: ``malformed``)
  and the card list is never consulted. ``replace`` rather than ``surrogateescape`` so that
  no lone surrogate reaches code that encodes the text again (a journal, a hash) and raises.
- **Length.** The bound is counted in bytes as received (``max_line``, the spec's 4096);
  for ASCII texts bytes and characters are the same. A longer line is emitted once, as QR
  text made of its first ``max_line + 1`` bytes decoded one byte per character (latin-1),
  so the verifier sees a text one character over the limit and decides ``too_large`` (or
  ``malformed`` when even the prefix is wrong, as spec 2.1 orders it). The rest of the line
  is discarded as it arrives, up to the next CR or LF, where reading resynchronises. A
  partial line never holds more than ``max_line + 1`` bytes, however long the line is.
- **Device loss.** A read or open that fails (pyserial raises SerialException, an OSError)
  is wrapped in DeviceUnavailable; SourceBase then closes the port and reopens it with
  backoff. A partial line does not survive a reconnect.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import serial

from drivers.base import PresentationKind, Sink, SourceBase
from drivers.errors import DeviceUnavailable, DriverConfigError
from offline_cache.loghash import short_hash

log = logging.getLogger(__name__)

#: the most bytes taken from the port in one read: bounds what a read holds transiently
_CHUNK = 4096
_LINE_END = re.compile(rb"[\r\n]")
_PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD,
             "M": serial.PARITY_MARK, "S": serial.PARITY_SPACE}
_BYTESIZES = (5, 6, 7, 8)
_STOPBITS = (1, 1.5, 2)


def _fingerprint(data: str | bytes) -> str:
    """What logs carry instead of a payload: its length and a short hash."""
    return f"{len(data)} chars, sha256 {short_hash(data)}"


class ScannerSource(SourceBase):
    """Lines from a serial barcode scanner: ``legacy`` when a line fully matches
    ``legacy_pattern`` (a 1D barcode, spec 2.3), ``qr`` otherwise (spec 2.1).

    ``port`` is anything ``serial.serial_for_url`` opens: a device (``/dev/ttyACM0``), a pty
    (``/dev/pts/3``, the simulator), ``loop://`` or ``rfc2217://host:port``. Settings are
    checked here, so a wrong one stops start-up with its name instead of feeding the
    reconnect loop forever.
    """

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        port: str,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        legacy_pattern: str | None = None,
        max_line: int = 4096,
        read_timeout_s: float = 0.1,
    ) -> None:
        super().__init__(name, sink)
        if not isinstance(port, str) or not port:
            raise DriverConfigError("port: empty")
        if not isinstance(baudrate, int) or baudrate <= 0:
            raise DriverConfigError(f"baudrate: {baudrate!r} is not a positive integer")
        if bytesize not in _BYTESIZES:
            raise DriverConfigError(f"bytesize: {bytesize!r} is not one of {_BYTESIZES}")
        if parity not in _PARITIES:
            raise DriverConfigError(f"parity: {parity!r} is not one of {', '.join(_PARITIES)}")
        if stopbits not in _STOPBITS:
            raise DriverConfigError(f"stopbits: {stopbits!r} is not one of {_STOPBITS}")
        if not isinstance(max_line, int) or max_line < 1:
            raise DriverConfigError(f"max_line: {max_line!r} is not a positive integer")
        if not read_timeout_s > 0:
            raise DriverConfigError(f"read_timeout_s: {read_timeout_s!r} is not positive")
        try:
            self._legacy = re.compile(legacy_pattern) if legacy_pattern is not None else None
        except re.error as exc:
            raise DriverConfigError(f"legacy_pattern: {exc}") from None
        self.port = port
        self.max_line = max_line
        self._settings: dict[str, Any] = {
            "baudrate": baudrate, "bytesize": bytesize, "parity": _PARITIES[parity],
            "stopbits": stopbits, "timeout": read_timeout_s, "xonxoff": False, "rtscts": False,
        }
        if "://" not in port:
            # A second process reading the same scanner would steal half of each line.
            self._settings["exclusive"] = True
        try:
            # Builds the port object without opening it: an unknown URL scheme or a value
            # pyserial refuses shows now, as a config error.
            serial.serial_for_url(port, do_not_open=True, **self._settings)
        except ValueError as exc:
            raise DriverConfigError(f"port: {exc}") from None
        except serial.SerialException as exc:
            # hwgrep:// looks for its device already here; an unplugged scanner at boot is
            # not a config error, the reconnect loop waits for it.
            log.debug("scanner %s: %s not there yet (%s)", name, port, exc)
        self._serial: Any = None
        self._line = bytearray()  # the partial line, never longer than max_line + 1
        self._discarding = False  # inside an oversized line, dropping bytes until its end
        self._lines = 0
        self._oversized = 0
        self._max_latency_us = 0.0
        self._health.extra = {"port": port}

    # -- SourceBase ------------------------------------------------------------------------

    def _open_device(self) -> None:
        self._line.clear()
        self._discarding = False
        try:
            self._serial = serial.serial_for_url(self.port, **self._settings)
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailable(f"{self.port}: {exc}") from exc
        except (ValueError, TypeError, KeyError) as exc:
            # pyserial parses the rest of a URL (rfc2217://host:port, loop://?options) only
            # when it opens, and says so with whatever its parser raised.
            raise DriverConfigError(f"port: {self.port!r} is not a port pyserial can open ({exc!r})") from exc

    def _read_once(self) -> None:
        port = self._serial
        try:
            # read(1) waits up to the timeout for the first byte (so stop() is noticed
            # within read_timeout_s); whatever else is already there comes in the same call.
            data = port.read(1)
            if not data:
                return
            waiting = port.in_waiting
            if waiting:
                data += port.read(min(waiting, _CHUNK))
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailable(f"{self.port}: {exc}") from exc
        self._feed(data, time.monotonic())

    def _close_device(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        try:
            port.close()
        except Exception as exc:  # closing a vanished device may fail; nothing to do about it
            log.debug("scanner %s: close failed (%s)", self.name, exc)

    # -- framing -----------------------------------------------------------------------------

    def _feed(self, data: bytes, received: float) -> None:
        """Split ``data`` at CR/LF, completing the partial line held from earlier reads."""
        pieces = _LINE_END.split(data)
        tail = pieces.pop()  # after the last terminator: the start of a line not ended yet
        for piece in pieces:
            if self._discarding:
                # This terminator ends the oversized line already emitted: resynchronised.
                self._discarding = False
                log.info("scanner %s: resynchronised after an oversized line", self.name)
            elif self._line or piece:
                self._take(piece, received, ended=True)
        if tail and not self._discarding:
            self._take(tail, received, ended=False)

    def _take(self, piece: bytes, received: float, *, ended: bool) -> None:
        """Add ``piece`` to the partial line, keeping at most one byte past the bound, and
        emit the line when it ended or became too long."""
        room = self.max_line + 1 - len(self._line)
        self._line += piece[:room]
        if len(self._line) > self.max_line:
            text = self._line.decode("latin-1")
            self._line.clear()
            self._discarding = not ended
            self._oversized += 1
            log.warning("scanner %s: line longer than %d bytes, emitted once as too large (%s)",
                        self.name, self.max_line, _fingerprint(text))
            self._deliver("qr", text, received)
        elif ended:
            line = bytes(self._line)
            self._line.clear()
            self._deliver(*self._classify(line), received)

    def _classify(self, line: bytes) -> tuple[PresentationKind, str]:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return "qr", line.decode("utf-8", "replace")
        if self._legacy is not None and self._legacy.fullmatch(text):
            return "legacy", text
        return "qr", text

    def _deliver(self, kind: PresentationKind, text: str, received: float) -> None:
        self._emit(kind, text)
        latency_us = (time.monotonic() - received) * 1e6
        self._lines += 1
        self._max_latency_us = max(self._max_latency_us, latency_us)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("scanner %s: %s line (%s) in %.0f us", self.name, kind, _fingerprint(text), latency_us)
        extra = {
            "port": self.port,
            "lines": self._lines,
            "oversized": self._oversized,
            "last_latency_us": round(latency_us, 1),
            "max_latency_us": round(self._max_latency_us, 1),
        }
        with self._lock:
            # A new dict, not an update: health() hands out the dict itself, not a copy.
            self._health.extra = extra
