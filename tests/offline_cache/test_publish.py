"""The TUF repository writer: key files, valid signed metadata for every role, version
bumps, expiry renewal, target path rules, and a fresh ngclient client reading the result."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.ngclient import Updater

from offline_cache.publish import DEFAULT_EXPIRY_DAYS, Repository
from tests.support.http import StaticServer

ROLES = ("root", "targets", "snapshot", "timestamp")


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(tmp_path / "repo")


@pytest.fixture
def server(repo: Repository) -> Iterator[StaticServer]:
    with StaticServer(repo.public_dir) as srv:
        yield srv


def _md(repo: Repository, name: str) -> Metadata:
    return Metadata.from_file(str(repo.metadata_dir / name))


def _root(repo: Repository) -> Root:
    return _md(repo, "root.json").signed


def _current(repo: Repository) -> dict[str, Metadata]:
    """The metadata a client would see now: timestamp -> snapshot -> targets."""
    ts = _md(repo, "timestamp.json")
    snap = _md(repo, f"{ts.signed.snapshot_meta.version}.snapshot.json")
    targets = _md(repo, f"{snap.signed.meta['targets.json'].version}.targets.json")
    return {"root": _md(repo, "root.json"), "timestamp": ts, "snapshot": snap, "targets": targets}


def _fresh_client(repo: Repository, server: StaticServer, tmp_path: Path) -> Updater:
    cache = tmp_path / f"client-{os.urandom(4).hex()}"
    (cache / "targets").mkdir(parents=True)
    updater = Updater(
        str(cache),
        server.metadata_url,
        str(cache / "targets"),
        server.targets_url,
        bootstrap=(repo.metadata_dir / "root.json").read_bytes(),
    )
    updater.refresh()
    return updater


def test_init_makes_private_keys_and_valid_metadata(repo: Repository) -> None:
    keys = repo.repo_dir / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for role in ROLES:
        assert stat.S_IMODE((keys / f"{role}.key").stat().st_mode) == 0o600
        assert b"PRIVATE KEY" in (keys / f"{role}.key").read_bytes()

    root_bytes = (repo.metadata_dir / "root.json").read_bytes()
    assert root_bytes == (repo.metadata_dir / "1.root.json").read_bytes()
    root = _root(repo)
    assert root.version == 1 and root.consistent_snapshot is True
    assert len({root.roles[r].keyids[0] for r in ROLES}) == 4  # a key per role

    md = _current(repo)
    for role in ROLES:
        signed = md[role].signed
        assert signed.type == role and signed.version == 1
        root.verify_delegate(role, md[role].signed_bytes, md[role].signatures)
        expected = datetime.now(UTC) + timedelta(days=DEFAULT_EXPIRY_DAYS[role])
        assert abs(signed.expires - expected) < timedelta(minutes=1)
    assert md["targets"].signed.targets == {}
    assert (repo.metadata_dir / "1.targets.json").is_file() and (repo.metadata_dir / "1.snapshot.json").is_file()
    for f in repo.metadata_dir.iterdir():  # readable by a web server running as another user
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_init_refuses_an_existing_repository(repo: Repository) -> None:
    key = (repo.repo_dir / "keys" / "root.key").read_bytes()
    with pytest.raises(FileExistsError):
        Repository.init(repo.repo_dir)
    assert (repo.repo_dir / "keys" / "root.key").read_bytes() == key


def test_custom_expiry_is_kept_across_open(tmp_path: Path) -> None:
    Repository.init(tmp_path / "r", expiry_days={"timestamp": 2, "snapshot": 3})
    repo = Repository.open(tmp_path / "r")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    repo.publish(now=now)
    md = _current(repo)
    assert md["timestamp"].signed.expires == now + timedelta(days=2)
    assert md["snapshot"].signed.expires == now + timedelta(days=3)
    with pytest.raises(ValueError, match="expiry_days"):
        Repository.init(tmp_path / "bad", expiry_days={"timestamp": 0})


def test_put_target_and_publish_bump_versions_and_a_fresh_client_sees_it(
    repo: Repository, server: StaticServer, tmp_path: Path
) -> None:
    repo.put_target("trust/issuers.pem", b"-----BEGIN CERTIFICATE-----\n")
    repo.put_target("status/main.cwt", b"status-list-v1")
    assert repo.targets() == {}  # staged, not yet published
    assert repo.publish() == {"root": 1, "targets": 2, "snapshot": 2, "timestamp": 2}
    digest = hashlib.sha256(b"status-list-v1").hexdigest()
    assert repo.targets()["status/main.cwt"] == digest
    # consistent snapshots: content-addressed file under the target's directory
    assert (repo.targets_dir / "status" / f"{digest}.main.cwt").read_bytes() == b"status-list-v1"

    updater = _fresh_client(repo, server, tmp_path)
    info = updater.get_targetinfo("status/main.cwt")
    assert info is not None and info.hashes["sha256"] == digest
    assert Path(updater.download_target(info)).read_bytes() == b"status-list-v1"

    repo.put_target("status/main.cwt", b"status-list-v2")
    assert repo.publish()["targets"] == 3
    updater = _fresh_client(repo, server, tmp_path)
    info = updater.get_targetinfo("status/main.cwt")
    assert info is not None
    assert Path(updater.download_target(info)).read_bytes() == b"status-list-v2"


def test_publish_without_change_keeps_targets_version(repo: Repository) -> None:
    repo.put_target("legacy/cards.cwt", b"cards")
    first = repo.publish()
    repo.put_target("legacy/cards.cwt", b"cards")  # same bytes: no change
    second = repo.publish()
    assert second["targets"] == first["targets"]
    assert second["snapshot"] == first["snapshot"] + 1 and second["timestamp"] == first["timestamp"] + 1


def test_publish_renews_targets_near_expiry(repo: Repository) -> None:
    versions = repo.publish(now=datetime.now(UTC) + timedelta(days=60))  # 30 of 90 days left
    assert versions["targets"] == 2


def test_remove_target(repo: Repository) -> None:
    repo.put_target("status/a.cwt", b"a")
    repo.put_target("status/b.cwt", b"b")
    repo.publish()
    repo.remove_target("status/a.cwt")
    assert repo.publish()["targets"] == 3
    assert set(repo.targets()) == {"status/b.cwt"}


def test_refresh_timestamp_only_resigns_the_timestamp(repo: Repository) -> None:
    repo.put_target("status/main.cwt", b"x")
    repo.publish()
    before = _current(repo)
    later = datetime.now(UTC) + timedelta(hours=12)
    assert repo.refresh_timestamp(now=later) == before["timestamp"].signed.version + 1
    after = _current(repo)
    assert after["timestamp"].signed.expires == later.replace(microsecond=0) + timedelta(days=1)
    assert after["timestamp"].signed.snapshot_meta == before["timestamp"].signed.snapshot_meta
    assert after["snapshot"].signed.version == before["snapshot"].signed.version
    _root(repo).verify_delegate("timestamp", after["timestamp"].signed_bytes, after["timestamp"].signatures)


def test_open_signs_with_the_keys_root_lists(repo: Repository, tmp_path: Path) -> None:
    reopened = Repository.open(repo.repo_dir)
    reopened.put_target("status/main.cwt", b"x")
    reopened.publish()
    root = _root(repo)
    for role, md in _current(repo).items():
        root.verify_delegate(role, md.signed_bytes, md.signatures)
    with pytest.raises(FileNotFoundError):
        Repository.open(tmp_path / "nothing")


def test_open_refuses_a_key_that_is_not_in_root(repo: Repository, tmp_path: Path) -> None:
    other = Repository.init(tmp_path / "other")
    (repo.repo_dir / "keys" / "timestamp.key").write_bytes((other.repo_dir / "keys" / "timestamp.key").read_bytes())
    with pytest.raises(ValueError, match=r"timestamp\.key"):
        Repository.open(repo.repo_dir)


@pytest.mark.parametrize(
    "path",
    [
        "../trust/issuers.pem",
        "/trust/issuers.pem",
        "status/../trust/issuers.pem",
        "status/..cwt",
        "status/.hidden.cwt",
        "status/a/b.cwt",
        "status/main.json",
        "status/.cwt",
        "trust/other.pem",
        "legacy/cards2.cwt",
        "keys/root.key",
        "metadata/root.json",
        "status\\main.cwt",
        "",
    ],
)
def test_bad_target_paths_are_refused(repo: Repository, path: str) -> None:
    with pytest.raises(ValueError, match="bad target path"):
        repo.put_target(path, b"x")
    with pytest.raises(ValueError, match="bad target path"):
        repo.remove_target(path)


def test_writes_leave_no_temp_files_and_types_are_right(repo: Repository) -> None:
    repo.put_target("status/main.cwt", b"x")
    repo.publish()
    repo.refresh_timestamp()
    leftovers = [p for p in repo.repo_dir.rglob(".tmp-*")]
    assert leftovers == []
    md = _current(repo)
    assert isinstance(md["targets"].signed, Targets) and isinstance(md["snapshot"].signed, Snapshot)
    assert isinstance(md["timestamp"].signed, Timestamp)
    # timestamp and snapshot pin length and hash of what they point to
    assert md["timestamp"].signed.snapshot_meta.hashes and md["snapshot"].signed.meta["targets.json"].length


def test_publish_renews_root_before_it_expires(repo: Repository, server: StaticServer, tmp_path: Path) -> None:
    """Root is signed again (same keys, next version) once half its lifetime is gone, so a
    centre that keeps publishing never lets any role expire; a gate pinned to root v1 walks
    to v2 and accepts the rest."""
    v1 = (repo.metadata_dir / "root.json").read_bytes()
    assert repo.publish(now=datetime.now(UTC) + timedelta(days=100))["root"] == 1  # 265 of 365 days left
    later = datetime.now(UTC) + timedelta(days=200)
    assert repo.publish(now=later)["root"] == 2
    assert (repo.metadata_dir / "2.root.json").read_bytes() == (repo.metadata_dir / "root.json").read_bytes()
    assert _root(repo).expires == later.replace(microsecond=0) + timedelta(days=DEFAULT_EXPIRY_DAYS["root"])
    (repo.metadata_dir / "root.json").write_bytes(v1)  # what a gate installed before pins
    updater = _fresh_client(repo, server, tmp_path)
    assert updater._trusted_set.root.version == 2


def test_published_contents_are_checked_against_the_targets_metadata(repo: Repository) -> None:
    repo.put_target("status/main.cwt", b"list")
    repo.publish()
    assert repo.published_contents() == {"status/main.cwt": b"list"}
    digest = repo.targets()["status/main.cwt"]
    (repo.targets_dir / "status" / f"{digest}.main.cwt").write_bytes(b"lisT")
    with pytest.raises(ValueError, match="does not match its entry in targets metadata"):
        repo.published_contents()
