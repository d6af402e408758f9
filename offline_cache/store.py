"""The gate's offline cache: one SQLite database with what sync verified and stored
(trust anchors, status list tokens, the legacy card list, sync state), the trusted-time
floor (spec section 6), the replay memory for QR presentations (spec 2.1) and the event
journal's tables (offline_cache/journal.py).

Writers and readers are separate processes: the sync job writes, the daemon reads (and
appends to the journal). WAL lets them run at once; an update is one ``BEGIN IMMEDIATE``
transaction, so a reader that reads inside :meth:`Store.reading` sees all of it or none.
A ``Store`` wraps one connection and is used by one thread at a time (the daemon hands its
store from the starting thread to its worker and back); open another for threads that run at
once, or for another process.
"""

# Over ~400 lines on purpose: one class over one SQLite schema: every read and every transaction the gate makes
# is here, so a reader sees all of what touches the database in one place.

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline_cache import schema
from offline_cache.errors import RollbackRefused, StoreError
from offline_cache.times import MAX_TIME, usable_time

log = logging.getLogger(__name__)

LEGACY_URI = "legacy"
TRUST_NAME = "issuers"
TUF_ROLES = ("root", "timestamp", "snapshot", "targets")
_TOKEN_COLUMNS = "uri, iat, exp, raw, sha256, stored_at"
#: the meta key under which a sync stores the centre's policy for the gate's group
CENTRAL_POLICY_KEY = "central_policy"


def policy_target(group: str) -> str:
    """The TUF target path of a gate group's policy (here, not in offline_cache.sync, so the
    daemon, which checks a held policy's target, does not import the TUF client)."""
    return f"policy/{group}.toml"


@dataclass(frozen=True)
class StoredToken:
    """A token as sync stored it: the exact bytes, and the facts sync verified about them."""

    uri: str  # the list's sub; "legacy" for the legacy card list
    iat: float
    exp: float | None
    raw: bytes
    sha256: str  # hex of SHA-256(raw)
    stored_at: float  # the ``at`` of the sync that wrote it


@dataclass(frozen=True)
class PolicyWithdrawn:
    """The centre publishes no policy for the gate's current group (its verified targets.json
    does not list it, or the gate has no group): the held one, if any, is dropped."""

    why: str  # one line for the log: "policy/hq.toml is not published", "[gate] names no group"


@dataclass(frozen=True)
class SyncUpdate:
    """What one successful sync verified, to be stored in one transaction.

    ``status`` holds ``(uri, iat, exp, raw)``; ``legacy`` is ``(iat, exp, raw)``;
    ``trust_pem`` None means "no change"; lists not named here are kept as they are.
    ``ignored`` holds ``(target, why)`` for each target the sync left out (spec 3: a bad
    token is ignored as if absent); it replaces the previous sync's, for ``status``."""

    trust_pem: bytes | None
    status: Sequence[tuple[str, float, float | None, bytes]]
    legacy: tuple[float, float | None, bytes] | None
    tuf_versions: Mapping[str, int]
    time_floor: float | None
    at: float
    ignored: Sequence[tuple[str, str]] = ()
    # The centre's policy for the gate's group, as the caller decided it: (target, bytes)
    # replaces the held one; PolicyWithdrawn drops it; None keeps it (a bad publish, whose
    # target is named in ``ignored``, must not strip a gate's rules).
    policy: tuple[str, bytes] | PolicyWithdrawn | None = None


@dataclass(frozen=True)
class ApplyResult:
    written: list[str]  # uris rewritten ("legacy" for the legacy list)
    unchanged: list[str]  # uris offered but kept as held (same bytes, or same iat)
    trust_changed: bool
    generation: int
    policy_withdrawn: str | None = None  # the target of the central policy dropped ("?" when unreadable)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Keys added to ``meta`` after schema version 1 (sync_ignored, upload_last_*) are written
# when first needed and read as absent before: no migration, so a database stays readable
# by the program version before, and a gate rolled back to it still starts (a migration
# would bump the schema version, which an older program refuses).
def _set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (key, value))  # fmt: skip


def _json_meta(conn: sqlite3.Connection, key: str, default: Any) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None or row[0] is None:
        return default
    try:
        return json.loads(row[0])
    except (ValueError, TypeError):
        return None  # an edited value: the caller says it cannot be read


# The numbers kept in ``meta`` are read back through these, never with a bare float()/int():
# a value a person edited or a bad disk left (text, a negative number, NaN, 1e300, a BLOB) is
# refused with a StoreError naming the key, what it holds and how to recover, never a
# traceback from the status command, the daemon's start or a diagnostic, and never guessed at
# (a time floor taken as "none" would trust a clock set back).
_MAX_COUNTER = 2**62  # generation: one step per sync that changed something


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _damaged(path: Path, key: str, value: Any, expected: str, recovery: str) -> StoreError:
    return StoreError(f"cache database {path}: meta.{key} holds {_shown(value)}, not {expected}: the database was "
                      f"edited or damaged. To recover: {recovery}")


_FLOOR_RECOVERY = ("run `gate-reader sync --config FILE` (a sync that verifies a status list, or runs with the clock "
                   "synchronised, writes the time floor again)")
_GENERATION_RECOVERY = "run `gate-reader sync --config FILE` (a sync writes the counter again)"
_UPLOAD_RECOVERY = "run `gate-reader upload --config FILE` (an upload attempt writes its times again)"


def _meta_time(path: Path, key: str, value: Any, recovery: str) -> float | None:
    """A time kept in ``meta``: None when unset, a float from 0 to year 9999, else StoreError."""
    if value is None:
        return None
    t = usable_time(value)
    if t is None:
        raise _damaged(path, key, value, f"a time (seconds since 1970, 0 to {MAX_TIME:.0f})", recovery)
    return t


def _meta_counter(path: Path, key: str, value: Any, recovery: str) -> int:
    """A counter kept in ``meta``: a whole number from 0, else StoreError."""
    if type(value) is not int or not 0 <= value <= _MAX_COUNTER:
        raise _damaged(path, key, value, "a whole number from 0", recovery)
    return value


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return value


class Store:
    """One open cache database. Use :meth:`open`; close it, or use it as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path, epoch_id: str) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.epoch_id = epoch_id

    # -- opening and closing ---------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, create: bool = False, check: bool = True, readonly: bool = False
    ) -> Store:
        """Open (and, with ``create``, make) the cache database at ``path``.

        StoreError naming the file when it is someone else's database or of a newer schema;
        its subclass CacheUnusable when it is missing without ``create``, empty without
        ``create``, not a SQLite database or corrupt. ``check`` runs ``PRAGMA
        quick_check(1)`` (reads every page once, see :func:`offline_cache.schema.connect`).
        ``readonly`` opens it for reading only (diagnostics): nothing on disk changes, and
        any write through the store fails with StoreError."""
        path = Path(path)
        conn, epoch_id = schema.connect(path, create=create, check=check, readonly=readonly)
        return cls(conn, path, epoch_id)

    def close(self) -> None:
        """Close the connection; idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', closed' if self._conn is None else ''})"

    # -- transactions ----------------------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """The sqlite3 connection (autocommit mode: ``isolation_level=None``); for the
        journal and tests. Transactions go through :meth:`writing` and :meth:`reading`."""
        if self._conn is None:
            raise StoreError(f"cache database {self.path} is closed")
        return self._conn

    @contextmanager
    def guard(self) -> Iterator[sqlite3.Connection]:
        """The connection, with sqlite3 errors (corruption found late, disk full, locked
        past the busy timeout) turned into StoreError naming the file."""
        conn = self.connection
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"cache database {self.path}: {exc}") from None

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` takes the write lock up front (waiting
        up to the busy timeout), so checks made inside it still hold at COMMIT. Anything
        raised inside rolls everything back. Not inside :meth:`reading` (StoreError)."""
        with self.guard() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every read inside sees the same committed state, so the
        trust anchors, lists and generation read one after the other come from one sync.
        Nested use joins the outer transaction."""
        with self.guard() as conn:
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.guard() as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def meta(self, key: str) -> Any:
        """A value from ``meta`` (None when absent)."""
        return self._one("SELECT value FROM meta WHERE key = ?", (key,))

    # -- change marker ---------------------------------------------------------------

    def data_version(self) -> int:
        """``PRAGMA data_version``: changes when another connection committed anything (a
        sync, the uploader marking records sent). Costs microseconds: poll it, then look at
        :meth:`generation` to see whether the lists changed."""
        try:  # no context manager here: this is polled on every presentation
            return self.connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cache database {self.path}: {exc}") from None

    def generation(self) -> int:
        """A counter that :meth:`apply_sync` bumps only when trust or a list changed
        (StoreError naming the key when the stored value is not a whole number from 0)."""
        return _meta_counter(self.path, "generation", self.meta("generation"), _GENERATION_RECOVERY)

    # -- what sync wrote -------------------------------------------------------------

    def trust_pem(self) -> bytes | None:
        value = self._one("SELECT pem FROM trust WHERE name = ?", (TRUST_NAME,))
        return None if value is None else bytes(value)

    def status_tokens(self) -> list[StoredToken]:
        """Every stored status list token, by uri."""
        with self.guard() as conn:
            rows = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM status_lists ORDER BY uri").fetchall()
        return [self._token(row) for row in rows]

    def legacy_token(self) -> StoredToken | None:
        with self.guard() as conn:
            row = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM legacy_list WHERE uri = ?", (LEGACY_URI,)).fetchone()
        return None if row is None else self._token(row)

    def held_iat(self, uri: str) -> float | None:
        """The iat of the status list held for ``uri`` (None if none): sync refuses older."""
        return self._one("SELECT iat FROM status_lists WHERE uri = ?", (uri,))

    @staticmethod
    def _token(row: tuple[Any, ...]) -> StoredToken:
        uri, iat, exp, raw, sha256, stored_at = row
        return StoredToken(uri, iat, exp, bytes(raw), sha256, stored_at)

    def apply_sync(self, update: SyncUpdate) -> ApplyResult:
        """Store what a sync verified, all of it or nothing, in one transaction.

        Per uri (and for the legacy list): the same bytes are not rewritten; a smaller iat
        than the held one raises RollbackRefused and nothing of the update is applied; an
        equal iat keeps the held token (spec 3). Trust is rewritten only when its bytes
        differ; the time floor only rises. The generation moves only if trust or a list
        changed. The sync is recorded as successful in the same transaction."""
        at = _finite(update.at, "update.at")
        offered = self._newest_per_uri(update.status)
        unknown = set(update.tuf_versions) - set(TUF_ROLES)
        if unknown:
            raise ValueError(f"tuf_versions: unknown roles {sorted(unknown)} (known: {', '.join(TUF_ROLES)})")
        if update.legacy is not None:
            iat, exp, raw = update.legacy
            offered.append(("legacy_list", LEGACY_URI, _finite(iat, "legacy iat"), exp, bytes(raw)))
        with self.writing() as conn:
            # First decide everything, then write: a refusal leaves no partial work behind
            # (the rollback would undo it anyway; this keeps the rule readable).
            plan: list[tuple[str, str, float, float | None, bytes, str]] = []
            unchanged: list[str] = []
            for table, uri, iat, exp, raw in offered:
                sha = _sha256(raw)
                held = conn.execute(f"SELECT iat, sha256 FROM {table} WHERE uri = ?", (uri,)).fetchone()
                if held is not None and held[1] == sha:
                    unchanged.append(uri)
                elif held is not None and iat < held[0]:
                    raise RollbackRefused(f"{uri}: iat {iat:g} is older than the held {held[0]:g}; nothing applied")
                elif held is not None and iat == held[0]:
                    unchanged.append(uri)  # spec 3: on equal iat keep the one held
                else:
                    plan.append((table, uri, iat, exp, raw, sha))
            for table, uri, iat, exp, raw, sha in plan:
                conn.execute(
                    f"INSERT OR REPLACE INTO {table} ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (uri, iat, exp, raw, sha, at),
                )
            trust_changed = False
            if update.trust_pem is not None:
                pem = bytes(update.trust_pem)
                sha = _sha256(pem)
                held_sha = conn.execute("SELECT sha256 FROM trust WHERE name = ?", (TRUST_NAME,)).fetchone()
                if held_sha is None or held_sha[0] != sha:
                    conn.execute(
                        "INSERT OR REPLACE INTO trust (name, pem, sha256, stored_at) VALUES (?, ?, ?, ?)",
                        (TRUST_NAME, pem, sha, at),
                    )
                    trust_changed = True
            policy_written, policy_withdrawn = self._apply_policy(conn, update.policy, at)
            if update.time_floor is not None:
                self._raise_floor(conn, _finite(update.time_floor, "time_floor"), "sync")
            generation = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
            repaired = type(generation) is not int or not 0 <= generation <= _MAX_COUNTER
            if repaired:
                # A damaged counter is written again, with a value no counter reached (the sync's
                # time in whole seconds), so every reader that held one before reloads.
                log.warning("cache %s: meta.generation held %s, not a counter: set to %d", self.path,
                            _shown(generation), int(at))
                generation = int(at) - 1
            if plan or trust_changed or policy_written or policy_withdrawn or repaired:
                generation += 1
                conn.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (generation,))
            ignored = [{"target": str(target), "reason": str(reason)} for target, reason in update.ignored]
            _set_meta(conn, "sync_ignored", json.dumps(ignored, ensure_ascii=False))
            sets = ", ".join(f'"{role}" = ?' for role in update.tuf_versions)
            conn.execute(
                "UPDATE sync_state SET last_attempt = ?, last_success = ?, last_error = NULL"
                + (f", {sets}" if sets else "")
                + " WHERE id = 1",
                (at, at, *(int(version) for version in update.tuf_versions.values())),
            )
        written = [uri for _table, uri, *_rest in plan]
        if policy_written is not None:
            written.append(policy_written)
        if policy_withdrawn is not None and isinstance(update.policy, PolicyWithdrawn):
            log.warning("cache %s: generation %s: central %s withdrawn (%s): the gate's own policy applies",
                        self.path, generation, policy_withdrawn, update.policy.why)
        if written or trust_changed:
            log.info("cache %s: generation %s: wrote %s, trust %s", self.path, generation, written, trust_changed)
        return ApplyResult(written, unchanged, trust_changed, generation, policy_withdrawn)

    @staticmethod
    def _apply_policy(conn: sqlite3.Connection, policy: tuple[str, bytes] | PolicyWithdrawn | None,
                      at: float) -> tuple[str | None, str | None]:
        """The central policy's part of :meth:`apply_sync`, inside its transaction: (the target
        written, the target withdrawn), None where nothing changed."""
        if policy is None:
            return None, None
        held = _json_meta(conn, CENTRAL_POLICY_KEY, None)
        if isinstance(policy, PolicyWithdrawn):
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (CENTRAL_POLICY_KEY,)).fetchone()
            if row is None or row[0] is None:
                return None, None
            # A damaged value is dropped too (nothing of it could apply): named "?" then.
            target = held.get("target") if isinstance(held, dict) else None
            conn.execute("DELETE FROM meta WHERE key = ?", (CENTRAL_POLICY_KEY,))
            return None, target if isinstance(target, str) else "?"
        target, raw = policy
        raw = bytes(raw)
        if isinstance(held, dict) and held.get("sha256") == _sha256(raw) and held.get("target") == str(target):
            return None, None
        value = {"target": str(target), "sha256": _sha256(raw), "toml": raw.decode("utf-8"), "stored_at": at}
        _set_meta(conn, CENTRAL_POLICY_KEY, json.dumps(value, ensure_ascii=False))
        return str(target), None

    @staticmethod
    def _newest_per_uri(
        status: Sequence[tuple[str, float, float | None, bytes]],
    ) -> list[tuple[str, str, float, float | None, bytes]]:
        """One token per uri, the largest iat (the first of equals), as spec 3 keeps them."""
        best: dict[str, tuple[str, str, float, float | None, bytes]] = {}
        for uri, iat, exp, raw in status:
            if not isinstance(uri, str) or not uri:
                raise ValueError(f"status list uri must be a non-empty string, not {uri!r}")
            iat = _finite(iat, f"iat of {uri}")
            if uri not in best or iat > best[uri][2]:
                best[uri] = ("status_lists", uri, iat, exp, bytes(raw))
        return list(best.values())

    def record_sync_failure(self, error: str, at: float) -> None:
        """Record a failed attempt: last_attempt and last_error; data and last_success stay."""
        with self.writing() as conn:
            conn.execute(
                "UPDATE sync_state SET last_attempt = ?, last_error = ? WHERE id = 1",
                (_finite(at, "at"), " ".join(str(error).split())[:1000]),
            )

    def sync_state(self) -> dict[str, Any]:
        """``last_attempt``, ``last_success``, ``last_error``, ``tuf_versions`` (a dict of
        root, timestamp, snapshot, targets; None where never seen) and ``ignored`` (the
        targets the last successful sync left out, each ``{"target", "reason"}``)."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT last_attempt, last_success, last_error, root, timestamp, snapshot, targets "
                "FROM sync_state WHERE id = 1"
            ).fetchone()
            ignored = _json_meta(conn, "sync_ignored", [])
        if not isinstance(ignored, list):  # an edited value: say so rather than show nothing
            ignored = [{"target": "?", "reason": "the stored list of ignored targets is unreadable"}]
        return {
            "last_attempt": row[0],
            "last_success": row[1],
            "last_error": row[2],
            "tuf_versions": dict(zip(TUF_ROLES, row[3:], strict=True)),
            "ignored": ignored,
        }

    # -- upload state ----------------------------------------------------------------

    def record_upload(self, at: float, error: str | None) -> None:
        """Record an upload attempt: its time, and its one-line error (None: it worked)."""
        at = _finite(at, "at")
        with self.writing() as conn:
            _set_meta(conn, "upload_last_attempt", at)
            if error is None:
                _set_meta(conn, "upload_last_success", at)
                _set_meta(conn, "upload_last_error", None)
            else:
                _set_meta(conn, "upload_last_error", " ".join(str(error).split())[:1000])

    def upload_state(self) -> dict[str, Any]:
        """``last_attempt``, ``last_success`` and ``last_error`` of the uploads (None where
        there was none); StoreError naming the key for a time that is not one."""
        with self.reading() as conn:
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN "
                                     "('upload_last_attempt', 'upload_last_success', 'upload_last_error')"))
        error = rows.get("upload_last_error")
        return {
            "last_attempt": _meta_time(self.path, "upload_last_attempt", rows.get("upload_last_attempt"),
                                       _UPLOAD_RECOVERY),
            "last_success": _meta_time(self.path, "upload_last_success", rows.get("upload_last_success"),
                                       _UPLOAD_RECOVERY),
            # a text the store wrote; anything else (an edited BLOB or number) is shown as its repr
            "last_error": error if error is None or isinstance(error, str) else _shown(error),
        }

    # -- small JSON values: the daemon's health, its lockdown, the centre's policy ------

    def put_json(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON) under ``key`` in ``meta``, in its own transaction."""
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        with self.writing() as conn:
            _set_meta(conn, key, text)

    def get_json(self, key: str, default: Any = None) -> Any:
        """The JSON value under ``key`` (``default`` when absent; None when it does not
        parse: the caller says it cannot be read)."""
        with self.guard() as conn:
            return _json_meta(conn, key, default)

    # -- trusted time (spec 6) -------------------------------------------------------

    def time_floor(self, *, damaged: float | None = None) -> float | None:
        """The persisted time floor: the clock is untrusted more than the skew below it. A
        stored value that is not a time (edited text, negative, NaN, past the year 9999) is a
        StoreError naming the key and the recovery; a caller that writes a new floor itself
        (sync) passes ``damaged`` to get that value instead, logged."""
        value = self.meta("time_floor")
        try:
            return _meta_time(self.path, "time_floor", value, _FLOOR_RECOVERY)
        except StoreError:
            if damaged is None:
                raise
            log.warning("cache database %s: meta.time_floor holds %s, not a time: taken as %s until a new floor "
                        "replaces it", self.path, _shown(value), damaged)
            return damaged

    def raise_time_floor(self, t: float, source: str) -> None:
        """Raise the floor to ``t`` (never lowers it); ``source`` says why (``sync``,
        ``ntp``...), kept beside it for the status command."""
        with self.writing() as conn:
            self._raise_floor(conn, _finite(t, "time floor"), source)

    @staticmethod
    def _raise_floor(conn: sqlite3.Connection, t: float, source: str) -> None:
        held = usable_time(conn.execute("SELECT value FROM meta WHERE key = 'time_floor'").fetchone()[0])
        # a held value that is not a time (edited, damaged) is replaced: this is the recovery
        if held is None or t > held:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'time_floor'", (t,))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'time_floor_source'", (source,))

    # -- replay memory (spec 2.1) ----------------------------------------------------

    def replay_seen(self, cti: bytes, nonce: bytes, now: float) -> bool:
        """Whether ``(cti, nonce)`` was granted and is still remembered at ``now``."""
        return (
            self._one(
                "SELECT 1 FROM replay WHERE cti = ? AND nonce = ? AND keep_until >= ?",
                (bytes(cti), bytes(nonce), now),
            )
            is not None
        )

    def replay_remember(self, cti: bytes, nonce: bytes, keep_until: float) -> None:
        """Remember a granted pair until ``keep_until`` (iat + window); a later
        ``keep_until`` for the same pair extends it, an earlier one never shortens it."""
        with self.guard() as conn:
            self.remember_in(conn, cti, nonce, keep_until)

    @staticmethod
    def remember_in(conn: sqlite3.Connection, cti: bytes, nonce: bytes, keep_until: float) -> None:
        """:meth:`replay_remember` inside a transaction the caller holds (the journal's)."""
        conn.execute(
            "INSERT INTO replay (cti, nonce, keep_until) VALUES (?, ?, ?) "
            "ON CONFLICT (cti, nonce) DO UPDATE SET keep_until = max(keep_until, excluded.keep_until)",
            (bytes(cti), bytes(nonce), _finite(keep_until, "keep_until")),
        )

    def replay_prune(self, now: float) -> int:
        """Forget pairs that can no longer be fresh; return how many."""
        with self.guard() as conn:
            return conn.execute("DELETE FROM replay WHERE keep_until < ?", (now,)).rowcount
