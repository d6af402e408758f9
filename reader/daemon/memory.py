"""The daemon's process-level memory (issue 10: RSS under 90 MB with the camera): the bounds
it sets on itself, and the figures ``gate-reader bench pipeline`` reads from /proc.

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
from pathlib import Path

#: SQLite page cache of the daemon's store connection, KiB
SQLITE_CACHE_KIB = 512


def bound_sqlite_cache(connection: sqlite3.Connection, kib: int = SQLITE_CACHE_KIB) -> None:
    """Cap ``connection``'s own page cache at ``kib`` KiB (a negative cache_size is KiB)."""
    if kib <= 0:
        raise ValueError(f"the SQLite page cache bound must be positive, got {kib} KiB")
    connection.execute(f"PRAGMA cache_size=-{int(kib)}")


def memory_mb(pid: int) -> dict[str, float]:
    """Where a process's memory is, in MB: ``VmRSS`` and its peak ``VmHWM``; the RSS split
    into ``RssAnon`` (heap, Python objects, thread stacks: the process's own) and ``RssFile``
    (library and file pages: clean, the kernel can drop them and read them again);
    ``Anonymous`` and ``Pss`` from smaps_rollup (PSS shares each page among the processes
    mapping it: the bench's own process maps the same numpy and OpenCV, so it understates a
    gate's); ``Threads``.

    Why RssFile varies: a library page counts once the process maps it, and the kernel maps
    a whole page-cache folio at a fault. Files written by pip sit in large folios, so right
    after an install the same daemon maps twice the library pages it does after a reboot
    (measured: 93 against 46 MB, see docs/measurements.md). Either is reported as found."""
    values: dict[str, float] = {}
    for path, keys in (("status", ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads")),
                       ("smaps_rollup", ("Anonymous", "Pss"))):
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "Threads":
                values[key] = int(rest)
            elif key in keys:
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    return values


def library_mb(pid: int, top: int = 8) -> dict[str, float]:
    """The file-backed RSS of the ``top`` largest mapped files (/proc/PID/smaps), in MB by
    file name: which libraries the RssFile is."""
    sizes: dict[str, int] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if not first.endswith(":"):  # a mapping's header: address range, perms, ..., path
            fields = line.split(maxsplit=5)
            name = fields[5].rsplit("/", 1)[-1] if len(fields) == 6 and fields[5].startswith("/") else ""
        elif name and first == "Rss:":
            sizes[name] = sizes.get(name, 0) + int(line.split()[1])
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:top]
    return {file: round(kb / 1024, 1) for file, kb in largest}
