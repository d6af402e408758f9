"""The TUF client fetch step against a repository the publisher wrote, served on loopback
with faults injected: what is downloaded when, and one clear SyncError per failure, after
which the next good sync works."""

from __future__ import annotations

import hashlib
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

from offline_cache.errors import SyncError
from offline_cache.publish import Repository
from offline_cache.sync import FetchedTargets, fetch_targets
from tests.support.http import StaticServer, closed_port_url

CONTENT = {
    "trust/issuers.pem": b"-----BEGIN CERTIFICATE-----\nissuers\n",
    "status/main.cwt": b"status-list-v1",
    "status/site-b.cwt": b"status-list-b-v1",
    "legacy/cards.cwt": b"legacy-cards-v1",
}


@dataclass
class Env:
    repo: Repository
    server: StaticServer
    cache: Path

    @property
    def root(self) -> bytes:
        return (self.repo.metadata_dir / "root.json").read_bytes()

    def sync(self, **overrides: Any) -> FetchedTargets:
        args: dict[str, Any] = {
            "metadata_url": self.server.metadata_url,
            "targets_url": self.server.targets_url,
            "root": self.root,
            "cache_dir": self.cache,
            "timeout_s": 2.0,
            "total_timeout_s": 10.0,
        }
        args.update(overrides)
        return fetch_targets(**args)

    def fail(self, check: str, **overrides: Any) -> SyncError:
        with pytest.raises(SyncError) as info:
            self.sync(**overrides)
        err = info.value
        assert err.check == check, f"{err.check}: {err}"
        assert "\n" not in str(err) and str(err)
        return err

    def recovers(self) -> FetchedTargets:
        """After a failure, the repository served properly again: the next sync works."""
        self.server.clear_faults()
        result = self.sync()
        assert result.status["status/main.cwt"] == self.published("status/main.cwt")
        return result

    def published(self, path: str) -> bytes:
        digest = self.repo.targets()[path]
        dirname, _, base = path.rpartition("/")
        return (self.repo.targets_dir / dirname / f"{digest}.{base}").read_bytes()

    def target_url_path(self, path: str) -> str:
        dirname, _, base = path.rpartition("/")
        return f"/targets/{dirname}/{self.repo.targets()[path]}.{base}"

    def signer(self, role: str) -> CryptoSigner:
        key = load_pem_private_key((self.repo.repo_dir / "keys" / f"{role}.key").read_bytes(), password=None)
        return CryptoSigner(key)  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    repo = Repository.init(tmp_path / "repo")
    for path, data in CONTENT.items():
        repo.put_target(path, data)
    repo.publish()
    with StaticServer(repo.public_dir) as server:
        yield Env(repo, server, tmp_path / "cache")


def _timestamp(env: Env) -> Metadata[Timestamp]:
    return Metadata[Timestamp].from_file(str(env.repo.metadata_dir / "timestamp.json"))


def test_first_sync_downloads_everything(env: Env) -> None:
    result = env.sync()
    assert sorted(result.downloaded) == sorted(CONTENT)
    assert result.trust_pem == CONTENT["trust/issuers.pem"]
    assert result.legacy == CONTENT["legacy/cards.cwt"]
    assert result.status == {p: CONTENT[p] for p in ("status/main.cwt", "status/site-b.cwt")}
    assert result.sha256 == {p: hashlib.sha256(b).hexdigest() for p, b in CONTENT.items()}
    assert result.versions == {"root": 1, "timestamp": 2, "snapshot": 2, "targets": 2}
    for d in ("tuf", "tuf/metadata", "tuf/targets"):
        assert stat.S_IMODE((env.cache / d).stat().st_mode) == 0o700


def test_no_change_sync_makes_only_metadata_requests(env: Env) -> None:
    env.sync()
    env.server.clear_log()
    result = env.sync()
    assert result.downloaded == []
    assert env.server.log() == ["/metadata/2.root.json", "/metadata/timestamp.json"]
    assert result.status["status/main.cwt"] == CONTENT["status/main.cwt"]


def test_a_changed_status_list_is_downloaded_alone(env: Env) -> None:
    env.sync()
    env.repo.put_target("status/main.cwt", b"status-list-v2")
    env.repo.publish()
    env.server.clear_log()
    result = env.sync()
    assert result.downloaded == ["status/main.cwt"]
    assert result.status["status/main.cwt"] == b"status-list-v2"
    assert result.versions == {"root": 1, "timestamp": 3, "snapshot": 3, "targets": 3}
    assert env.server.log() == [
        "/metadata/2.root.json",
        "/metadata/timestamp.json",
        "/metadata/3.snapshot.json",
        "/metadata/3.targets.json",
        env.target_url_path("status/main.cwt"),
    ]


def test_a_removed_status_list_disappears_from_result_and_cache(env: Env) -> None:
    env.sync()
    env.repo.remove_target("status/site-b.cwt")
    env.repo.publish()
    result = env.sync()
    assert set(result.status) == {"status/main.cwt"} and result.downloaded == []
    assert not any("site-b" in f.name for f in (env.cache / "tuf" / "targets").iterdir())


def test_timestamp_rollback_is_refused(env: Env) -> None:
    old_timestamp = (env.repo.metadata_dir / "timestamp.json").read_bytes()
    env.repo.publish()
    env.sync()
    env.server.fault("/metadata/timestamp.json", body=old_timestamp)
    err = env.fail("timestamp rollback")
    assert "timestamp.json" in str(err)
    env.recovers()


def test_snapshot_rollback_is_refused(env: Env) -> None:
    env.repo.publish()
    env.sync()  # trusts snapshot v3 now
    forged = _timestamp(env)  # a properly signed timestamp that points back to snapshot v2
    forged.signed.version += 1
    forged.signed.snapshot_meta = MetaFile(version=2)
    forged.sign(env.signer("timestamp"))
    env.server.fault("/metadata/timestamp.json", body=forged.to_bytes())
    env.fail("snapshot rollback")
    env.recovers()


def test_targets_rollback_in_snapshot_is_refused(env: Env) -> None:
    env.repo.put_target("status/main.cwt", b"status-list-v2")
    env.repo.publish()
    env.sync()  # trusts targets v3
    snapshot = Metadata(Snapshot(version=4, expires=datetime.now(UTC) + timedelta(days=1)))
    snapshot.signed.meta = {"targets.json": MetaFile(version=2)}  # the old list, still validly signed
    snapshot.sign(env.signer("snapshot"))
    forged = _timestamp(env)
    forged.signed.version += 1
    forged.signed.snapshot_meta = MetaFile(version=4)
    forged.sign(env.signer("timestamp"))
    env.server.fault("/metadata/timestamp.json", body=forged.to_bytes())
    env.server.fault("/metadata/4.snapshot.json", body=snapshot.to_bytes())
    env.fail("targets rollback")
    # the forged timestamp v4 was validly signed, so ngclient keeps it as the floor: the
    # repository recovers by publishing past it
    env.repo.publish()
    env.repo.publish()
    env.recovers()


def test_expired_timestamp_is_refused(env: Env) -> None:
    env.sync()
    env.repo.refresh_timestamp(now=datetime.now(UTC) - timedelta(days=2))
    err = env.fail("expired metadata")
    assert "timestamp" in str(err)
    env.repo.refresh_timestamp()
    env.recovers()


@pytest.mark.parametrize("tamper", ["same length", "longer", "shorter"])
def test_target_whose_bytes_differ_from_its_hash_is_refused(env: Env, tamper: str) -> None:
    path, good = "status/main.cwt", b"status-list-v2"
    env.sync()
    env.repo.put_target(path, good)
    env.repo.publish()
    body = {"same length": b"X" * len(good), "longer": good + b"!", "shorter": good[:-1]}[tamper]
    env.server.fault(env.target_url_path(path), body=body)
    err = env.fail("target hash")
    assert path in str(err)
    # the cache still holds the old bytes, which do not match the new targets.json: nothing
    # tampered was written, and nothing stale can pass for the new list
    assert (env.cache / "tuf" / "targets" / "status%2Fmain.cwt").read_bytes() == CONTENT[path]
    result = env.recovers()
    assert result.downloaded == [path] and result.status[path] == good


def test_metadata_signed_by_an_unknown_key_is_refused(env: Env) -> None:
    env.sync()
    forged = _timestamp(env)
    forged.signed.version += 1
    forged.sign(CryptoSigner.generate_ed25519())
    env.server.fault("/metadata/timestamp.json", body=forged.to_bytes())
    env.fail("metadata signature")
    env.recovers()


def test_server_unreachable(env: Env) -> None:
    url = closed_port_url()
    err = env.fail("server unreachable", metadata_url=f"{url}/metadata/", targets_url=f"{url}/targets/")
    assert "refused" in str(err).lower()
    env.recovers()


def test_http_error_status(env: Env) -> None:
    env.server.fault("/metadata/timestamp.json", status=500)
    err = env.fail("server error")
    assert "500" in str(err)
    env.recovers()


def test_server_silent_before_headers_hits_the_socket_timeout(env: Env) -> None:
    env.server.fault("/metadata/timestamp.json", delay_s=5.0)
    start = time.monotonic()
    env.fail("server timeout", timeout_s=0.3)
    assert time.monotonic() - start < 2.0
    env.recovers()


@pytest.mark.parametrize("where", ["metadata", "target"])
def test_dribbling_server_is_bounded_by_the_total_deadline(env: Env, where: str) -> None:
    # one byte every 50 ms never trips a 0.5 s socket timeout: only the deadline stops it
    url = "/metadata/timestamp.json" if where == "metadata" else env.target_url_path("legacy/cards.cwt")
    env.server.fault(url, dribble_s=0.05)
    start = time.monotonic()
    err = env.fail("server timeout", timeout_s=0.5, total_timeout_s=0.6)
    elapsed = time.monotonic() - start
    assert 0.5 < elapsed < 1.5, elapsed
    assert "deadline" in str(err)
    env.recovers()


@pytest.mark.parametrize("where", ["metadata", "target"])
def test_trickled_headers_hit_the_total_timeout(env: Env, where: str) -> None:
    # One header byte every 0.2 s never trips a 0.5 s socket timeout, and the ~90 bytes of
    # head would take ~18 s: the whole request, headers included, ends at the deadline.
    url = "/metadata/timestamp.json" if where == "metadata" else env.target_url_path("legacy/cards.cwt")
    env.server.fault(url, header_dribble_s=0.2)
    start = time.monotonic()
    err = env.fail("server timeout", timeout_s=0.5, total_timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 2.0, elapsed
    assert "deadline" in str(err) and url.rsplit("/", 1)[-1] in str(err)
    env.recovers()


@pytest.mark.parametrize("where", ["metadata", "target"])
def test_connection_dropped_mid_download(env: Env, where: str) -> None:
    url = "/metadata/timestamp.json" if where == "metadata" else env.target_url_path("status/main.cwt")
    env.server.fault(url, drop_after=5)
    err = env.fail("connection dropped")
    assert url.rsplit("/", 1)[-1] in str(err)
    assert not (env.cache / "tuf" / "targets" / "status%2Fmain.cwt").exists()
    env.recovers()


def test_bad_pinned_root(env: Env) -> None:
    env.fail("bad root", root=b"not json")
    env.fail("bad root", root=(env.repo.metadata_dir / "timestamp.json").read_bytes())
    env.recovers()


def test_a_different_repositorys_root_is_refused(env: Env, tmp_path: Path) -> None:
    other = Repository.init(tmp_path / "other")
    env.fail("metadata signature", root=(other.metadata_dir / "root.json").read_bytes(), cache_dir=tmp_path / "c2")


def test_target_larger_than_the_limit_is_refused(env: Env) -> None:
    err = env.fail("target too large", max_target_bytes=10)
    assert "limit 10" in str(err)
    env.recovers()
