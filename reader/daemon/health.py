"""The daemon's live health in the store: every ``[daemon] health_interval_s`` the decision
worker writes one JSON value (``meta`` key ``daemon_health``) with its time: the sources,
the door, alarms, lockdown, decision counts and the policy's origin. ``gate-reader status``
shows it when the control socket cannot be reached, and the sync process's upload heartbeat
carries it to the centre (``reader.gate.report.daemon_health``, the reading side, marks it
stale when older than three intervals: a daemon that stopped writing is not running, or is
stuck).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from offline_cache.errors import StoreError
from offline_cache.store import Store
from reader.gate.report import HEALTH_KEY

log = logging.getLogger(__name__)


def write_health(store: Store, health: dict[str, Any]) -> bool:
    """Store ``health``; a failure is logged (once per run of failures) and returned, never
    raised: the door must not stop because the health could not be written."""
    try:
        # A driver's health extras may hold values JSON has no type for (numpy numbers):
        # shown as text rather than losing the whole health.
        store.put_json(HEALTH_KEY, json.loads(json.dumps(health, default=str)))
    except (StoreError, ValueError, TypeError) as exc:
        log.warning("cannot write the daemon's health to the cache: %s", exc)
        return False
    return True
