"""The ``gate-reader`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from reader import authority_cli, bench, cache_cli, verify_cli

# syslog priority prefixes (sd-daemon(3)) so journald keeps each line's level.
_PRIORITY = {logging.DEBUG: "<7>", logging.INFO: "<6>", logging.WARNING: "<4>", logging.ERROR: "<3>",
             logging.CRITICAL: "<2>"}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _PRIORITY.get(record.levelno, "<6>") + super().format(record)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate-reader",
        description="Offline GatePass verification for turnstiles and doors.",
        epilog="Run 'gate-reader COMMAND --help' for each command's options. "
        "Exit status: 0 success or grant, 1 deny or failure, 2 usage or configuration error.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify_cli.add_parser(commands)
    cache_cli.add_parser(commands)
    authority_cli.add_parser(commands)
    bench.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, handlers=[handler])
    # nfcpy sets its own logger to INFO on import (a line per reader search); at DEBUG it
    # logs raw APDUs, nonces included, so it follows our level and never goes below INFO.
    logging.getLogger("nfc").setLevel(max(level, logging.INFO))
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
