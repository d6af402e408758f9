"""The gate daemon: built from the config, started in a safe order, run until SIGTERM, stopped
with the door secured.

Start: the sources built, checked and not started (a config mistake stops here, exit 2,
with nothing opened or journaled), the metrics endpoint when ``[metrics] listen`` asks for
one, the cache's integrity check (``Store.open`` runs ``PRAGMA quick_check``; a corrupt
cache is moved aside only when ``[cache] start_empty`` says so), the door I/O made with its
outputs at the secured level and the door machine started (``Secure``, journaled) BEFORE any
source starts, then the worker, the sources, the control socket, the metrics writer and
READY=1 (a source whose device is missing does not hold READY back: it shows down). Stop
(SIGTERM): STOPPING=1, metrics (written once more), control socket and sources closed (an
NFC reader is released for the next start), the worker stopped, the door secured unless fire
holds it, ``daemon_stopped`` journaled, exit 0. A worker that dies of a bug: the
watchdog pings have already stopped; the door is secured and the exit status is 1 (systemd
restarts it). SIGHUP: the config's policy read again and the centre's laid over it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from drivers.door import INPUTS, DoorIO
from drivers.errors import DriverConfigError
from drivers.pins import make_pin_factory
from drivers.wiegand import FORMATS, pulse_frame
from offline_cache.store import Store
from reader.daemon.control import ControlServer, answers
from reader.daemon.health import write_health
from reader.daemon.memory import bound_sqlite_cache
from reader.daemon.metrics import MetricsEndpoint, MetricsWriter
from reader.daemon.notify import Notifier, watchdog_interval_s
from reader.daemon.pipeline import Pipeline
from reader.daemon.sources import SourceSet, build_source
from reader.errors import ConfigError
from reader.gate.cache import open_cache
from reader.gate.clock import SystemTime, TimeSource
from reader.gate.config import Config, load_config
from reader.gate.diagnostics.door import with_diag_overlays
from reader.gate.door_machine import DoorMachine
from reader.gate.state import load_state

log = logging.getLogger(__name__)

_REPLY_TIMEOUT_S = 3.0


class Daemon:
    """One gate's daemon. ``start()``, then ``run()`` until stopped; ``stop()`` is idempotent."""

    def __init__(self, config: Config, *, clock: TimeSource | None = None, notifier: Notifier | None = None) -> None:
        if config.door is None:
            raise ConfigError("door: gate-reader run needs a [door] table (the pins it drives)")
        self.config = config
        self.clock = clock or SystemTime()
        self.notifier = notifier or Notifier.from_environment()
        self.simulated = config.door.pin_factory == "mock"  # test and demo hooks only then
        self._wake = threading.Event()
        self._stopping = False
        self._reload = False
        self._started = False
        self.store: Store | None = None
        self.door: DoorIO | None = None
        self.pipeline: Pipeline | None = None
        self.sources: SourceSet | None = None
        self.control: ControlServer | None = None
        self.metrics: MetricsWriter | None = None
        self.endpoint: MetricsEndpoint | None = None  # until the writer takes it
        self.factory: Any = None

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        config, door_config = self.config, self.config.door
        assert door_config is not None
        if answers(config.daemon.socket_path):  # before any pin is touched
            raise ConfigError(f"daemon.runtime_dir: a daemon for this gate already answers at "
                              f"{config.daemon.socket_path}")
        try:
            self.factory = make_pin_factory(door_config.pin_factory)
        except DriverConfigError as exc:
            raise ConfigError(str(exc)) from None
        pipeline_ref: list[Pipeline] = []
        # Every source is built (checked, not started) before the cache is opened or a pin
        # driven: a driver key or value the config gets wrong stops the start with nothing
        # journaled and nothing claimed, as every other config mistake does.
        sources: list[SourceSet] = [SourceSet(config.readers, lambda reader: build_source(
            reader, lambda p: pipeline_ref[0].submit_presentation(p), gate_id=config.gate.id,
            pin_factory=self.factory), stall_s=config.daemon.source_stall_s)]
        self.sources = sources[0]
        if config.metrics is not None and config.metrics.listen is not None:  # a port in use: refused now
            self.endpoint = MetricsEndpoint(config.metrics.listen)
        self.store = open_cache(config, create=True)  # integrity checked on open (quick_check)
        bound_sqlite_cache(self.store.connection)  # see reader/daemon/memory.py
        state = load_state(self.store, config.gate.trust)
        for problem in state.problems:
            log.warning("cache: %s", problem)
        try:
            # The diagnostics' LED and buzzer patterns too (times only: no output changes).
            self.door = DoorIO(with_diag_overlays(door_config.settings), self.factory,
                               on_event=lambda event: pipeline_ref[0].submit_input(event) if pipeline_ref else None)
        except DriverConfigError as exc:
            raise ConfigError(str(exc)) from None
        settings = door_config.settings
        machine = DoorMachine(release_s=settings.release_s, held_open_s=door_config.held_open_s,
                              turnstile=settings.lock_type == "turnstile", has_contact=door_config.has_contact,
                              now=self.clock.monotonic(), alarm_repeat_s=door_config.alarm_repeat_s)
        pipeline = Pipeline(config, self.store, state, self.door, machine, self.clock,
                            sources_health=lambda: sources[0].health() if sources else {},
                            sources_healthy=lambda now: sources[0].healthy(now) if sources else True,
                            ping=self.notifier.watchdog,
                            ping_interval_s=watchdog_interval_s() or (1.0 if self.notifier.enabled else None))
        pipeline.handlers["status"] = lambda args: pipeline.health()
        self.pipeline = pipeline
        pipeline.apply(machine.start(self.clock.monotonic()))  # secured before anything can present
        pipeline._append([{"time": self.clock.time(), "kind": "system", "reason": "daemon_started",
                           "detail": f"pid {os.getpid()}, {len(config.readers)} readers"}])
        pipeline.restore_lockdown()
        pipeline_ref.append(pipeline)
        pipeline.start()
        self.sources.start()
        self.control = ControlServer(config.daemon.socket_path, self._control)
        try:
            self.control.start()
        except OSError as exc:
            raise ConfigError(f"daemon.runtime_dir: cannot serve the control socket: {exc}") from None
        if config.metrics is not None:
            self.metrics = MetricsWriter(
                config.metrics.textfile, config.metrics.interval_s, gate_id=config.gate.id, version=_version(),
                cache=config.cache.path, skew_s=config.policy.skew_s, decisions=pipeline.metrics,
                health=lambda: pipeline.request("status").wait(_REPLY_TIMEOUT_S), endpoint=self.endpoint)
            self.endpoint = None  # the writer closes it
            self.metrics.start()
        self._started = True
        self.notifier.ready(f"{len(config.readers)} readers, door secured")
        log.info("gate %s running: %d readers, control socket %s", config.gate.id, len(config.readers),
                 config.daemon.socket_path)

    # -- run ---------------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self._stopping = True
        self._wake.set()

    def request_reload(self, *_: Any) -> None:
        self._reload = True
        self._wake.set()

    def run(self) -> int:
        """Until SIGTERM/SIGINT (0) or a worker failure (1); SIGHUP reloads the policy."""
        assert self.pipeline is not None
        handlers = {sig: signal.signal(sig, handler) for sig, handler in (
            (signal.SIGTERM, self.request_stop), (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload))}
        try:
            return self._run()
        finally:
            for sig, previous in handlers.items():
                signal.signal(sig, previous)

    def _run(self) -> int:
        assert self.pipeline is not None
        while not self._stopping:
            self._wake.wait(0.2)
            self._wake.clear()
            if self._reload:
                self._reload = False
                self._reload_policy()
            if self.pipeline.crashed is not None or not self.pipeline.alive:
                log.critical("the decision worker is gone; securing the door and exiting")
                self.stop(crashed=True)
                return 1
        self.stop()
        return 0

    def _reload_policy(self) -> None:
        assert self.pipeline is not None
        site, group = None, self.config.gate.group
        if self.config.source is not None:
            try:
                fresh = load_config(self.config.source)
            except ConfigError as exc:
                log.error("SIGHUP: the config does not load (%s); the policy in use stays", exc)
                fresh = None
            if fresh is not None:
                if [(r.name, r.driver, r.device, dict(r.options)) for r in fresh.readers] != \
                        [(r.name, r.driver, r.device, dict(r.options)) for r in self.config.readers] \
                        or fresh.door != self.config.door:
                    log.warning("SIGHUP: readers or [door] changed in the config; that needs a restart "
                                "(only the policy is reloaded)")
                site, group = fresh.site, fresh.gate.group  # the centre's policy applies for the group named now
        self.pipeline.request("reload", site=site, group=group)

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, *, crashed: bool = False) -> None:
        if not self._started:
            self._close_partial()
            return
        self._started = False
        self.notifier.stopping()
        assert self.pipeline is not None and self.door is not None
        for part in (self.metrics, self.control, self.sources):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    log.exception("closing %s failed", type(part).__name__)
        self.metrics = self.control = self.sources = None  # type: ignore[assignment]
        self.pipeline.stop()
        machine = self.pipeline.machine
        try:
            if crashed or self.pipeline.alive:  # a worker that did not stop may hold the machine: secure directly
                self.door.secure()
            else:
                self.pipeline.apply(machine.shutdown(self.clock.monotonic()))
            if not crashed:  # what status and the heartbeat show from now on: stopped on purpose
                write_health(self.store, {**self.pipeline.health(), "stopped": True})  # type: ignore[arg-type]
        finally:
            detail = "worker failed" if crashed else "stopped"
            self.pipeline._append([{"time": self.clock.time(), "kind": "system",
                                    "reason": "daemon_crashed" if crashed else "daemon_stopped", "detail": detail}])
            self._close_partial()
        self.notifier.close()

    def _close_partial(self) -> None:
        """Close what was made, in reverse order (also after a start that failed half-way)."""
        for part in (self.metrics, self.endpoint, self.control, self.sources):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    log.exception("closing %s failed", type(part).__name__)
        self.metrics = self.endpoint = self.control = self.sources = None  # type: ignore[assignment]
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.door is not None:
            self.door.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    # -- the control socket -------------------------------------------------------------------

    def _control(self, request: dict[str, Any], uid: int) -> dict[str, Any]:
        assert self.pipeline is not None
        cmd = request["cmd"]
        if cmd == "status":
            health = self.pipeline.request("status").wait(_REPLY_TIMEOUT_S)
            return {"daemon": {**health, "origin": "live", "pid": os.getpid()}}
        if cmd == "lockdown":
            on = request.get("on")
            if not isinstance(on, bool):
                raise ValueError('lockdown: "on" must be true or false')
            # Held as "cli" whoever asks (anyone allowed on the socket can end it); journaled with the uid.
            return self.pipeline.request("lockdown", on=on, by="cli", who=f"uid {uid}").wait(_REPLY_TIMEOUT_S)
        if cmd == "door":
            action = request.get("action")
            if action == "release":
                return self.pipeline.request("release", by=f"uid {uid}").wait(_REPLY_TIMEOUT_S)
            if action == "indicate":
                return self.pipeline.request("indicate", overlay=request.get("overlay")).wait(_REPLY_TIMEOUT_S)
            raise ValueError('door: "action" must be release or indicate')
        if cmd == "sim":
            if not self.simulated:
                raise ValueError('sim: only with [door] pin_factory = "mock"')
            return self._sim(request)
        raise ValueError(f"unknown command {cmd!r} (status, lockdown, door, sim)")

    def _sim(self, request: dict[str, Any]) -> dict[str, Any]:
        """Simulated hardware, driven from another process (tests, the demo)."""
        assert self.door is not None and self.pipeline is not None and self.sources is not None
        settings = self.door.settings
        action = request.get("action")
        if action == "input":
            spec = getattr(settings, str(request.get("input")), None)
            if spec is None or request.get("input") not in INPUTS:
                raise ValueError("sim input: no such input on this door")
            active = request.get("active")
            if not isinstance(active, bool):
                raise ValueError('sim input: "active" must be true or false')
            pin = self.factory.pin(spec.pin)
            (pin.drive_high if active == spec.active_high else pin.drive_low)()
            return {"input": request["input"], "active": active}
        if action == "pin":
            name = str(request.get("name"))
            spec = getattr(settings, name, None) if name in ("relay", "green_led", "red_led", "buzzer") else None
            if spec is None:
                raise ValueError("sim pin: name one of relay, green_led, red_led, buzzer on this door")
            pin = self.factory.pin(spec.pin)
            return {"pin": spec.pin, "active_high": spec.active_high, "state": bool(pin.state),
                    "history": [[round(s.timestamp, 6), bool(s.state)] for s in pin.states]}
        if action == "wiegand":
            source = self.sources.source(str(request.get("reader")))
            if not hasattr(source, "pins"):
                raise ValueError("sim wiegand: not a wiegand reader")
            bits = request.get("bits")
            if bits is None:
                fmt = FORMATS[str(request.get("format", "H10301"))]
                bits = fmt.encode([int(v) for v in request.get("values", [])])
            if not isinstance(bits, list | tuple) or not all(b in (0, 1) for b in bits) or len(bits) > 128:
                raise ValueError("sim wiegand: bits must be a list of at most 128 zeros and ones")
            timing: dict[str, float] = {}  # a reader's own timing (tests: jitter between frames)
            for key, low, high in (("pulse_s", 0.0, 1e-3), ("interval_s", 2e-4, 0.05)):
                value = request.get(key)
                if value is not None:
                    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                        raise ValueError(f"sim wiegand: {key} is a number of seconds from {low:g} to {high:g}")
                    timing[key] = float(value)
            d0, d1 = (self.factory.pin(p) for p in source.pins)
            # Each pulse's (fall, rise) as the pins stamped them (time.monotonic()): a sender
            # descheduled mid-frame shows there, so a test knows what the reader really saw.
            sent = pulse_frame(d0, d1, list(bits), **timing)
            return {"bits": len(bits), "pulses": [[round(fall, 7), round(rise, 7)] for fall, rise in sent]}
        if action == "wedge":  # the worker stops turning for a while; the answer does not wait for it
            seconds = float(request.get("seconds", 0))
            if not 0 < seconds <= 600:
                raise ValueError("sim wedge: seconds from 0 to 600")
            self.pipeline.request("wedge", seconds=seconds)
            return {"wedged_s": seconds}
        raise ValueError("sim: action must be input, pin, wiegand or wedge")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("gate-reader")
    except metadata.PackageNotFoundError:  # a source tree never installed
        return "unknown"


def run_daemon(config: Config, *, clock: TimeSource | None = None, notifier: Notifier | None = None) -> int:
    """``gate-reader run``: start, run until stopped; the exit status. A failure while
    starting secures what was made, and is raised (a ConfigError is exit 2)."""
    daemon = Daemon(config, clock=clock, notifier=notifier)
    started = time.monotonic()
    try:
        daemon.start()
    except BaseException:
        daemon.stop()
        raise
    log.debug("started in %.2f s", time.monotonic() - started)
    return daemon.run()
