"""Writing a file so that a crash or a power cut never leaves half of it: the one way the
project writes the files others read (TUF metadata and targets, status lists, credentials,
certificates, QR images) and the private keys it makes (issuer, holder, TUF roles, the
gate's own key).

Durability, as both helpers leave it when they return:

- the bytes are written to a temporary file in the same directory, created with the final
  mode (never wider for a moment: mkstemp and O_EXCL create it 0600, and its mode is set
  before the first byte is written), then fsynced;
- the file then takes its name in one step (``rename``, or ``link`` for a key that must not
  replace one), so a reader (a web server, a gate) sees the old file or the new one, whole;
- the directory is fsynced, so the new name survives a power cut too (without it a gate
  could come back with its old key, or a repository with metadata naming a file it lost).

It lives in ``offline_cache``, the lowest layer that writes, so that ``offline_cache``'s
publisher and gate key use it without importing ``reader``; ``reader`` imports it too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Mode of a file others (a web server, a gate, an operator) are to read.
PUBLIC_MODE = 0o644
#: Mode of a private key: its owner alone may read it.
PRIVATE_MODE = 0o600


def fsync_directory(directory: Path) -> None:
    """Make a rename or link inside ``directory`` durable. A file system that cannot fsync a
    directory (EINVAL, ENOTSUP) has nothing to make durable that way; any other failure is
    raised, since the caller would otherwise report a write that may not survive."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, mode: int = PUBLIC_MODE, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that wants a file name (segno
    picks the image format by its suffix). When the block ends without an error the file is
    fsynced, given ``mode``, renamed over ``path`` and its directory fsynced; on an error it
    is removed and ``path`` is left as it was."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(target.parent)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = PUBLIC_MODE) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``, default 0644 so a web server or a gate
    running as another user can read it), durably and in one step (module docstring)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    fsync_directory(target.parent)


def write_private(path: str | os.PathLike[str], data: bytes, *, replace: bool = False) -> None:
    """Write a private key: mode 0600 from its first byte whatever the umask, durably, and
    whole or not at all under its name. Without ``replace`` an existing name (a dangling
    symbolic link included) is never touched: FileExistsError, and a second process racing
    to make the same key finds the first one's, complete (the file is linked into place)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_MODE)  # mkstemp's 0600 already; said, not assumed
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(name, target)
        else:
            os.link(name, target)  # FileExistsError rather than replacing a key
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    fsync_directory(target.parent)
