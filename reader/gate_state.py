"""What a gate decides with, read from the offline cache: trust anchors, status lists and
the legacy list, decoded once and kept in memory; reloaded when the store's change
marker moves (a sync committed), so new lists are picked up without a restart. And what
``gate-reader status`` and the heartbeat say about it, problems first.

Two ways to open the cache, kept apart (issue 8, item 11): the job that owns it (sync, later
the daemon) opens it for writing and is the only one that may move a corrupt file aside;
diagnostics and one-shot checks (``status``, ``events``, ``verify --config``) open it
read-only and never change a file, so they also work on a read-only database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline_cache.errors import CacheUnusable
from offline_cache.journal import Journal
from offline_cache.store import Store
from offline_cache.times import show_time
from reader.clock import gate_clock
from reader.config import Config
from reader.errors import ConfigError
from reader.gatepass.errors import TrustStoreError
from reader.gatepass.files import read_limited
from reader.gatepass.legacy import LegacyList, verify_legacy_token
from reader.gatepass.statuslist import StatusLists, TokenRejected, verify_status_token
from reader.gatepass.trust import MAX_TRUST_FILE_BYTES, TrustStore, anchors_from_pem

log = logging.getLogger(__name__)

# When an upload backlog is a problem. Records wait for the next sync timer run (30 s), so
# some unsent records are normal; one still unsent after 15 minutes means some 30 runs in a
# row could not deliver it, which someone should look at. Near the cap (90 %) records are
# about to be dropped (with a gap record), whatever their age.
BACKLOG_AGE_S = 900.0
BACKLOG_CAP_SHARE = 0.9
# A sync timer that stopped running shows first as no attempt at all: ten periods missed
# (at least ten minutes) is not a slow server any more.
SYNC_SILENCE_PERIODS = 10
SYNC_SILENCE_MIN_S = 600.0


@dataclass
class GateState:
    trust: TrustStore
    lists: StatusLists
    legacy: LegacyList | None
    time_floor: float | None
    generation: int
    data_version: int
    problems: list[str] = field(default_factory=list)


def open_cache(config: Config, *, create: bool = False) -> Store:
    """The cache opened by the job that owns it (sync, later the daemon), for writing.

    A missing (without ``create``) or corrupt database is an error naming the file, unless
    the config says to start empty: then the bad file is kept aside as evidence, a new one
    is made, and credentials that need a list are status_unknown until a sync. A database
    that is locked, of a newer schema or someone else's is never moved (see CacheUnusable).
    A cache directory that cannot be made or written is a configuration error."""
    path = cache_file(config)
    _check_cache_directory(path)
    try:
        return Store.open(path, create=create)
    except CacheUnusable as exc:
        if not config.cache.start_empty:
            raise
        if path.exists():
            aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):  # the WAL belongs to the bad file: it goes with it
                companion = path.with_name(path.name + suffix)
                if companion.exists():
                    companion.rename(aside.with_name(aside.name + suffix))
            log.warning("%s; moved it to %s and started an empty cache, as [cache] start_empty says", exc, aside)
        return Store.open(path, create=True)


def cache_file(config: Config) -> Path:
    """``[cache] path``; a directory there is a configuration error naming the key."""
    path = Path(config.cache.path)
    if path.is_dir():
        raise ConfigError(f"cache.path: {path} is a directory, not the database file")
    return path


def _check_cache_directory(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cache.path: cannot create the directory {parent}: {exc.strerror or exc}") from None
    if not parent.is_dir():
        raise ConfigError(f"cache.path: {parent} is not a directory")


def read_cache(config: Config) -> Store | None:
    """The cache opened read-only, for diagnostics and one-shot checks: nothing on disk
    changes. None when it is missing or unusable and the config says to start empty (the
    caller then works without it, and leaves the file to the job that owns it)."""
    try:
        return Store.open(cache_file(config), readonly=True)
    except CacheUnusable as exc:
        if not config.cache.start_empty:
            raise
        log.warning("%s; going on without it, as [cache] start_empty says (the file is left as it is)", exc)
        return None


def read_gate_state(config: Config) -> GateState:
    """The state a one-shot check decides with (``verify --config``): read-only, and empty
    (with ``[gate] trust``) when the cache is unusable and the config says to start empty.
    Problems are logged once here, since a one-shot check has nowhere else to show them."""
    store = read_cache(config)
    if store is None:
        state = _decode(None, [], None, None, 0, 0, config.gate.trust)
    else:
        with store:
            state = load_state(store, config.gate.trust)
    for problem in state.problems:
        log.warning("cache: %s", problem)
    return state


def load_state(store: Store, fallback_trust: Path | None = None) -> GateState:
    """Decode what sync stored. Sync verified everything before storing it; the tokens are
    verified again here because the daemon trusts its own checks, not a file on disk. A
    token that no longer verifies is left out and reported in ``problems`` (not logged:
    whoever shows the state reports them). ``fallback_trust`` ([gate] trust) is read only
    when the cache holds no issuer certificates; a file that cannot be used is a
    ConfigError naming the key."""
    # One read transaction: trust, lists and generation all come from the same sync.
    with store.reading():
        data_version = store.data_version()
        pem = store.trust_pem()
        tokens = [(token.uri, token.raw) for token in store.status_tokens()]
        stored_legacy = store.legacy_token()
        floor, generation = store.time_floor(), store.generation()
    legacy_raw = None if stored_legacy is None else stored_legacy.raw
    return _decode(pem, tokens, legacy_raw, floor, generation, data_version, fallback_trust, f"{store.path} (trust)")


def _decode(
    pem: bytes | None, tokens: list[tuple[str, bytes]], legacy_raw: bytes | None, floor: float | None, generation: int,
    data_version: int, fallback_trust: Path | None, label: str = "",
) -> GateState:  # fmt: skip
    problems: list[str] = []
    trust = TrustStore()
    if pem is None and fallback_trust is not None:
        pem = read_limited(fallback_trust, MAX_TRUST_FILE_BYTES, f"gate.trust: {fallback_trust}", ConfigError)
        try:
            trust = TrustStore(anchors_from_pem(pem, f"gate.trust: {fallback_trust}"))
        except TrustStoreError as exc:
            raise ConfigError(str(exc)) from None
    elif pem is not None:
        try:
            trust = TrustStore(anchors_from_pem(pem, label))
        except TrustStoreError as exc:
            problems.append(str(exc))
    lists = StatusLists()
    for uri, raw in tokens:
        try:
            lists.offer(verify_status_token(raw, trust))
        except TokenRejected as exc:
            problems.append(f"stored status list {uri} no longer verifies: {exc}")
    legacy = None
    if legacy_raw is not None:
        try:
            legacy = verify_legacy_token(legacy_raw, trust)
        except TokenRejected as exc:
            problems.append(f"stored legacy card list no longer verifies: {exc}")
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
    from a store the caller has open. ``problems`` lists, one line each, everything that
    someone watching the gate should act on; ``status`` exits 1 when there is any."""
    now = time.time() if now is None else now
    policy = config.policy
    state = load_state(store, config.gate.trust)
    clock = gate_clock(now, state.time_floor, policy.skew_s)
    problems = list(state.problems)
    lists = []
    for status_list in state.lists:
        stale = status_list.is_stale(now, policy.max_age_s)
        lists.append({
            "uri": status_list.uri, "iat": iso_time(status_list.iat), "exp": iso_time(status_list.exp),
            "age_s": round(now - status_list.iat), "entries": status_list.entries, "bits": status_list.bits,
            "stale": stale,
        })  # fmt: skip
        if stale:
            problems.append(f"status list {status_list.uri} is stale (iat {iso_time(status_list.iat)}, exp "
                            f"{iso_time(status_list.exp) or 'none'}, max age {policy.max_age_s:g} s)")  # fmt: skip
    legacy = None
    if state.legacy is not None:
        legacy = {"iat": iso_time(state.legacy.iat), "exp": iso_time(state.legacy.exp),
                  "cards": len(state.legacy.cards), "stale": state.legacy.is_stale(now, policy.max_age_s)}
        if legacy["stale"]:
            problems.append(f"legacy card list is stale (iat {legacy['iat']}, exp {legacy['exp'] or 'none'})")
    if not clock.trusted:
        problems.append(f"clock untrusted: the system time {iso_time(now)} is more than {policy.skew_s:g} s "
                        f"below the time floor {iso_time(state.time_floor)}")  # fmt: skip
    sync_state = store.sync_state()
    problems += _sync_problems(config, sync_state, now)
    journal = Journal(store)
    counts = journal.counts()
    upload_state = store.upload_state()
    oldest = journal.unsent(1)
    oldest_unsent = oldest[0].time if oldest else None
    problems += _upload_problems(config, upload_state, counts["unsent"], oldest_unsent, now)
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
        "upload": {"configured": config.upload is not None, "last_attempt": iso_time(upload_state["last_attempt"]),
                   "last_success": iso_time(upload_state["last_success"]), "last_error": upload_state["last_error"],
                   "oldest_unsent": iso_time(oldest_unsent)},
        "problems": problems,
    }


def _sync_problems(config: Config, sync_state: dict[str, Any], now: float) -> list[str]:
    problems = [f"sync ignored {entry.get('target')}: {entry.get('reason')}"
                for entry in sync_state["ignored"] if isinstance(entry, dict)]  # fmt: skip
    attempt, success, error = sync_state["last_attempt"], sync_state["last_success"], sync_state["last_error"]
    if error is not None:
        problems.append(f"sync failing: the last attempt ({iso_time(attempt)}) failed: {error}; "
                        f"last success {iso_time(success) or 'never'}")  # fmt: skip
    if config.sync is None:
        return problems
    if success is None and error is None:
        problems.append("sync: no sync has succeeded yet")
    silence = max(SYNC_SILENCE_PERIODS * config.sync.interval_s, SYNC_SILENCE_MIN_S)
    if isinstance(attempt, int | float) and now - attempt > silence:
        problems.append(f"sync: no attempt since {iso_time(attempt)} (is gate-reader-sync.timer running?)")
    return problems


def _upload_problems(
    config: Config, upload_state: dict[str, Any], unsent: int, oldest_unsent: Any, now: float
) -> list[str]:
    """A failing upload (its last attempt failed) and a backlog worth a look. Without
    [upload] the journal stays on the gate by design, so an unsent count is no problem."""
    if config.upload is None:
        return []
    problems = []
    if upload_state["last_error"] is not None:
        attempt, success = iso_time(upload_state["last_attempt"]), iso_time(upload_state["last_success"])
        problems.append(f"upload failing: the last attempt ({attempt}) failed: {upload_state['last_error']}; "
                        f"last success {success or 'never'}")  # fmt: skip
    if isinstance(oldest_unsent, int | float) and now - oldest_unsent > BACKLOG_AGE_S:
        problems.append(f"upload backlog: {unsent} records unsent, the oldest from {iso_time(oldest_unsent)}")
    elif unsent >= BACKLOG_CAP_SHARE * config.upload.max_unsent:
        problems.append(f"upload backlog: {unsent} records unsent, near max_unsent={config.upload.max_unsent} "
                        "(past it the oldest are dropped)")  # fmt: skip
    return problems
