"""The central policy's part of a sync update (offline_cache/store.py): replace, withdraw
or keep, applied in the sync's one transaction with the lists (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline_cache.errors import RollbackRefused
from offline_cache.store import CENTRAL_POLICY_KEY, PolicyWithdrawn, Store, SyncUpdate

A = "https://gates.example/status/a"
POLICY = b'[readers.cam]\nkinds = ["nfc"]\n'


def update(policy: tuple[str, bytes] | PolicyWithdrawn | None, *, iat: float = 100.0, raw: bytes = b"list",
           at: float = 1000.0) -> SyncUpdate:
    return SyncUpdate(None, [(A, iat, None, raw)], None, {}, None, at, policy=policy)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "c.db", create=True) as opened:
        yield opened  # type: ignore[misc]


def test_a_policy_withdrawal_is_applied_with_the_rest_of_the_sync_or_not_at_all(store: Store) -> None:
    store.apply_sync(update(("policy/hq.toml", POLICY), iat=200.0))
    held, generation = store.get_json(CENTRAL_POLICY_KEY), store.generation()
    # A list older than the one held refuses the whole update: the withdrawal with it.
    with pytest.raises(RollbackRefused):
        store.apply_sync(update(PolicyWithdrawn("policy/hq.toml is not published"), iat=100.0, raw=b"older"))
    assert store.get_json(CENTRAL_POLICY_KEY) == held and store.generation() == generation
    result = store.apply_sync(update(PolicyWithdrawn("policy/hq.toml is not published"), iat=300.0, raw=b"newer"))
    assert (result.written, result.policy_withdrawn) == ([A], "policy/hq.toml")
    assert store.get_json(CENTRAL_POLICY_KEY) is None and store.generation() == generation + 1


def test_a_kept_policy_stays_and_moves_nothing(store: Store) -> None:
    store.apply_sync(update(("policy/hq.toml", POLICY)))
    held, generation = store.get_json(CENTRAL_POLICY_KEY), store.generation()
    result = store.apply_sync(update(None))
    assert result.policy_withdrawn is None and store.get_json(CENTRAL_POLICY_KEY) == held
    assert store.generation() == generation


def test_a_damaged_held_policy_is_dropped_by_a_withdrawal_and_named_unknown(store: Store) -> None:
    """An edited value (not JSON, or JSON without a target) could never apply: a withdrawal
    drops it like any other, and says it could not tell which target it was."""
    for damaged in ("{not json", json.dumps(["x"])):
        with store.writing() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (CENTRAL_POLICY_KEY, damaged))
        generation = store.generation()
        result = store.apply_sync(update(PolicyWithdrawn("[gate] names no group")))
        assert result.policy_withdrawn == "?" and store.get_json(CENTRAL_POLICY_KEY) is None
        assert store.generation() == generation + 1
