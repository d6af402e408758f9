"""Reading a whole file that must stay small (a trust bundle, a list token, a credential, a
config): one bounded read, and one error that names the file. The core's own, so that it
stands alone; the rest of ``reader`` uses it too, passing its own error class."""

from __future__ import annotations

import os


def read_limited(path: str | os.PathLike[str], limit: int, label: str, error: type[Exception]) -> bytes:
    """The bytes of ``path`` if it holds at most ``limit`` of them. Reading one byte past
    the limit tells "exactly at the limit" from "larger" without slurping a wrong big file.
    A failure raises ``error("{label}: {reason}")``: the caller says which error its own
    callers expect (TrustStoreError for a trust file, ConfigError for a config key's file)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{label}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{label}: larger than {limit} bytes")
    return data
