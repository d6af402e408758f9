"""The offline cache through the gate's commands: sync faults that are GatePass's (not
TUF's) to catch, starting empty, the staleness policy, and the journal's upload and
listing against a real collector on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from offline_cache.journal import Journal
from offline_cache.publish import Repository
from offline_cache.store import Store
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential
from tests.support.centre import URI, code_for, run
from tests.support.collector import Collector


def _status_of(config: str) -> dict:
    code, out, err = run("status", "--config", config, "--json")
    report = json.loads(out)
    assert code == (1 if report["problems"] else 0), err
    return report


def test_one_bad_status_list_does_not_block_the_others(centre) -> None:
    config = str(centre.config)
    assert run("sync", "--config", config)[0] == 0
    # Beside the main list, the centre publishes a list whose iat is an hour ahead (spec 3:
    # ignored as if absent), then revokes index 42 on the main list.
    ahead = "https://status.example.gov/lists/ahead"
    repo = Repository.open(centre.repo)
    repo.put_target("status/ahead.cwt", build_status_list(centre.issuer, uri=ahead, size=8, values={},
                                                          iat=int(time.time()) + 3600))  # fmt: skip
    repo.publish()
    code, _, err = run("authority", "revoke", "--repo", str(centre.repo), *centre.issuer_args,
                       "--list", "main", "--idx", "42")  # fmt: skip
    assert code == 0, err
    code, out, err = run("sync", "--config", config)
    assert code == 0 and "stored " + URI in out and "ignored 1" in out
    assert err.strip().splitlines() == [err.strip()] and "status/ahead.cwt" in err and "ahead of the clock" in err
    holder = Holder.generate("ES256")
    code, out, _ = run("verify", "--config", config, code_for(centre.issuer, holder, 42))
    assert code == 1 and "revoked" in out  # the revocation reached the gate
    report = _status_of(config)
    assert [entry["uri"] for entry in report["status_lists"]] == [URI]
    assert report["sync"]["last_error"] is None and report["sync"]["ignored"][0]["target"] == "status/ahead.cwt"
    assert [p for p in report["problems"] if "status/ahead.cwt" in p and "ahead of the clock" in p]
    # Once the centre withdraws the bad list, the next sync has nothing to ignore.
    repo = Repository.open(centre.repo)
    repo.remove_target("status/ahead.cwt")
    repo.publish()
    assert run("sync", "--config", config)[0] == 0
    assert _status_of(config)["problems"] == []


def test_a_list_signed_by_an_unknown_issuer_is_ignored_and_named(centre) -> None:
    config = str(centre.config)
    assert run("sync", "--config", config)[0] == 0
    held = _status_of(config)["status_lists"]
    stranger = Issuer.generate("ES256")
    repo = Repository.open(centre.repo)
    repo.put_target("status/main.cwt", build_status_list(stranger, uri=URI, size=8, values={}, iat=int(time.time())))
    repo.publish()
    code, _, err = run("sync", "--config", config)
    assert code == 0 and "status/main.cwt" in err and "not trusted" in err and len(err.strip().splitlines()) == 1
    report = _status_of(config)
    # The held list is unchanged (its age has moved on by the time of the second report).
    assert _without_age(report["status_lists"]) == _without_age(held)
    assert any("status/main.cwt" in problem and "not trusted" in problem for problem in report["problems"])


def _without_age(lists: list[dict]) -> list[dict]:
    return [{key: value for key, value in entry.items() if key != "age_s"} for entry in lists]


def test_a_list_with_an_older_iat_is_ignored_and_the_newer_kept(centre) -> None:
    config = str(centre.config)
    assert run("sync", "--config", config)[0] == 0
    repo = Repository.open(centre.repo)
    old = build_status_list(centre.issuer, uri=URI, size=1024, values={42: 1}, iat=int(time.time()) - 3600)
    repo.put_target("status/main.cwt", old)
    repo.publish()
    code, _, err = run("sync", "--config", config)
    assert code == 0 and "older than the held list" in err
    assert any("older than the held list" in problem for problem in _status_of(config)["problems"])
    # The newer list (nothing revoked) is still what the gate decides with.
    holder = Holder.generate("ES256")
    assert run("verify", "--config", config, code_for(centre.issuer, holder, 42))[0] == 0


def _gate_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\ntrust = "issuer.pem"\n[cache]\npath = "db/cache.db"\n{extra}')
    return config


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_a_read_only_check_never_changes_a_corrupt_cache(tmp_path: Path) -> None:
    issuer = Issuer.generate("EdDSA")
    issuer.save(tmp_path / "issuer.key", tmp_path / "issuer.pem")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "cache.db").write_bytes(b"\x00garbage" * 512)
    before = _files(tmp_path / "db")
    config = _gate_config(tmp_path)
    holder = Holder.generate("EdDSA")
    now = int(time.time())
    with_status = holder.present_qr(issue_credential(issuer, sub="E1", iat=now - 9, exp=now + 99, holder=holder,
                                                     status=(URI, 1)), iat=now)
    code, _, err = run("verify", "--config", str(config), with_status)
    assert code == 2 and "cache.db" in err  # refused: the config does not say to start empty

    config = _gate_config(tmp_path, "start_empty = true\n")
    code, out, _ = run("verify", "--config", str(config), "--json", with_status)
    assert code == 1 and json.loads(out)["reason"] == "status_unknown"
    plain = holder.present_qr(issue_credential(issuer, sub="E2", iat=now - 9, exp=now + 99, holder=holder), iat=now)
    assert run("verify", "--config", str(config), plain)[0] == 0  # [gate] trust stands in meanwhile
    for command in ("status", "events"):
        code, _, err = run(command, "--config", str(config))
        assert code == 2 and "cache.db" in err
    assert _files(tmp_path / "db") == before, "a read-only check left the cache as it was"


def test_the_sync_moves_a_corrupt_cache_aside_only_when_told_to(centre) -> None:
    config = centre.config
    db = Path(config.read_text().split('path = "')[1].split('"')[0])
    db.parent.mkdir()
    db.write_bytes(b"\x00garbage" * 512)
    code, _, err = run("sync", "--config", str(config))
    assert code == 2 and str(db) in err and db.read_bytes() == b"\x00garbage" * 512
    config.write_text(config.read_text().replace("[cache]\n", "[cache]\nstart_empty = true\n"))
    code, _, err = run("sync", "--config", str(config))
    assert code == 0, err
    (aside,) = db.parent.glob("cache.db.bad-*")
    assert aside.read_bytes() == b"\x00garbage" * 512, "the unusable file is kept aside as evidence"
    assert [entry["uri"] for entry in _status_of(str(config))["status_lists"]] == [URI]


def _store_with_stale_list(tmp_path: Path, extra: str = "") -> tuple[Path, Issuer, Holder, int]:
    issuer = Issuer.generate("ES256")
    issuer.save(tmp_path / "issuer.key", tmp_path / "issuer.pem")
    config = _gate_config(tmp_path, extra)
    now = int(time.time())
    token = build_status_list(issuer, uri=URI, size=8, values={}, iat=now - 100_000)
    from offline_cache.store import SyncUpdate

    with Store.open(tmp_path / "db" / "cache.db", create=True) as store:
        store.apply_sync(SyncUpdate(trust_pem=issuer.certificate_pem, status=[(URI, now - 100_000, None, token)],
                                    legacy=None, tuf_versions={}, time_floor=None, at=now))
    return config, issuer, Holder.generate("ES256"), now


def test_stale_list_denies_by_default(tmp_path: Path) -> None:
    config, issuer, holder, now = _store_with_stale_list(tmp_path)
    text = holder.present_qr(issue_credential(issuer, sub="E", iat=now - 9, exp=now + 99, holder=holder,
                                              status=(URI, 1)), iat=now)
    code, out, _ = run("verify", "--config", str(config), "--json", text)
    assert code == 1 and json.loads(out)["reason"] == "status_stale"


def test_stale_list_allowed_by_policy_but_never_with_an_untrusted_clock(tmp_path: Path) -> None:
    config, issuer, holder, now = _store_with_stale_list(tmp_path, '[policy]\non_stale = "allow"\n')
    text = holder.present_qr(issue_credential(issuer, sub="E", iat=now - 9, exp=now + 999_999, holder=holder,
                                              status=(URI, 1)), iat=now)
    code, out, _ = run("verify", "--config", str(config), "--json", text)
    result = json.loads(out)
    assert code == 0 and result["warnings"]
    with Store.open(tmp_path / "db" / "cache.db") as store:
        store.raise_time_floor(now + 10_000, "test")  # the system clock is now far behind the floor
    code, out, _ = run("verify", "--config", str(config), "--json", text)
    result = json.loads(out)
    assert code == 1 and result["reason"] == "clock_untrusted" and result["clock_trusted"] is False


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(tls=False) as running:
        yield running


def test_journal_upload_and_listing(tmp_path: Path, collector: Collector) -> None:
    port = collector.port
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g7"\n[cache]\npath = "db/cache.db"\n'
                      f'[upload]\nurl = "http://127.0.0.1:{port + 1 if port < 65535 else 1}/events"\nbatch = 40\n')
    with Store.open(tmp_path / "db" / "cache.db", create=True) as store:
        journal = Journal(store)
        for i in range(100):
            journal.append(time=time.time(), kind="decision", reader="lobby", decision="grant", reason="granted",
                           subject=f"E{i}", credential_hash=f"{i:016x}")
    code, _, err = run("upload", "--config", str(config))  # nobody listens there
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert _status_of(str(config))["journal"]["unsent"] == 100

    config.write_text(config.read_text().replace(f":{port + 1 if port < 65535 else 1}/", f":{port}/"))
    code, out, err = run("upload", "--config", str(config))
    assert code == 0, err
    ids = collector.record_ids()  # each distinct id once; a record sent twice is counted in duplicates
    assert len(ids) == 100 and collector.duplicates == 0 and ids[0].startswith("g7:")
    heartbeats = collector.heartbeats()
    assert heartbeats and heartbeats[-1]["data"]["chain_head"]["seq"] == 100
    assert _status_of(str(config))["journal"]["unsent"] == 0

    code, out, _ = run("events", "--config", str(config), "--json", "--since", "95")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["seq"] for line in lines] == [96, 97, 98, 99, 100]
    assert all(line["chain_ok"] for line in lines) and lines[0]["subject"] == "E95"
    code, out, _ = run("events", "--config", str(config))
    assert code == 0 and len(out.splitlines()) == 100


def test_gate_key_is_made_once_and_kept(tmp_path: Path) -> None:
    config = _gate_config(tmp_path)
    (tmp_path / "issuer.pem").write_bytes(Issuer.generate("EdDSA").certificate_pem)
    code, first, err = run("gate-key", "--config", str(config))
    assert code == 0, err
    assert "BEGIN PUBLIC KEY" in first
    key_file = tmp_path / "db" / "gate.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run("gate-key", "--config", str(config))[1] == first
    key_file.chmod(0o644)
    code, _, err = run("gate-key", "--config", str(config))
    assert code == 2 and str(key_file) in err
