"""The event journal as people and programs read it: one record as named fields, as a line
of text and as a JSON line (``gate-reader events``; the daemon's diagnostics next).
"""

from __future__ import annotations

import json
from typing import Any

from offline_cache.journal import JournalRecord
from reader.gate.report import iso_time


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
