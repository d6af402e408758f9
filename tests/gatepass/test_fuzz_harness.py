"""The fuzz harness (scripts/fuzz_verifier.py) runs, reports in the agreed JSON line, and
turns a crash into a hex dump, a crash file and exit status 1.

A later CI job and technicians rely on that contract, so it is tested here with a short
run of the built-in mutation engine (atheris is not a test dependency).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent.parent / "scripts" / "fuzz_verifier.py"


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
    assert set(summary) == {"executions", "seconds", "crashes", "engine"}
    assert summary["engine"] == "mutation"
    assert summary["crashes"] == 0
    assert summary["executions"] > 0
    assert 2 <= summary["seconds"] < 10
    assert list(tmp_path.iterdir()) == []  # no crash file


def test_help_documents_every_option() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in ("--seconds", "--seed", "--corpus", "--engine", "--replay", "crash"):
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
    assert "no crash" in capsys.readouterr().out
