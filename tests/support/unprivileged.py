"""Running ``gate-reader`` in a child process, as a user that file modes apply to.

Read-only databases and directories that cannot be written mean nothing to root, and test
machines often run as root: there the child drops to ``nobody`` (uid/gid 65534), so a
0555 directory really cannot be written. As any other user the child runs as that user.
A scratch directory under /tmp (``scratch``) is used instead of pytest's tmp_path, whose
parents only their owner may enter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _drop() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def gate_reader(*argv: str, env: dict[str, str] | None = None, drop: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m reader ARGV`` from the repository, unprivileged unless ``drop`` is
    False; stdout and stderr kept (the real ones: logging included, as journald gets it)."""
    child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp",
                 "LANG": "C.UTF-8", **(env or {})}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "reader", *argv], cwd=REPO, env=child_env, capture_output=True, text=True,
        timeout=120, preexec_fn=_drop if drop and os.geteuid() == 0 else None,
    )  # fmt: skip


@contextmanager
def scratch() -> Iterator[Path]:
    """A directory everyone may enter and read (0755), removed afterwards even where a
    test left parts of it read-only."""
    path = Path(tempfile.mkdtemp(prefix="gate-reader-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for root, dirs, _files in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(path, ignore_errors=True)
