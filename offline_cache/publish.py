"""The issuer side of distribution: a TUF repository on disk (spec section 5).

The repository is a directory whose ``public/`` folder any static web server or CDN can
serve: ``public/metadata/`` holds the signed TUF metadata (root, targets, snapshot,
timestamp) and ``public/targets/`` the files gates fetch (``trust/issuers.pem``,
``status/<name>.cwt``, ``legacy/cards.cwt``). The signing keys sit beside ``public/``,
never inside it, so serving the public folder cannot hand them out.
Everything is written with python-tuf's Metadata API; gates read it with ``ngclient``
(see ``offline_cache/sync.py``).

Layout, as ngclient expects it with consistent snapshots (``consistent_snapshot=True``)::

    keys/{root,targets,snapshot,timestamp}.key          Ed25519 PKCS#8 PEM, mode 0600, private
    public/metadata/1.root.json, root.json              root.json is the copy a gate pins at install
    public/metadata/{v}.targets.json {v}.snapshot.json  versioned: a client mid-refresh keeps a
                                                        consistent view while we publish
    public/metadata/timestamp.json                      the only mutable name, written last
    public/targets/<dir>/<sha256>.<basename>            content-addressed target files

Writes are ordered (target files, targets, snapshot, then timestamp) and each one is atomic
and durable (``offline_cache.files.write_atomic``: temp file, fsync, rename, fsync of the
directory; mode 0644 so a web server running as another user can read it), so a web server
serving the directory mid-publish only ever shows the old complete state or the new one.
Serve ``public/`` and nothing else.

Key rotation and pruning of old versions are not done here: each publish leaves the older
versioned files in place (they are small, and a client mid-refresh may still need them).
Root is re-signed with the same keys (a new version) once less than half of its lifetime is
left, so a repository that publishes regularly never lets any role expire.

A change that reads what is published and writes it back (a revocation, a refresh) holds
``locked()`` around both, so a second publisher cannot slip in between and have its change
overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from offline_cache.files import write_atomic, write_private

logger = logging.getLogger(__name__)

ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
DEFAULT_EXPIRY_DAYS: dict[str, int] = {Root.type: 365, Targets.type: 90, Snapshot.type: 7, Timestamp.type: 1}

_CONFIG_FILE = "publisher.json"
_LOCK_FILE = ".publish.lock"
_FIXED_TARGETS = frozenset({"trust/issuers.pem", "legacy/cards.cwt"})
# status/<name>.cwt: one path segment, no leading dot, a conservative character set, so a
# name is the same on every file system and web server and cannot climb out of targets/.
_STATUS_RE = re.compile(r"status/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}\.cwt")
# policy/<gate group>.toml: the centre's reader policy for a group of gates (same rules).
_POLICY_RE = re.compile(r"policy/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}\.toml")


def validate_target_path(path: str) -> str:
    """Return ``path`` if it is one of the three kinds spec section 5 allows or a gate
    group's policy, else raise ValueError. Gates only look for these, so anything else is a
    publisher mistake."""
    if not isinstance(path, str) or ".." in path or path.startswith("/") or "\\" in path:
        raise ValueError(f"bad target path {path!r}: must be relative, without '..'")
    if path in _FIXED_TARGETS or _STATUS_RE.fullmatch(path) or _POLICY_RE.fullmatch(path):
        return path
    raise ValueError(f"bad target path {path!r}: expected trust/issuers.pem, status/<name>.cwt, legacy/cards.cwt "
                     "or policy/<group>.toml")


def _utc(now: datetime | None) -> datetime:
    """Metadata expiry must be in UTC; accept any aware datetime (naive means UTC)."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PUBLIC_DIR = "public"

class Repository:
    """A TUF repository directory this process may sign for.

    ``put_target``/``remove_target`` stage changes in memory; ``publish()`` applies them
    on top of what is on disk (under a lock file, so two publishers cannot interleave) and
    signs new versions. Use ``init()`` once, then ``open()``.
    """

    def __init__(self, repo_dir: Path, signers: dict[str, CryptoSigner], expiry_days: dict[str, int]) -> None:
        """Use ``init()`` or ``open()``; this only holds what they loaded."""
        self.repo_dir = repo_dir
        self.public_dir = repo_dir / PUBLIC_DIR  # the only folder a web server may serve
        self.metadata_dir = self.public_dir / "metadata"
        self.targets_dir = self.public_dir / "targets"
        self._signers = signers
        self._expiry = expiry_days
        self._staged: dict[str, bytes | None] = {}  # path -> new bytes, or None to remove
        self._lock_depth = 0  # locked() is re-entrant within this object

    # -- creating and opening -------------------------------------------------------------

    @classmethod
    def init(cls, repo_dir: str | os.PathLike[str], *, expiry_days: dict[str, int] | None = None) -> Repository:
        """Create a new repository: four Ed25519 keys (0600), root v1 (also copied to
        ``metadata/root.json``, the file a gate pins) and empty targets/snapshot/timestamp
        v1. Refuses a directory that already holds a repository (FileExistsError), so a
        typo cannot replace the keys every gate trusts."""
        repo = Path(repo_dir)
        if (repo / "keys").exists() or (repo / PUBLIC_DIR).exists():
            raise FileExistsError(f"{repo}: a TUF repository already exists here")
        expiry = dict(DEFAULT_EXPIRY_DAYS)
        for role, days in (expiry_days or {}).items():
            if role not in DEFAULT_EXPIRY_DAYS or not isinstance(days, int) or days <= 0:
                raise ValueError(f"expiry_days[{role!r}]: expected a role name and a positive number of days")
            expiry[role] = days
        repo.mkdir(parents=True, exist_ok=True)
        (repo / "keys").mkdir(mode=0o700)
        (repo / PUBLIC_DIR / "metadata").mkdir(parents=True)
        (repo / PUBLIC_DIR / "targets").mkdir()

        signers: dict[str, CryptoSigner] = {}
        for role in ROLES:
            signer = CryptoSigner.generate_ed25519()
            write_private(repo / "keys" / f"{role}.key", signer.private_bytes)
            signers[role] = signer
        write_atomic(repo / _CONFIG_FILE, json.dumps({"expiry_days": expiry}, indent=2).encode())

        self = cls(repo, signers, expiry)
        now = _utc(None)
        root = Root(expires=now + timedelta(days=expiry[Root.type]), consistent_snapshot=True)
        for role in ROLES:
            root.add_key(signers[role].public_key, role)
        root_bytes = self._sign(Metadata(root))
        write_atomic(self.metadata_dir / "1.root.json", root_bytes)
        write_atomic(self.metadata_dir / "root.json", root_bytes)
        targets_bytes = self._sign(Metadata(Targets(expires=now + timedelta(days=expiry[Targets.type]))))
        write_atomic(self.metadata_dir / "1.targets.json", targets_bytes)
        self._write_snapshot_and_timestamp(1, targets_bytes, 1, 1, now)
        logger.info("created TUF repository %s", repo)
        return self

    @classmethod
    def open(cls, repo_dir: str | os.PathLike[str]) -> Repository:
        """Open a repository made by ``init()``; each key file must match the key root.json
        lists for its role (a mismatch is a ValueError naming the file)."""
        repo = Path(repo_dir)
        root_file = repo / PUBLIC_DIR / "metadata" / "root.json"
        if not root_file.is_file():
            raise FileNotFoundError(f"{repo}: not a TUF repository (no {PUBLIC_DIR}/metadata/root.json)")
        root = Metadata[Root].from_file(str(root_file)).signed
        expiry = dict(DEFAULT_EXPIRY_DAYS)
        with contextlib.suppress(FileNotFoundError):
            expiry.update(json.loads((repo / _CONFIG_FILE).read_text())["expiry_days"])
        signers: dict[str, CryptoSigner] = {}
        for role in ROLES:
            key_file = repo / "keys" / f"{role}.key"
            private = load_pem_private_key(key_file.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError(f"{key_file}: not an Ed25519 private key")
            public = root.get_key(root.roles[role].keyids[0])
            if SSlibKey.from_crypto(private.public_key()).keyval != public.keyval:
                raise ValueError(f"{key_file}: does not match the {role} key in root.json")
            signers[role] = CryptoSigner(private, public)
        return cls(repo, signers, expiry)

    # -- staging --------------------------------------------------------------------------

    def put_target(self, path: str, data: bytes) -> None:
        """Stage ``data`` as target ``path`` for the next ``publish()``."""
        self._staged[validate_target_path(path)] = bytes(data)

    def remove_target(self, path: str) -> None:
        """Stage the removal of target ``path`` (a no-op at publish if it is not there)."""
        self._staged[validate_target_path(path)] = None

    def targets(self) -> dict[str, str]:
        """path -> sha256 hex of every target currently published (staged changes excluded)."""
        _, targets_md = self._load_published()
        return {path: info.hashes["sha256"] for path, info in sorted(targets_md.signed.targets.items())}

    def published_contents(self) -> dict[str, bytes]:
        """path -> bytes of every target currently published, each checked against the length
        and sha256 the signed targets metadata gives (staged changes excluded). Hold
        ``locked()`` when the result decides what to publish next."""
        _, targets_md = self._load_published()
        contents: dict[str, bytes] = {}
        for path, info in sorted(targets_md.signed.targets.items()):
            dirname, _, basename = path.rpartition("/")
            file = self.targets_dir / dirname / f"{info.hashes['sha256']}.{basename}"
            data = file.read_bytes()
            try:
                info.verify_length_and_hashes(data)
            except LengthOrHashMismatchError as exc:
                raise ValueError(f"{file}: does not match its entry in targets metadata ({exc})") from None
            contents[path] = data
        return contents

    def expiries(self) -> dict[str, datetime]:
        """role -> expiry of the metadata a client would see now."""
        timestamp_md, targets_md = self._load_published()
        snapshot_md = Metadata[Snapshot].from_file(
            str(self.metadata_dir / f"{timestamp_md.signed.snapshot_meta.version}.snapshot.json")
        )
        root = Metadata[Root].from_file(str(self.metadata_dir / "root.json")).signed
        return {Root.type: root.expires, Targets.type: targets_md.signed.expires,
                Snapshot.type: snapshot_md.signed.expires, Timestamp.type: timestamp_md.signed.expires}

    # -- publishing -----------------------------------------------------------------------

    def publish(self, now: datetime | None = None) -> dict[str, int]:
        """Apply the staged changes and sign new metadata; return the versions now served.

        root and targets get a new version if less than half their lifetime is left (targets
        also when a target changed), so a repository that publishes regularly never lets them
        expire; snapshot and timestamp always get a new version with fresh expiry. Files are
        written in the order root, target files, targets, snapshot, timestamp: every one but
        timestamp.json is a new name, so until timestamp.json is replaced (one rename) a client
        sees the previous set whole, and a crash before that leaves it published."""
        now = _utc(now)
        with self.locked():
            self._renew_root_if_due(now)
            timestamp_md, targets_md = self._load_published()
            targets = targets_md.signed
            changed = False
            for path, data in self._staged.items():
                if data is None:
                    changed |= targets.targets.pop(path, None) is not None
                    continue
                info = TargetFile.from_data(path, data, ["sha256"])
                if targets.targets.get(path) != info:
                    self._write_target_file(path, info.hashes["sha256"], data)
                    targets.targets[path] = info
                    changed = True
            lifetime = timedelta(days=self._expiry[Targets.type])
            if changed or targets.expires - now < lifetime / 2:
                targets.version += 1
                targets.expires = now + lifetime
                targets_bytes = self._sign(targets_md)
                write_atomic(self.metadata_dir / f"{targets.version}.targets.json", targets_bytes)
            else:
                targets_bytes = (self.metadata_dir / f"{targets.version}.targets.json").read_bytes()
            snapshot_version = timestamp_md.signed.snapshot_meta.version + 1
            self._write_snapshot_and_timestamp(
                targets.version, targets_bytes, snapshot_version, timestamp_md.signed.version + 1, now
            )
            self._staged.clear()
        versions = self._versions(targets.version, snapshot_version, timestamp_md.signed.version + 1)
        logger.info("published %s: %s", self.repo_dir, versions)
        return versions

    def refresh_timestamp(self, now: datetime | None = None) -> int:
        """Sign a new timestamp version with fresh expiry and the same snapshot: the cheap
        renewal a timer runs between publishes (the timestamp lives one day by default)."""
        now = _utc(now)
        with self.locked():
            timestamp_md, _ = self._load_published()
            ts = timestamp_md.signed
            ts.version += 1
            ts.expires = now + timedelta(days=self._expiry[Timestamp.type])
            write_atomic(self.metadata_dir / "timestamp.json", self._sign(timestamp_md))
        logger.info("refreshed timestamp of %s: v%s", self.repo_dir, ts.version)
        return ts.version

    # -- internals ------------------------------------------------------------------------

    def _renew_root_if_due(self, now: datetime) -> None:
        """Sign root again (version + 1, same keys, fresh expiry) when less than half of its
        lifetime is left. The versioned file comes first: clients walk N+1.root.json, and
        root.json (what a new gate pins) is only a copy."""
        root_md = Metadata[Root].from_file(str(self.metadata_dir / "root.json"))
        root = root_md.signed
        lifetime = timedelta(days=self._expiry[Root.type])
        if root.expires - now >= lifetime / 2:
            return
        root.version += 1
        root.expires = now + lifetime
        root_bytes = self._sign(root_md)
        write_atomic(self.metadata_dir / f"{root.version}.root.json", root_bytes)
        write_atomic(self.metadata_dir / "root.json", root_bytes)
        logger.info("renewed root of %s: v%s", self.repo_dir, root.version)

    def _sign(self, md: Metadata) -> bytes:
        """Replace the signatures of ``md`` with one by its role's key; return the file bytes."""
        md.sign(self._signers[md.signed.type], append=False)
        return md.to_bytes()

    def _write_target_file(self, path: str, sha256: str, data: bytes) -> None:
        """targets/<dir>/<sha256>.<basename>: the URL ngclient builds with consistent
        snapshots (``UpdaterConfig.prefix_targets_with_hash``, on by default)."""
        dirname, _, basename = path.rpartition("/")
        write_atomic(self.targets_dir / dirname / f"{sha256}.{basename}", data)

    def _write_snapshot_and_timestamp(
        self, targets_version: int, targets_bytes: bytes, snapshot_version: int, timestamp_version: int, now: datetime
    ) -> None:
        """Snapshot then timestamp, each carrying length and sha256 of the file it points to
        (ngclient then checks them too, on top of the version)."""
        snapshot = Snapshot(
            version=snapshot_version,
            expires=now + timedelta(days=self._expiry[Snapshot.type]),
            meta={"targets.json": MetaFile.from_data(targets_version, targets_bytes, ["sha256"])},
        )
        snapshot_bytes = self._sign(Metadata(snapshot))
        write_atomic(self.metadata_dir / f"{snapshot_version}.snapshot.json", snapshot_bytes)
        timestamp = Timestamp(
            version=timestamp_version,
            expires=now + timedelta(days=self._expiry[Timestamp.type]),
            snapshot_meta=MetaFile.from_data(snapshot_version, snapshot_bytes, ["sha256"]),
        )
        write_atomic(self.metadata_dir / "timestamp.json", self._sign(Metadata(timestamp)))

    def _load_published(self) -> tuple[Metadata[Timestamp], Metadata[Targets]]:
        """Follow timestamp -> snapshot -> targets on disk: exactly what a client sees now."""
        timestamp_md = Metadata[Timestamp].from_file(str(self.metadata_dir / "timestamp.json"))
        snap_version = timestamp_md.signed.snapshot_meta.version
        snapshot_md = Metadata[Snapshot].from_file(str(self.metadata_dir / f"{snap_version}.snapshot.json"))
        targets_version = snapshot_md.signed.meta["targets.json"].version
        targets_md = Metadata[Targets].from_file(str(self.metadata_dir / f"{targets_version}.targets.json"))
        return timestamp_md, targets_md

    def _versions(self, targets: int, snapshot: int, timestamp: int) -> dict[str, int]:
        root = Metadata[Root].from_file(str(self.metadata_dir / "root.json")).signed
        return {Root.type: root.version, Targets.type: targets, Snapshot.type: snapshot, Timestamp.type: timestamp}

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive flock on keys/.publish.lock: two publishers (a timer's refresh and an
        operator's revocation) must not both sign version N+1, nor read the same list and
        each write back their own change. Re-entrant within this object, so a caller can
        hold it from reading what is published until ``publish()`` (which takes it too)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fd = os.open(self.repo_dir / "keys" / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
        finally:
            os.close(fd)
