"""The process's stderr lines, set up by the entry point (:func:`reader.cli.main`) and
nowhere else. Two kinds of lines reach stderr:

- what a command says to its user, on a logger named ``gate-reader.COMMAND`` (one line per
  failure, at its level): ``gate-reader verify: error: time 'x' is neither ...``;
- the modules' own log records: ``gate-reader: warning: drivers.base: source cam: ...``.

When stderr is the journal (systemd sets ``JOURNAL_STREAM`` to its device and inode, and
sd-daemon(3) says to compare them with stderr's), each line starts with its syslog
priority instead (``<3>gate-reader verify: error: ...``, ``<4>drivers.base: ...``), so
journald files it at its level; on a terminal, a pipe or a file the text is plain.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

#: The loggers a command speaks to its user through: ``gate-reader.verify`` and so on.
COMMAND_LOGGER = "gate-reader"

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


def command_logger(label: str) -> logging.Logger:
    """The logger a command (``verify``, ``bench nfc``) speaks to its user through."""
    return logging.getLogger(f"{COMMAND_LOGGER}.{label.replace(' ', '.')}")
