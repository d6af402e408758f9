"""The central policy a gate holds is exactly what the centre publishes for the gate's
current group as of the last successful sync (issue 10): withdrawn when the verified
targets no longer list it or the gate has no group, kept when a bad one is published,
and never applied for a group the gate is no longer in. Checked on verify_fetched,
apply_sync and site_with_central directly (tests/cli and tests/daemon run the commands)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from offline_cache.store import CENTRAL_POLICY_KEY, PolicyWithdrawn, Store, SyncUpdate
from offline_cache.sync import FetchedTargets
from reader.gate.config import Config, parse_config
from reader.gate.state import site_with_central
from reader.gate.sync import verify_fetched
from reader.gatepass.authority import Issuer, build_status_list

A = "https://status.example.gov/lists/a"
NOW = time.time()
DAY = b'[readers.cam]\nschedule = "day"\n[schedules.day]\nwindows = ["mon-sun 06:00-22:00"]\n'
NFC_ONLY = b'[readers.cam]\nkinds = ["nfc"]\n'


def gate_config(group: str | None) -> Config:
    line = "" if group is None else f'group = "{group}"\n'
    return parse_config(f'[gate]\nid = "g"\n{line}[cache]\npath = "/tmp/c.db"\n'
                        '[[readers]]\nname = "cam"\ndriver = "camera"\ndevice = 0\n')


@pytest.fixture
def issuer() -> Issuer:
    return Issuer.generate("ES256")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "c.db", create=True) as opened:
        yield opened  # type: ignore[misc]


_LISTS: dict[bytes, bytes] = {}  # issuer certificate -> its list


def sync(store: Store, issuer: Issuer, config: Config, policy: bytes | None) -> SyncUpdate:
    """What run_sync verifies for a gate of ``config``'s group when the repository's signed
    targets list its policy with ``policy`` (None: not listed)."""
    group = config.gate.group
    if issuer.certificate_pem not in _LISTS:  # the same bytes each sync, as a repository serves them
        _LISTS[issuer.certificate_pem] = build_status_list(issuer, uri=A, size=64, values={}, iat=int(NOW - 60))
    fetched = FetchedTargets(trust_pem=issuer.certificate_pem, versions={}, downloaded=[], sha256={},
                             status={"status/a.cwt": _LISTS[issuer.certificate_pem]}, legacy=None,
                             policy=policy if group is not None else None)
    return verify_fetched(store, fetched, NOW, 300, policy=None if group is None else f"policy/{group}.toml",
                          site=config.site)


def test_a_central_policy_no_longer_published_is_dropped_by_the_next_sync(store: Store, issuer: Issuer) -> None:
    hq = gate_config("hq")
    store.apply_sync(sync(store, issuer, hq, DAY))
    assert site_with_central(store, hq.site, "hq")[0].origin == "central policy/hq.toml over local"
    generation = store.generation()
    update = sync(store, issuer, hq, None)
    assert update.policy == PolicyWithdrawn("policy/hq.toml is not in the repository's signed targets")
    assert update.ignored == []  # withdrawn is not a fault: nothing for status to list
    result = store.apply_sync(update)
    assert result.policy_withdrawn == "policy/hq.toml" and result.written == []
    assert store.generation() == generation + 1  # a running daemon reloads on it
    assert store.get_json(CENTRAL_POLICY_KEY) is None
    assert site_with_central(store, hq.site, "hq") == (hq.site, None)
    # Nothing held: withdrawing again changes nothing (no generation step, no reload).
    again = store.apply_sync(sync(store, issuer, hq, None))
    assert again.policy_withdrawn is None and store.generation() == generation + 1


def test_a_gate_without_a_group_drops_a_held_central_policy(store: Store, issuer: Issuer) -> None:
    store.apply_sync(sync(store, issuer, gate_config("hq"), DAY))
    alone = gate_config(None)
    update = sync(store, issuer, alone, None)
    assert update.policy == PolicyWithdrawn("[gate] names no group")
    assert store.apply_sync(update).policy_withdrawn == "policy/hq.toml"
    assert site_with_central(store, alone.site, None) == (alone.site, None)


def test_a_bad_central_policy_published_after_a_good_one_keeps_the_good_one(store: Store, issuer: Issuer) -> None:
    """A bad publish must not strip a gate's rules, as a bad list does not drop the held one."""
    hq = gate_config("hq")
    store.apply_sync(sync(store, issuer, hq, DAY))
    generation = store.generation()
    update = sync(store, issuer, hq, b"readers = 1 = 2")
    assert update.policy is None and "not valid TOML" in dict(update.ignored)["policy/hq.toml"]
    store.apply_sync(update)
    assert store.generation() == generation
    site, problem = site_with_central(store, hq.site, "hq")
    assert problem is None and site.readers["cam"].schedule == "day"
    assert [entry["target"] for entry in store.sync_state()["ignored"]] == ["policy/hq.toml"]


def test_a_central_policy_held_for_another_group_is_not_applied_and_says_why(store: Store, issuer: Issuer) -> None:
    """[gate] group changed (or removed) in the config: until a sync replaces or drops what
    the gate holds, the local policy applies and the problem names both targets."""
    store.apply_sync(sync(store, issuer, gate_config("hq"), NFC_ONLY))
    lobby = gate_config("lobby")
    site, problem = site_with_central(store, lobby.site, "lobby")
    assert site == lobby.site and problem is not None
    assert "the stored central policy is policy/hq.toml, but the gate's group 'lobby' uses policy/lobby.toml" in problem
    assert "the local policy applies" in problem
    site, problem = site_with_central(store, lobby.site, None)
    assert site == lobby.site and problem is not None and "the gate names no [gate] group" in problem


def test_a_sync_for_a_new_group_replaces_or_drops_the_old_groups_policy(store: Store, issuer: Issuer) -> None:
    """A bad policy for the new group keeps nothing of the old group's (it could not apply),
    the new group's good one replaces it, even byte for byte the same file."""
    store.apply_sync(sync(store, issuer, gate_config("hq"), NFC_ONLY))
    lobby = gate_config("lobby")
    update = sync(store, issuer, lobby, b"readers = 1 = 2")
    assert isinstance(update.policy, PolicyWithdrawn) and "policy/lobby.toml" in dict(update.ignored)
    assert store.apply_sync(update).policy_withdrawn == "policy/hq.toml"
    assert site_with_central(store, lobby.site, "lobby") == (lobby.site, None)
    store.apply_sync(sync(store, issuer, gate_config("hq"), NFC_ONLY))
    assert store.apply_sync(sync(store, issuer, lobby, NFC_ONLY)).written == ["policy/lobby.toml"]
    site, problem = site_with_central(store, lobby.site, "lobby")
    assert problem is None and site.origin == "central policy/lobby.toml over local"
    assert site.readers["cam"].kinds == frozenset({"nfc"})
