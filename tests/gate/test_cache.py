"""Diagnostics and ``verify --config`` never change the cache (issue 8, item 11): they open
it read-only, so they work on a database and directory nobody may write, and leave every
file as it was."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from offline_cache.errors import StoreError
from offline_cache.journal import Journal
from offline_cache.store import Store, SyncUpdate
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential
from tests.support.centre import URI
from tests.support.unprivileged import gate_reader, scratch


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_diagnostics_read_a_read_only_cache_and_change_nothing() -> None:
    with scratch() as tmp:
        issuer = Issuer.generate("ES256")
        now = int(time.time())
        token = build_status_list(issuer, uri=URI, size=64, values={5: 1}, iat=now - 60)
        db = tmp / "db" / "cache.db"
        with Store.open(db, create=True) as store:
            store.apply_sync(SyncUpdate(trust_pem=issuer.certificate_pem, status=[(URI, now - 60, None, token)],
                                        legacy=None, tuf_versions={}, time_floor=now - 60, at=now))  # fmt: skip
            Journal(store).append(time=now, kind="system", detail="started")
        config = tmp / "gate.toml"
        config.write_text(f'[gate]\nid = "g"\n[cache]\npath = "{db}"\n')
        db.chmod(0o444)
        db.parent.chmod(0o555)  # no -shm can be made here: the read falls back to the main file alone
        before = _files(db.parent)
        assert list(before) == ["cache.db"]

        result = gate_reader("status", "--config", str(config), "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert [entry["uri"] for entry in report["status_lists"]] == [URI] and report["journal"]["total"] == 1
        result = gate_reader("events", "--config", str(config), "--json")
        assert result.returncode == 0 and json.loads(result.stdout)["chain_ok"] is True, result.stderr
        holder = Holder.generate("ES256")
        credential = issue_credential(issuer, sub="E5", iat=now - 60, exp=now + 3600, holder=holder, status=(URI, 5))
        text = holder.present_qr(credential, iat=int(time.time()))
        result = gate_reader("verify", "--config", str(config), "--json", text)
        assert result.returncode == 1 and json.loads(result.stdout)["reason"] == "revoked", result.stderr
        assert _files(db.parent) == before


def test_a_read_only_check_beside_a_running_writer_sees_its_commits(tmp_path: Path) -> None:
    # mode=ro reads the WAL the writer keeps, where immutable=1 would not: a record the
    # writer committed is seen though the writer still holds the database open.
    db = tmp_path / "cache.db"
    with Store.open(db, create=True) as writer:
        Journal(writer).append(time=time.time(), kind="system", detail="one")
        with Store.open(db, readonly=True) as reader:
            assert Journal(reader).counts()["total"] == 1
            Journal(writer).append(time=time.time(), kind="system", detail="two")
            assert Journal(reader).counts()["total"] == 2
            with pytest.raises(StoreError, match="readonly"):  # and it refuses any write
                Journal(reader).append(time=time.time(), kind="system")
