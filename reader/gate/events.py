"""The event journal as people and programs read it: one record as named fields, as a line
of text and as a JSON line, and which records to show (``gate-reader events`` and its
filters; ``--follow`` reads on from the last record shown).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from offline_cache.journal import Journal, JournalRecord
from reader.gate.report import iso_time
from reader.gate.timeparse import check_time, parse_time


def record_fields(record: JournalRecord, chain_ok: bool) -> dict[str, Any]:
    """A record with its time in ISO 8601 and whether the hash chain checks out at it."""
    return {
        "seq": record.seq, "time": iso_time(record.time), "reader": record.reader, "kind": record.kind,
        "decision": record.decision, "reason": record.reason, "subject": record.subject,
        "credential_hash": record.credential_hash, "detail": record.detail, "chain_ok": chain_ok,
    }  # fmt: skip


def record_json(record: JournalRecord, chain_ok: bool) -> str:
    """One JSON line. An edited row can hold a BLOB where text belongs: it is shown (its
    repr, cut to 200 characters), never a reason to stop."""
    return json.dumps(record_fields(record, chain_ok), default=lambda value: repr(value)[:200])


def record_text(record: JournalRecord, chain_ok: bool) -> str:
    """One line of text: the fields in order, ``-`` for a missing one, the detail last in
    parentheses."""
    fields = record_fields(record, chain_ok)
    return (" ".join("-" if value is None else str(value) for key, value in fields.items() if key != "detail")
            + (f"  ({record.detail})" if record.detail else ""))


# -- choosing and following records (``gate-reader events`` filters and ``--follow``) -------

_AGO = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: records read from the store at once: a journal of a million records is paged, never loaded whole
PAGE = 1000


@dataclass(frozen=True)
class EventFilter:
    """Which records to show: any of ``readers`` (none: every reader), one ``decision``,
    any of ``kinds``, and records at or after ``since_time`` (epoch seconds)."""

    readers: frozenset[str] = frozenset()
    decision: str | None = None
    kinds: frozenset[str] = frozenset()
    since_time: float | None = None

    def matches(self, record: JournalRecord) -> bool:
        if self.readers and record.reader not in self.readers:
            return False
        if self.decision is not None and record.decision != self.decision:
            return False
        if self.kinds and record.kind not in self.kinds:
            return False
        # A row whose time is not a number (an edited journal) is shown: it cannot be placed.
        return not (self.since_time is not None and isinstance(record.time, int | float)
                    and record.time < self.since_time)


def parse_since(text: str, now: float) -> tuple[int | None, float | None]:
    """``--since``: a sequence number (digits: records after it), a time (ISO 8601 with a
    zone: records from it), or a span back from ``now`` (``30s``, ``10m``, ``2h``, ``1d``).
    Returns (seq, time), one of them None; ValueError quoting the text otherwise."""
    text = text.strip()
    if text.isdigit() and len(text) <= 18:
        return int(text), None
    match = _AGO.match(text)
    if match:
        return None, now - float(match.group(1)) * _UNIT_S[match.group(2)]
    if text.isdigit():
        raise ValueError(f"--since {text[:20]!r}...: not a sequence number")
    try:
        return None, check_time(parse_time(text))
    except ValueError:
        raise ValueError(f"--since {text[:64]!r}: give a sequence number (120), a time with its zone "
                         "(2026-12-01T08:00:00Z) or a span back from now (30s, 10m, 2h, 1d)") from None


class EventReader:
    """Reads the journal on from where it stopped: each :meth:`new` call returns the records
    appended since the last one that ``chosen`` matches, in order, each with whether the
    hash chain checks out at it, read a page at a time (``--follow`` calls it again and
    again; records skipped by the filter are not read twice)."""

    def __init__(self, journal: Journal, after_seq: int | None, chosen: EventFilter) -> None:
        self.journal = journal
        self.last_seq = after_seq
        self.chosen = chosen

    def new(self) -> Iterator[tuple[JournalRecord, bool]]:
        while True:
            page = self.journal.records(since=self.last_seq, limit=PAGE)
            for record, chain_ok in page:
                self.last_seq = record.seq
                if self.chosen.matches(record):
                    yield record, chain_ok
            if len(page) < PAGE:
                return
