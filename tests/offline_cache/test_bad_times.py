"""Times outside what a date can show (issue 8, item 8): every formatter answers for every
value, the journal refuses such a time on append, and a stored row that holds one anyway
(edited by hand) is flagged as a chain failure and still uploaded, without holding back
the records after it, the unsent cap or the retention."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_cache.journal import Journal
from offline_cache.store import Store
from offline_cache.times import MAX_TIME, format_time, show_time, usable_time
from offline_cache.upload import Uploader
from tests.support.collector import Collector, Pki, make_pki

NOW = 1_800_000_000.0
OUT_OF_RANGE = [MAX_TIME + 1, 1e20, 2.0**63 - 1, float("inf"), float("-inf"), -1, "abc", b"\x01", True, None]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_times_outside_datetime_range_are_formatted_safely(value: object) -> None:
    assert usable_time(value) is None
    assert format_time(value) is None and format_time(value, "milliseconds") is None
    shown = show_time(value)
    assert "not a" in shown and len(shown) < 100


def test_times_at_the_edges_of_the_range_are_dates() -> None:
    assert show_time(0) == "1970-01-01T00:00:00Z"
    assert show_time(MAX_TIME) == "9999-12-31T23:59:59Z"
    assert format_time(MAX_TIME + 0.9999, "milliseconds") is None  # rounds into the year 10000: refused
    assert show_time("x" * 10_000).endswith("(not a number of seconds)") and len(show_time("x" * 10_000)) < 100


@pytest.mark.parametrize("value", [MAX_TIME + 1, 1e20, -5, "1800000000", True])
def test_the_journal_refuses_a_time_no_report_could_show(store: Store, value: object) -> None:
    journal = Journal(store)
    with pytest.raises(ValueError, match="journal record: time"):
        journal.append(time=value, kind="decision")  # type: ignore[arg-type]
    assert journal.counts()["total"] == 0


def _journal_with_edited_rows(store: Store) -> Journal:
    """Six records, then rows 2 and 4 edited as someone with the file could: a time past
    the year 9999 and a text time. Row 5 gets an infinity and a BLOB in a text column."""
    journal = Journal(store)
    journal.append_many([{"time": NOW + i, "kind": "decision", "reader": "r1", "subject": f"E{i}"}
                         for i in range(1, 7)])  # fmt: skip
    conn = store.connection
    conn.execute("UPDATE journal SET time = 1e20 WHERE seq = 2")
    conn.execute("UPDATE journal SET time = 'abc' WHERE seq = 4")
    conn.execute("UPDATE journal SET time = 9e999, subject = x'00ff', kind = 'Not A Word' WHERE seq = 5")
    return journal


def test_a_bad_stored_row_is_a_chain_failure_and_the_walk_goes_on(store: Store) -> None:
    journal = _journal_with_edited_rows(store)
    rows = journal.records()
    assert [(record.seq, ok) for record, ok in rows] == [(1, True), (2, False), (3, True), (4, False),
                                                         (5, False), (6, True)]  # fmt: skip
    assert journal.verify_chain() == (False, 2)
    # A row whose hash column is not hex at all is a failure too, not an exception.
    store.connection.execute("UPDATE journal SET prev_hash = 'zz' WHERE seq = 6")
    assert [ok for _record, ok in journal.records(since=5)] == [False]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def collector(pki: Pki) -> Iterator[Collector]:
    with Collector(pki) as running:
        yield running


def test_a_bad_stored_row_does_not_block_the_upload(store: Store, collector: Collector, tmp_path: Path) -> None:
    journal = _journal_with_edited_rows(store)
    uploader = Uploader(journal, url=collector.url, gate_id="g1", gate_key=Ed25519PrivateKey.generate(),
                        ca_file=collector.pki.ca_file, batch=4, heartbeat=dict)  # fmt: skip
    result = uploader.run_once(NOW + 10)
    assert result.error is None and result.sent == 6 and journal.counts()["unsent"] == 0
    events = {event["id"]: event for event in collector.events.values()}
    good, far, text, odd = (events[f"g1:{store.epoch_id}:{seq}"] for seq in (1, 2, 4, 5))
    assert good["time"] == "2027-01-15T08:00:01.000Z" and "problems" not in good["data"]
    assert "time" not in far and far["data"]["time"] == 1e20 and "1e+20" in far["data"]["problems"][0]
    assert "time" not in text and text["data"]["time"] == "abc"
    assert odd["type"] == "org.gatepass.gate.unreadable" and odd["data"]["time"] == "inf"
    assert odd["data"]["subject"] == "bytes:00ff" and len(odd["data"]["problems"]) == 2
    # Retention and the cap run over such rows as over any other.
    assert journal.prune_sent(NOW + 1e9) == 6 and journal.counts()["total"] == 0


def test_a_record_of_another_epoch_is_sent_flagged_under_the_journals_epoch(
    store: Store, collector: Collector
) -> None:
    journal = Journal(store)
    journal.append_many([{"time": NOW, "kind": "door"}, {"time": NOW + 1, "kind": "door"}])
    store.connection.execute("UPDATE journal SET epoch = 'x:y' WHERE seq = 1")
    uploader = Uploader(journal, url=collector.url, gate_id="g1", gate_key=Ed25519PrivateKey.generate(),
                        ca_file=collector.pki.ca_file, heartbeat=dict)  # fmt: skip
    assert uploader.run_once(NOW + 5).sent == 2
    first = collector.events[f"g1:{store.epoch_id}:1"]
    assert first["data"]["epoch"] == "x:y" and "epoch" in first["data"]["problems"][0]
    assert json.loads(json.dumps(first)) == first
