"""The cache database file: opening it (pragmas, checks), its schema version, and the
migrations that build it.

The version lives in ``meta`` (key ``schema_version``). ``MIGRATIONS[i]`` takes a database
from version ``i`` to ``i + 1``; ``SCHEMA_VERSION`` is their count. A migration is a plain
function of a ``sqlite_utils.Database``: they run in order inside one ``BEGIN IMMEDIATE``
transaction together with the version bump, so a crash or an error half-way leaves the
database at the version it had, never between two.

Reading the version needs only the stdlib: ``sqlite_utils`` takes ~0.3 s to import, and
the daemon opening an up-to-date database must not pay for it. It is imported inside
:func:`migrate`, the only place that needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from offline_cache.errors import CacheUnusable, StoreError

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)

Migration = Callable[["Database"], None]
BUSY_TIMEOUT_MS = 5000


def _v1_initial(db: Database) -> None:
    """Everything the gate keeps: meta, trust, lists, sync state, replay memory, journal."""
    # ``value`` has BLOB affinity on purpose: SQLite then stores each value with the type it
    # was given (integer, real, text, NULL), where TEXT affinity would turn 1 into '1'.
    db["meta"].create({"key": str, "value": bytes}, pk="key", not_null=["key"])
    epoch_id = secrets.token_hex(16)  # the journal's epoch: a recreated database gets a new one
    db["meta"].insert_all(
        [
            {"key": "epoch_id", "value": epoch_id},
            {"key": "generation", "value": 0},
            {"key": "time_floor", "value": None},
            {"key": "time_floor_source", "value": None},
            {"key": "journal_gaps", "value": 0},
            {"key": "journal_dropped", "value": 0},
            {"key": "journal_pruned", "value": 0},
        ]
    )
    db["trust"].create(
        {"name": str, "pem": bytes, "sha256": str, "stored_at": float},
        pk="name",
        not_null=["pem", "sha256", "stored_at"],
    )
    token_columns = {"uri": str, "iat": float, "exp": float, "raw": bytes, "sha256": str, "stored_at": float}
    for table in ("status_lists", "legacy_list"):
        db[table].create(token_columns, pk="uri", not_null=["iat", "raw", "sha256", "stored_at"])
    db["sync_state"].create(
        {
            "id": int,
            "last_attempt": float,
            "last_success": float,
            "last_error": str,
            "root": int,
            "timestamp": int,
            "snapshot": int,
            "targets": int,
        },
        pk="id",
    )
    db["sync_state"].insert({"id": 1})
    # sqlite-utils has no WITHOUT ROWID option. The key is the lookup, so the table is the
    # index: one b-tree, one write per presentation.
    db.execute(
        "CREATE TABLE replay (cti BLOB NOT NULL, nonce BLOB NOT NULL, keep_until REAL NOT NULL, "
        "PRIMARY KEY (cti, nonce)) WITHOUT ROWID"
    )
    db["journal"].create(
        {
            "seq": int,
            "epoch": str,
            "time": float,
            "reader": str,
            "kind": str,
            "decision": str,
            "reason": str,
            "subject": str,
            "credential_hash": str,
            "detail": str,
            "prev_hash": str,
            "hash": str,
            "sent_at": float,
        },
        pk="seq",
        not_null=["epoch", "time", "kind", "prev_hash", "hash"],
    )
    # The uploader asks for the oldest unsent records again and again while the sent ones
    # (kept for the retention period) pile up before them: a partial index holds only the
    # unsent ones, so that query and the unsent count do not scan the sent history.
    db.execute("CREATE INDEX journal_unsent ON journal (seq) WHERE sent_at IS NULL")
    # Runs of deleted records (pruned after upload, or dropped past the cap), so that the
    # chain stays verifiable across them; see offline_cache/journal.py.
    db["journal_holes"].create(
        {"first_seq": int, "last_seq": int, "prev_hash": str, "last_hash": str},
        pk="first_seq",
        not_null=["last_seq", "prev_hash", "last_hash"],
    )


MIGRATIONS: tuple[Migration, ...] = (_v1_initial,)
SCHEMA_VERSION = len(MIGRATIONS)


def read_version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database, 0 for an empty one (no table at all).

    A database with tables but no ``meta`` is someone else's: StoreError, so that a wrong
    ``[cache] path`` never gets our tables added to it. sqlite3 errors propagate (the
    caller turns them into StoreError naming the file)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise StoreError(f"cache database {path} is not a gate-reader cache (it has tables but no meta)") from None
        return 0
    if row is None or not isinstance(row[0], int) or row[0] < 1:
        raise StoreError(f"cache database {path}: meta.schema_version is missing or invalid ({row!r})")
    return int(row[0])


def _import_sqlite_utils() -> type[Database]:
    """sqlite-utils, imported without numpy unless numpy is loaded already.

    sqlite-utils imports numpy whenever it is installed (opencv brings it) only to map
    numpy column types, which this schema never uses. That is 12 MB of resident memory
    (measured: 36 MB after importing sqlite-utils, 24 MB with numpy hidden) and it pushed
    the first sync of `gate-reader bench sync` from ~46 to 57-65 MB against its 60 MB goal.
    A ``None`` in ``sys.modules`` makes ``import numpy`` raise ImportError, which sqlite-utils
    handles. Migrations run when a process opens its cache, before any thread that could
    import numpy has started."""
    if "numpy" in sys.modules:
        from sqlite_utils import Database
    else:
        sys.modules["numpy"] = None  # type: ignore[assignment]
        try:
            from sqlite_utils import Database
        finally:
            if sys.modules.get("numpy", 0) is None:
                del sys.modules["numpy"]
    return Database


def migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)``; return the version it had before.

    Runs in one ``BEGIN IMMEDIATE`` transaction: the version is read again under the write
    lock, so two processes opening a new database at once (the daemon and the first sync)
    migrate it once. Refuses (StoreError) a schema newer than ``migrations`` knows: an older
    program must not write to a layout it does not understand."""
    Database = _import_sqlite_utils()  # slow import; only when there is something to do

    target = len(migrations)
    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = read_version(conn, path)
        if before > target:
            raise StoreError(
                f"cache database {path} has schema version {before}, newer than this program's {target}: "
                "upgrade gate-reader, or move the file away"
            )
        for version in range(before, target):
            name = migrations[version].__name__
            log.info("cache %s: migrating schema %s -> %s (%s)", path, version, version + 1, name)
            migrations[version](db)
        if before != target:
            db["meta"].upsert({"key": "schema_version", "value": target}, pk="key")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return before


def connect(path: Path, *, create: bool, check: bool, readonly: bool = False) -> tuple[sqlite3.Connection, str]:
    """Open the database at ``path``, migrated to ``SCHEMA_VERSION``: (connection, epoch id).

    The connection is in autocommit mode (``isolation_level=None``): transactions are the
    store's own ``BEGIN``/``COMMIT``, never the sqlite3 module's implicit ones. ``check``
    runs ``PRAGMA quick_check(1)``, which reads every page once (a few ms for a cache of a
    few MB): it catches a truncated or damaged file at start instead of at the first
    decision that reads the bad page. Every failure is StoreError naming the file;
    CacheUnusable when nothing in the file can be used.

    ``readonly`` (diagnostics, one-shot checks) never writes: no file is created, the
    journal mode is left alone, an older schema is refused rather than migrated. It works
    on a database the process may not write, in a directory it may not write too."""
    if path.is_dir():
        raise StoreError(f"cache database {path} is a directory")
    if not path.exists():
        if not create or readonly:
            raise CacheUnusable(
                f"cache database {path} does not exist (a successful sync creates it; "
                "or configure the gate to start empty)"
            )
        _make_file(path)
    conn = _open_readonly(path) if readonly else _open(path, f"file:{quote(str(path.resolve()))}?mode=rw")
    try:
        if readonly:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        else:
            _configure(conn, path)
        version = read_version(conn, path)
        if check:
            problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                raise CacheUnusable(f"cache database {path} is corrupt: {' '.join(str(problem).split())}")
        if version == 0 and not create:
            raise CacheUnusable(f"cache database {path} is empty (no gate-reader schema)")
        if version != SCHEMA_VERSION:
            if readonly and version < SCHEMA_VERSION:
                raise StoreError(f"cache database {path} has schema version {version}, older than this program's "
                                 f"{SCHEMA_VERSION}: a read-only open does not upgrade it (gate-reader sync does)")
            migrate(conn, path)  # refuses a newer schema, read-only or not
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch_id'").fetchone()
        if row is None or not isinstance(row[0], str):
            raise StoreError(f"cache database {path}: meta has no epoch_id")
    except sqlite3.Error as exc:
        conn.close()
        raise _unusable_or(exc, f"cache database {path} cannot be used: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn, row[0]


# SQLite's primary result codes that mean the file holds nothing usable.
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _unusable_or(exc: sqlite3.Error, message: str) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return CacheUnusable(message)
    return StoreError(message)


def _open(path: Path, uri: str) -> sqlite3.Connection:
    # mode=rw: sqlite3 never creates the file behind our back (a typo in a path must fail).
    try:
        # check_same_thread=False: a store is used by one thread at a time, but not always the
        # same one (the daemon opens it at start, its worker uses it, the main thread closes it).
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise _unusable_or(exc, f"cache database {path} cannot be opened: {exc}") from None


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. ``mode=ro`` first: it reads a WAL database safely
    while the daemon or a sync writes it, but needs the ``-shm`` file, which it cannot make
    in a directory it may not write. Then, if there is no ``-wal`` file either (so every
    committed transaction is in the main file and no writer is active), ``immutable=1``
    reads the main file alone, without locks."""
    base = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = _open(path, base)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error as exc:
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) and not wal.exists():
            return _open(path, base + "&immutable=1")
        raise _unusable_or(exc, f"cache database {path} cannot be read: {exc}") from None


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    # WAL: the sync job writes while the daemon reads, neither blocks the other, and a
    # transaction is all-or-nothing across a crash (kill -9 or power loss).
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cache database {path}: cannot switch to WAL (journal_mode is {mode})")
    # synchronous=FULL: every commit fsyncs the WAL before it returns. The journal is the
    # access log, and a decision is appended after the door opened: with NORMAL a power cut
    # could lose the last commits (the database stays consistent, but the record of who
    # just passed would be gone). FULL keeps every committed record across power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # sync, daemon and uploader share the file


def _make_file(path: Path) -> None:
    """Create the parent (0700) and an empty database file (0600): the file holds the access
    log, who passed which door when, so it is nobody else's to read."""
    parent = path.parent
    try:
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
        # If another process made it first, fine: it migrates under the same lock as we do.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StoreError(f"cache database {path} cannot be created: {exc.strerror or exc}") from None
