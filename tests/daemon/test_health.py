"""The daemon's stored health as the other processes read it: ``status`` (problems, marked
stale when old) and the upload heartbeat (the sources reach the centre)."""

from __future__ import annotations

import time
from pathlib import Path

from offline_cache.store import Store
from reader.daemon.health import write_health
from reader.gate.config import parse_config
from reader.gate.report import status_report
from reader.gate.upload import heartbeat

TEXT = ('[gate]\nid = "g"\n[cache]\npath = "{db}"\n[door]\npin_factory = "mock"\n'
        "[daemon]\nhealth_interval_s = 5\n")


def _health(at: float, up: bool = True) -> dict:
    return {"at": at, "sources": {"nfc": {"up": up, "down_since": None if up else at - 60,
                                          "last_error": None if up else "open: no NFC reader at usb", "reads": 3}},
            "door": {"state": "secured", "alarms": ["tamper"]}, "lockdown": False,
            "decisions": {"grant": 2, "deny": 1}, "policy_origin": "local", "pid": 42}


def test_stale_or_missing_daemon_health_and_down_sources_are_problems(tmp_path: Path) -> None:
    config = parse_config(TEXT.format(db=tmp_path / "c.db"))
    now = time.time()
    with Store.open(tmp_path / "c.db", create=True) as store:
        assert "daemon: it never stored its health (is gate-reader.service running?)" in \
            status_report(config, store, now)["problems"]
        assert write_health(store, _health(now - 2, up=False))
        report = status_report(config, store, now)
        assert report["daemon"]["stale"] is False and report["daemon"]["origin"] == "stored"
        assert any(p.startswith("source nfc down since") and "no NFC reader" in p for p in report["problems"])
        assert "door alarm: tamper" in report["problems"]
        write_health(store, _health(now - 100))
        report = status_report(config, store, now)
        assert report["daemon"]["stale"] is True
        assert "daemon: its health is 100.0 s old (not running, or stuck)" in report["problems"]


def test_the_upload_heartbeat_carries_the_daemons_sources_and_door(tmp_path: Path) -> None:
    config = parse_config(TEXT.format(db=tmp_path / "c.db"))
    now = time.time()
    with Store.open(tmp_path / "c.db", create=True) as store:
        write_health(store, _health(now - 1))
        beat = heartbeat(config, store, now)
    assert beat["sources"]["nfc"]["reads"] == 3
    assert beat["daemon"]["door"] == {"state": "secured", "alarms": ["tamper"]} and beat["daemon"]["stale"] is False
    # Without a daemon (a gate that only syncs) there is nothing to carry, and no problem.
    plain = parse_config('[gate]\nid = "g"\n[cache]\npath = "/tmp/none.db"\n')
    with Store.open(tmp_path / "d.db", create=True) as store:
        beat = heartbeat(plain, store, now)
        assert beat["sources"] == {} and beat["daemon"] is None
        assert not any(p.startswith("daemon") for p in status_report(plain, store, now)["problems"])
