"""The decision worker with mock pins and a fake clock, step by step: the order of record and
release, the gate's shared replay memory, the reader policy, a sync landing while it runs,
the door inputs, and the liveness that the watchdog pings depend on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers.base import Presentation
from drivers.door import InputEvent
from drivers.pins import DEFAULT_PINS
from offline_cache.errors import StoreError
from offline_cache.store import PolicyWithdrawn
from reader.daemon.pipeline import LOCKDOWN_KEY
from tests.daemon.conftest import Gate, make_gate
from tests.support.waiting import wait_until


def test_a_grant_is_journaled_before_the_relay_moves(gate: Gate) -> None:
    seen_at_release: list[list[str]] = []
    release = gate.door.release

    def spying_release(seconds: float | None = None) -> None:
        seen_at_release.append([f"{r.kind}:{r.decision or r.reason}" for r in gate.records()])
        release(seconds)

    gate.door.release = spying_release  # type: ignore[method-assign]
    decision = gate.show("cam-a", gate.qr(gate.credential()))
    assert decision.granted and gate.relay.state  # released (relay active high: pin high)
    assert seen_at_release and seen_at_release[0][-1] == "decision:grant"
    record = gate.records("decision")[-1]
    assert (record.reader, record.reason, record.subject) == ("cam-a", "granted", "E1")
    assert record.credential_hash == decision.credential_hash


def test_a_grant_that_cannot_be_journaled_never_releases(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> list[int]:
        raise StoreError("cache database: disk I/O error")

    monkeypatch.setattr(gate.pipeline.journal, "append_many", broken)
    decision = gate.show("cam-a", gate.qr(gate.credential()))
    assert not decision.granted and decision.detail == "the journal could not record the grant"
    assert not gate.relay.state and gate.pipeline.counts["journal_failures"] >= 1
    # Its replay pair was not kept either: once the journal works, the same code grants.
    monkeypatch.undo()
    assert gate.show("cam-a", gate.qr(gate.credential())).granted


def test_the_same_qr_at_two_readers_of_the_gate_grants_once(gate: Gate) -> None:
    code = gate.qr(gate.credential())
    assert gate.show("cam-a", code).granted
    second = gate.show("cam-b", code)
    assert (second.granted, second.reason) == (False, "replayed")
    # The replay memory is the store's: a restarted worker (a new pipeline) still knows it.
    assert gate.store.replay_seen(*_pair_of(gate), gate.clock.wall)


def _pair_of(gate: Gate) -> tuple[bytes, bytes]:
    row = gate.store.connection.execute("SELECT cti, nonce FROM replay").fetchone()
    return bytes(row[0]), bytes(row[1])


def test_reader_policy_refusals_are_not_authorized_naming_the_rule_and_keep_the_code_usable(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, extra='[schedules.office]\nwindows = ["mon-fri 07:00-19:00"]\n', readers='''
[[readers]]
name = "cam-a"
driver = "camera"
device = 0
schedule = "office"
[[readers]]
name = "cam-b"
driver = "camera"
device = 1
groups = ["night"]
''')
    try:
        code = gate.qr(gate.credential(groups=["night"]))
        refused = gate.show("cam-a", code)
        assert (refused.reason, refused.detail) == (
            "not_authorized", "schedule office (group night) does not allow Sun 03:00")
        assert gate.records("decision")[-1].detail == refused.detail and not gate.relay.state
        # Refused by one reader's policy, the code was not used up: the other reader admits it.
        assert gate.show("cam-b", code).granted
        staff = gate.show("cam-b", gate.qr(gate.credential(2, groups=["staff"])))
        # The core refuses it at its place in section 7's order, naming the rule.
        assert staff.reason == "not_authorized"
        assert staff.detail == "none of the credential's groups may pass this reader"
    finally:
        gate.door.close()
        gate.store.close()


def test_lockdown_refuses_all_but_its_groups_is_kept_over_a_restart_and_exit_still_releases(tmp_path: Path) -> None:
    gate = make_gate(tmp_path, extra='[lockdown]\ngroups = ["security"]\n')
    try:
        answer = gate.pipeline.run_request("lockdown", {"on": True, "by": "cli", "who": "uid 1000"})
        assert answer == {"lockdown": True, "by": ["cli"]}
        assert gate.store.get_json(LOCKDOWN_KEY) == ["cli"]
        door_records = [(r.reason, r.detail) for r in gate.records("door")]
        assert ("lockdown_on", "by cli (uid 1000)") in door_records
        refused = gate.show("cam-a", gate.qr(gate.credential(1, groups=["staff"])))
        assert (refused.reason, refused.detail) == ("not_authorized", "lockdown: only groups security pass")
        assert gate.show("cam-a", gate.qr(gate.credential(2, groups=["security"]))).granted
        gate.door.secure()
        gate.pipeline.handle(InputEvent("exit_button", True, time.monotonic()))
        assert gate.relay.state, "an exit is never blocked by a lockdown"
        # A new worker (the daemon restarted) restores the lockdown set from the command line.
        again = make_gate(tmp_path / "other")
        again.pipeline.store.put_json(LOCKDOWN_KEY, ["cli"])
        again.pipeline.restore_lockdown()
        assert again.machine.lockdown and again.door.state().base.red
        again.door.close()
        again.store.close()
    finally:
        gate.door.close()
        gate.store.close()


def test_the_lockdown_switch_refuses_all_but_its_groups_and_never_ends_the_clis(tmp_path: Path) -> None:
    """The [door] lockdown input: on, only the [lockdown] groups pass (an exit still
    releases); off, it ends unless the command line holds a lockdown too; an edge the door
    layer missed is found by the worker's periodic level read."""
    gate = make_gate(tmp_path, extra='[lockdown]\ngroups = ["security"]\n')
    switch = gate.factory.pin(DEFAULT_PINS["lockdown"].bcm)
    try:
        gate.pipeline.handle(InputEvent("lockdown", True, time.monotonic()))
        assert gate.machine.lockdown and gate.door.state().base.red
        refused = gate.show("cam-a", gate.qr(gate.credential(1, groups=["staff"])))
        assert (refused.reason, refused.detail) == ("not_authorized", "lockdown: only groups security pass")
        assert gate.show("cam-a", gate.qr(gate.credential(2, groups=["security"]))).granted
        gate.door.secure()
        gate.pipeline.handle(InputEvent("exit_button", True, time.monotonic()))
        assert gate.relay.state, "an exit is never blocked by a lockdown"
        gate.pipeline.handle(InputEvent("exit_button", False, time.monotonic()))
        gate.door.secure()
        # The command line holds it too: turning the switch off does not end it.
        gate.pipeline.run_request("lockdown", {"on": True, "by": "cli", "who": "uid 0"})
        assert gate.store.get_json(LOCKDOWN_KEY) == ["cli"]  # the switch is read again at start, not kept
        gate.pipeline.handle(InputEvent("lockdown", False, time.monotonic()))
        assert gate.pipeline.health()["door"]["lockdown_by"] == ["cli"]
        assert gate.show("cam-a", gate.qr(gate.credential(3, groups=["staff"]))).reason == "not_authorized"
        gate.pipeline.run_request("lockdown", {"on": False, "by": "cli", "who": "uid 0"})
        assert not gate.machine.lockdown and not gate.door.state().base.red
        assert gate.show("cam-a", gate.qr(gate.credential(4, groups=["staff"]))).granted
        door = [(r.reason, r.detail) for r in gate.records("door") if r.reason.startswith("lockdown")]
        assert door == [("lockdown_on", "by input"),
                        ("lockdown_source", "cli on; lockdown stays on by cli, input (uid 0)"),
                        ("lockdown_source", "input off; lockdown stays on by cli"), ("lockdown_off", "by cli (uid 0)")]
        # A missed edge: the switch closes while its pin reports nothing; the level read
        # hands it to the debounce and, once it has held, the worker takes the level.
        switch.when_changed, callback = None, switch.when_changed
        switch.drive_low()
        switch.when_changed = callback
        gate.clock.move(1)
        gate.pipeline.service()
        wait_until(lambda: gate.door.state().inputs["lockdown"], 2.0)
        gate.clock.move(1)
        gate.pipeline.service()
        assert gate.machine.lockdown and gate.pipeline.health()["lockdown"] is True
        assert [r.reason for r in gate.records("door")][-2:] == ["lockdown_on", "level_resync"]
    finally:
        gate.door.close()
        gate.store.close()


def test_a_revocation_synced_while_running_denies_the_next_presentation(gate: Gate) -> None:
    credential = gate.credential(5)
    assert gate.show("cam-a", gate.qr(credential)).granted
    gate.publish(revoked=(5,))  # another process (the sync) commits
    gate.clock.move(1)
    assert gate.show("cam-a", gate.qr(credential)).reason == "revoked"


def test_a_central_policy_synced_while_running_takes_effect_at_once(gate: Gate) -> None:
    code = gate.qr(gate.credential(groups=["staff"]))
    gate.publish(policy=b'[readers.cam-a]\nkinds = ["nfc"]\n[readers.cam-b]\ngroups = ["cleaning"]\n')
    gate.pipeline.service()  # the change marker is polled on every turn of the worker
    assert gate.pipeline.site.origin == "central policy/hq.toml over local"
    refused = gate.show("cam-a", code)
    assert (refused.reason, refused.detail) == ("not_authorized", "reader cam-a does not admit qr")
    assert gate.pipeline.health()["policy_origin"] == "central policy/hq.toml over local"


def test_a_central_policy_withdrawn_while_running_stops_applying_at_once(gate: Gate) -> None:
    """Issue 10: the sync that finds the policy no longer published drops it and moves the
    generation; the worker's next turn is back on the local policy, no restart."""
    code = gate.qr(gate.credential(groups=["staff"]))
    gate.publish(policy=b'[readers.cam-a]\nkinds = ["nfc"]\n')
    gate.pipeline.service()
    assert gate.show("cam-a", code).reason == "not_authorized"
    gate.publish(policy=PolicyWithdrawn("policy/hq.toml is not in the repository's signed targets"))
    gate.pipeline.service()
    assert gate.pipeline.site.origin == "local" and gate.pipeline.policy_problem is None
    assert gate.show("cam-a", gate.qr(gate.credential(groups=["staff"]))).granted


def test_a_central_policy_of_another_group_is_not_applied_after_a_reload_and_status_says_why(gate: Gate) -> None:
    """SIGHUP after [gate] group was changed (or removed): the held hq policy no longer
    applies; the local one does, and the problem reaches the health that status shows."""
    from reader.gate.report import daemon_problems

    gate.publish(policy=b'[readers.cam-a]\nkinds = ["nfc"]\n')
    gate.pipeline.service()
    assert gate.pipeline.site.origin == "central policy/hq.toml over local"
    gate.pipeline.run_request("reload", {"site": gate.config.site, "group": "lobby"})
    assert gate.pipeline.site.origin == "local"
    assert gate.show("cam-a", gate.qr(gate.credential(groups=["staff"]))).granted
    health = gate.pipeline.health()
    why = "the stored central policy is policy/hq.toml, but the gate's group 'lobby' uses policy/lobby.toml"
    assert why in health["policy_problem"]
    assert [p for p in daemon_problems(gate.config, {**health, "stale": False}) if p.startswith("policy")] == [
        f"policy: {health['policy_problem']}"]
    gate.pipeline.run_request("reload", {"site": gate.config.site, "group": None})
    assert "the gate names no [gate] group" in gate.pipeline.health()["policy_problem"]
    # Back in hq (or a sync that replaced or dropped the held one): the problem clears.
    gate.pipeline.run_request("reload", {"site": gate.config.site, "group": "hq"})
    assert gate.pipeline.site.origin == "central policy/hq.toml over local"
    assert gate.pipeline.health()["policy_problem"] is None


def test_fire_holds_the_door_released_until_it_clears_whatever_a_grant_says(gate: Gate) -> None:
    gate.pipeline.handle(InputEvent("fire", True, time.monotonic()))
    assert gate.relay.state and gate.door.state().fire_hold
    gate.show("cam-a", gate.qr(gate.credential()))
    gate.clock.move(5)
    gate.pipeline.apply(gate.machine.tick(gate.clock.monotonic()))
    assert gate.relay.state  # no timer, no grant ends a fire hold
    gate.pipeline.handle(InputEvent("fire", False, time.monotonic()))
    assert not gate.relay.state
    events = [r.reason for r in gate.records("door")]
    assert events[-4:] == ["fire_release", "grant_during_fire", "fire_cleared", "relocked"]


def test_presentations_past_the_queue_bound_are_dropped_and_counted(gate: Gate) -> None:
    for i in range(6):  # queue_size = 4 in the test config
        gate.pipeline.submit_presentation(Presentation("cam-a", "qr", f"GP1:x{i}", time.monotonic()))
    assert gate.pipeline.counts["dropped"] == 2
    # Door inputs are urgent: taken before the presentations already waiting.
    gate.pipeline.submit_input(InputEvent("tamper", True, time.monotonic()))
    assert isinstance(gate.pipeline._next(0), InputEvent)


def test_a_wedged_worker_stops_pinging_and_the_door_relocks_by_its_own_timer(gate: Gate) -> None:
    gate.pipeline.start()
    wait_until(lambda: len(gate.pings) >= 3, 2.0)
    gate.pipeline.request("release", by="test").wait(2.0)
    assert gate.relay.state
    gate.pipeline.request("wedge", seconds=1.5)
    time.sleep(0.2)
    before = len(gate.pings)
    wait_until(lambda: not gate.relay.state, 1.0)  # release_s = 0.5: the door's own timer
    assert len(gate.pings) == before, "a wedged worker must not ping the watchdog"
    wait_until(lambda: len(gate.pings) > before, 3.0)  # it turns again: pings resume


def test_the_health_holds_the_door_the_sources_and_the_counts(gate: Gate) -> None:
    gate.show("cam-a", "GP1:not-a-code")
    health = gate.pipeline.health()
    assert health["door"]["state"] == "secured" and health["door"]["relay_released"] is False
    assert health["decisions"]["deny"] == 1 and health["policy_origin"] == "local"
    gate.pipeline.service()
    from reader.gate.report import HEALTH_KEY

    assert gate.store.get_json(HEALTH_KEY)["decisions"]["deny"] == 1


def test_a_reload_takes_the_new_local_policy_and_keeps_the_centres_over_it(gate: Gate) -> None:
    """SIGHUP: the config's policy read again (here: cam-a admits only nfc from now on), the
    centre's stored policy laid over it again."""
    from reader.gate.config import parse_config

    code = gate.qr(gate.credential(groups=["staff"]))
    edited = parse_config(f'[gate]\nid = "g"\ntimezone = "UTC"\n[cache]\npath = "{gate.store.path}"\n'
                          '[[readers]]\nname = "cam-a"\ndriver = "camera"\ndevice = 0\nkinds = ["qr"]\n'
                          'groups = ["cleaning"]\n[[readers]]\nname = "cam-b"\ndriver = "camera"\ndevice = 1\n')
    gate.pipeline.run_request("reload", {"site": edited.site})
    assert gate.show("cam-a", code).reason == "not_authorized"
    gate.publish(policy=b'[readers.cam-a]\ngroups = ["staff"]\n')
    gate.pipeline.service()
    assert gate.pipeline.site.readers["cam-a"].groups == frozenset({"staff"})
    gate.pipeline.run_request("reload", {"site": edited.site})  # the centre's stays over the new local one
    assert gate.pipeline.site.origin == "central policy/hq.toml over local"
    assert gate.show("cam-a", code).granted
