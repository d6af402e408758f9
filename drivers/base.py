"""The credential-source interface: each source owns a thread, emits ``Presentation`` values
to a callback or a queue, reconnects by itself with bounded backoff when its device goes
away, and reports its health (the shape of python-can's BusABC and pyserial's ReaderThread).

A subclass supplies three methods: ``_open_device()`` (raise DeviceUnavailable or any
OSError when the device is not there), ``_read_once()`` (wait briefly for input, call
``self._emit(...)`` for each presentation, raise on device loss) and ``_close_device()``.
The base class runs the loop, the reconnects and the bookkeeping.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from drivers.errors import DriverError

log = logging.getLogger(__name__)

PresentationKind = Literal["qr", "nfc", "legacy"]


@dataclass(frozen=True, slots=True)
class Presentation:
    """One credential read. ``payload`` is the text as read (QR, barcode, legacy UID or
    barcode) or, for NFC, the bytes the holder answered to ``challenge``."""

    source: str
    kind: PresentationKind
    payload: str | bytes
    read_at: float  # time.monotonic() when the read completed
    challenge: bytes | None = None  # the 16-byte rnonce sent (NFC only)


@dataclass(slots=True)
class SourceHealth:
    """What ``gate-reader status`` and the heartbeat show for a source."""

    up: bool = False
    down_since: float | None = None  # wall clock (time.time()) when it went down
    last_error: str | None = None
    reads: int = 0
    reconnects: int = 0
    last_read_at: float | None = None  # wall clock
    extra: dict[str, object] = field(default_factory=dict)


Sink = Callable[[Presentation], None] | queue.Queue


class SourceBase:
    """A credential source with its own thread. Context manager; ``close()`` is idempotent;
    no ``__del__``: the owner closes what it opened."""

    #: reconnect backoff: starts at the first value, doubles, never above the second
    backoff_s: tuple[float, float] = (0.5, 30.0)

    def __init__(self, name: str, sink: Sink) -> None:
        self.name = name
        self._sink = sink
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._health = SourceHealth(down_since=time.time())
        self._lock = threading.Lock()
        self._closed = False
        # The loop's heartbeat (time.monotonic()): set at every turn of the loop, and ahead by
        # the backoff while it waits to reconnect, so a supervisor tells a loop that stopped
        # turning (a driver call that never returns) from one that waits on purpose.
        self._beat = time.monotonic()

    # -- what subclasses provide ---------------------------------------------------------

    def _open_device(self) -> None:
        raise DriverError(f"{type(self).__name__} does not open a device")

    def _read_once(self) -> None:
        raise DriverError(f"{type(self).__name__} does not read")

    def _close_device(self) -> None:
        """Release the device; must not raise (log instead)."""

    # -- the interface ---------------------------------------------------------------------

    def start(self) -> None:
        if self._closed:
            raise DriverError(f"source {self.name} is closed")
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread promptly (it checks between reads) and release the device."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("source %s: thread did not stop within %.1f s", self.name, timeout)

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True

    def __enter__(self) -> SourceBase:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> SourceHealth:
        with self._lock:
            return SourceHealth(**{name: getattr(self._health, name) for name in SourceHealth.__slots__})

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def loop_beat(self) -> float:
        """When the loop last showed progress (``time.monotonic()``; in the future while it
        waits out a reconnect backoff). A loop silent for longer than its limit is stuck."""
        return self._beat

    # -- for subclasses --------------------------------------------------------------------

    def _emit(self, kind: PresentationKind, payload: str | bytes, challenge: bytes | None = None) -> None:
        presentation = Presentation(self.name, kind, payload, time.monotonic(), challenge)
        with self._lock:
            self._health.reads += 1
            self._health.last_read_at = time.time()
        if isinstance(self._sink, queue.Queue):
            self._sink.put(presentation)
            return
        try:
            self._sink(presentation)
        except Exception:
            # The consumer's failure is not the device's: keep reading, and say so loudly.
            log.exception("source %s: the consumer failed on a %s presentation", self.name, kind)

    def _report_error(self, error: str) -> None:
        """A problem the source survived and read past (a bad frame, a garbled line): shown
        as ``health().last_error`` while the source stays up, so it is not silent."""
        with self._lock:
            self._health.last_error = error

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the loop --------------------------------------------------------------------------

    def _mark(self, up: bool, error: str | None = None, *, lost: bool = True) -> None:
        with self._lock:
            if up and not self._health.up:
                self._health.down_since = None
            elif not up and self._health.up:
                self._health.down_since = time.time()
                if lost:
                    self._health.reconnects += 1
            self._health.up = up
            if error is not None:
                self._health.last_error = error

    def _run(self) -> None:
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            self._beat = time.monotonic()
            try:
                self._open_device()
            except Exception as exc:
                self._mark(False, f"open: {exc}")
                log.warning("source %s: cannot open device (%s); retrying in %.1f s", self.name, exc, delay)
                self._beat = time.monotonic() + delay
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
                continue
            self._mark(True)
            log.info("source %s: device open", self.name)
            delay = self.backoff_s[0]
            try:
                while not self._stop.is_set():
                    self._beat = time.monotonic()
                    self._read_once()
            except Exception as exc:
                self._mark(False, f"read: {exc}")
                log.warning("source %s: device lost (%s); reconnecting", self.name, exc)
            finally:
                self._close_device()
        self._mark(False, lost=False)  # stopped on purpose: not a reconnect
