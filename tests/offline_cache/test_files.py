"""offline_cache.files: the one way the project writes a file others read, and a private key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from offline_cache import files
from offline_cache.files import atomic_output, write_atomic, write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what each os.fsync was for: the file written, or its directory."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    return seen


def test_writes_are_whole_durable_and_of_their_stated_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fsyncs(monkeypatch)
    old_umask = os.umask(0o000)  # a permissive umask must not widen a key, nor narrow a public file
    try:
        write_atomic(tmp_path / "pub" / "list.cwt", b"list")
        write_private(tmp_path / "keys" / "issuer.key", b"secret")
        with atomic_output(tmp_path / "pub" / "code.png", suffix=".png") as tmp:
            tmp.write_bytes(b"png")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "pub" / "list.cwt").read_bytes() == b"list" and _mode(tmp_path / "pub" / "list.cwt") == 0o644
    assert _mode(tmp_path / "keys" / "issuer.key") == 0o600
    assert (tmp_path / "pub" / "code.png").read_bytes() == b"png" and _mode(tmp_path / "pub" / "code.png") == 0o644
    assert seen == ["file", "dir"] * 3  # the bytes, then the name, each time
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == ["code.png", "list.cwt"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "timestamp.json"
    write_atomic(target, b"old")
    monkeypatch.setattr(files.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    with pytest.raises(OSError, match="No space"), atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["timestamp.json"]


def test_private_keys_are_never_replaced_unless_asked(tmp_path: Path) -> None:
    key = tmp_path / "gate.key"
    write_private(key, b"first")
    with pytest.raises(FileExistsError):
        write_private(key, b"second")
    assert key.read_bytes() == b"first"
    dangling = tmp_path / "elsewhere.key"
    dangling.symlink_to(tmp_path / "missing")
    with pytest.raises(FileExistsError):  # a name that leads nowhere is still a name
        write_private(dangling, b"x")
    assert not (tmp_path / "missing").exists()
    write_private(key, b"second", replace=True)
    assert key.read_bytes() == b"second" and _mode(key) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.key", "gate.key"]
