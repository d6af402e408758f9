"""What the commands write on stderr (issue 8, item 16): syslog priority prefixes only when
stderr is the journal (``JOURNAL_STREAM`` names stderr's device and inode), plain text
otherwise; each failure one line at its level; nfcpy quiet below WARNING, never at DEBUG.

The commands run in child processes with stderr on a real file, so the check is the one
systemd's sd-daemon(3) describes: fstat(stderr) against ``JOURNAL_STREAM``.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reader.cli.logs import LibraryQuiet, stderr_is_journal
from tests.support import REPO as ROOT

TIME_ERROR = "time 'yesterday' is neither epoch seconds nor ISO 8601"


def run(args: list[str], tmp_path: Path, journal: str | None = None, code: str | None = None) -> tuple[int, str]:
    """``python -m reader ARGS`` (or ``python -c CODE``) with stderr on a file; ``journal``:
    None (no JOURNAL_STREAM), "stderr" (that file's device:inode) or a literal value."""
    err_path = tmp_path / f"stderr-{len(list(tmp_path.iterdir()))}.txt"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(err_path, "w+b") as err:
        if journal == "stderr":
            status = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
        elif journal is not None:
            env["JOURNAL_STREAM"] = journal
        argv = [sys.executable, "-c", code] if code is not None else [sys.executable, "-m", "reader", *args]
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT, timeout=120,
                              check=False)
    return done.returncode, err_path.read_text()


# -- the command's own failure line ----------------------------------------------------------

def test_failure_line_has_a_priority_prefix_only_in_the_journal(tmp_path: Path) -> None:
    args = ["verify", "--at", "yesterday", "GP1:x"]
    assert run(args, tmp_path, journal="stderr") == (2, f"<3>gate-reader verify: error: {TIME_ERROR}\n")
    assert run(args, tmp_path) == (2, f"gate-reader verify: error: {TIME_ERROR}\n")


def test_inherited_journal_stream_does_not_prefix_another_stderr(tmp_path: Path) -> None:
    # A child of a service inherits JOURNAL_STREAM but may write to a file or a terminal.
    other = tmp_path / "elsewhere"
    other.write_text("")
    status = os.stat(other)
    for value in (f"{status.st_dev}:{status.st_ino}", "not-a-stream", "12:", ""):
        code, err = run(["verify", "--at", "yesterday", "GP1:x"], tmp_path, journal=value)
        assert (code, err) == (2, f"gate-reader verify: error: {TIME_ERROR}\n"), value


@pytest.mark.parametrize("args", [
    ["authority", "issue", "--issuer-key", "/nonexistent/issuer.key", "--issuer-cert", "/nonexistent/i.pem",
     "--sub", "E1", "--days", "1", "--out", "/nonexistent/x.cwt"],
    ["authority", "issue", "--sub", "E1"],  # an argparse usage error of the authority's one-line parser
    ["verify", "--jsonl", "GP1:x"],
])
def test_each_failure_is_one_line_at_error_level(tmp_path: Path, args: list[str]) -> None:
    code, err = run(args, tmp_path, journal="stderr")
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith(f"<3>gate-reader {args[0]}: error: "), line
    code, err = run(args, tmp_path)
    [line] = err.splitlines()
    assert line.startswith(f"gate-reader {args[0]}: error: "), line


# -- the modules' log records ----------------------------------------------------------------

SNIPPET = """
import logging
from reader.cli.logs import setup_logging
setup_logging({verbose})
logging.getLogger("drivers.base").warning("source cam: device lost (%s)", "gone")
logging.getLogger("drivers.base").info("source cam: device open")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("reader.cli.verify").exception("a failure with its traceback")
"""


def test_module_records_are_plain_on_a_terminal_and_prefixed_line_by_line_in_the_journal(tmp_path: Path) -> None:
    _, plain = run([], tmp_path, code=SNIPPET.format(verbose=0))
    lines = plain.splitlines()
    assert lines[0] == "gate-reader: warning: drivers.base: source cam: device lost (gone)"
    assert lines[1] == "gate-reader: error: reader.cli.verify: a failure with its traceback"
    assert lines[2] == "Traceback (most recent call last):" and lines[-1] == "ZeroDivisionError: division by zero"
    assert "device open" not in plain  # INFO only at -v
    assert not any(line.startswith("<") for line in lines)

    _, journal = run([], tmp_path, journal="stderr", code=SNIPPET.format(verbose=1))
    lines = journal.splitlines()
    assert lines[0] == "<4>drivers.base: source cam: device lost (gone)"
    assert lines[1] == "<6>drivers.base: source cam: device open"
    assert lines[2] == "<3>reader.cli.verify: a failure with its traceback"
    # journald reads each line on its own: a traceback's lines keep the error priority
    assert all(line.startswith("<3>") for line in lines[3:]) and lines[-1] == "<3>ZeroDivisionError: division by zero"


# -- nfcpy -----------------------------------------------------------------------------------

NFC_SNIPPET = """
import logging
from reader.cli.logs import setup_logging
setup_logging({verbose})
import nfc  # sets its logger to INFO on import, after our set-up, as a lazy import does
logging.getLogger("nfc").setLevel(logging.DEBUG)  # even when asked for everything
logging.getLogger("nfc.clf").debug("raw APDU 80100000 with a nonce")
logging.getLogger("nfc.clf").info("searching for reader on path udp")
logging.getLogger("nfc.clf").warning("reader went away")
"""


@pytest.mark.parametrize(("verbose", "shown"), [(0, ["reader went away"]), (1, ["reader went away"]),
                                                (2, ["searching for reader", "reader went away"])])
def test_nfcpy_is_quiet_below_warning_and_never_logs_apdus(tmp_path: Path, verbose: int, shown: list[str]) -> None:
    _, err = run([], tmp_path, code=NFC_SNIPPET.format(verbose=verbose))
    assert [line.split(": ")[-1].split(" on path")[0] for line in err.splitlines()] == shown
    assert "APDU" not in err


def test_bench_nfc_prints_no_nfcpy_chatter(tmp_path: Path) -> None:
    # It used to write two nfcpy INFO lines per tap ("searching for reader", "using ...").
    code, err = run(["-v", "bench", "nfc", "--taps", "10", "--json"], tmp_path)
    assert code == 0, err
    assert not [line for line in err.splitlines() if ": nfc." in line or "searching for reader" in line], err


def test_nfc_filter_refuses_debug_even_at_the_highest_verbosity() -> None:
    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "m", None, None)

    quiet = LibraryQuiet(verbose=5)
    assert not quiet.filter(record("nfc.clf", logging.DEBUG))
    assert quiet.filter(record("nfc.clf", logging.INFO))
    assert quiet.filter(record("nfcx", logging.DEBUG))  # another library that merely starts with "nfc"


def test_urllib3_retry_warnings_pass_only_when_asked_for() -> None:
    # A sync that cannot connect is reported once by the command; urllib3 warns of each
    # retry before that, which is detail for -v.
    retry = logging.LogRecord("urllib3.connectionpool", logging.WARNING, __file__, 1, "Retrying", None, None)
    assert not LibraryQuiet(verbose=0).filter(retry)
    assert LibraryQuiet(verbose=1).filter(retry)
    failed = logging.LogRecord("urllib3.connectionpool", logging.ERROR, __file__, 1, "failed", None, None)
    assert LibraryQuiet(verbose=0).filter(failed)


# -- the journal test itself -----------------------------------------------------------------

def test_journal_stream_must_name_this_very_stream(tmp_path: Path, monkeypatch) -> None:
    with open(tmp_path / "a", "w") as first, open(tmp_path / "b", "w") as second:
        status = os.fstat(first.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        assert stderr_is_journal(first)
        assert not stderr_is_journal(second)
        assert not stderr_is_journal(io.StringIO())  # no file behind it
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}:x")
        assert not stderr_is_journal(first)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not stderr_is_journal(first)
