"""``gate-reader demo`` as an end-to-end test: the real daemon on simulated hardware, every
step checked by the demo against what the daemon did; here checked again, independently,
from the journal the daemon left behind."""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from offline_cache.journal import Journal
from offline_cache.store import Store
from reader.demo import scenario
from reader.demo.scenario import Demo

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_every_step_and_the_journal_shows_the_daemon_decided(tmp_path: Path) -> None:
    """The README's main job as a user runs it (``bash scripts/demo.sh``, here ``--fast``), from
    another folder than the clone with a relative ``--out``: the output lands in the caller's
    folder, and the relative path is never doubled in the gate's config (it once was,
    ``demo-out/gate/demo-out/centre/...``, and the demo stopped at its first sync)."""
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), "--fast", "--out", "rel-out"], cwd=caller,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Demo complete" in done.stdout
    out = caller / "rel-out"
    assert not (out / "gate" / "rel-out").exists() and not (ROOT / "rel-out").exists()
    config = tomllib.loads((out / "gate" / "gate.toml").read_text())
    assert Path(config["sync"]["root"]).is_absolute() and Path(config["sync"]["root"]).is_file()
    with Store.open(out / "gate" / "cache.db", readonly=True) as store:
        rows = Journal(store).records()
    assert all(ok for _record, ok in rows)
    decisions = [(r.reader, r.decision, r.reason) for r, _ok in rows if r.kind == "decision"]
    assert decisions == [
        ("lobby-camera", "grant", "granted"), ("lobby-nfc", "grant", "granted"),
        ("lobby-scanner", "deny", "replayed"), ("lobby-scanner", "deny", "revoked"),
        ("lobby-nfc", "deny", "expired"), ("garage-wiegand", "grant", "granted"),
        ("garage-wiegand", "deny", "not_authorized"),
    ]
    door = [r.reason for r, _ok in rows if r.kind == "door"]
    for event in ("released_by_exit", "door_held_open", "held_open_cleared", "door_forced", "fire_release",
                  "fire_cleared"):
        assert event in door
    assert rows[-1][0].reason == "daemon_stopped"
    # What the demo printed is what the journal holds: each decision's record number.
    for record, _ok in rows:
        if record.kind == "decision":
            assert f"journal #{record.seq}" in done.stdout


def test_a_step_the_daemon_decides_otherwise_fails_the_demo_naming_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The centre lists another badge than the one swiped: the daemon says unknown_card, and
    # the demo, which expects the night grant, must stop there with exit status 1.
    monkeypatch.setattr(scenario, "BADGE_TEXT", "W26:090:00325")
    stream = io.StringIO()
    assert Demo(tmp_path / "out", fast=True, stream=stream).run() == 1
    text = stream.getvalue()
    assert "FAILED at step 7" in text and "unknown_card" in text, text
    assert "Demo complete" not in text


def test_the_demo_never_empties_a_folder_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    done = subprocess.run([sys.executable, "-m", "reader", "demo", "--fast", "--out", str(mine)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "earlier demo did not make" in done.stderr, done.stderr
    assert (mine / "thesis.txt").read_text() == "years of work"
    (tmp_path / "file").write_text("x")
    done = subprocess.run([sys.executable, "-m", "reader", "demo", "--out", str(tmp_path / "file")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "is not a folder" in done.stderr
