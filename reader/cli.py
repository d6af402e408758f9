"""The ``gate-reader`` command: one entry point, a subcommand per job.

Logging is set up here and nowhere else. Two kinds of lines reach stderr:

- what a command says to its user, on a logger named ``gate-reader.COMMAND`` (one line per
  failure, at its level): ``gate-reader verify: error: time 'x' is neither ...``;
- the modules' own log records: ``gate-reader: warning: drivers.base: source cam: ...``.

When stderr is the journal (systemd sets ``JOURNAL_STREAM`` to its device and inode, and
sd-daemon(3) says to compare them with stderr's), each line starts with its syslog
priority instead (``<3>gate-reader verify: error: ...``, ``<4>drivers.base: ...``), so
journald files it at its level; on a terminal, a pipe or a file the text is plain.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
from collections.abc import Sequence
from typing import TextIO

from reader import authority_cli, bench, cache_cli, verify_cli

#: The loggers a command speaks to its user through: ``gate-reader.verify`` and so on.
COMMAND_LOGGER = "gate-reader"
#: The exit status when stdout was closed under us (``| head``): what a process killed by
#: SIGPIPE reports to a shell (128 + 13). Not 1, which verify uses for "deny".
EXIT_STDOUT_CLOSED = 141

# syslog priorities (sd-daemon(3)) so journald keeps each line's level.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def stderr_is_journal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stderr) is the journal's stream: ``JOURNAL_STREAM``
    names its ``device:inode``, and a child that inherited the variable but writes
    elsewhere (a terminal, a pipe, a file) must not print priority prefixes."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat((stream or sys.stderr).fileno())
    except (AttributeError, OSError, ValueError):  # no real file behind it (a test's StringIO)
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


class LineFormatter(logging.Formatter):
    """One record as the lines described in the module docstring; in the journal every
    line of a record (a traceback too) carries the priority, or journald would file the
    continuation lines at info."""

    def __init__(self, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)  # the message, and a traceback when there is one
        level = record.levelname.lower()
        if record.name == COMMAND_LOGGER or record.name.startswith(COMMAND_LOGGER + "."):
            text = f"{record.name.replace('.', ' ')}: {level}: {text}"
        elif self.journal:
            text = f"{record.name}: {text}"  # the journal shows the level itself
        else:
            text = f"{COMMAND_LOGGER}: {level}: {record.name}: {text}"
        if not self.journal:
            return text
        priority = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(priority + line for line in text.split("\n"))


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (as logging's own last-resort
    handler does), so a redirected or captured stderr gets the lines."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class LibraryQuiet(logging.Filter):
    """Libraries that talk too much for a gate's log, each held to its own floor:

    - nfcpy logs a line per reader search at INFO and raw APDUs, nonces included, at DEBUG.
      It passes at WARNING and above, at INFO only with -vv, never at DEBUG.
    - urllib3 warns of each connection retry; the job then reports the failure once, as its
      own line, so the retries pass only with -v (one failure, one message).

    A filter on the handler rather than logger levels, because nfcpy resets its logger's
    level when it is imported, which happens lazily, after this setup."""

    def __init__(self, verbose: int) -> None:
        super().__init__()
        self.floors = {
            "nfc": logging.INFO if verbose >= 2 else logging.WARNING,
            "urllib3": logging.WARNING if verbose >= 1 else logging.ERROR,
        }

    def filter(self, record: logging.LogRecord) -> bool:
        top = record.name.partition(".")[0]
        floor = self.floors.get(top)
        if floor is None:
            return True
        if top == "nfc" and record.levelno < logging.INFO:
            return False  # raw APDUs and nonces: never
        return record.levelno >= floor


def setup_logging(verbose: int = 0) -> None:
    """The process's stderr lines: WARNING, INFO at -v, DEBUG at -vv.

    The commands' own loggers (``gate-reader.*``) always get a handler: their lines are the
    command's output contract, like argparse's. The root logger gets one only when no one
    else configured it, as ``logging.basicConfig`` does: a program (or a test runner) that
    calls :func:`main` keeps its own logging. Calling this again (several commands in one
    process) replaces the handlers it made."""
    level = logging.WARNING - 10 * min(verbose, 2)
    formatter = LineFormatter(stderr_is_journal())
    commands = logging.getLogger(COMMAND_LOGGER)
    for old in [h for h in commands.handlers if isinstance(h, StderrHandler)]:
        commands.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(formatter)
    commands.addHandler(handler)
    commands.setLevel(level)
    commands.propagate = False  # printed once, by the handler above
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, StderrHandler)]
    if len(ours) != len(root.handlers):
        return  # configured by someone else
    for old in ours:
        root.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(LibraryQuiet(verbose))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate-reader",
        description="Offline GatePass verification for turnstiles and doors.",
        epilog="Run 'gate-reader COMMAND --help' for each command's options. "
        "Exit status: 0 success or grant, 1 deny or failure, 2 usage or configuration error, "
        f"{EXIT_STDOUT_CLOSED} standard output closed before everything was written.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output: -v info, -vv debug (nfcpy: warnings, info at -vv, never debug, "
                        "where it logs nonces)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify_cli.add_parser(commands)
    cache_cli.add_parser(commands)
    authority_cli.add_parser(commands)
    bench.add_parser(commands)
    return parser


def _stdout_closed() -> bool:
    """Whether stdout's reader went away: poll reports an error on a pipe with no reader.
    A BrokenPipeError from a socket of our own is a failure to report, not this."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    # Before parsing, so that a usage error a command reports through logging is printed.
    setup_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit, where a closed pipe is an "ignored" traceback
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # The reader of our output left (| head): nothing is wrong with the work, and
        # nothing more can be said on stdout. Point stdout at /dev/null so the interpreter's
        # own flush at exit does not fail again (the idiom of Python's signal docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_STDOUT_CLOSED


if __name__ == "__main__":
    sys.exit(main())
