"""A cache whose time floor a person edited into text (or a bad disk damaged), through the
commands a technician runs: ``status`` and ``diag clock`` refuse it with the key and the
recovery (never a traceback, never "no floor", which would trust a clock set back), and the
recovery they name, ``gate-reader sync``, writes the floor again."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import pytest

from tests.support.centre import run


def _cache(config: Path) -> Path:
    path = Path(tomllib.loads(config.read_text())["cache"]["path"])
    return path if path.is_absolute() else config.parent / path


@pytest.mark.parametrize("value", ["abc", -5, 1e300, "1800000000"])
def test_damaged_time_floor_is_refused_by_status_and_diag_and_repaired_by_sync(
        centre, value: object, caplog: pytest.LogCaptureFixture) -> None:
    config = Path(centre.config)
    assert run("sync", "--config", config)[0] == 0
    with sqlite3.connect(_cache(config)) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'time_floor'", (value,))
    code, out, err = run("status", "--config", config)
    assert code == 2 and "meta.time_floor holds" in err and "gate-reader sync" in err and "Traceback" not in err
    code, out, err = run("diag", "clock", "--config", config, "--json")
    result = json.loads(out)
    assert code == 1 and result["status"] == "FAIL" and "time floor cannot be read" in result["summary"]
    assert "meta.time_floor holds" in json.dumps(result) and "trusted" not in result.get("values", {})
    # the recovery named: a sync verifies the published list again and writes the floor
    centre.revoke("--uri", centre.uri, "--size", 1024, "--idx", 1, name="main")
    code, out, err = run("sync", "--config", config)
    assert code == 0, err
    assert any("meta.time_floor holds" in r.getMessage() and "until a new floor" in r.getMessage()
               for r in caplog.records)
    report = json.loads(run("status", "--config", config, "--json")[1])
    assert report["time_floor"] is not None and report["clock_trusted"] is True

