"""What the gate reports about itself (status, events, the heartbeat) when its cache holds
values no date can show: a validly signed list with exp in the year 10000, journal rows
edited by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path

from offline_cache.journal import Journal
from offline_cache.store import Store, SyncUpdate
from reader.gate.config import load_config
from reader.gate.upload import heartbeat
from reader.gatepass.authority import Issuer, build_status_list
from tests.support.centre import URI, run

YEAR_10000 = 253_402_300_800 + 86_400


def _gate(tmp_path: Path) -> Path:
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "g"\n[cache]\npath = "cache.db"\n')
    return config


def test_a_list_expiring_past_the_year_9999_is_reported(tmp_path: Path) -> None:
    config = _gate(tmp_path)
    issuer = Issuer.generate("ES256")
    now = int(time.time())
    token = build_status_list(issuer, uri=URI, size=8, values={}, iat=now - 10, exp=YEAR_10000)
    with Store.open(tmp_path / "cache.db", create=True) as store:
        store.apply_sync(SyncUpdate(trust_pem=issuer.certificate_pem, status=[(URI, now - 10, YEAR_10000, token)],
                                    legacy=None, tuf_versions={}, time_floor=None, at=now))
    _code, out, _err = run("status", "--config", str(config), "--json")
    report = json.loads(out)
    (entry,) = report["status_lists"]
    assert entry["exp"] == f"{YEAR_10000} (not a time between 1970 and 9999)" and not entry["stale"]
    _code, out, err = run("status", "--config", str(config))
    assert f"list {URI}" in out and "Traceback" not in err
    with Store.open(tmp_path / "cache.db") as store:
        beat = heartbeat(load_config(config), store, now)
    assert "heartbeat_error" not in beat and beat["lists"][0]["uri"] == URI and beat["problems"] == []


def test_edited_journal_rows_are_listed_and_flagged(tmp_path: Path) -> None:
    config = _gate(tmp_path)
    now = time.time()
    with Store.open(tmp_path / "cache.db", create=True) as store:
        Journal(store).append_many([{"time": now + i, "kind": "decision", "subject": f"E{i}"} for i in range(4)])
        store.connection.execute("UPDATE journal SET time = 1e20 WHERE seq = 2")
        store.connection.execute("UPDATE journal SET time = 'abc', detail = x'0102' WHERE seq = 3")
    code, out, err = run("events", "--config", str(config), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["chain_ok"] for row in rows] == [True, False, False, True]
    assert rows[1]["time"] == "1e+20 (not a time between 1970 and 9999)"
    assert rows[2]["time"] == "'abc' (not a number of seconds)" and rows[2]["detail"] == "b'\\x01\\x02'"
    code, out, err = run("events", "--config", str(config))
    assert code == 0 and len(out.splitlines()) == 4 and "False" in out.splitlines()[1]
