"""The metrics text: valid Prometheus text format (checked by a strict reader of it), bounded
labels, counts and histograms that add up."""

from __future__ import annotations

from pathlib import Path

from offline_cache.journal import Journal
from offline_cache.store import Store, SyncUpdate
from reader.gate.metrics import DecisionMetrics, health_families, render, store_facts, store_families
from tests.support.promtext import parse, value

HEALTH = {
    "sources": {"lobby-nfc": {"up": True, "driver": "nfc", "reads": 7, "restarts": 0},
                'cam "a"': {"up": False, "driver": "camera", "reads": 0, "restarts": 2}},
    "door": {"state": "released", "relay_released": True, "fire_hold": False, "alarms": ["tamper"]},
    "lockdown": True, "decisions": {"grant": 3, "deny": 1, "dropped": 2, "journal_failures": 0}, "queue": 1,
}


def test_labels_are_bounded_to_configured_readers_and_the_closed_reason_set() -> None:
    metrics = DecisionMetrics(["lobby-nfc", 'cam "a"'])
    metrics.observe("lobby-nfc", True, "granted", 0.004)
    metrics.observe("lobby-nfc", False, "revoked", 0.030)
    metrics.observe("lobby-nfc", False, "revoked", 7.0)
    metrics.observe("stranger", False, "revoked", 0.001)  # a source the config does not name
    metrics.observe("lobby-nfc", False, "made up reason\n", float("nan"))
    families = parse(render("g1", "0.1.0", metrics.families(), now=1.5))
    name = "gate_reader_decisions_total"
    assert {frozenset(labels.items()) for _s, labels, _v in families[name].samples} == {
        frozenset({"decision": d, "reason": r, "reader": n}.items()) for d, r, n in (
            ("grant", "granted", "lobby-nfc"), ("deny", "revoked", "lobby-nfc"), ("deny", "revoked", "unknown"),
            ("deny", "other", "lobby-nfc"))}
    assert value(families, name, reader="lobby-nfc", reason="revoked") == 2
    latency = "gate_reader_decision_latency_seconds"
    assert value(families, latency, "_count", reader="lobby-nfc") == 4
    assert value(families, latency, "_bucket", reader="lobby-nfc", le="0.005") == 2  # 0.004 and the NaN as 0
    assert value(families, latency, "_bucket", reader="lobby-nfc", le="2.5") == 3
    assert value(families, latency, "_bucket", reader="lobby-nfc", le="+Inf") == 4
    assert abs(value(families, latency, "_sum", reader="lobby-nfc") - 7.034) < 1e-9
    # a configured reader with no decision yet still has its (empty) histogram
    assert value(families, latency, "_count", reader='cam "a"') == 0
    assert value(families, "gate_reader_info", gate="g1") == 1


def test_health_becomes_source_door_alarm_and_lockdown_gauges() -> None:
    families = parse(render("g1", "0.1.0", health_families(HEALTH)))
    assert value(families, "gate_reader_source_up", reader="lobby-nfc") == 1
    assert value(families, "gate_reader_source_up", reader='cam "a"') == 0  # the quote escaped and read back
    assert value(families, "gate_reader_source_restarts_total", reader='cam "a"') == 2
    assert [value(families, "gate_reader_door_state", state=s) for s in ("secured", "released", "open")] == [0, 1, 0]
    assert value(families, "gate_reader_door_alarm", alarm="tamper") == 1
    assert value(families, "gate_reader_door_alarm", alarm="fire") == 0
    assert value(families, "gate_reader_lockdown") == 1
    assert value(families, "gate_reader_presentations_dropped_total") == 2
    assert value(families, "gate_reader_worker_responding") == 1
    silent = parse(render("g1", "0.1.0", health_families(None)))
    assert value(silent, "gate_reader_worker_responding") == 0 and "gate_reader_source_up" not in silent


def test_store_facts_give_list_age_sync_journal_and_clock(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    with Store.open(tmp_path / "cache.db", create=True) as store:
        store.apply_sync(SyncUpdate(trust_pem=None, status=[("https://s/1", now - 600, None, b"t1")], legacy=None,
                                    tuf_versions={}, time_floor=now - 600, at=now - 60))
        store.record_sync_failure("metadata: connection refused", now - 5)
        journal = Journal(store)
        for _ in range(3):
            journal.append(time=now, kind="system", reason="daemon_started")
        facts = store_facts(store, 300.0, now)
    families = parse(render("g1", "0.1.0", store_families(facts, True)))
    assert value(families, "gate_reader_status_list_age_seconds", list="https://s/1") == 600
    assert value(families, "gate_reader_last_sync_success_timestamp_seconds") == now - 60
    assert value(families, "gate_reader_sync_failing") == 1
    assert value(families, "gate_reader_journal_unsent_records") == 3
    assert value(families, "gate_reader_journal_gaps_total") == 0
    assert value(families, "gate_reader_clock_trusted") == 1
    assert value(families, "gate_reader_clock_synchronised") == 1
    unreadable = parse(render("g1", "0.1.0", store_families(None, None)))
    assert value(unreadable, "gate_reader_cache_readable") == 0 and "gate_reader_clock_synchronised" not in unreadable
