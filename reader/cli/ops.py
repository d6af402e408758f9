"""``gate-reader check-config`` and ``gate-reader --version``: what a site runs before and
after it changes a gate."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from reader.gate.config import Config, ReaderConfig
from reader.gate.config_check import ConfigCheck, Finding

#: the exit status of check-config when the config has errors (2 stays "cannot read it")
EXIT_CONFIG_ERRORS = 1


def version_text() -> str:
    """``gate-reader VERSION``, and the installed environment's tag when the installer made
    it (``/opt/gate-reader/venvs/VERSION-HASH``: the hash names the exact source)."""
    try:
        version = metadata.version("gate-reader")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "(not installed: version unknown)"
    tag_file = Path(sys.prefix) / ".gate-reader-complete"
    try:
        tag = tag_file.read_text().strip()[:80]
    except OSError:
        tag = ""
    python = ".".join(map(str, sys.version_info[:3]))
    return f"gate-reader {version}" + (f" (environment {tag})" if tag else "") + f", Python {python}"


def configure_check_config(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check a gate's configuration without running anything: every error at once, each with its key path "
        "and what is expected (the same checks 'gate-reader run' refuses to start on, the readers' driver keys "
        "included), and warnings for devices and files it names that do not exist yet. Exit 0 when the gate "
        f"would start (warnings allowed), {EXIT_CONFIG_ERRORS} when it has errors, 2 when the file cannot be read."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the gate's TOML configuration")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object: "config", "ok", "errors" and "warnings" (each {"key", "message"})')
    parser.set_defaults(func=run_check_config)


def reader_check(reader: ReaderConfig, gate_id: str) -> None:
    """The daemon's own check of a reader's driver keys and values: the source is built as
    ``run`` builds it (on mock pins, never started, nothing opened) and closed again.
    ConfigError naming the key, as ``run`` would refuse it."""
    from gpiozero.pins.mock import MockFactory

    from reader.daemon.sources import build_source

    factory = MockFactory()
    try:
        source = build_source(reader, lambda _presentation: None, gate_id=gate_id, pin_factory=factory)
        source.close()
    finally:
        factory.close()


def start_findings(config: Config, *, require_door: bool = True) -> list[Finding]:
    """What ``run`` refuses at its start beyond the config's keys and values, checked without
    opening anything: a config without [door]; the [door] pin factory's library must import in this environment (lgpio
    has wheels for 64-bit Pi OS on Python 3.11 and 3.12 only: on another Python, or another
    machine, the daemon stops with ``door.pin_factory: ... cannot load``). Starting the factory
    (claiming the GPIO chip) is left to ``run`` and ``diag``: it would take the pins."""
    from drivers.pins import PIN_FACTORIES

    if config.door is None:  # the daemon's first refusal (reader.daemon.daemon), in its words
        if not require_door:
            return []
        return [Finding("error", "door", "door: gate-reader run needs a [door] table (the pins it drives; "
                        '[door] pin_factory = "mock" for a simulated door)')]
    name = config.door.pin_factory
    module = PIN_FACTORIES.get(name, "").partition(":")[0]
    if not module:
        return []  # an unknown name is the config reader's error already
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return [Finding("error", "door.pin_factory",
                        f"door.pin_factory: pin factory {name!r} cannot load in this environment ({exc}): "
                        f"gate-reader run refuses to start; on a Pi, lgpio needs 64-bit Pi OS with Python 3.11 or "
                        "3.12 (or apt install python3-lgpio and a venv with --system-site-packages)")]
    return []


def check_gate_config(path: Path, *, require_door: bool = True) -> ConfigCheck:
    """check-config's whole result: the config reader's findings, each reader's driver keys as
    the daemon builds them (:func:`reader_check`), and :func:`start_findings`; so that it
    refuses what ``run`` refuses. diag's ``config`` row is the same, except that diag also
    serves a gate without a door (sync, clock, cache, the readers): ``require_door=False``."""
    from reader.gate.config_check import check_config

    result = check_config(path, reader_check)
    extra = [] if result.config is None else start_findings(result.config, require_door=require_door)
    if not extra:
        return result
    findings = (*[f for f in result.findings if f.level == "error"], *extra,
                *[f for f in result.findings if f.level == "warning"])
    return ConfigCheck(result.path, None, findings)


def run_check_config(args: argparse.Namespace) -> int:
    result = check_gate_config(args.config)
    if args.json:
        def items(level: str) -> list[dict[str, Any]]:
            return [{"key": f.key, "message": f.message} for f in result.findings if f.level == level]

        print(json.dumps({"config": str(result.path), "ok": not result.errors, "errors": items("error"),
                          "warnings": items("warning")}))
    else:
        for finding in result.findings:
            print(f"{finding.level}: {finding.message}")
        errors, warnings = len(result.errors), len(result.warnings)
        verdict = "the gate would start" if not errors else "the gate would NOT start"
        print(f"{result.path}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}: "
              f"{verdict}")
    return EXIT_CONFIG_ERRORS if result.errors else 0
