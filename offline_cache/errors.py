"""Errors of the offline cache: the store, the sync job and the uploader.

``offline_cache`` never imports ``reader`` (the layering rule of README's layout section,
kept by tests/test_layers.py), so its root is its own; ``reader/errors.py`` draws it in the
project's tree, and the ``gate-reader`` entry point catches it beside reader's root.
"""

from __future__ import annotations


class CacheError(Exception):
    """Root of every error the offline cache raises on purpose."""


class StoreError(CacheError, OSError):
    """The cache database cannot be used: the file is missing (and the caller did not ask
    to create it), is not a SQLite database, is corrupt, or has a schema newer than this
    program knows. The message names the file."""


class CacheUnusable(StoreError):
    """Nothing in the cache file can be used: it is missing, empty, not a SQLite database,
    or corrupt. Only this kind of failure lets a gate configured with ``start_empty`` carry
    on without the file (the cache's owner then moves it aside); a database that is locked,
    of a newer schema or someone else's is refused whatever the configuration, since moving
    it aside would throw away a good cache."""


class RollbackRefused(CacheError, ValueError):
    """An update would replace a stored list with one whose iat is older: the store keeps
    what it has and applies nothing of the update."""


class SyncError(CacheError):
    """A sync failed; ``check`` names the check that failed in a few words (for example
    ``timestamp rollback``, ``expired metadata``, ``target hash``, ``server unreachable``),
    and the message says it in one line. The store is left as it was."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


class UploadError(CacheError):
    """An upload batch was not accepted: the collector unreachable or slow past the
    timeout, a TLS failure (wrong CA, bad certificate), or a non-2xx answer. Nothing is
    marked sent."""
