"""The gate's own Ed25519 key, made once at install.

The uploader signs the journal's chain head with it, so the centre can tell that a gate's
event log was not cut short or rewritten on the way (issue 3, item 4). The key never leaves
the gate: only its public half travels, in each heartbeat.

The file is PEM PKCS#8, unencrypted (a daemon that starts unattended has nowhere to keep a
passphrase), so its file mode is the whole protection: it is created 0600 and a file that
anyone but its owner may read or write is refused, as ssh refuses a private key.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_cache.errors import CacheError
from offline_cache.files import write_private

log = logging.getLogger(__name__)

# Any permission for group or others: reading leaks the key, writing lets someone swap it.
_FOREIGN_BITS = stat.S_IRWXG | stat.S_IRWXO


def load_or_create_gate_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load the gate key at ``path``, or make one there if there is no file yet.

    Raises ``CacheError`` naming the file when it is readable or writable by group or
    others, is not a regular file, or does not hold an Ed25519 private key. A new key is
    written to a 0600 temporary file and linked into place, so a crash or a second process
    racing at install never leaves a half-written key where the daemon looks for one.
    """
    path = Path(path)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    try:
        _create(path, key)
    except FileExistsError:
        # Another process made it first: use theirs, so both sign with the same key.
        try:
            return _load(path)
        except FileNotFoundError:  # the name exists but leads nowhere: a dangling symlink
            raise CacheError(f"gate key {path}: a dangling symbolic link") from None
    except OSError as exc:  # a directory that cannot be made or written, a full disk
        raise CacheError(f"gate key {path}: cannot create it: {exc.strerror or exc}") from None
    log.info("created gate key %s", path)
    return key


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The public half as PEM SubjectPublicKeyInfo: what an installer registers at the centre."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_raw(key: Ed25519PrivateKey) -> bytes:
    """The public half as the raw 32 bytes of RFC 8032, as heartbeats carry it."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load(path: Path) -> Ed25519PrivateKey:
    # Open first, then check the open file: checking the name and then opening it would
    # let the file be swapped in between. (A symlink is followed: installers may use one;
    # the mode checked is the real file's.)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CacheError(f"gate key {path}: cannot open: {exc.strerror or exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CacheError(f"gate key {path}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        mode = stat.S_IMODE(info.st_mode)
        if mode & _FOREIGN_BITS:
            raise CacheError(
                f"gate key {path} has mode {mode:04o}: it must be readable by its owner only "
                f"(chmod 600 {path}), and a key that others could read should be replaced"
            )
        data = handle.read()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CacheError(f"gate key {path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CacheError(f"gate key {path}: holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _create(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError here is a file where the directory belongs
        raise CacheError(f"gate key {path}: cannot create its directory: {exc.strerror or exc}") from None
    # 0600, linked into place (FileExistsError rather than replacing a key), file and
    # directory fsynced: the new name survives a power cut, or the gate comes back with a
    # new key the centre does not know.
    write_private(path, pem)
