"""What a gate decides with, read from the offline cache: trust anchors, status lists and
the legacy list, decoded once and kept in memory; reloaded when the store's change
marker moves (a sync committed), so new lists are picked up without a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline_cache.errors import StoreError
from offline_cache.journal import Journal
from offline_cache.store import Store
from offline_cache.times import show_time
from reader.clock import gate_clock
from reader.config import Config
from reader.errors import TrustStoreError
from reader.gatepass.legacy import LegacyList, verify_legacy_token
from reader.gatepass.statuslist import StatusLists, TokenRejected, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem

log = logging.getLogger(__name__)


@dataclass
class GateState:
    trust: TrustStore
    lists: StatusLists
    legacy: LegacyList | None
    time_floor: float | None
    generation: int
    data_version: int
    problems: list[str] = field(default_factory=list)


def open_cache(config: Config) -> Store:
    """The gate's store. A missing or corrupt database is an error naming the file, unless
    the config says to start empty: then the bad file is kept aside as evidence, a new
    one is made, and credentials that need a list are status_unknown until a sync."""
    path = Path(config.cache.path)
    try:
        return Store.open(path)
    except StoreError as exc:
        if not config.cache.start_empty:
            raise
        log.error("%s; starting with an empty cache as [cache] start_empty says", exc)
        if path.exists():
            aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
            path.rename(aside)
            log.error("cache: the unusable database was moved to %s", aside)
        return Store.open(path, create=True)


def load_state(store: Store, fallback_trust: Path | None = None) -> GateState:
    """Decode what sync stored. Sync verified everything before storing it; the tokens are
    verified again here because the daemon trusts its own checks, not a file on disk. A
    token that no longer verifies is left out and reported in ``problems``."""
    # One read transaction: trust, lists and generation all come from the same sync.
    with store.reading():
        data_version = store.data_version()
        pem = store.trust_pem()
        tokens = store.status_tokens()
        stored_legacy = store.legacy_token()
        floor, generation = store.time_floor(), store.generation()
    problems: list[str] = []
    trust = TrustStore()
    label = f"{store.path} (trust)"
    if pem is None and fallback_trust is not None:
        pem, label = fallback_trust.read_bytes(), str(fallback_trust)
    if pem is not None:
        try:
            trust = TrustStore(anchors_from_pem(pem, label))
        except TrustStoreError as exc:
            problems.append(str(exc))
    lists = StatusLists()
    for token in tokens:
        try:
            lists.offer(verify_status_token(token.raw, trust))
        except TokenRejected as exc:
            problems.append(f"status list {token.uri}: {exc}")
    legacy = None
    if stored_legacy is not None:
        try:
            legacy = verify_legacy_token(stored_legacy.raw, trust)
        except TokenRejected as exc:
            problems.append(f"legacy card list: {exc}")
    for problem in problems:
        log.error("cache: %s", problem)
    return GateState(trust, lists, legacy, floor, generation, data_version, problems)


def reload_if_changed(store: Store, state: GateState, fallback_trust: Path | None = None) -> GateState:
    """The state again if a sync committed since ``state`` was loaded; the same object
    otherwise. Polling costs one PRAGMA (microseconds), so a daemon can do it every tap."""
    version = store.data_version()
    if version == state.data_version:
        return state
    if store.generation() == state.generation:
        state.data_version = version  # another writer (the journal, the uploader)
        state.time_floor = store.time_floor()
        return state
    return load_state(store, fallback_trust)


def iso_time(t: Any) -> str | None:
    """Epoch seconds as ISO 8601 UTC with a Z, as technicians read them; None for None.
    Never raises: a value no date can show (a list's exp in the year 10000, an edited
    journal row) is shown as itself with the reason (offline_cache.times)."""
    return None if t is None else show_time(t)


def status_report(config: Config, store: Store, now: float | None = None) -> dict[str, Any]:
    """Everything ``gate-reader status`` shows, as data (also the heartbeat's source),
    from a store the caller has open."""
    now = time.time() if now is None else now
    policy = config.policy
    state = load_state(store, config.gate.trust)
    clock = gate_clock(now, state.time_floor, policy.skew_s)
    lists = [
        {
            "uri": status_list.uri, "iat": iso_time(status_list.iat), "exp": iso_time(status_list.exp),
            "age_s": round(now - status_list.iat), "entries": status_list.entries, "bits": status_list.bits,
            "stale": status_list.is_stale(now, policy.max_age_s),
        }
        for status_list in state.lists
    ]
    legacy = None
    if state.legacy is not None:
        legacy = {"iat": iso_time(state.legacy.iat), "exp": iso_time(state.legacy.exp),
                  "cards": len(state.legacy.cards), "stale": state.legacy.is_stale(now, policy.max_age_s)}
    sync_state = store.sync_state()
    counts = Journal(store).counts()
    return {
        "gate": config.gate.id,
        "cache": str(config.cache.path),
        "status_lists": lists,
        "legacy_list": legacy,
        "trust_anchors": [{"kid": anchor.kid.hex(), "subject": anchor.subject} for anchor in state.trust],
        "time_floor": iso_time(state.time_floor),
        "clock_trusted": clock.trusted,
        "sync": {key: (iso_time(value) if key.startswith("last_") and key != "last_error" else value)
                 for key, value in sync_state.items()},
        "journal": counts,
        "problems": state.problems,
    }
