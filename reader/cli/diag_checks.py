"""Which check runs against what: each ``gate-reader diag CHECK`` and the selftest's list,
from the :class:`reader.cli.diag_run.Context` (the config, the daemon, the simulators)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from reader.cli.diag_run import STOP_DAEMON, Context
from reader.gate.clock import system_clock_synchronised
from reader.gate.config import ReaderConfig
from reader.gate.diagnostics import camera, door, nfc, scanner, state, wiegand
from reader.gate.diagnostics.result import Ask, CheckResult, Report, quiet, skipped
from reader.gate.diagnostics.selftest import Check, run_checks
from reader.gate.diagnostics.sim import WIEGAND_PINS

_SERIAL_KEYS = ("baudrate", "bytesize", "parity", "stopbits")


def _who() -> str:
    return f"uid {os.getuid()} (gate-reader diag relay)"


def _options(reader: ReaderConfig | None) -> dict[str, Any]:
    if reader is None:
        return {}
    return {key: tuple(value) if isinstance(value, list) else value for key, value in reader.options.items()}


def _held(context: Context, driver: str, reader: ReaderConfig) -> CheckResult:
    """A reader the running daemon holds, for a check that needs it alone: not checked here."""
    result = state.check_held_source(reader.name, driver, context.held_source(reader))
    return skipped(driver, f"the running daemon holds {reader.name} ({'up' if result.ok else 'DOWN'} there); "
                           f"to test it alone: {STOP_DAEMON}", **result.values)


def _clock(context: Context) -> CheckResult:
    if context.sim:  # the simulated kernel keeps network time; a container's own clock says nothing of a gate's
        return state.check_clock(context.config, synchronised=True, rtc=None)
    return state.check_clock(context.config, synchronised=system_clock_synchronised(), rtc=state.rtc_name())


def one(context: Context, args: argparse.Namespace, report: Report, ask: Ask) -> CheckResult:
    """The check ``args.check`` alone, as a technician runs it."""
    check = args.check
    hardware = context.hardware
    if check == "relay":
        return door.check_relay(context.door(journal=True), args.times, _who(), report)
    if check in ("leds", "buzzer"):
        names = ("green_led", "red_led") if check == "leds" else ("buzzer",)
        return door.check_indicators(context.door(journal=False), names, ask, report)
    if check == "inputs":
        return door.check_inputs(context.door(journal=False), args.seconds, report)
    if check == "clock":
        return _clock(context)
    if check == "cache":
        return state.check_cache(context.config)
    if check == "sync":
        return state.check_sync(context.config, context.run_sync)
    reader = context.reader(check, args.reader)
    if reader is None and hardware is None:
        return skipped(check, f"no {check} reader in {context.config_path}")
    if reader is not None and context.daemon_runs:
        return _held(context, check, reader)
    options = _options(reader)
    if check == "nfc":
        path = hardware.nfc_path if hardware is not None else str(reader.device)  # type: ignore[union-attr]
        found = nfc.probe_nfc(path)
        if not found.ok or args.no_tap:
            return found
        tapped = nfc.tap_nfc(path, context.config.gate.id, args.seconds, report,
                             on_ready=hardware.tap_later() if hardware is not None else None)
        found_values = {k: found.values[k] for k in ("reader", "usb_id") if found.values.get(k) is not None}
        tapped.values = {**found_values, **tapped.values}
        return tapped
    if check == "camera":
        device = hardware.camera if hardware is not None else reader.device  # type: ignore[union-attr]
        return camera.check_camera(device, seconds=args.seconds, need_code=True, png=args.png, report=report,
                                   **_camera_options(options))
    if check == "scanner":
        port = hardware.scanner if hardware is not None else str(reader.device)  # type: ignore[union-attr]
        return scanner.check_scanner(port, {k: v for k, v in options.items() if k in _SERIAL_KEYS},
                                     seconds=args.seconds, need_line=True, report=report,
                                     on_ready=hardware.scan_later() if hardware is not None else None)
    if check == "wiegand":
        d0, d1 = reader.device if reader is not None else WIEGAND_PINS  # type: ignore[misc]
        factory = context.pin_factory()
        idle = wiegand.check_idle(factory, d0, d1, bool(options.get("pull_up", True)))
        if not idle.ok:
            return idle
        return wiegand.check_frames(factory, d0, d1, seconds=args.seconds, need_frame=True, report=report,
                                    options=options, on_ready=hardware.wiegand_later((d0, d1))
                                    if hardware is not None else None)
    raise ValueError(f"unknown check {check!r}")


def _camera_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: options[key] for key in ("width", "height", "fps") if key in options}


def _reader_check(context: Context, reader: ReaderConfig) -> Callable[[], CheckResult]:
    """A reader's check that needs no person: opens it (or asks the daemon that holds it)."""
    hardware, options = context.hardware, _options(reader)

    def run() -> CheckResult:
        if context.daemon_runs:
            result = state.check_held_source(reader.name, reader.driver, context.held_source(reader))
        elif reader.driver == "nfc":
            result = nfc.probe_nfc(hardware.nfc_path if hardware is not None else str(reader.device))
        elif reader.driver == "camera":
            result = camera.check_camera(hardware.camera if hardware is not None else reader.device, seconds=1.5,
                                         need_code=False, png=None, report=quiet, **_camera_options(options))
        elif reader.driver == "scanner":
            result = scanner.check_scanner(hardware.scanner if hardware is not None else str(reader.device),
                                           {k: v for k, v in options.items() if k in _SERIAL_KEYS}, seconds=0.2,
                                           need_line=False, report=quiet)
        else:
            d0, d1 = reader.device  # type: ignore[misc]
            result = wiegand.check_idle(context.pin_factory(), d0, d1, bool(options.get("pull_up", True)))
        result.name = f"{reader.driver} {reader.name}"
        return result

    return run


def _daemon(context: Context) -> CheckResult:
    if context.sim and not context.daemon_runs:
        return skipped("daemon", "none runs: with --sim the door and the readers are checked in this process")
    return state.check_daemon(context.config, context.live, context.daemon_error)


def selftest(context: Context) -> list[CheckResult]:
    """Every check that needs no person, for this gate: config, clock, the daemon, the door's
    inputs (levels now), cache, one sync, and each reader (opened, or as the daemon sees it)."""
    checks: list[Check] = [("config", lambda: state.check_config_result(context.check))]
    if context.check.config is None:
        return run_checks(checks)
    config = context.config
    checks.append(("clock", lambda: _clock(context)))
    if config.door is not None:
        checks.append(("daemon", lambda: _daemon(context)))
        checks.append(("inputs", lambda: door.check_inputs(context.door(journal=False), 0, quiet)))
    # The live sync first: the cache then shows what the gate holds after it.
    checks += [("sync", lambda: state.check_sync(config, context.run_sync)),
               ("cache", lambda: state.check_cache(config))]
    checks += [(f"{r.driver} {r.name}", _reader_check(context, r)) for r in config.readers]
    return run_checks(checks)
