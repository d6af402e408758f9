"""The daemon's process-level memory bounds (issue 10's RSS figure): SQLite's own page cache
of the store's connection is capped rather than growing to 2 MB beside the kernel's."""

from __future__ import annotations

import ctypes
import ctypes.util
import sqlite3
from pathlib import Path

import pytest

from reader.daemon.memory import SQLITE_CACHE_KIB, bound_sqlite_cache
from reader.gate.config import parse_config


def _sqlite_heap() -> ctypes.CDLL:
    """libsqlite3 as Python's sqlite3 module uses it (its heap counter is per process)."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        pytest.skip("no shared libsqlite3 to read the heap counter from")
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    if lib.sqlite3_libversion_number() != sqlite3.sqlite_version_info[0] * 1_000_000 + \
            sqlite3.sqlite_version_info[1] * 1000 + sqlite3.sqlite_version_info[2]:
        pytest.skip("Python's sqlite3 is not the shared libsqlite3")
    return lib


def _heap_after_reading_everything(path: Path, bounded: bool) -> int:
    lib = _sqlite_heap()
    connection = sqlite3.connect(path)
    try:
        before = lib.sqlite3_memory_used()
        if bounded:
            bound_sqlite_cache(connection)
        assert connection.execute("SELECT sum(length(data)) FROM rows").fetchone()[0] == 4096 * 1000
        return int(lib.sqlite3_memory_used() - before)
    finally:
        connection.close()


def test_sqlite_page_cache_is_bounded_below_its_default(tmp_path: Path) -> None:
    """Reading a 4 MB table fills a connection's page cache to its default ~2 MB; bounded,
    it keeps ~512 KiB."""
    path = tmp_path / "big.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE rows (data BLOB)")
        connection.executemany("INSERT INTO rows VALUES (?)", ((bytes(1000),) for _ in range(4096)))
    unbounded = _heap_after_reading_everything(path, bounded=False)
    bounded = _heap_after_reading_everything(path, bounded=True)
    assert unbounded > 1800 * 1024, unbounded
    assert bounded < (SQLITE_CACHE_KIB + 256) * 1024, bounded


def test_sqlite_page_cache_bound_must_be_positive() -> None:
    connection = sqlite3.connect(":memory:")
    try:
        for kib in (0, -5):
            with pytest.raises(ValueError, match="must be positive"):
                bound_sqlite_cache(connection, kib)
    finally:
        connection.close()


def test_the_daemon_bounds_its_store_connections_page_cache(tmp_path: Path) -> None:
    from reader.daemon.daemon import Daemon

    config = parse_config(f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "c.db"}"\n[door]\npin_factory = "mock"\n'
                          f'release_s = 30\n[daemon]\nruntime_dir = "{tmp_path / "run"}"\n')
    daemon = Daemon(config)
    daemon.start()
    try:
        assert daemon.store is not None
        assert daemon.store.connection.execute("PRAGMA cache_size").fetchone()[0] == -SQLITE_CACHE_KIB
    finally:
        daemon.stop()
