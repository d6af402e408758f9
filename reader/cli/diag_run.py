"""What ``gate-reader diag`` puts together before a check runs: the config (the gate's, or a
simulated site's with ``--sim``), whether the daemon runs (it then holds the pins and the
readers), the door channel (the daemon's control socket, or the door I/O in this process),
the simulated hardware of ``--sim``, and a sync run as the cache's owner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drivers.door import DoorSettings
from offline_cache.errors import CacheError
from reader.daemon.control import ControlError, answers, request
from reader.errors import ConfigError
from reader.gate.config import Config, ReaderConfig
from reader.gate.config_check import ConfigCheck
from reader.gate.diagnostics.door import DoorView, LocalDoor
from reader.gate.diagnostics.sim import SimHardware, SimSite
from reader.gate.sync import SyncReport

DEFAULT_CONFIG = Path("/etc/gate-reader/gate-reader.toml")
STOP_DAEMON = "sudo systemctl stop gate-reader, run this again, then sudo systemctl start gate-reader"


class DaemonDoor:
    """The door of the running daemon, through its control socket: releases and patterns are
    the daemon's (journaled there, with this process's uid); the view is its ``status``; a
    simulated daemon (mock pins) also takes ``sim`` requests, to play the person."""

    via = "the running daemon"

    def __init__(self, socket: Path, settings: DoorSettings, simulated: bool) -> None:
        self.socket = socket
        self.settings = settings
        self.simulated = simulated

    def _ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        return request(self.socket, payload, timeout=5.0)

    def release(self, who: str) -> None:
        self._ask({"cmd": "door", "action": "release"})

    def view(self) -> DoorView:
        door = self._ask({"cmd": "status"})["daemon"].get("door") or {}
        return DoorView(bool(door.get("relay_released")), {k: bool(v) for k, v in (door.get("inputs") or {}).items()})

    def indicate(self, overlay: str) -> None:
        self._ask({"cmd": "door", "action": "indicate", "overlay": overlay})

    def drive_input(self, name: str, active: bool) -> None:
        self._ask({"cmd": "sim", "action": "input", "input": name, "active": active})

    def output_history(self, name: str) -> list[bool]:
        pin = self._ask({"cmd": "sim", "action": "pin", "name": name})
        return [bool(state) == bool(pin["active_high"]) for _t, state in pin["history"]]

    def close(self) -> None:
        """Nothing to release: the daemon keeps its door."""


class Context:
    """One diag run's config, daemon, door and simulators; :meth:`close` releases them."""

    def __init__(self, config_path: Path | None, sim: bool) -> None:
        self.sim = sim
        self.site: SimSite | None = None
        self.hardware: SimHardware | None = None
        self._closing: list[Any] = []
        if sim and config_path is None:
            self.site = SimSite()
            self._closing.append(self.site)
            self.site.commission()
            config_path = self.site.config
            self.hardware = self.site.hardware
        self.config_path = Path(config_path or DEFAULT_CONFIG)
        self.check: ConfigCheck = check_gate_config(self.config_path)
        if sim and self.hardware is None:
            import tempfile

            tmp = tempfile.TemporaryDirectory(prefix="gate-reader-sim-")
            self._closing.append(tmp)
            self.hardware = SimHardware(Path(tmp.name))
            self._closing.insert(0, self.hardware)
        self.live: dict[str, Any] | None = None
        self.daemon_error: str | None = None
        config = self.check.config
        if config is not None and config.door is not None:
            try:
                self.live = request(config.daemon.socket_path, {"cmd": "status"}, timeout=3.0)["daemon"]
            except ControlError as exc:
                self.daemon_error = str(exc)

    @property
    def config(self) -> Config:
        """The config; ConfigError (exit 2) with its first mistake when it has any."""
        if self.check.config is None:
            first = self.check.errors[0].message if self.check.errors else "not readable"
            raise ConfigError(f"{self.config_path}: {first} (gate-reader check-config --config "
                              f"{self.config_path} lists every error)")
        return self.check.config

    @property
    def daemon_runs(self) -> bool:
        return self.live is not None

    def reader(self, driver: str, name: str | None) -> ReaderConfig | None:
        """The reader called ``name``, or the config's first of ``driver``; None when it has none."""
        for reader in self.config.readers:
            if (name is None and reader.driver == driver) or reader.name == name:
                if reader.driver != driver:
                    raise ConfigError(f"reader {name}: a {reader.driver} reader, not {driver}")
                return reader
        if name is not None:
            raise ConfigError(f"no reader called {name!r} in {self.config_path}")
        return None

    def held_source(self, reader: ReaderConfig) -> dict[str, Any] | None:
        return (self.live or {}).get("sources", {}).get(reader.name)

    # -- the door --------------------------------------------------------------------------

    def door(self, *, journal: bool) -> DaemonDoor | LocalDoor:
        """The running daemon's door, or the door I/O here (mock pins with --sim)."""
        config = self.config
        if config.door is None:
            raise ConfigError(f"{self.config_path}: no [door] table: this gate has no door to check")
        simulated_daemon = config.door.pin_factory == "mock"
        if self.daemon_runs:
            if self.sim and not simulated_daemon:
                raise ConfigError("--sim: the running daemon drives real pins; stop it or leave out --sim")
            return DaemonDoor(config.daemon.socket_path, config.door.settings, simulated_daemon)
        if answers(config.daemon.socket_path):
            raise ConfigError(f"the daemon at {config.daemon.socket_path} answers but refused its status: "
                              f"{self.daemon_error}")
        factory = self.hardware.factory if self.hardware is not None else _pin_factory(config.door.pin_factory)
        store = None
        if journal:
            from offline_cache.journal import Journal
            from reader.gate.cache import open_cache

            store = open_cache(config, create=True)
            self._closing.append(store)
        door = LocalDoor(config.door.settings, factory, None if store is None else Journal(store),
                         via="mock pins in this process" if self.sim else f"{config.door.pin_factory} pins in this "
                         "process (no daemon runs)")
        self._closing.insert(0, door)
        return door

    def pin_factory(self) -> Any:
        if self.hardware is not None:
            return self.hardware.factory
        config = self.config
        if config.door is None:
            raise ConfigError(f"{self.config_path}: no [door] table: it names the pin factory a Wiegand reader uses")
        factory = _pin_factory(config.door.pin_factory)
        self._closing.append(factory)
        return factory

    # -- the sync --------------------------------------------------------------------------

    def run_sync(self) -> SyncReport:
        """One sync. As root, in a child process as the cache folder's owner (the service's
        user): files a root sync made there would be root's, and the service could not write
        them any more."""
        from reader.gate.sync import run_sync

        config = self.config
        folder = Path(config.cache.path).parent
        owner = folder.stat() if folder.exists() else None
        started = time.monotonic()
        if os.geteuid() != 0 or owner is None or owner.st_uid == 0:
            try:
                return run_sync(config)
            except (ConfigError, CacheError) as exc:
                # What the sync refuses before it reaches the centre (root.json missing, the cache
                # unusable) is this check's FAIL with its fix, as the child's exit 2 below is; not
                # a crashed check ("sync.root: ..." maps to install.sh --root-json).
                return SyncReport(False, [], [], {}, str(exc), time.monotonic() - started)
        done = subprocess.run([sys.executable, "-m", "reader", "sync", "--no-upload", "--config",
                               str(self.config_path)], capture_output=True, text=True, timeout=300, check=False,
                              user=owner.st_uid, group=owner.st_gid, extra_groups=[])
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["no output"]
        error = None if done.returncode == 0 else lines[-1].split(": error: ", 1)[-1]
        return SyncReport(done.returncode == 0, [], [], {}, error, time.monotonic() - started)

    def close(self) -> None:
        for part in self._closing:
            try:
                (part.cleanup if hasattr(part, "cleanup") else part.close)()
            except Exception as exc:  # closing must go on for the others
                print(f"gate-reader diag: closing {type(part).__name__} failed: {exc}", file=sys.stderr)
        self._closing.clear()


def _pin_factory(name: str) -> Any:
    from drivers.errors import DriverConfigError
    from drivers.pins import make_pin_factory

    try:
        return make_pin_factory(name)
    except DriverConfigError as exc:
        raise ConfigError(str(exc)) from None


def check_gate_config(path: Path) -> ConfigCheck:
    from reader.cli.ops import check_gate_config as check

    return check(path, require_door=False)  # diag serves a door-less gate too (sync, clock, readers)
