"""The event journal: the gate's access log, every decision and door event, hash-chained.

Each record has a sequence number (1, 2, ...; never reused), the store's epoch id (made
with the database, so a recreated journal is never mistaken for a replay of an old one)
and two hashes::

    hash = SHA-256(bytes.fromhex(prev_hash) + canonical JSON of the record)

The JSON holds every field but ``hash`` and ``sent_at``, keys sorted, separators ``,``
and ``:``, ``ensure_ascii=False``, UTF-8; times are floats as Python writes them (the
shortest form that reads back the same double). ``prev_hash`` is the previous record's
hash; for seq 1 it is SHA-256 of the epoch id (ASCII hex), so the chain is bound to its
epoch from the first record and no record of another database fits at its start.
A record edited afterwards no longer hashes to its ``hash``; a record deleted leaves the
next one's ``prev_hash`` pointing at nothing.

Records are deleted on purpose in two ways, and both keep the chain verifiable:

* **pruned**: sent records past the retention period (:meth:`Journal.prune_sent`);
* **dropped**: the oldest unsent records past the cap (:meth:`Journal.enforce_cap`).

Each maximal run of deleted seqs is kept as a *hole* row ``(first_seq, last_seq,
prev_hash, last_hash)``: the ``prev_hash`` of its first record and the ``hash`` of its
last. Walking the chain, a jump from seq ``p`` to ``r`` is accepted only when holes cover
exactly ``p+1 .. r-1`` and link up: the first hole's ``prev_hash`` is ``p``'s hash, each
next hole starts with the last one's ``last_hash``, and ``r.prev_hash`` is the last hole's
``last_hash``. A prune of the oldest records is simply a hole starting at seq 1 whose
``prev_hash`` is the genesis hash: the anchor.

Dropping is never silent: the same transaction appends a ``gap`` record (itself chained)
whose ``detail`` is JSON ``{"dropped": N, "first_seq": a, "last_seq": b, "runs":
[[first, last, prev_hash, last_hash], ...]}``. The runs vouch for the dropped range to
the centre, which holds the records on either side: ``prev_hash`` must be the hash of
the record before ``first``, and ``last_hash`` the ``prev_hash`` of the record after
``last``. A later cap drops the gap record too while it is still unsent, and the
new gap record takes over its runs (its own seq becomes one more dropped run): a collector
down for days leaves one gap record, and every dropped record is accounted for by exactly
one gap record that survives (stays in the journal, or reached the centre).

The holes table, like the chain itself, detects accidents and naive edits; anyone who can
write the file can also rewrite the chain after an edit (there is no secret in it). What
makes it binding is the chain head that each upload batch carries, signed with the gate's
Ed25519 key: the centre's copy cannot be rewritten from the gate. For the same reason a
deleted *newest* record is only detectable against the last signed head.
"""

# Over ~400 lines on purpose: the hash chain, its verification, the unsent cap with gap records and retention act
# on the same rows and invariants; apart they would each need the others' rules.

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from offline_cache.store import Store
from offline_cache.times import describe_time, usable_time

log = logging.getLogger(__name__)

KINDS = ("decision", "door", "gap", "system")
_APPEND_KEYS = frozenset({"time", "kind", "reader", "decision", "reason", "subject", "credential_hash", "detail"})
_HOLE = "first_seq, last_seq, prev_hash, last_hash"
_TEXT_FIELDS = ("reader", "decision", "reason", "subject", "detail")
_SHORT_HASH = re.compile(r"[0-9a-f]{8,64}")  # a short hash of the credential id, never the credential
_COLUMNS = (
    "seq, epoch, time, reader, kind, decision, reason, subject, credential_hash, detail, prev_hash, hash, sent_at"
)


@dataclass(frozen=True)
class JournalRecord:
    seq: int
    epoch: str
    time: float
    reader: str | None
    kind: str  # "decision" | "door" | "gap" | "system"
    decision: str | None
    reason: str | None
    subject: str | None
    credential_hash: str | None
    detail: str | None
    prev_hash: str
    hash: str
    sent_at: float | None

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash covers: all but ``hash`` and ``sent_at``."""
        return {name: getattr(self, name) for name in _HASHED}  # not asdict(): 10x slower


_HASHED = tuple(field.name for field in fields(JournalRecord) if field.name not in ("hash", "sent_at"))


def genesis_hash(epoch: str) -> str:
    """The ``prev_hash`` of seq 1: SHA-256 of the epoch id."""
    return hashlib.sha256(epoch.encode("ascii")).hexdigest()


def record_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 of the previous hash's bytes and the canonical JSON of ``fields``."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Run:
    first: int
    last: int
    prev_hash: str
    last_hash: str


def _runs(rows: Iterable[tuple[int, str, str]]) -> list[_Run]:
    """Maximal runs of consecutive seqs in ``(seq, prev_hash, hash)`` rows sorted by seq."""
    runs: list[_Run] = []
    for seq, prev_hash, hash_ in rows:
        if runs and runs[-1].last + 1 == seq:
            runs[-1] = _Run(runs[-1].first, seq, runs[-1].prev_hash, hash_)
        else:
            runs.append(_Run(seq, seq, prev_hash, hash_))
    return runs


def _merge(runs: Iterable[_Run]) -> list[_Run]:
    """Adjacent runs that link up (one's last hash is the next one's prev) become one."""
    merged: list[_Run] = []
    for run in sorted(runs, key=lambda r: r.first):
        if merged and merged[-1].last + 1 == run.first and merged[-1].last_hash == run.prev_hash:
            merged[-1] = _Run(merged[-1].first, run.last, merged[-1].prev_hash, run.last_hash)
        else:
            merged.append(run)
    return merged


def _hashes_to(record: JournalRecord) -> bool:
    """Whether the record hashes to its stored ``hash``; False (not an exception) when a
    field cannot be hashed at all: a prev_hash that is not hex, a BLOB or an infinity."""
    try:
        return record_hash(record.prev_hash, record.hashed_fields()) == record.hash
    except (ValueError, TypeError):
        return False


class _Chain:
    """Walks records in seq order and says, for each, whether it checks out."""

    def __init__(self, epoch: str, holes: dict[int, _Run], seq: int, hash_: str) -> None:
        self.epoch, self.holes, self.next_seq, self.hash = epoch, holes, seq, hash_

    def check(self, record: JournalRecord) -> bool:
        """Whether ``record`` checks out. Never raises: a stored row is whatever is in the
        file, and one bad row (text where a hash belongs, a time no append accepts) is
        flagged here while the walk goes on with the rest."""
        ok = usable_time(record.time) is not None
        while self.next_seq < record.seq:  # cross holes: each must start where we are and link
            hole = self.holes.get(self.next_seq)
            if hole is None or hole.prev_hash != self.hash or hole.last >= record.seq:
                ok = False
                break
            self.next_seq, self.hash = hole.last + 1, hole.last_hash
        ok = (
            ok
            and self.next_seq == record.seq
            and record.prev_hash == self.hash
            and record.epoch == self.epoch
            and _hashes_to(record)
        )
        # Carry on from the stored hash: an edited record is flagged, not all after it.
        self.next_seq, self.hash = record.seq + 1, record.hash
        return ok


class Journal:
    """The journal inside a :class:`Store` (its connection, its epoch id)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.epoch = store.epoch_id
        self._genesis = genesis_hash(self.epoch)

    # -- appending -------------------------------------------------------------------

    def append(
        self,
        *,
        time: float,
        kind: str,
        reader: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
        subject: str | None = None,
        credential_hash: str | None = None,
        detail: str | None = None,
    ) -> int:
        """Append one record and commit it (durable when this returns: it waits for an
        fsync); return its seq. The daemon appends a grant BEFORE it releases the door, so
        a crash never leaves a release without its record."""
        return self.append_many(
            [{"time": time, "kind": kind, "reader": reader, "decision": decision, "reason": reason,
              "subject": subject, "credential_hash": credential_hash, "detail": detail}]
        )[0]  # fmt: skip

    def append_many(self, records: list[dict[str, Any]],
                    also: Callable[[sqlite3.Connection], None] | None = None) -> list[int]:
        """Append records in order in one transaction (one fsync); return their seqs.
        ``also`` writes more in the same transaction, before the records (the daemon's
        replay memory with its grant: both or neither survive a crash)."""
        items = [self._validated(record) for record in records]
        with self._store.writing() as conn:
            if also is not None:
                also(conn)
            return self._insert(conn, items)

    def _validated(self, record: Mapping[str, Any], *, internal: bool = False) -> dict[str, Any]:
        unknown = set(record) - _APPEND_KEYS
        if unknown:
            raise ValueError(f"journal record: unknown fields {sorted(unknown)}")
        kind = record.get("kind")
        if kind not in KINDS or (kind == "gap" and not internal):
            raise ValueError(f"journal record: kind {kind!r} is not one of decision, door, system")
        # A time every reader of the journal can format (events, the upload's CloudEvents
        # time): a number from 1970 to 9999. Text, a bool or 1e20 is refused here, so a
        # stored row that holds one was not written by this code (see _Chain.check).
        time = usable_time(record.get("time"))
        if time is None:
            raise ValueError(f"journal record: time {describe_time(record.get('time'))}")
        item: dict[str, Any] = {"time": time, "kind": kind}
        for name in _TEXT_FIELDS:
            value = record.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"journal record: {name} must be a string or None, not {type(value).__name__}")
            item[name] = value
        short = record.get("credential_hash")
        if short is not None and not (isinstance(short, str) and _SHORT_HASH.fullmatch(short)):
            raise ValueError("journal record: credential_hash must be a short lowercase hex hash of the credential id")
        item["credential_hash"] = short
        return item

    def _insert(self, conn: sqlite3.Connection, items: list[dict[str, Any]]) -> list[int]:
        """Chain and insert ``items`` after the head; the caller holds the write lock."""
        head = self._head(conn)
        seq, prev = (0, self._genesis) if head is None else head
        rows = []
        for item in items:
            seq += 1
            fields = {**item, "seq": seq, "epoch": self.epoch, "prev_hash": prev}
            prev = record_hash(prev, fields)
            rows.append((seq, self.epoch, item["time"], item["reader"], item["kind"], item["decision"],
                         item["reason"], item["subject"], item["credential_hash"], item["detail"],
                         fields["prev_hash"], prev))  # fmt: skip
        conn.executemany(f"INSERT INTO journal ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)", rows)
        return [row[0] for row in rows]

    # -- reading ---------------------------------------------------------------------

    def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last record, None for an empty journal. When every record was
        pruned it is the last pruned one: the chain continues from it, seqs never reused."""
        with self._store.reading() as conn:
            return self._head(conn)

    @staticmethod
    def _head(conn: sqlite3.Connection) -> tuple[int, str] | None:
        last = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        hole = conn.execute("SELECT last_seq, last_hash FROM journal_holes ORDER BY last_seq DESC LIMIT 1").fetchone()
        candidates = [tuple(row) for row in (last, hole) if row is not None]
        return max(candidates) if candidates else None  # type: ignore[return-value]

    def records(self, since: int | None = None, limit: int | None = None) -> list[tuple[JournalRecord, bool]]:
        """Records with seq greater than ``since`` (all if None), in order, up to ``limit``,
        each with ``chain_ok``: False where the record does not hash to its ``hash``, its
        ``prev_hash`` is not the previous hash, or a jump in seq is not covered by holes."""
        with self._store.reading() as conn:
            chain = self._chain_from(conn, since)
            cursor = conn.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (since if since is not None else 0, limit if limit is not None else -1),
            )
            return [(record, chain.check(record)) for record in map(self._record, cursor)]

    def verify_chain(self) -> tuple[bool, int | None]:
        """Walk the whole journal: (True, None), or (False, the first seq that fails)."""
        for record, ok in self._walk():
            if not ok:
                return False, record.seq
        return True, None

    def _walk(self) -> Iterator[tuple[JournalRecord, bool]]:
        with self._store.reading() as conn:
            chain = self._chain_from(conn, None)
            for record in map(self._record, conn.execute(f"SELECT {_COLUMNS} FROM journal ORDER BY seq")):
                yield record, chain.check(record)

    def _chain_from(self, conn: sqlite3.Connection, since: int | None) -> _Chain:
        holes = {row[0]: _Run(*row) for row in conn.execute(f"SELECT {_HOLE} FROM journal_holes")}
        if since is not None:
            before = conn.execute("SELECT seq, hash FROM journal WHERE seq <= ? ORDER BY seq DESC LIMIT 1", (since,))
            row = before.fetchone()
            if row is not None:
                return _Chain(self.epoch, holes, row[0] + 1, row[1])
        return _Chain(self.epoch, holes, 1, self._genesis)

    @staticmethod
    def _record(row: tuple[Any, ...]) -> JournalRecord:
        return JournalRecord(*row)

    def unsent(self, limit: int) -> list[JournalRecord]:
        """Up to ``limit`` unsent records, oldest first."""
        with self._store.guard() as conn:
            cursor = conn.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE sent_at IS NULL ORDER BY seq LIMIT ?", (int(limit),)
            )
            return [self._record(row) for row in cursor]

    def counts(self) -> dict[str, int]:
        """``total`` and ``unsent`` records held now; ``gaps`` (gap records written),
        ``dropped`` (records dropped past the cap) and ``pruned`` over the journal's life."""
        with self._store.reading() as conn:
            total = conn.execute("SELECT count(*) FROM journal").fetchone()[0]
            unsent = conn.execute("SELECT count(*) FROM journal WHERE sent_at IS NULL").fetchone()[0]
            life = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'journal\\_%' ESCAPE '\\'"))
        return {"total": total, "unsent": unsent, "gaps": life["journal_gaps"],
                "dropped": life["journal_dropped"], "pruned": life["journal_pruned"]}  # fmt: skip

    # -- upload bookkeeping ----------------------------------------------------------

    def mark_sent(self, seqs: list[int], at: float) -> None:
        """Mark records sent (the collector answered 2xx). Seqs already sent, pruned or
        dropped meanwhile are ignored."""
        with self._store.writing() as conn:
            conn.executemany(
                "UPDATE journal SET sent_at = ? WHERE seq = ? AND sent_at IS NULL",
                [(float(at), int(seq)) for seq in seqs],
            )

    def prune_sent(self, older_than: float) -> int:
        """Delete sent records older than ``older_than`` (by their time or, for a record
        stamped by a clock that ran ahead, by when it was sent); return how many. Holes keep
        the remaining chain verifiable."""
        with self._store.writing() as conn:
            rows = conn.execute(
                "SELECT seq, prev_hash, hash FROM journal WHERE sent_at IS NOT NULL AND min(time, sent_at) < ? "
                "ORDER BY seq",
                (float(older_than),),
            ).fetchall()
            if rows:
                self._delete(conn, rows)
                conn.execute("UPDATE meta SET value = value + ? WHERE key = 'journal_pruned'", (len(rows),))
        return len(rows)

    def enforce_cap(self, max_unsent: int, now: float, *, headroom: int = 0) -> int:
        """Keep at most ``max_unsent`` unsent records, the gap record included: past it,
        drop the oldest unsent ones and append a gap record saying how many and which seqs,
        in one transaction. Return how many records were dropped (0 at or below the cap).

        An unsent gap record from an earlier call is dropped too, its account carried into
        the new one: however often this runs while the collector is down, one gap record
        accounts for the whole outage instead of one per call. ``headroom`` drops that many
        more records than needed, for a caller that runs this after every append."""
        if max_unsent < 1 or headroom < 0 or headroom >= max_unsent:
            raise ValueError(f"enforce_cap: need max_unsent >= 1, 0 <= headroom < max_unsent: {max_unsent}, {headroom}")
        with self._store.writing() as conn:
            unsent = conn.execute("SELECT count(*) FROM journal WHERE sent_at IS NULL").fetchone()[0]
            if unsent <= max_unsent:
                return 0
            excess = unsent - (max_unsent - headroom) + 1  # + 1: room for the new gap record
            columns = "seq, prev_hash, hash, kind, detail FROM journal WHERE sent_at IS NULL"
            gaps = conn.execute(f"SELECT {columns} AND kind = 'gap' ORDER BY seq").fetchall()
            oldest = conn.execute(
                f"SELECT {columns} AND kind != 'gap' ORDER BY seq LIMIT ?", (max(excess - len(gaps), 0),)
            ).fetchall()
            rows = sorted(gaps + oldest)
            runs = _runs((seq, prev_hash, hash_) for seq, prev_hash, hash_, _kind, _detail in rows)
            for seq, _prev, _hash, _kind, detail in gaps:  # their accounts pass to the new one
                runs.extend(self._gap_runs(seq, detail))
            runs = _merge(runs)
            self._delete(conn, [row[:3] for row in rows])
            account = {
                "dropped": sum(run.last - run.first + 1 for run in runs),
                "first_seq": runs[0].first,
                "last_seq": max(run.last for run in runs),
                "runs": [[run.first, run.last, run.prev_hash, run.last_hash] for run in runs],
            }
            gap = self._validated({"time": now, "kind": "gap", "detail": json.dumps(account)}, internal=True)
            (seq,) = self._insert(conn, [gap])
            conn.execute("UPDATE meta SET value = value + ? WHERE key = 'journal_dropped'", (len(rows),))
            conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'journal_gaps'")
        log.warning(
            "journal: dropped %s unsent records past max_unsent=%s; gap record seq %s accounts for %s (seq %s..%s)",
            len(rows), max_unsent, seq, account["dropped"], account["first_seq"], account["last_seq"],
        )  # fmt: skip
        return len(rows)

    @staticmethod
    def _gap_runs(seq: int, detail: str | None) -> list[_Run]:
        try:
            return [_Run(int(a), int(b), str(p), str(h)) for a, b, p, h in json.loads(detail or "")["runs"]]
        except (ValueError, TypeError, KeyError) as exc:
            log.error("journal: gap record seq %s has an unreadable account (%s); only the record itself is counted",
                      seq, exc)  # fmt: skip
            return []

    def _delete(self, conn: sqlite3.Connection, rows: list[tuple[int, str, str]]) -> None:
        """Delete records (``(seq, prev_hash, hash)``, sorted) and record the holes they
        leave, merged with the holes on either side when they link up."""
        conn.executemany("DELETE FROM journal WHERE seq = ?", [(row[0],) for row in rows])
        for run in _runs(rows):
            merged = [run]
            before = conn.execute(f"SELECT {_HOLE} FROM journal_holes WHERE last_seq = ?", (run.first - 1,)).fetchone()
            after = conn.execute(f"SELECT {_HOLE} FROM journal_holes WHERE first_seq = ?", (run.last + 1,)).fetchone()
            merged += [_Run(*row) for row in (before, after) if row is not None]
            for hole in _merge(merged):
                conn.execute("DELETE FROM journal_holes WHERE first_seq BETWEEN ? AND ?", (hole.first, hole.last))
                conn.execute("INSERT INTO journal_holes VALUES (?, ?, ?, ?)",
                             (hole.first, hole.last, hole.prev_hash, hole.last_hash))  # fmt: skip
