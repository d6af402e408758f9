"""``gate-reader check-config`` and ``gate-reader --version``: what a site runs before and
after it changes a gate."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from reader.gate.config import ReaderConfig

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


def run_check_config(args: argparse.Namespace) -> int:
    from reader.gate.config_check import check_config

    result = check_config(args.config, reader_check)
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
