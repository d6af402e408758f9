"""reader.cli: the lazy command table, and the one place errors become a line and a status."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from reader import cli
from reader.cli import COMMANDS, Command, build_parser, main
from reader.errors import CommandFailed, ConfigError
from tests.support import REPO
from tests.support.centre import run

HEAVY = ("cv2", "numpy", "nfc", "serial", "zxingcpp", "segno", "tuf", "securesystemslib", "sqlite_utils", "urllib3")
PROBE = """
import json, sys
from reader.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r} or name.startswith("reader."))
sys.stderr.write("LOADED " + json.dumps(loaded) + "\\n")
"""


def _loaded(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    line = [entry for entry in done.stderr.splitlines() if entry.startswith("LOADED ")][-1]
    return json.loads(line.removeprefix("LOADED "))


@pytest.mark.parametrize("argv", [["--help"], ["verify", "--help"], ["verify", "--trust", "/nonexistent", "GP1:"]])
def test_a_command_imports_only_what_it_runs(argv: list[str]) -> None:
    loaded = _loaded(*argv)
    assert [name for name in loaded if name.split(".")[0] in HEAVY] == []
    other_commands = ("reader.cli.authority", "reader.cli.publish", "reader.cli.cache", "reader.cli.bench",
                      "reader.bench")
    assert [name for name in loaded if name.startswith(other_commands)] == []


def test_every_command_is_listed_and_filled_in_on_demand() -> None:
    listed = build_parser(load=[])
    (subparsers,) = [action for action in listed._actions if isinstance(action, argparse._SubParsersAction)]
    assert list(subparsers.choices) == list(COMMANDS)
    assert [choice.help for choice in subparsers._choices_actions] == [c.summary for c in COMMANDS.values()]
    assert all(not parser._actions[1:] for parser in subparsers.choices.values())  # only -h: nothing imported
    (full,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    assert all(parser.get_default("func") or parser._subparsers for parser in full.choices.values())


# A command of our own in the table, to drive the error handling with each kind of error.
def _configure_fake(parser: argparse.ArgumentParser) -> None:
    parser.description = "raises what it is told to"
    parser.add_argument("what", help="the error to raise")
    parser.set_defaults(func=_raise)


def _raise(args: argparse.Namespace) -> int:
    errors: dict[str, Exception] = {
        "config": ConfigError("fake.key: must be\n  a number"),
        "failed": CommandFailed("the collector said no", 3),
        "listed": ArithmeticError("not found"),
        "os": FileNotFoundError(2, "No such file or directory", "/x/y"),
        "other": KeyError("a defect"),
    }
    raise errors[args.what]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {**COMMANDS, "fake": Command("a test command", f"{__name__}:_configure_fake", (ArithmeticError, OSError))}
    monkeypatch.setattr(cli, "COMMANDS", table)


@pytest.mark.parametrize(("what", "code", "line"), [
    ("config", 2, "gate-reader fake: error: fake.key: must be a number"),  # one line, whatever the message
    ("failed", 3, "gate-reader fake: error: the collector said no"),  # the command's own status
    ("listed", 2, "gate-reader fake: error: not found"),  # a usage error this command names
    ("os", 2, "gate-reader fake: error: /x/y: No such file or directory"),  # a path, not [Errno 2]
])
def test_errors_become_one_line_and_their_exit_status_in_one_place(fake, what: str, code: int, line: str) -> None:
    assert run("fake", what) == (code, "", line + "\n")


def test_an_error_no_one_expected_is_not_disguised_as_a_usage_error(fake) -> None:
    with pytest.raises(KeyError, match="a defect"):
        main(["fake", "other"])
