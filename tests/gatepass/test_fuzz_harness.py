"""The fuzz harness (scripts/fuzz_verifier.py) runs, reports in the agreed JSON line, turns
a crash into a hex dump, a crash file and exit status 1, and keeps and reports the slowest
inputs it finds with their decision times.

A later CI job and technicians rely on that contract, so it is tested here with a short
run of the built-in mutation engine (atheris is not a test dependency).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import REPO

SCRIPT = REPO / "scripts" / "fuzz_verifier.py"


def load_harness() -> ModuleType:
    """Import the script as a module (it is not in a package)."""
    spec = importlib.util.spec_from_file_location("fuzz_verifier_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_two_second_mutation_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "2", "--seed", "7", "--engine", "mutation"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"executions", "seconds", "crashes", "engine", "valid_first_seen_us", "slowest"}
    assert summary["engine"] == "mutation"
    assert summary["crashes"] == 0
    assert summary["executions"] > 0
    assert 2 <= summary["seconds"] < 10
    assert summary["valid_first_seen_us"] > 0
    slowest = summary["slowest"]
    assert 1 <= len(slowest) <= 5  # the default --keep-slowest
    for entry in slowest:
        assert set(entry) == {"sha256", "bytes", "route", "reason", "decision_us", "ratio"}
        assert entry["route"] in ("qr", "qr-zlib", "scanner", "nfc")
        assert entry["decision_us"] > 0
        assert entry["ratio"] == round(entry["decision_us"] / summary["valid_first_seen_us"], 2)
        assert entry["sha256"] in result.stderr  # listed there too, one line each
    assert [e["decision_us"] for e in slowest] == sorted((e["decision_us"] for e in slowest), reverse=True)
    assert len({entry["sha256"] for entry in slowest}) == len(slowest)
    assert list(tmp_path.iterdir()) == []  # no crash file, and slow inputs are saved only when asked


def test_help_documents_every_option() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in ("--seconds", "--seed", "--corpus", "--engine", "--replay", "crash", "--keep-slowest", "--slow-dir"):
        assert option in result.stdout


def test_a_crash_is_reported_saved_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = load_harness()

    def planted(verifier: object, data: bytes) -> None:
        raise IndexError("planted for the test")

    monkeypatch.setattr(harness, "execute", planted)
    monkeypatch.chdir(tmp_path)
    assert harness.main(["--seconds", "5", "--engine", "mutation"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["crashes"] == 1
    (crash_file,) = tmp_path.glob("crash-*.bin")
    assert crash_file.read_bytes().hex() in err
    assert "IndexError: planted for the test" in err


def test_replay_of_a_vector_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    harness = load_harness()
    seed = tmp_path / "seed.bin"
    seed.write_bytes(harness.load_verifier().seeds[0])
    assert harness.main(["--replay", str(seed)]) == 0
    out = capsys.readouterr().out
    assert "no crash" in out and "valid first-seen decision takes" in out
    for route in ("qr", "qr-zlib", "scanner", "nfc"):
        assert f"  {route} " in out


def test_slow_inputs_are_kept_reported_and_saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hostile seeds (the shapes of issue 8) are in the pool, so a short run finds slow
    inputs; --slow-dir keeps them as files that --replay takes."""
    harness = load_harness()
    slow_dir = tmp_path / "slow"
    args = ["--seconds", "3", "--seed", "1", "--engine", "mutation", "--keep-slowest", "3", "--slow-dir", str(slow_dir)]
    assert harness.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(summary["slowest"]) == 3
    saved = sorted(slow_dir.glob("slow-*.bin"))
    assert sorted(Path(entry["file"]) for entry in summary["slowest"]) == saved
    for entry in summary["slowest"]:
        data = Path(entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest()[:16] == entry["sha256"] and len(data) == entry["bytes"]
    assert harness.main(["--replay", str(saved[0])]) == 0
    assert "valid first-seen decision takes" in capsys.readouterr().out


def test_slowest_keeps_inputs_by_their_timed_again_median(monkeypatch: pytest.MonkeyPatch) -> None:
    """One slow run (a preempted decision) does not put an input on the list: its median
    over several runs does; and an input under the list's least median is not timed again."""
    harness = load_harness()
    medians = {b"steady-slow": 900.0, b"spiky": 100.0, b"medium": 500.0, b"fast": 50.0}
    timed: list[bytes] = []

    def time_route(_verifier: object, data: bytes, route: str, runs: int = 7) -> tuple[float, str]:
        timed.append(data)
        return medians[data], "malformed"

    monkeypatch.setattr(harness, "time_route", time_route)
    slowest = harness.Slowest(2, verifier=None)
    slowest.offer(600_000, b"medium", "nfc")
    slowest.offer(800_000, b"steady-slow", "qr-zlib")
    slowest.offer(950_000, b"spiky", "qr")  # one run of 950 us, but a median of 100 us
    slowest.offer(800_000, b"steady-slow", "qr-zlib")  # the same input again: held once
    slowest.offer(120_000, b"fast", "qr")  # under the least median kept (500 us)
    assert timed == [b"medium", b"steady-slow", b"spiky"]
    report = slowest.report(None, 100.0, None)
    assert [(entry["bytes"], entry["route"], entry["decision_us"], entry["ratio"]) for entry in report] == [
        (len(b"steady-slow"), "qr-zlib", 900.0, 9.0),
        (len(b"medium"), "nfc", 500.0, 5.0),
    ]
