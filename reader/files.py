"""Reading a whole file that must stay small (a config, a trust bundle, a list token, a
credential): one bounded read, and one error that names the file."""

from __future__ import annotations

import os

from reader.errors import ConfigError


def read_limited(path: str | os.PathLike[str], limit: int, label: str,
                 error: type[Exception] = ConfigError) -> bytes:
    """The bytes of ``path`` if it holds at most ``limit`` of them. Reading one byte past
    the limit tells "exactly at the limit" from "larger" without slurping a wrong big file.
    ``error`` is raised as ``"{label}: {reason}"``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{label}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{label}: larger than {limit} bytes")
    return data
