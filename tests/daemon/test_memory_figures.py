"""The memory figures bench pipeline reads (issue 10): the RSS split into the process's own
(anonymous) pages and library pages, threads, and which libraries the file pages are."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from reader.daemon.memory import library_mb, memory_mb

# A child that touches 24 MB of its own memory, starts two threads, and waits.
CHILD = """
import sys, threading
block = bytearray(24 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
stop = threading.Event()
for _ in range(2):
    threading.Thread(target=stop.wait).start()
print("ready", flush=True)
sys.stdin.read()
stop.set()
"""


@pytest.fixture
def child() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        yield process.pid
    finally:
        process.communicate("", timeout=10)


def test_memory_breakdown_splits_the_rss_into_anonymous_and_file_pages(child: int) -> None:
    memory = memory_mb(child)
    assert memory["Threads"] == 3
    assert memory["Anonymous"] >= 24 and memory["RssAnon"] >= 24
    # The split adds up to the RSS (each figure rounded to 0.1 MB).
    assert abs(memory["RssAnon"] + memory["RssFile"] + memory["RssShmem"] - memory["VmRSS"]) <= 0.3
    assert memory["VmRSS"] <= memory["VmHWM"] and 0 < memory["Pss"] <= memory["VmRSS"] + 0.1
    assert memory["RssFile"] > 0  # the interpreter's own pages at least


def test_library_breakdown_names_the_largest_mapped_files(child: int) -> None:
    libraries = library_mb(child, top=3)
    assert 1 <= len(libraries) <= 3
    assert all("/" not in name and mb >= 0 for name, mb in libraries.items())
    assert list(libraries.values()) == sorted(libraries.values(), reverse=True)
    # Every mapped file's pages (copied-on-write ones included: smaps counts them in the
    # file's Rss, status in RssAnon) fit in the RSS, and the interpreter is among them.
    everything = library_mb(child, top=10_000)
    assert len(everything) > 3 and sum(everything.values()) <= memory_mb(child)["VmRSS"]
    assert any(name.startswith(("python", "libpython")) for name in everything)
