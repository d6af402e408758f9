"""The event journal (offline_cache/journal.py): the hash chain, edits and deletions it
detects, the unsent cap with its gap records, retention, and the collector down for days.

The hypothesis test runs random append / mark_sent / prune / enforce_cap sequences against
a model of what the centre received, and checks after every step that the chain verifies
and that every record lost unsent is accounted for by exactly one surviving gap record.
Example count: ``GATE_HYPOTHESIS_EXAMPLES`` (the profile in tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offline_cache.journal import Journal, JournalRecord, genesis_hash
from offline_cache.store import Store


def event(i: int, **extra: object) -> dict:
    return {
        "time": 1_700_000_000.0 + i,
        "kind": "decision",
        "reader": "door-1",
        "decision": "grant" if i % 3 else "deny",
        "reason": "granted" if i % 3 else "revoked",
        "subject": f"Employee Ñumber {i}",
        "credential_hash": hashlib.sha256(str(i).encode()).hexdigest()[:16],
        **extra,
    }


def fill(journal: Journal, count: int, start: int = 0, batch: int = 500) -> None:
    for first in range(start, start + count, batch):
        journal.append_many([event(i) for i in range(first, min(first + batch, start + count))])


def gap_accounts(journal: Journal) -> list[dict]:
    return [json.loads(record.detail or "") for record, _ok in journal.records() if record.kind == "gap"]


# -- the chain ------------------------------------------------------------------------


def test_append_and_chain(store: Store) -> None:
    journal = Journal(store)
    assert journal.head() is None and journal.records() == [] and journal.verify_chain() == (True, None)
    assert journal.append(**event(0)) == 1
    assert journal.append_many([event(1), event(2, kind="door", decision=None, reason=None, detail="opened")]) == [2, 3]
    assert journal.append(time=5, kind="system", detail="daemon started") == 4
    rows = journal.records()
    assert [record.seq for record, _ok in rows] == [1, 2, 3, 4] and all(ok for _record, ok in rows)
    first = rows[0][0]
    assert first.epoch == store.epoch_id and first.prev_hash == genesis_hash(store.epoch_id)
    assert first.subject == "Employee Ñumber 0" and first.sent_at is None
    # The hash as documented, computed independently of the module.
    fields = {k: v for k, v in first.__dict__.items() if k not in ("hash", "sent_at")}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert first.hash == hashlib.sha256(bytes.fromhex(first.prev_hash) + canonical).hexdigest()
    for (before, _), (after, _) in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    assert journal.head() == (4, rows[-1][0].hash)
    assert [record.seq for record, _ok in journal.records(since=2)] == [3, 4]
    assert [record.seq for record, _ok in journal.records(since=1, limit=2)] == [2, 3]
    assert journal.verify_chain() == (True, None)
    assert journal.epoch == store.epoch_id


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "gap"},  # only enforce_cap writes gap records
        {"kind": "login"},
        {"time": float("nan")},
        {"time": None},
        {"subject": 42},
        {"credential_hash": "GP1:NCFOXN..."},  # a whole credential is never logged
        {"nonce": "00ff"},
    ],
)
def test_bad_records_are_refused_and_append_many_is_atomic(store: Store, bad: dict) -> None:
    journal = Journal(store)
    with pytest.raises(ValueError):
        journal.append_many([event(0), {**event(1), **bad}])
    assert journal.counts()["total"] == 0


def test_edit_is_detected(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 10)
    store.connection.execute("UPDATE journal SET subject = 'Someone Else' WHERE seq = 4")
    assert journal.verify_chain() == (False, 4)
    assert [ok for _record, ok in journal.records()] == [True] * 3 + [False] + [True] * 6


def test_edit_with_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 10)
    record = next(record for record, _ok in journal.records() if record.seq == 4)
    from offline_cache.journal import record_hash

    forged = JournalRecord(**{**record.__dict__, "subject": "Someone Else"})
    store.connection.execute(
        "UPDATE journal SET subject = ?, hash = ? WHERE seq = 4",
        (forged.subject, record_hash(forged.prev_hash, forged.hashed_fields())),
    )
    assert journal.verify_chain() == (False, 5)


@pytest.mark.parametrize("seq", [1, 5])
def test_deleted_record_is_detected(store: Store, seq: int) -> None:
    journal = Journal(store)
    fill(journal, 10)
    store.connection.execute("DELETE FROM journal WHERE seq = ?", (seq,))
    assert journal.verify_chain() == (False, seq + 1)


def test_records_of_another_epoch_do_not_fit(store: Store, tmp_path: Path) -> None:
    journal = Journal(store)
    fill(journal, 3)
    with Store.open(tmp_path / "other.db", create=True) as other:
        Journal(other).append_many([event(0)])
        row = other.connection.execute("SELECT * FROM journal WHERE seq = 1").fetchone()
    store.connection.execute("DELETE FROM journal WHERE seq = 1")
    store.connection.execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    assert journal.verify_chain() == (False, 1)


# -- the cap, gap records, retention ----------------------------------------------------


def test_nothing_is_dropped_at_or_below_the_cap(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 100)
    assert journal.enforce_cap(100, now=1) == 0
    assert journal.counts() == {"total": 100, "unsent": 100, "gaps": 0, "dropped": 0, "pruned": 0}
    journal.mark_sent(list(range(1, 51)), at=2)
    fill(journal, 50, start=100)
    assert journal.enforce_cap(100, now=3) == 0 and journal.counts()["unsent"] == 100


def test_enforce_cap_drops_oldest_unsent_with_a_gap_record(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 30)
    journal.mark_sent(list(range(1, 11)), at=2)  # 1..10 sent, 11..30 unsent
    hashes = {record.seq: record.hash for record, _ok in journal.records()}
    assert journal.enforce_cap(15, now=1_800_000_000) == 6
    unsent = journal.unsent(100)
    assert len(unsent) == 15  # the gap record counts against the cap
    assert [record.seq for record in unsent] == [*range(17, 31), 31]
    gap = unsent[-1]
    assert gap.kind == "gap" and gap.time == 1_800_000_000 and gap.subject is None
    account = json.loads(gap.detail or "")
    assert account == {"dropped": 6, "first_seq": 11, "last_seq": 16, "runs": [[11, 16, hashes[10], hashes[16]]]}
    assert journal.verify_chain() == (True, None)
    assert all(ok for _record, ok in journal.records())
    assert [record.seq for record, _ok in journal.records(since=9)] == [10, *range(17, 32)]
    assert all(ok for _record, ok in journal.records(since=12))  # starting inside the hole
    assert journal.counts() == {"total": 25, "unsent": 15, "gaps": 1, "dropped": 6, "pruned": 0}


def test_a_second_cap_takes_over_the_unsent_gap_record(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 20)
    journal.enforce_cap(10, now=1)  # drops 1..11, gap at 21
    fill(journal, 5, start=100)  # 22..26
    assert journal.enforce_cap(10, now=2) == 6  # 12..16 and the gap record 21
    gaps = [record for record, _ok in journal.records() if record.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].seq == 27
    account = json.loads(gaps[0].detail or "")
    assert account["dropped"] == 17 and (account["first_seq"], account["last_seq"]) == (1, 21)
    assert [run[:2] for run in account["runs"]] == [[1, 16], [21, 21]]
    assert journal.verify_chain() == (True, None) and journal.counts()["unsent"] == 10


def test_headroom(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 101)
    assert journal.enforce_cap(100, now=1, headroom=10) == 12
    assert journal.counts()["unsent"] == 90
    with pytest.raises(ValueError):
        journal.enforce_cap(10, now=1, headroom=10)


def test_prune_sent_keeps_the_rest_verifiable(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 40)
    journal.mark_sent([*range(1, 21), 25, 26], at=1_700_000_030.0)
    assert journal.prune_sent(older_than=1_700_000_015.0) == 15  # 1..15 by record time
    assert journal.verify_chain() == (True, None)
    assert journal.prune_sent(older_than=1_700_000_100.0) == 7  # 16..20, 25, 26 (a middle hole)
    assert journal.verify_chain() == (True, None)
    assert [record.seq for record, _ok in journal.records()] == [21, 22, 23, 24, *range(27, 41)]
    assert all(ok for _record, ok in journal.records(since=25))
    holes = store.connection.execute("SELECT first_seq, last_seq FROM journal_holes ORDER BY 1").fetchall()
    assert holes == [(1, 20), (25, 26)]  # 1..15 and 16..20 merged into one anchor
    assert journal.counts()["pruned"] == 22
    store.connection.execute("UPDATE journal SET reason = 'not_authorized' WHERE seq = 27")
    assert journal.verify_chain() == (False, 27)


def test_pruning_everything_keeps_seq_and_chain(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 5)
    head = journal.head()
    journal.mark_sent([1, 2, 3, 4, 5], at=1)
    assert journal.prune_sent(older_than=2e9) == 5
    assert journal.head() == head and journal.records() == []
    assert journal.append(**event(9)) == 6  # never reused
    record, ok = journal.records()[0]
    assert record.prev_hash == head[1] and ok and journal.verify_chain() == (True, None)


def test_mark_sent_ignores_unknown_and_already_sent(store: Store) -> None:
    journal = Journal(store)
    fill(journal, 3)
    journal.mark_sent([1], at=10)
    journal.mark_sent([1, 2, 99], at=20)
    sent = {record.seq: record.sent_at for record, _ok in journal.records()}
    assert sent == {1: 10, 2: 20, 3: None}
    assert [record.seq for record in journal.unsent(10)] == [3]


def test_collector_down_for_days(store: Store) -> None:
    """5,000 events while the collector is down, with the upload timer running the cap
    every 250 events (cap 1,000): one gap record accounts for everything dropped; nothing
    below the cap is lost; upload then resumes in order where it stopped."""
    journal = Journal(store)
    fill(journal, 200)
    journal.mark_sent([record.seq for record in journal.unsent(100)], at=1)  # before the outage
    for start in range(200, 5200, 250):  # events 200..5199
        fill(journal, 250, start=start)
        journal.enforce_cap(1000, now=2)
    counts = journal.counts()
    assert counts["unsent"] == 1000 and counts["total"] == 1100
    accounts = gap_accounts(journal)
    assert len(accounts) == 1
    # Every record appended but neither sent nor held is in the gap record's runs.
    held = {record.seq for record, _ok in journal.records()}
    last_seq = journal.head()[0]
    lost = set(range(1, last_seq + 1)) - held
    runs = {seq for first, last, _p, _h in accounts[0]["runs"] for seq in range(first, last + 1)}
    assert runs == lost and accounts[0]["dropped"] == len(lost) == counts["dropped"]
    newest = [record.subject for record, _ok in journal.records() if record.kind == "decision"][-999:]
    assert newest == [f"Employee Ñumber {i}" for i in range(5200 - 999, 5200)]  # the newest are all kept
    assert journal.verify_chain() == (True, None)
    # The collector is back: batches of 300, in seq order, each resuming after the last.
    uploaded: list[int] = []
    while batch := journal.unsent(300):
        assert not uploaded or batch[0].seq > uploaded[-1]
        uploaded += [record.seq for record in batch]
        journal.mark_sent([record.seq for record in batch], at=3)
    assert uploaded == sorted(uploaded) and len(uploaded) == 1000
    assert journal.counts()["unsent"] == 0 and journal.verify_chain() == (True, None)


# -- property: random operations never break the chain or lose a record silently ----------


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "gate.db"
    Store.open(path, create=True).close()
    return path


APPEND = st.tuples(st.just("append"), st.integers(1, 30))
CAP = st.tuples(st.just("cap"), st.integers(1, 12))
OPS = st.lists(
    st.one_of(  # appends and caps weigh more: losses, gap records and their take-overs need them
        APPEND,
        APPEND,
        APPEND,
        CAP,
        CAP,
        st.tuples(st.just("mark_sent"), st.lists(st.integers(1, 120), max_size=10)),
        st.tuples(st.just("sent_prefix"), st.integers(0, 40)),
        st.tuples(st.just("prune"), st.integers(0, 120)),
    ),
    min_size=2,
    max_size=30,
)


# The profile's settings (tests/conftest.py), and fixtures shared across examples on purpose:
# each example opens its own copy of the template database.
@settings(suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_operations_keep_the_chain_and_account_for_losses(template_db: Path, tmp_path: Path, ops: list) -> None:
    path = tmp_path / f"{os.urandom(6).hex()}.db"
    shutil.copy(template_db, path)
    with Store.open(path, check=False) as store:
        journal = Journal(store)
        appended = 0
        received: dict[int, JournalRecord] = {}  # what the centre has (marked sent)
        clock = 0.0
        for op, arg in ops:
            clock += 1
            if op == "append":
                fill(journal, arg, start=appended, batch=5)
                appended += arg
            elif op in ("mark_sent", "sent_prefix"):
                wanted = arg if op == "mark_sent" else range(1, arg + 1)
                present = {record.seq: record for record, _ok in journal.records()}
                for seq in wanted:
                    if seq in present and present[seq].sent_at is None:
                        received[seq] = present[seq]
                journal.mark_sent(list(wanted), at=1_700_000_000.0 + clock)
            elif op == "prune":
                journal.prune_sent(older_than=1_700_000_000.0 + arg)
            else:
                journal.enforce_cap(arg, now=1_700_000_000.0 + clock)
                assert journal.counts()["unsent"] <= arg
            assert journal.verify_chain() == (True, None), ops
            held = {record.seq: record for record, _ok in journal.records()}
            head = journal.head()
            every = set(range(1, head[0] + 1)) if head else set()
            lost = every - set(held) - set(received)
            surviving_gaps = [r for r in {**received, **held}.values() if r.kind == "gap"]
            accounted: list[int] = []
            for gap in surviving_gaps:
                account = json.loads(gap.detail or "")
                seqs = [seq for first, last, _p, _h in account["runs"] for seq in range(first, last + 1)]
                assert account["dropped"] == len(seqs)
                accounted += seqs
            assert sorted(accounted) == sorted(lost), "a record was lost without exactly one gap record for it"
            assert journal.counts()["dropped"] == len(lost)
