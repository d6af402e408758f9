"""The gate's metrics in the Prometheus text exposition format (0.0.4), for node_exporter's
textfile collector (the daemon writes the file, ``reader.daemon.metrics``; no port is open).

What is counted, and from where:

- decisions by reader, decision and reason, and the decision latency histogram (from a
  presentation read to its decision journaled): :class:`DecisionMetrics`, fed by the decision
  worker. Counters start at zero with the daemon and survive nothing: the collector reads
  the current values and Prometheus computes rates across restarts (a reset is a restart).
- sources up or down, the door's state, its alarms, lockdown and the fire hold: the
  daemon's health (the same data ``status`` shows).
- status list age, the last successful sync, journal unsent records and gaps, the clock
  trusted and synchronised: read from the cache (:func:`store_facts`).

Labels are bounded: reader names come from the config (a presentation from a source the
config does not name is counted under ``reader="unknown"``), reasons from the spec's closed
set (anything else is ``reason="other"``), door states and alarms from the door machine's
closed sets, list uris from the lists the gate holds (at most :data:`MAX_LISTS`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from offline_cache.journal import Journal
from offline_cache.store import Store
from reader.gate.clock import gate_clock
from reader.gate.door_machine import ALARMS
from reader.gatepass.verdict import GRANTED, REASONS

#: the histogram's upper bounds in seconds: a decision takes ~1-20 ms on a Pi (the journal's
#: fsync dominates); the upper buckets show a slow SD card or a queue building up
LATENCY_BUCKETS_S: tuple[float, ...] = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
KNOWN_REASONS = frozenset((*REASONS, GRANTED))
DOOR_STATES = ("secured", "released", "open")
MAX_LISTS = 64
PREFIX = "gate_reader_"


def _escape(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class Family:
    """One metric family: its name, type, help and samples ``(suffix, labels, value)``."""

    name: str
    kind: str  # counter, gauge, histogram
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> Family:
        self.samples.append((suffix, labels, float(value)))
        return self

    def text(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for suffix, labels, value in self.samples:
            shown = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            lines.append(f"{self.name}{suffix}{'{' + shown + '}' if shown else ''} {_number(value)}")
        return "\n".join(lines)


class DecisionMetrics:
    """Decisions counted by (reader, decision, reason) and their latency per reader, in one
    process's life. Thread-safe: the decision worker observes, the metrics writer reads."""

    def __init__(self, readers: Iterable[str]) -> None:
        self.readers = frozenset(readers)
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}  # reader -> count per bucket (not cumulative), +Inf last
        self._sums: dict[str, float] = {}

    def observe(self, reader: str, granted: bool, reason: str, latency_s: float) -> None:
        reader = reader if reader in self.readers else "unknown"
        reason = reason if reason in KNOWN_REASONS else "other"
        key = (reader, "grant" if granted else "deny", reason)
        if not math.isfinite(latency_s) or latency_s < 0:  # a clock gone wrong: counted, not timed
            latency_s = 0.0
        slot = next((i for i, bound in enumerate(LATENCY_BUCKETS_S) if latency_s <= bound), len(LATENCY_BUCKETS_S))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            buckets = self._buckets.setdefault(reader, [0] * (len(LATENCY_BUCKETS_S) + 1))
            buckets[slot] += 1
            self._sums[reader] = self._sums.get(reader, 0.0) + latency_s

    def families(self) -> list[Family]:
        with self._lock:
            counts = dict(self._counts)
            buckets = {reader: list(values) for reader, values in self._buckets.items()}
            sums = dict(self._sums)
        decisions = Family(PREFIX + "decisions_total", "counter",
                           "Decisions since the daemon started, by reader, decision and reason (spec section 7).")
        for (reader, decision, reason), count in sorted(counts.items()):
            decisions.add(count, reader=reader, decision=decision, reason=reason)
        latency = Family(PREFIX + "decision_latency_seconds", "histogram",
                         "From a presentation read to its decision journaled, per reader.")
        for reader in sorted(set(buckets) | self.readers):  # every reader, also before its first decision
            values = buckets.get(reader, [0] * (len(LATENCY_BUCKETS_S) + 1))
            total = 0
            for bound, count in zip((*LATENCY_BUCKETS_S, math.inf), values, strict=True):
                total += count
                latency.add(total, "_bucket", reader=reader, le="+Inf" if math.isinf(bound) else _number(bound))
            latency.add(sums.get(reader, 0.0), "_sum", reader=reader)
            latency.add(total, "_count", reader=reader)
        return [decisions, latency]


def health_families(health: Mapping[str, Any] | None) -> list[Family]:
    """Sources, door, alarms, lockdown and the worker's own counts from the daemon's health
    (``Pipeline.health``); None when the decision worker did not answer in time."""
    answering = Family(PREFIX + "worker_responding", "gauge",
                       "1 when the decision worker answered the metrics request in time.")
    answering.add(0 if health is None else 1)
    if health is None:
        return [answering]
    up = Family(PREFIX + "source_up", "gauge", "1 while the reader's device is open and read.")
    reads = Family(PREFIX + "source_reads_total", "counter", "Presentations read by the source (this instance).")
    restarts = Family(PREFIX + "source_restarts_total", "counter", "Stalled source loops restarted.")
    for name, source in sorted((health.get("sources") or {}).items()):
        driver = str(source.get("driver", ""))
        up.add(1 if source.get("up") else 0, reader=name, driver=driver)
        reads.add(int(source.get("reads") or 0), reader=name, driver=driver)
        restarts.add(int(source.get("restarts") or 0), reader=name, driver=driver)
    door = health.get("door") or {}
    state = Family(PREFIX + "door_state", "gauge", "1 for the door's current state (secured, released, open).")
    for name in DOOR_STATES:
        state.add(1 if door.get("state") == name else 0, state=name)
    released = Family(PREFIX + "door_relay_released", "gauge", "1 while the lock output is at its released level.")
    released.add(1 if door.get("relay_released") else 0)
    alarms = Family(PREFIX + "door_alarm", "gauge", "1 while the alarm is active.")
    active = set(door.get("alarms") or ())
    for name in sorted(ALARMS):
        alarms.add(1 if name in active else 0, alarm=name)
    lockdown = Family(PREFIX + "lockdown", "gauge", "1 while a lockdown holds.").add(1 if health.get("lockdown") else 0)
    fire = Family(PREFIX + "fire_hold", "gauge", "1 while the fire input holds the door released.")
    fire.add(1 if door.get("fire_hold") else 0)
    counts = health.get("decisions") or {}
    dropped = Family(PREFIX + "presentations_dropped_total", "counter",
                     "Presentations dropped because the decision queue was full.")
    dropped.add(int(counts.get("dropped") or 0))
    failures = Family(PREFIX + "journal_failures_total", "counter",
                      "Appends to the journal that failed (a grant then is not carried out).")
    failures.add(int(counts.get("journal_failures") or 0))
    queue = Family(PREFIX + "decision_queue", "gauge", "Presentations waiting for the decision worker.")
    queue.add(int(health.get("queue") or 0))
    return [answering, up, reads, restarts, state, released, alarms, lockdown, fire, dropped, failures, queue]


@dataclass(frozen=True)
class StoreFacts:
    """What the cache says, for the metrics: each list's age, the sync, the journal, the clock."""

    list_ages_s: dict[str, float]  # uri -> now - iat
    legacy_age_s: float | None
    last_sync_success: float | None
    last_sync_attempt: float | None
    sync_failing: bool
    unsent: int
    gaps: int
    dropped: int
    time_floor: float | None
    clock_trusted: bool


def store_facts(store: Store, skew_s: float, now: float | None = None) -> StoreFacts:
    """Read from the cache (a read-only connection of the caller's; no token is verified
    again: the lists were verified when sync stored them, and their ``iat`` is kept beside)."""
    now = time.time() if now is None else now
    tokens = sorted(store.status_tokens(), key=lambda token: token.uri)[:MAX_LISTS]
    legacy = store.legacy_token()
    sync = store.sync_state()
    counts = Journal(store).counts()
    floor = store.time_floor()
    return StoreFacts(
        list_ages_s={token.uri: now - token.iat for token in tokens},
        legacy_age_s=None if legacy is None else now - legacy.iat,
        last_sync_success=sync["last_success"], last_sync_attempt=sync["last_attempt"],
        sync_failing=sync["last_error"] is not None,
        unsent=counts["unsent"], gaps=counts["gaps"], dropped=counts["dropped"],
        time_floor=floor, clock_trusted=gate_clock(now, floor, skew_s).trusted,
    )


def store_families(facts: StoreFacts | None, synchronised: bool | None) -> list[Family]:
    """The cache's facts (None: the cache could not be read, ``cache_readable`` 0) and
    whether the kernel says the system clock is synchronised (None: it cannot say)."""
    readable = Family(PREFIX + "cache_readable", "gauge", "1 when the metrics could read the cache.")
    readable.add(0 if facts is None else 1)
    families = [readable]
    if synchronised is not None:
        families.append(Family(PREFIX + "clock_synchronised", "gauge",
                               "1 when the kernel says network time keeps the system clock in sync.")
                        .add(1 if synchronised else 0))
    if facts is None:
        return families
    ages = Family(PREFIX + "status_list_age_seconds", "gauge", "Seconds since the held status list's iat.")
    for uri, age in facts.list_ages_s.items():
        ages.add(age, list=uri)
    families.append(ages)
    if facts.legacy_age_s is not None:
        families.append(Family(PREFIX + "legacy_list_age_seconds", "gauge",
                               "Seconds since the held legacy card list's iat.").add(facts.legacy_age_s))
    if facts.last_sync_success is not None:
        families.append(Family(PREFIX + "last_sync_success_timestamp_seconds", "gauge",
                               "When the last successful sync ran (epoch seconds).").add(facts.last_sync_success))
    if facts.last_sync_attempt is not None:
        families.append(Family(PREFIX + "last_sync_attempt_timestamp_seconds", "gauge",
                               "When the last sync was tried (epoch seconds).").add(facts.last_sync_attempt))
    families += [
        Family(PREFIX + "sync_failing", "gauge", "1 when the last sync attempt failed.").add(int(facts.sync_failing)),
        Family(PREFIX + "journal_unsent_records", "gauge", "Journal records not yet accepted by the collector.")
        .add(facts.unsent),
        Family(PREFIX + "journal_gaps_total", "counter", "Gap records written (unsent records dropped past the cap).")
        .add(facts.gaps),
        Family(PREFIX + "journal_dropped_records_total", "counter", "Unsent records dropped past the cap.")
        .add(facts.dropped),
        Family(PREFIX + "clock_trusted", "gauge", "1 unless the clock is more than the skew below the time floor.")
        .add(int(facts.clock_trusted)),
    ]
    if facts.time_floor is not None:
        families.append(Family(PREFIX + "time_floor_timestamp_seconds", "gauge",
                               "The persisted trusted-time floor (epoch seconds).").add(facts.time_floor))
    return families


def render(gate_id: str, version: str, families: Iterable[Family], now: float | None = None) -> str:
    """The whole file: an info line, the families given, and when it was written (so a
    textfile that stopped changing shows)."""
    info = Family(PREFIX + "info", "gauge", "The gate and the program's version.").add(1, gate=gate_id,
                                                                                       version=version)
    written = Family(PREFIX + "metrics_written_timestamp_seconds", "gauge", "When this file was written.")
    written.add(time.time() if now is None else now)
    return "\n".join(family.text() for family in (info, *families, written)) + "\n"
