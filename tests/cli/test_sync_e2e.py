"""The centre revokes, the gate syncs over HTTP on loopback, and the gate denies: the whole
distribution path through the real commands (publish, revoke, sync, verify --config,
status), with the repository served by a real HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

from reader.gatepass.authority import Holder
from tests.support.centre import URI, code_for, run


def test_revocation_reaches_the_gate(centre) -> None:
    config = str(centre.config)
    code, out, err = run("sync", "--config", config)
    assert code == 0, err
    assert "trust/issuers.pem" in out and "status/main.cwt" in out

    holder = Holder.generate("ES256")
    code, out, err = run("verify", "--config", config, "--json", code_for(centre.issuer, holder, 42))
    assert code == 0, out + err
    assert json.loads(out)["clock_trusted"] is True

    code, out, err = run("authority", "revoke", "--repo", str(centre.repo), *centre.issuer_args,
                         "--list", "main", "--idx", "42")
    assert code == 0, err
    assert run("sync", "--config", config)[0] == 0
    code, out, _ = run("verify", "--config", config, code_for(centre.issuer, holder, 42))
    assert code == 1 and "revoked" in out
    # Others on the same list still pass.
    assert run("verify", "--config", config, code_for(centre.issuer, holder, 43))[0] == 0

    code, out, _ = run("status", "--config", config, "--json")
    report = json.loads(out)
    assert code == 0
    assert [entry["uri"] for entry in report["status_lists"]] == [URI]
    assert report["clock_trusted"] and report["sync"]["last_error"] is None
    assert len(report["trust_anchors"]) == 1


def test_a_sync_with_nothing_new_fetches_no_target(centre) -> None:
    config = str(centre.config)
    assert run("sync", "--config", config)[0] == 0
    server = centre.server
    server.requests.clear()
    code, out, _ = run("sync", "--config", config)
    assert code == 0 and "downloaded nothing" in out
    assert not [path for path in server.requests if "/targets/" in path], server.requests


def test_server_gone_keeps_the_data_and_says_why(centre) -> None:
    config = str(centre.config)
    assert run("sync", "--config", config)[0] == 0
    centre.server.stop()
    code, _, err = run("sync", "--config", config)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "sync" in err
    code, out, _ = run("status", "--config", config, "--json")
    report = json.loads(out)
    assert report["status_lists"] and report["sync"]["last_error"]
    assert code == 1 and [p for p in report["problems"] if p.startswith("sync failing")] == report["problems"]
    holder = Holder.generate("EdDSA")
    assert run("verify", "--config", config, code_for(centre.issuer, holder, 7))[0] == 0


def test_missing_or_corrupt_cache_is_named(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\n[cache]\npath = "{db}"\n')
    code, _, err = run("verify", "--config", str(config), "GP1:x")
    assert code == 2 and str(db) in err
    db.write_bytes(b"this is not a database" * 100)
    code, _, err = run("verify", "--config", str(config), "GP1:x")
    assert code == 2 and str(db) in err
    code, _, err = run("status", "--config", str(config))
    assert code == 2 and str(db) in err
