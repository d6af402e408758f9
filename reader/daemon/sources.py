"""The credential sources of ``[[readers]]``: built through ``drivers.registry``, started, and
supervised.

Decisions:

- **Driver keys are checked against the driver's own signature.** A ``[[readers]]`` key that
  is not generic (name, driver, device, policy) goes to the driver class as a keyword; one
  the class does not take is ``readers[2].foo: unknown key`` naming the keys it does take,
  and a value the driver refuses is its message under the reader's key path. All sources are
  built before any starts, so a config mistake stops the daemon at start (exit 2).
- **One failing source never stops the others.** A device that is not there is the source's
  own business (it reconnects with backoff and shows down in ``status``); a source whose
  thread died or whose loop stopped turning (``SourceBase.loop_beat``) for longer than
  ``[daemon] source_stall_s`` is stopped and replaced by a new instance built from the same
  settings (a thread blocked in a driver call cannot be killed: it is left behind, as a
  daemon thread, and its device released when it returns, if ever).
- **Health for the watchdog.** :meth:`SourceSet.healthy` is False once a loop stayed stuck
  past three limits (its restarts did not help) or the supervisor itself stopped turning:
  the decision loop then stops pinging systemd's watchdog, and systemd restarts the daemon.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from drivers.base import Presentation, SourceBase, SourceHealth
from drivers.errors import DriverConfigError
from drivers.registry import source_class
from reader.errors import ConfigError
from reader.gate.config import ReaderConfig

log = logging.getLogger(__name__)

#: what the daemon passes itself; never a config key
_INTERNAL = frozenset({"name", "sink", "pin_factory", "frontend_factory", "capture_factory", "rnonce", "gate_id"})
#: the driver's keyword that ``device`` fills
_DEVICE_KEY = {"nfc": "path", "camera": "device", "scanner": "port"}


def source_kwargs(reader: ReaderConfig, cls: type, *, gate_id: str, pin_factory: Any) -> dict[str, Any]:
    """The keywords for ``cls`` from the reader's config; ConfigError for an unknown key."""
    params = inspect.signature(cls.__init__).parameters
    taken = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    device_keys = {"d0", "d1"} if reader.driver == "wiegand" else {_DEVICE_KEY[reader.driver]}
    allowed = taken - _INTERNAL - device_keys
    for key in reader.options:
        if key not in allowed:
            raise ConfigError(f"{reader.key}.{key}: unknown key (a {reader.driver} reader takes: "
                              f"{', '.join(sorted(allowed))}, besides name, driver, device and the policy keys)")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in reader.options.items()}
    for key, value in kwargs.items():
        _check_kind(f"{reader.key}.{key}", value, params[key].default, str(params[key].annotation))
    if reader.driver == "wiegand":
        kwargs["d0"], kwargs["d1"] = reader.device  # type: ignore[misc]
    else:
        kwargs[_DEVICE_KEY[reader.driver]] = reader.device
    if "gate_id" in taken:
        kwargs["gate_id"] = gate_id
    if "pin_factory" in taken:
        kwargs["pin_factory"] = pin_factory
    return kwargs


def _check_kind(key: str, value: Any, default: Any, annotation: str) -> None:
    """The value has the kind of the driver's default (a number where it takes a number):
    a wrong kind is refused here with its key, not deep in the driver as a TypeError."""
    if default is inspect.Parameter.empty or default is None:
        return
    kinds: dict[type, tuple[tuple[type, ...], str]] = {
        bool: ((bool,), "true or false"), int: ((int,), "an integer"), float: ((int, float), "a number"),
        str: ((str,), "a string"), tuple: ((tuple,), "a list"),
    }
    if "float" in annotation and isinstance(default, int) and not isinstance(default, bool):
        default = float(default)  # ``fps: float = 15``: any number
    for kind, (accepted, what) in kinds.items():
        if isinstance(default, kind):
            if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
                raise ConfigError(f"{key}: must be {what} (like {default!r}), not {value!r}")
            return


def build_source(reader: ReaderConfig, sink: Callable[[Presentation], None], *, gate_id: str,
                 pin_factory: Any) -> SourceBase:
    """A source for ``reader``, not started; ConfigError naming the reader's key path."""
    try:
        cls = source_class(reader.driver, f"{reader.key}.driver")
    except DriverConfigError as exc:
        raise ConfigError(str(exc)) from None
    kwargs = source_kwargs(reader, cls, gate_id=gate_id, pin_factory=pin_factory)
    device_key = "d0" if reader.driver == "wiegand" else _DEVICE_KEY[reader.driver]
    try:
        return cls(reader.name, sink, **kwargs)
    except DriverConfigError as exc:
        message = str(exc)
        if message.startswith((f"{device_key}:", "d1:")):
            message = "device:" + message.partition(":")[2]
        raise ConfigError(f"{reader.key}.{message}") from None
    except (TypeError, ValueError) as exc:  # a value of the wrong type the driver did not check
        raise ConfigError(f"{reader.key}: {exc}") from None


@dataclass
class _Entry:
    reader: ReaderConfig
    source: SourceBase
    restarts: int = 0
    stalled_since: float | None = None  # monotonic, while its loop shows no progress
    last_restart_error: str | None = None


class SourceSet:
    """Every configured source, started and supervised by one thread of its own."""

    def __init__(self, readers: tuple[ReaderConfig, ...], build: Callable[[ReaderConfig], SourceBase], *,
                 stall_s: float) -> None:
        self._build = build
        self.stall_s = stall_s
        self._entries = {reader.name: _Entry(reader, build(reader)) for reader in readers}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beat = time.monotonic()

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def source(self, name: str) -> SourceBase:
        return self._entries[name].source

    def start(self) -> None:
        for entry in self._entries.values():
            try:
                entry.source.start()
            except Exception as exc:  # one source's failure is its own: it shows down
                log.error("source %s: cannot start: %s", entry.reader.name, exc)
                entry.last_restart_error = str(exc)
        self._thread = threading.Thread(target=self._supervise, name="sources-supervisor", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        interval = max(0.05, min(1.0, self.stall_s / 4))
        while not self._stop.wait(interval):
            self.beat = time.monotonic()
            try:
                self.check(time.monotonic())
            except Exception:
                log.exception("source supervision failed")

    def check(self, now: float) -> None:
        """Restart each source whose thread died or whose loop stalled past the limit."""
        for entry in list(self._entries.values()):
            source = entry.source
            alive = source.running
            stalled = now - source.loop_beat() > self.stall_s
            if alive and not stalled:
                entry.stalled_since = None
                continue
            if entry.stalled_since is None:
                entry.stalled_since = now
            why = "its thread ended" if not alive else f"its loop showed no progress for {self.stall_s:g} s"
            log.warning("source %s: %s; restarting it (restart %d)", entry.reader.name, why, entry.restarts + 1)
            self._restart(entry)

    def _restart(self, entry: _Entry) -> None:
        old = entry.source
        old.stop(timeout=1.0)
        try:
            new = self._build(entry.reader)
            new.start()
        except Exception as exc:
            entry.last_restart_error = str(exc)
            log.error("source %s: restart failed: %s", entry.reader.name, exc)
            return
        with self._lock:
            entry.source = new
            entry.restarts += 1
            entry.last_restart_error = None

    def healthy(self, now: float) -> bool:
        """Whether every source loop turns (or was just restarted) and the supervisor runs."""
        if self._thread is not None and now - self.beat > max(5.0, 3 * self.stall_s):
            return False
        return all(e.stalled_since is None or now - e.stalled_since < 3 * self.stall_s
                   for e in self._entries.values())

    def health(self) -> dict[str, dict[str, Any]]:
        """Each source's health as JSON-ready data (status, the heartbeat)."""
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for name, entry in self._entries.items():
            health: SourceHealth = entry.source.health()
            data = {f.name: getattr(health, f.name) for f in fields(SourceHealth)}
            data.update(driver=entry.reader.driver, restarts=entry.restarts,
                        stalled=entry.stalled_since is not None, running=entry.source.running,
                        loop_age_s=round(max(0.0, now - entry.source.loop_beat()), 3))
            if entry.last_restart_error:
                data["last_error"] = entry.last_restart_error
            out[name] = data
        return out

    def close(self) -> None:
        """Stop supervising, then close every source (an NFC reader is released for the
        next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        for entry in self._entries.values():
            try:
                entry.source.close()
            except Exception:
                log.exception("source %s: close failed", entry.reader.name)
