"""What a gate decides with, read from the offline cache: trust anchors, status lists and
the legacy list, decoded once and kept in memory; reloaded when the store's change marker
moves (a sync committed), so new lists are picked up without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from offline_cache.store import CENTRAL_POLICY_KEY, Store, policy_target
from reader.errors import ConfigError
from reader.gate.cache import read_cache
from reader.gate.config import Config
from reader.gate.policy import SitePolicy, merge, parse_policy_toml
from reader.gatepass.errors import TrustStoreError
from reader.gatepass.files import read_limited
from reader.gatepass.legacy import LegacyList, verify_legacy_token
from reader.gatepass.statuslist import StatusLists, TokenRejected, verify_status_token
from reader.gatepass.trust import MAX_TRUST_FILE_BYTES, TrustStore, anchors_from_pem

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


def site_with_central(store: Store, local: SitePolicy, group: str | None) -> tuple[SitePolicy, str | None]:
    """The local policy with the centre's stored policy for ``group`` (the gate's current
    ``[gate] group``) laid over it, and the problem when the stored one cannot be used (then
    the local policy alone, and the problem says so). Sync checked it against the local
    policy before storing it; this checks again, since the local config may have changed
    since (a SIGHUP after an edit), the group with it: a policy held for another group, or
    held while the gate names none, never applies (the next sync replaces or drops it)."""
    held = store.get_json(CENTRAL_POLICY_KEY)
    if held is None:
        return local, None
    if not isinstance(held, dict) or not isinstance(held.get("toml"), str) or not isinstance(held.get("target"), str):
        return local, "the stored central policy is unreadable; the local policy applies"
    wanted = None if group is None else policy_target(group)
    if held["target"] != wanted:
        for_gate = "the gate names no [gate] group" if wanted is None else f"the gate's group {group!r} uses {wanted}"
        return local, (f"the stored central policy is {held['target']}, but {for_gate}: not applied, the local "
                       "policy applies until the next sync replaces or drops it")
    try:
        tables = parse_policy_toml(held["toml"].encode("utf-8"), where=f"central {held['target']}")
        return merge(local, tables), None
    except ValueError as exc:
        return local, f"{exc}; the local policy applies"
