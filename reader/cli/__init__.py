"""The ``gate-reader`` command: one entry point, a subcommand per job.

Each command lives in its own module of this package and is named in :data:`COMMANDS` as
``module:function`` (like ``drivers/registry.py``): the function fills in the command's
parser, and its module (with what it imports: TUF, SQLite, OpenCV, nfcpy...) is imported
only when that command runs, or when every command's help is wanted. ``gate-reader verify``
therefore never imports the sync's, the authority's or the benchmarks' libraries.

Errors are turned into the command's one error line (``gate-reader CMD: error: ...``) and
its exit status here and nowhere else (:func:`_run`): configuration errors exit 2 for every
command, :class:`reader.errors.CommandFailed` carries a command's own status for its
failures. Logging is set up here too (:mod:`reader.cli.logs`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from offline_cache.errors import CacheError
from reader.cli.logs import command_logger, setup_logging
from reader.errors import CommandFailed, ConfigError
from reader.gatepass.errors import AuthorityError, TrustStoreError

#: The exit status when stdout was closed under us (``| head``): what a process killed by
#: SIGPIPE reports to a shell (128 + 13). Not 1, which verify uses for "deny".
EXIT_STDOUT_CLOSED = 141
#: Usage and configuration errors, for every command (argparse uses the same status).
EXIT_USAGE = 2
#: Errors that are a wrong setting, option or file whatever the command.
CONFIG_ERRORS: tuple[type[Exception], ...] = (ConfigError, TrustStoreError)


@dataclass(frozen=True)
class Command:
    """One subcommand: its line in ``gate-reader --help``, the ``module:function`` that fills
    in its parser (and sets ``func``), and the further exceptions that count as a usage or
    configuration error for it (exit 2, one line) beside :data:`CONFIG_ERRORS`."""

    summary: str
    target: str
    usage_errors: tuple[type[Exception], ...] = ()


# The cache commands report a cache that cannot be used (missing, corrupt, locked) as a
# configuration error, as they did before this table: exit 2 with the file named.
_CACHE = (CacheError,)

COMMANDS: dict[str, Command] = {
    "verify": Command("decide grant or deny for one credential and say why", "reader.cli.verify:configure",
                      (CacheError, ValueError)),
    "sync": Command("fetch signed revocation lists through TUF into the offline cache",
                    "reader.cli.cache:configure_sync", _CACHE),
    "upload": Command("send the event journal to the collector", "reader.cli.cache:configure_upload", _CACHE),
    "gate-key": Command("make the gate's Ed25519 key (at install) and print its public key",
                        "reader.cli.cache:configure_gate_key", _CACHE),
    "events": Command("print the event journal", "reader.cli.cache:configure_events", _CACHE),
    "status": Command("what the gate's cache holds and how fresh it is", "reader.cli.cache:configure_status",
                      _CACHE),
    "authority": Command("test issuer and holder: keys, credentials, QR/NFC presentations, lists",
                         "reader.cli.authority:configure", (AuthorityError, ValueError, OSError)),
    "run": Command("run the gate daemon: readers, decisions, door", "reader.cli.run:configure_run", _CACHE),
    "lockdown": Command("set or end a lockdown through the running daemon", "reader.cli.run:configure_lockdown"),
    "bench": Command("measure speed figures and print them", "reader.cli.bench:configure"),
    "demo": Command("run the daemon on simulated hardware through a scenario, narrated",
                    "reader.cli.demo:configure"),
    "diag": Command("diagnostics at the gate: relay, leds, buzzer, inputs, nfc, camera, scanner, wiegand, clock, "
                    "cache, sync, selftest", "reader.cli.diag:configure", _CACHE),
    "check-config": Command("check a gate's configuration: every error at once, with its key path",
                            "reader.cli.ops:configure_check_config"),
}


def _target(command: Command) -> Callable[[argparse.ArgumentParser], None]:
    module_name, _, function = command.target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line. Each command in ``load`` (every command when None) gets its
    own options, which imports its module; the others are listed with their summary only,
    which is all ``gate-reader --help`` shows of them."""
    parser = argparse.ArgumentParser(
        prog="gate-reader",
        description="Offline GatePass verification for turnstiles and doors.",
        epilog="Run 'gate-reader COMMAND --help' for each command's options. "
        f"Exit status: 0 success or grant, 1 deny or failure, {EXIT_USAGE} usage or configuration error, "
        f"{EXIT_STDOUT_CLOSED} standard output closed before everything was written.",
    )
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the program's version (and the installed environment's) and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output: -v info, -vv debug (nfcpy: warnings, info at -vv, never debug, "
                        "where it logs nonces)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.summary)
        if load is None or name in load:
            _target(command)(sub)
    return parser


def _version() -> str:
    from reader.cli.ops import version_text

    return version_text()


def _chosen(argv: Sequence[str]) -> list[str]:
    """The command named in ``argv`` (the first word that is not an option: the only
    top-level options, -v and -h, take no value), as the list of commands to load."""
    for word in argv:
        if word == "--":
            break
        if not word.startswith("-"):
            return [word] if word in COMMANDS else []
    return []


def _stdout_closed() -> bool:
    """Whether stdout's reader went away: poll reports an error on a pipe with no reader.
    A BrokenPipeError from a socket of our own is a failure to report, not this."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def error_text(exc: BaseException) -> str:
    """An error as its one line: ``path: reason`` for an OSError (not Python's ``[Errno 2]``
    repr), the message otherwise, its whitespace (line breaks included) made single spaces."""
    if isinstance(exc, OSError):
        text = f"{exc.filename}: {exc.strerror or exc}" if exc.filename is not None else str(exc.strerror or exc)
    else:
        text = str(exc)
    return " ".join(text.split())


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; every error it reports on purpose becomes its one error line
    (``gate-reader CMD: error: ...``, on the command's logger) and its exit status."""
    label = getattr(args, "label", args.command)
    usage = CONFIG_ERRORS + COMMANDS[args.command].usage_errors
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        raise  # stdout closed under us (| head): main() decides, whatever the command's OSErrors
    except CommandFailed as exc:
        command_logger(label).error("%s", error_text(exc))
        return exc.code
    except usage as exc:
        command_logger(label).error("%s", error_text(exc))
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Before parsing, so that a usage error a command reports through logging is printed.
    setup_logging()
    parser = build_parser(_chosen(argv))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        code = _run(args)
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
