"""Process-level memory bounds of the daemon (issue 10: RSS under 90 MB with the camera).

SQLite's page cache: each connection keeps up to ``cache_size`` pages of its own (2,000 KiB by
default) on top of the kernel's page cache of the same file, which holds them anyway. The
daemon's one connection filled it as the journal and the replay memory grew (measured in the
daemon after 8,000 decisions: SQLite's heap 2.2 MB; with the bound below 0.7 MB, RSS 1.1 MB
lower) and, with a production list, at once from the ``quick_check`` at open, which reads every
page. A decision touches a few pages (the replay index, the journal's last page); the
bound keeps those and reads the rest back from the kernel's cache (a pread, microseconds).
Decision latency did not move (`gate-reader bench pipeline --sustained-s 20`, 50/s, two runs
each: p50 1.4-1.5 ms bounded, 1.3-1.5 ms not; the p99s are the shared VM's noise).
"""

from __future__ import annotations

import sqlite3

#: SQLite page cache of the daemon's store connection, KiB
SQLITE_CACHE_KIB = 512


def bound_sqlite_cache(connection: sqlite3.Connection, kib: int = SQLITE_CACHE_KIB) -> None:
    """Cap ``connection``'s own page cache at ``kib`` KiB (a negative cache_size is KiB)."""
    if kib <= 0:
        raise ValueError(f"the SQLite page cache bound must be positive, got {kib} KiB")
    connection.execute(f"PRAGMA cache_size=-{int(kib)}")
