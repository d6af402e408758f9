"""gate-reader events: filters (reader, decision, kind, since) and --follow."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offline_cache.journal import Journal
from offline_cache.store import Store
from tests.support.centre import run

ROOT = Path(__file__).resolve().parents[2]


def _gate(tmp_path: Path) -> tuple[Path, Journal]:
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g1"\n[cache]\npath = "{tmp_path / "cache.db"}"\n')
    store = Store.open(tmp_path / "cache.db", create=True)
    return config, Journal(store)


def _decision(journal: Journal, reader: str, decision: str, at: float) -> int:
    return journal.append(time=at, kind="decision", reader=reader, decision=decision,
                          reason="granted" if decision == "grant" else "revoked")


def _seqs(out: str) -> list[int]:
    return [json.loads(line)["seq"] for line in out.splitlines()]


def test_events_filters_by_reader_decision_kind_and_since(tmp_path: Path) -> None:
    # "now" as the test runs, not as the module was imported: a whole suite takes minutes
    # between the two, and "--since 90s" would miss a record made "10 s ago" at import
    now = time.time()
    config, journal = _gate(tmp_path)
    _decision(journal, "lobby", "grant", now - 7200)  # 1
    _decision(journal, "garage", "deny", now - 3000)  # 2
    journal.append(time=now - 2000, kind="door", reason="door_opened")  # 3
    _decision(journal, "lobby", "deny", now - 60)  # 4
    _decision(journal, "garage", "grant", now - 10)  # 5
    args = ("events", "--config", config, "--json")
    assert _seqs(run(*args, "--reader", "lobby")[1]) == [1, 4]
    assert _seqs(run(*args, "--reader", "lobby", "--reader", "garage", "--decision", "deny")[1]) == [2, 4]
    assert _seqs(run(*args, "--kind", "door")[1]) == [3]
    assert _seqs(run(*args, "--since", "3")[1]) == [4, 5]  # a sequence number, as before
    assert _seqs(run(*args, "--since", "1h")[1]) == [2, 3, 4, 5]  # a span back from now
    assert _seqs(run(*args, "--since", "90s", "--decision", "grant")[1]) == [5]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2500))
    assert _seqs(run(*args, "--since", iso)[1]) == [3, 4, 5]


@pytest.mark.parametrize("since", ["yesterday", "2026-12-01T08:00:00", "-5m", "9" * 40])
def test_a_since_that_is_no_seq_time_or_span_is_a_usage_error(tmp_path: Path, since: str) -> None:
    config, _journal = _gate(tmp_path)
    code, out, err = run("events", "--config", config, "--since", since)
    assert code == 2 and out == "" and "--since" in err


_PENDING: dict[int, bytes] = {}  # per process: bytes read after its last whole line


def _lines(process: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    """Up to ``count`` lines within ``timeout``. Read from the pipe's descriptor, never through
    the file object: its readline() would buffer lines that select() then no longer reports,
    and the loop would wait out the timeout with them unread."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    pending = _PENDING.pop(process.pid, b"")
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        *whole, pending = pending.split(b"\n")
        lines += [line.decode() + "\n" for line in whole]
        if len(lines) >= count or time.monotonic() >= deadline:
            break
        if selector.select(timeout=0.1):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
    selector.close()
    extra, lines = lines[count:], lines[:count]
    _PENDING[process.pid] = "".join(extra).encode() + pending
    return lines


def test_events_follow_prints_new_records_as_they_are_appended_until_sigterm(tmp_path: Path) -> None:
    now = time.time()
    config, journal = _gate(tmp_path)
    _decision(journal, "lobby", "grant", now - 30)  # 1: shown at once
    _decision(journal, "garage", "grant", now - 20)  # 2: another reader, never shown
    process = subprocess.Popen([sys.executable, "-m", "reader", "events", "--config", str(config), "--json",
                                "--follow", "--reader", "lobby"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert _seqs("".join(_lines(process, 1, 20))) == [1]
        _decision(journal, "garage", "deny", now)  # 3
        _decision(journal, "lobby", "deny", now)  # 4
        assert _seqs("".join(_lines(process, 1, 10))) == [4]
        # more than one page between two polls: paged, none lost
        journal.append_many([{"time": now, "kind": "door", "reader": "lobby", "reason": "door_opened"}] * 1500)
        assert len(_lines(process, 1500, 60)) == 1500  # returns once they are there
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None and process.stderr.read() == b""
