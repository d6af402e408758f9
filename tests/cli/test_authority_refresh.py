"""``gate-reader authority refresh``: the centre signs its published lists again before the
gates call them stale, a gate's ``gate-reader sync`` takes them, and the repository is never
left half-written.

The repository is served by the loopback server of tests/support/ and read by a
gate through its real ``sync``, ``verify --config`` and ``status`` commands.
"""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import offline_cache.publish as publish_module
from offline_cache.publish import Repository
from reader.cli import publish as publish_cli
from reader.gate.config import load_config
from reader.gate.sync import run_sync
from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.legacy import verify_legacy_token
from reader.gatepass.statuslist import StatusList, verify_status_token
from reader.gatepass.trust import TrustStore
from tests.support.centre import Centre, ok, run
from tests.support.http import StaticServer
from tests.support.waiting import wait_for

URI = "https://status.example.gov/lists/main"
URI_B = "https://status.example.gov/lists/b"
HOUR = 3600
DAY = 86_400


@dataclass
class Site:
    """A centre (issuer, repository served on loopback) and one gate syncing from it."""

    root: Path
    repo: Path
    issuer: Issuer
    key: Path
    cert: Path
    config: Path
    server: StaticServer

    @property
    def issuer_args(self) -> list[object]:
        return ["--issuer-key", self.key, "--issuer-cert", self.cert]

    def refresh(self, *extra: object) -> tuple[int, str, str]:
        return run("authority", "refresh", "--repo", self.repo, *self.issuer_args, *extra)

    def contents(self) -> dict[str, bytes]:
        return Repository.open(self.repo).published_contents()

    def lists(self) -> dict[str, StatusList]:
        trust = TrustStore.from_pem_files([self.cert])
        return {path: verify_status_token(raw, trust) for path, raw in self.contents().items()
                if path.startswith("status/")}

    def sync(self) -> str:
        return ok("sync", "--config", self.config)

    def decide(self, idx: int, at: float) -> str:
        """The reason the gate gives, from its cache, for a credential on list URI at ``at``."""
        holder = Holder.generate("EdDSA")
        credential = issue_credential(self.issuer, sub=f"E{idx}", iat=at - DAY, exp=at + DAY, holder=holder,
                                      status=(URI, idx))
        _code, out, _err = run("verify", "--config", self.config, "--at", int(at), "--json",
                              holder.present_qr(credential, iat=int(at)))
        return json.loads(out)["reason"]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Lists signed 23 hours ago (one from a file, with 1 bit per entry; one by revoke) and a
    legacy card list: one more hour and a gate with the default max_age_s calls them stale."""
    centre = Centre(tmp_path, publish=False)
    repo, issuer, key, cert, issuer_args = centre.repo, centre.issuer, centre.key, centre.cert, centre.issuer_args
    old = int(time.time()) - 23 * HOUR
    ok("authority", "status-list", *issuer_args, "--uri", URI, "--size", 128, "--bits", 1, "--revoked", "42,43",
       "--iat", old, "--exp-days", 1, "--ttl", 900, "--out", tmp_path / "main.cwt")
    ok("authority", "legacy-list", *issuer_args, "--card", "04A1B2C3D4E5F6=E1", "--card", "BADGE-7=E7",
       "--iat", old, "--exp", old + 30 * DAY, "--out", tmp_path / "cards.cwt")
    ok("authority", "publish", "--repo", repo, "--init", "--trust", cert, "--status", tmp_path / "main.cwt",
       "--legacy", tmp_path / "cards.cwt")
    ok("authority", "revoke", "--repo", repo, *issuer_args, "--list", "b", "--uri", URI_B, "--size", 64,
       "--idx", 5, "--suspend")
    with centre.serve() as server:
        config = centre.gate_config(server, gate_id="refresh-gate", total_timeout_s=10)
        yield Site(tmp_path, repo, issuer, key, cert, config, server)


def test_refresh_keeps_published_lists_fresh_for_the_gates(site: Site) -> None:
    site.sync()
    soon = time.time() + 2 * HOUR
    assert site.decide(7, soon) == "status_stale"  # what happens without a refresh
    assert site.decide(42, soon) == "revoked"
    before, contents = site.lists(), site.contents()
    legacy_before = verify_legacy_token(contents["legacy/cards.cwt"], TrustStore.from_pem_files([site.cert]))

    for _run in range(2):  # running it again is harmless: same entries, newer iat
        code, out, err = site.refresh()
        assert code == 0, err
        assert "status/main.cwt: iat" in out and "legacy/cards.cwt: iat" in out and "2 cards" in out
        after = site.lists()
        for path, old in before.items():
            new = after[path]
            assert (new.uri, new.bits, new.ttl, new.data) == (old.uri, old.bits, old.ttl, old.data), path
            assert new.iat > old.iat and new.exp is not None and new.exp >= new.iat + 7 * DAY
        legacy = verify_legacy_token(site.contents()["legacy/cards.cwt"], TrustStore.from_pem_files([site.cert]))
        assert legacy.cards == legacy_before.cards and legacy.iat > legacy_before.iat
        assert legacy.exp == max(legacy_before.exp, legacy.iat + 7 * DAY)
        assert "downloaded" in site.sync()
        before, legacy_before = after, legacy

    assert site.decide(7, soon) == "granted"
    assert site.decide(42, soon) == "revoked" and site.decide(43, soon) == "revoked"
    report = json.loads(ok("status", "--config", site.config, "--json"))
    assert {entry["uri"] for entry in report["status_lists"] if not entry["stale"]} == {URI, URI_B}
    assert report["legacy_list"]["cards"] == 2 and not report["legacy_list"]["stale"]
    # Every role of the TUF metadata outlives two refresh periods (a missed run is survived).
    horizon = datetime.now(UTC) + timedelta(seconds=2 * publish_cli.REFRESH_PERIOD_S)
    assert all(when > horizon for when in Repository.open(site.repo).expiries().values())


def test_refresh_refuses_a_clock_behind_the_published_iat(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    monkeypatch.setattr(publish_cli, "_clock", lambda: real() + HOUR)  # a centre clock an hour fast...
    ok("authority", "revoke", "--repo", site.repo, *site.issuer_args, "--list", "b", "--idx", 6)
    monkeypatch.setattr(publish_cli, "_clock", real)  # ...then set right: refreshed lists would go back
    contents = site.contents()
    timestamp = (site.repo / "public" / "metadata" / "timestamp.json").read_bytes()
    code, out, err = site.refresh()
    assert (code, out) == (2, "") and len(err.splitlines()) == 1, err
    published = int(verify_status_token(contents["status/b.cwt"], TrustStore.from_pem_files([site.cert])).iat)
    assert f"status/b.cwt as published has iat {published}, " in err and "after this machine's clock" in err
    assert site.contents() == contents
    assert (site.repo / "public" / "metadata" / "timestamp.json").read_bytes() == timestamp


class Crash(BaseException):
    """Stands for the process dying: no handler of the command catches it."""


def crashing_at(crash_at: int, real_write: Callable[..., None]) -> Callable[..., None]:
    """A write_atomic that dies at its ``crash_at``-th call (counting from 0)."""
    calls = iter(range(1 << 20))

    def write(path: Path, data: bytes, mode: int = 0o644) -> None:
        if next(calls) == crash_at:
            raise Crash(path.name)
        real_write(path, data, mode)

    return write


def test_a_crash_mid_refresh_leaves_the_published_set_whole(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = publish_module.write_atomic
    writes: list[str] = []

    def counting(path: Path, data: bytes, mode: int = 0o644) -> None:
        writes.append(path.name)
        real_write(path, data, mode)

    monkeypatch.setattr(publish_module, "write_atomic", counting)
    assert site.refresh()[0] == 0
    total = len(writes)
    assert writes[-1] == "timestamp.json" and total >= 6  # three lists, targets, snapshot, timestamp
    contents = site.contents()
    site.sync()
    for crash_at in range(total):
        monkeypatch.setattr(publish_module, "write_atomic", crashing_at(crash_at, real_write))
        with pytest.raises(Crash):
            site.refresh()
        assert site.contents() == contents, crash_at
        assert "downloaded nothing" in site.sync(), crash_at  # the old set, whole and consistent
    monkeypatch.setattr(publish_module, "write_atomic", real_write)
    assert site.refresh()[0] == 0 and site.contents() != contents
    assert "status/main.cwt" in site.sync()


def test_a_gate_syncing_during_a_refresh_sees_the_old_or_the_new_set(site: Site) -> None:
    site.sync()
    # The centre revokes one more entry: the gate's next sync needs the snapshot naming it.
    ok("authority", "revoke", "--repo", site.repo, *site.issuer_args, "--list", "b", "--idx", 7)
    revoked = site.contents()
    timestamp = json.loads((site.repo / "public" / "metadata" / "timestamp.json").read_bytes())
    snapshot = f"/metadata/{timestamp['signed']['meta']['snapshot.json']['version']}.snapshot.json"
    # The gate reads timestamp.json, then is held up before the snapshot it names...
    site.server.fault(snapshot, delay_s=1.5, times=1)
    config = load_config(site.config)
    reports = []
    seen_before = len(site.server.log())
    gate = threading.Thread(target=lambda: reports.append(run_sync(config)))
    gate.start()
    assert wait_for(lambda: snapshot in site.server.log()[seen_before:], timeout=10)
    assert site.refresh()[0] == 0  # ...while the centre publishes a whole new set
    gate.join(timeout=30)
    (report,) = reports
    assert report.ok, report.error
    assert site.contents() != revoked
    # That sync completed the set it started on (the revocation), untouched by the refresh...
    assert report.downloaded == ["status/b.cwt"]
    # ...and the next takes the refreshed set.
    report = run_sync(config)
    assert report.ok and {"status/main.cwt", "status/b.cwt", "legacy/cards.cwt"} <= set(report.downloaded)


def test_refresh_only_reads_the_issuer_key(site: Site) -> None:
    site.key.chmod(0o400)
    site.cert.chmod(0o444)
    stamps = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in (site.key, site.cert)}
    code, out, err = site.refresh()
    assert code == 0, err
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in stamps} == stamps
    assert stat.S_IMODE(site.key.stat().st_mode) == 0o400
    secret = site.key.read_bytes()
    assert b"PRIVATE" in secret and "PRIVATE" not in out + err
    for line in secret.decode().splitlines()[1:-1]:
        assert line not in out + err


def test_refresh_of_an_empty_repository_renews_the_metadata(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    Issuer.generate("EdDSA").save(keys / "i.key", keys / "i.pem")
    ok("authority", "publish", "--repo", tmp_path / "repo", "--init", "--trust", keys / "i.pem")
    first = Repository.open(tmp_path / "repo").expiries()
    out = ok("authority", "refresh", "--repo", tmp_path / "repo", "--issuer-key", keys / "i.key",
             "--issuer-cert", keys / "i.pem")
    assert "lists: none published" in out and "expires: timestamp" in out
    after = Repository.open(tmp_path / "repo").expiries()
    assert after["timestamp"] >= first["timestamp"] and after["snapshot"] >= first["snapshot"]


@pytest.mark.parametrize("action", ["publish", "revoke", "refresh"])
def test_the_centre_commands_have_help_with_an_example(action: str) -> None:
    code, out, _err = run("authority", action, "--help")
    assert code == 0 and "example:" in out and f"gate-reader authority {action} " in out
