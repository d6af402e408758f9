"""Opening the gate's offline cache, in the two ways kept apart (issue 8, item 11).

The job that owns the cache (sync, later the daemon) opens it for writing with
:func:`open_cache` and is the only one that may move a corrupt file aside; diagnostics and
one-shot checks (``status``, ``events``, ``verify --config``) open it read-only with
:func:`read_cache` or :func:`open_readonly` and never change a file, so they also work on a
read-only database.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from offline_cache.errors import CacheUnusable
from offline_cache.store import Store
from reader.errors import ConfigError
from reader.gate.config import Config

log = logging.getLogger(__name__)


def open_cache(config: Config, *, create: bool = False) -> Store:
    """The cache opened by the job that owns it (sync, later the daemon), for writing.

    A missing (without ``create``) or corrupt database is an error naming the file, unless
    the config says to start empty: then the bad file is kept aside as evidence, a new one
    is made, and credentials that need a list are status_unknown until a sync. A database
    that is locked, of a newer schema or someone else's is never moved (see CacheUnusable).
    A cache directory that cannot be made or written is a configuration error."""
    path = cache_file(config)
    _check_cache_directory(path)
    try:
        return Store.open(path, create=create)
    except CacheUnusable as exc:
        if not config.cache.start_empty:
            raise
        if path.exists():
            aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):  # the WAL belongs to the bad file: it goes with it
                companion = path.with_name(path.name + suffix)
                if companion.exists():
                    companion.rename(aside.with_name(aside.name + suffix))
            log.warning("%s; moved it to %s and started an empty cache, as [cache] start_empty says", exc, aside)
        return Store.open(path, create=True)


def cache_file(config: Config) -> Path:
    """``[cache] path``; a directory there is a configuration error naming the key."""
    path = Path(config.cache.path)
    if path.is_dir():
        raise ConfigError(f"cache.path: {path} is a directory, not the database file")
    return path


def _check_cache_directory(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cache.path: cannot create the directory {parent}: {exc.strerror or exc}") from None
    if not parent.is_dir():
        raise ConfigError(f"cache.path: {parent} is not a directory")


def read_cache(config: Config) -> Store | None:
    """The cache opened read-only, for diagnostics and one-shot checks: nothing on disk
    changes. None when it is missing or unusable and the config says to start empty (the
    caller then works without it, and leaves the file to the job that owns it)."""
    try:
        return Store.open(cache_file(config), readonly=True)
    except CacheUnusable as exc:
        if not config.cache.start_empty:
            raise
        log.warning("%s; going on without it, as [cache] start_empty says (the file is left as it is)", exc)
        return None


def open_readonly(config: Config) -> Store:
    """The cache read-only for a diagnostic that has nothing to show without it (``status``,
    ``events``): a missing or unusable database is an error naming the file, start_empty or
    not, and nothing on disk changes."""
    return Store.open(cache_file(config), readonly=True)
