"""What ``gate-reader status`` and the heartbeat say about a gate, as data: its lists and
their age, the clock, the last sync and upload, the journal, and the problems someone
watching the gate should act on.
"""

from __future__ import annotations

import time
from typing import Any

from offline_cache.journal import Journal
from offline_cache.store import Store
from offline_cache.times import show_time
from reader.gate.clock import gate_clock
from reader.gate.config import Config
from reader.gate.state import load_state

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
#: the meta key of the running daemon's health (reader.daemon.health writes it)
HEALTH_KEY = "daemon_health"
#: stored health older than this many of its intervals is stale: the daemon is not running, or stuck
HEALTH_STALE_INTERVALS = 3


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
    daemon = daemon_health(config, store, now)
    problems += daemon_problems(config, daemon)
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
        "daemon": daemon,
        "problems": problems,
    }


def daemon_health(config: Config, store: Store, now: float) -> dict[str, Any] | None:
    """The health the running daemon last stored, with ``age_s`` and ``stale`` (older than
    three of its intervals); None when no daemon ever stored one."""
    health = store.get_json(HEALTH_KEY)
    if health is None:
        return None
    if not isinstance(health, dict) or not isinstance(health.get("at"), int | float):
        return {"stale": True, "age_s": None, "error": "the stored daemon health is unreadable"}
    age = now - health["at"]
    stale = not -60 <= age <= HEALTH_STALE_INTERVALS * config.daemon.health_interval_s
    return {**health, "age_s": round(age, 1), "stale": stale, "origin": "stored"}


def daemon_problems(config: Config, daemon: dict[str, Any] | None) -> list[str]:
    """A daemon that should run ([door] configured) and does not, sources down, alarms."""
    if config.door is None:
        return []
    if daemon is None:
        return ["daemon: it never stored its health (is gate-reader.service running?)"]
    if daemon.get("stopped"):
        return [f"daemon: stopped at {iso_time(daemon.get('at'))} (not running)"]
    problems = []
    if daemon.get("stale"):
        problems.append(f"daemon: its health is {daemon.get('age_s')} s old (not running, or stuck)")
    for name, source in sorted((daemon.get("sources") or {}).items()):
        if isinstance(source, dict) and not source.get("up"):
            problems.append(f"source {name} down since {iso_time(source.get('down_since'))}: "
                            f"{source.get('last_error') or 'no error recorded'}")
    if daemon.get("policy_problem"):
        problems.append(f"policy: {daemon['policy_problem']}")
    door = daemon.get("door") or {}
    for alarm in door.get("alarms") or []:
        problems.append(f"door alarm: {alarm}")
    return problems


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
