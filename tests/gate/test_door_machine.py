"""The door state machine (reader/gate/door_machine.py): scenario tests for every rule, and a
hypothesis state machine driving it with random events, times and late edges."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reader.gate.door_machine import (
    ALARMS,
    EVENTS,
    INPUTS,
    Action,
    DoorMachine,
    HoldReleased,
    Indicate,
    Record,
    Release,
    Secure,
)

QUIET = dict.fromkeys(INPUTS, False)


def door(*, turnstile: bool = False, has_contact: bool = True, **kwargs: Any) -> DoorMachine:
    """A started door whose inputs were read quiet at time 0."""
    kwargs = {"release_s": 5.0, "held_open_s": 30.0, **kwargs}
    machine = DoorMachine(turnstile=turnstile, has_contact=has_contact, now=0.0, **kwargs)
    machine.start(0.0)
    machine.levels({k: v for k, v in QUIET.items() if has_contact or k != "door_contact"}, 0.0)
    return machine


def events(actions: list[Action]) -> list[str]:
    return [a.event for a in actions if isinstance(a, Record)]


def locks(actions: list[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, Release | Secure | HoldReleased)]


def test_start_secures_and_shutdown_secures_ending_a_release() -> None:
    machine = DoorMachine(release_s=5, held_open_s=30, turnstile=False, has_contact=True, now=0.0)
    assert machine.start(0.0) == [Secure(), Record("started", "door secured")]
    assert machine.grant(1.0)[0] == Release(5.0)
    assert machine.shutdown(2.0) == [Secure(), Record("relocked", "release ended by shutdown"),
                                     Record("stopped", "door secured")]
    assert machine.state == "secured"
    assert machine.snapshot()["stopped"]


def test_nothing_can_release_a_door_after_shutdown_until_start() -> None:
    machine = door()
    machine.shutdown(1.0)
    for call in (lambda: machine.grant(2.0), lambda: machine.exit_request(2.0), lambda: machine.tick(2.0),
                 lambda: machine.input("exit_button", True, 2.0), lambda: machine.levels(QUIET, 2.0),
                 lambda: machine.set_lockdown(True, "cli", 2.0), lambda: machine.deny(2.0)):
        with pytest.raises(RuntimeError, match="shut down"):
            call()
    assert machine.start(3.0) == [Secure(), Record("started", "door secured")]
    assert machine.grant(4.0)[0] == Release(5.0)


def test_shutdown_and_start_during_fire_leave_the_door_held() -> None:
    machine = door()
    machine.input("fire", True, 1.0)
    assert machine.shutdown(2.0) == [Record("stopped", "fire holds the door released", alarm=True)]
    assert machine.start(3.0) == [Record("started", "fire holds the door released", alarm=True)]
    assert machine.state == "released"


def test_a_grant_releases_and_shows_grant_a_denial_only_shows() -> None:
    machine = door()
    assert machine.grant(1.0) == [Release(5.0), Indicate("grant")]
    assert machine.state == "released"
    assert machine.snapshot()["release_remaining_s"] == 5.0
    assert door().deny(1.0) == [Indicate("deny")]


def test_a_release_that_runs_out_unopened_relocks() -> None:
    machine = door()
    machine.grant(1.0)
    assert machine.tick(5.9) == []
    assert machine.tick(6.0) == [Secure(), Record("relocked", "release ran out")]
    assert machine.state == "secured"
    assert machine.tick(7.0) == []


def test_a_second_grant_extends_the_running_release() -> None:
    machine = door()
    machine.grant(0.0)
    machine.grant(3.0)
    assert machine.tick(5.0) == []
    assert events(machine.tick(8.0)) == ["relocked"]


def test_opening_during_a_release_is_legitimate_and_closing_relocks_at_once() -> None:
    machine = door()
    machine.grant(0.0)
    assert machine.input("door_contact", True, 2.0) == [Record("door_opened", "opened")]
    assert machine.state == "open" and not machine.alarms
    assert machine.input("door_contact", False, 4.0) == [
        Record("door_closed", "closed"), Secure(), Record("relocked", "door closed")]
    assert machine.state == "secured"
    assert machine.tick(5.0) == []  # the relock was its own event once


def test_a_door_opened_while_secured_is_forced_until_it_closes() -> None:
    machine = door()
    actions = machine.input("door_contact", True, 10.0)
    assert actions == [Record("door_forced", "opened while secured, without a grant or exit request", alarm=True),
                       Indicate("alarm")]
    assert machine.alarms == {"door_forced"} and machine.state == "open"
    # Closing secures (idempotent) but nothing was released, so nothing is relocked.
    assert machine.input("door_contact", False, 12.0) == [Record("door_closed", "closed"), Secure()]
    assert not machine.alarms


def test_a_late_edge_is_judged_at_its_own_time() -> None:
    # DoorIO delivers an edge after its debounce: a door opened just before the release ran
    # out arrives after the tick that relocked it, and is not forced.
    machine = door()
    machine.grant(0.0)
    assert events(machine.tick(5.05)) == ["relocked"]
    assert events(machine.input("door_contact", True, 4.95)) == ["door_opened"]
    machine.input("door_contact", False, 5.2)
    later = door()
    later.grant(0.0)
    later.tick(5.05)
    assert events(later.input("door_contact", True, 5.0)) == ["door_forced"]  # the release's end is excluded


def test_the_exit_button_releases_without_a_credential_and_is_journaled() -> None:
    machine = door()
    assert machine.input("exit_button", True, 1.0) == [Release(5.0), Record("released_by_exit", "exit request")]
    assert machine.input("exit_button", True, 1.5) == []  # the same level again is no new request
    assert machine.input("exit_button", False, 2.0) == []
    assert events(machine.input("door_contact", True, 3.0)) == ["door_opened"]
    assert events(door().exit_request(1.0)) == ["released_by_exit"]


def test_an_exit_is_never_blocked_by_a_lockdown() -> None:
    machine = door()
    machine.set_lockdown(True, "cli", 0.5)
    assert machine.input("exit_button", True, 1.0)[0] == Release(5.0)
    assert machine.grant(2.0)[0] == Release(5.0)  # the policy refuses credentials, not the door


def test_held_open_raises_one_alarm_repeats_its_indication_and_clears_on_close() -> None:
    machine = door()
    machine.grant(0.0)
    machine.input("door_contact", True, 1.0)
    assert events(machine.tick(5.0)) == ["relocked"]  # the strike relocks; the door stays open
    assert machine.state == "open"
    assert machine.tick(30.9) == []
    assert machine.tick(31.0) == [Record("door_held_open", "open for more than 30 s", alarm=True), Indicate("alarm")]
    assert machine.tick(32.0) == []
    assert machine.tick(61.0) == [Indicate("alarm")]  # the buzzer again after alarm_repeat_s
    assert machine.input("door_contact", False, 62.0) == [
        Record("door_closed", "closed"), Record("held_open_cleared", "closed"), Secure()]
    assert not machine.alarms and machine.tick(200.0) == []


def test_tamper_raises_an_alarm_until_it_clears() -> None:
    machine = door(alarm_repeat_s=10.0)
    assert machine.input("tamper", True, 1.0) == [Record("tamper", "tamper switch active", alarm=True),
                                                   Indicate("alarm")]
    assert machine.tamper and machine.alarms == {"tamper"}
    assert machine.tick(10.9) == [] and machine.tick(11.0) == [Indicate("alarm")]
    assert machine.input("tamper", False, 12.0) == [Record("tamper_cleared", "tamper switch quiet")]
    assert not machine.alarms and machine.tick(100.0) == []


def test_fire_holds_the_lock_released_overriding_everything_until_it_clears() -> None:
    machine = door()
    assert machine.input("fire", True, 1.0) == [
        HoldReleased(True), Record("fire_release", "fire input: every lock output held released", alarm=True)]
    assert machine.state == "released" and machine.fire and machine.alarms == {"fire"}
    assert machine.grant(2.0) == [Indicate("grant"),
                                  Record("grant_during_fire", "fire already holds the door released")]
    assert locks(machine.exit_request(3.0)) == []
    assert events(machine.input("door_contact", True, 4.0)) == ["door_opened"]  # never forced under fire
    assert machine.tick(500.0) == []  # no held-open alarm while people leave
    assert locks(machine.input("door_contact", False, 501.0)) == []
    machine.input("door_contact", True, 502.0)
    assert machine.input("fire", False, 600.0) == [
        HoldReleased(False), Record("fire_cleared", "fire input quiet"),
        Secure(), Record("relocked", "fire hold ended")]
    assert machine.state == "open" and not machine.alarms
    # Held open counts from the end of the hold, not from the opening.
    assert machine.tick(629.0) == []
    assert events(machine.tick(630.0)) == ["door_held_open"]


def test_fire_takes_over_a_running_release_and_its_end_relocks() -> None:
    machine = door()
    machine.grant(0.0)
    machine.input("fire", True, 1.0)
    assert machine.tick(10.0) == []  # the release ran out under the hold: nothing to do yet
    assert events(machine.input("fire", False, 20.0)) == ["fire_cleared", "relocked"]
    assert machine.state == "secured" and machine.tick(30.0) == []


def test_lockdown_is_held_per_source_and_recorded() -> None:
    machine = door()
    assert machine.set_lockdown(True, "cli", 1.0) == [Record("lockdown_on", "by cli")]
    assert machine.set_lockdown(True, "cli", 1.5) == []
    assert machine.set_lockdown(True, "input", 2.0) == [
        Record("lockdown_source", "input on; lockdown stays on by cli, input")]
    # The periodic read of a switch that is off cannot end the command line's lockdown.
    assert machine.set_lockdown(False, "input", 3.0) == [
        Record("lockdown_source", "input off; lockdown stays on by cli")]
    assert machine.lockdown and machine.snapshot()["lockdown_by"] == ["cli"]
    assert machine.set_lockdown(False, "cli", 4.0) == [Record("lockdown_off", "by cli")]
    assert not machine.lockdown and machine.set_lockdown(False, "cli", 5.0) == []


def test_the_lockdown_input_holds_its_own_source_and_a_missed_edge_is_read_back() -> None:
    """The lockdown switch is the "input" source: its edges and level reads set and end it,
    never a lockdown the command line holds; an edge that was lost is found by the level read."""
    machine = door()
    assert machine.input("lockdown", True, 1.0) == [Record("lockdown_on", "by input")]
    assert machine.lockdown and machine.snapshot()["lockdown_by"] == ["input"]
    assert machine.input("exit_button", True, 1.5)[0] == Release(5.0)  # an exit is never blocked
    machine.set_lockdown(True, "cli", 2.0)
    assert machine.input("lockdown", False, 3.0) == [
        Record("lockdown_source", "input off; lockdown stays on by cli")]
    assert machine.lockdown  # the switch turned off does not end the command line's lockdown
    machine.set_lockdown(False, "cli", 4.0)
    assert not machine.lockdown
    # Lost edges: the periodic level read sets, then ends, the switch's lockdown.
    assert events(machine.levels({"lockdown": True}, 5.0)) == ["lockdown_on", "level_resync"]
    assert machine.snapshot()["lockdown_by"] == ["input"]
    assert events(machine.levels({"lockdown": False}, 6.0)) == ["lockdown_off", "level_resync"]
    # A switch already on when the daemon starts locks down at the first read, without a resync.
    first = DoorMachine(release_s=5, held_open_s=30, turnstile=False, has_contact=True, now=0.0)
    first.start(0.0)
    assert first.levels({"lockdown": True, "fire": False}, 1.0) == [Record("lockdown_on", "by input")]


def test_turnstiles_and_doors_without_contact_detect_neither_forced_nor_held() -> None:
    turnstile = door(turnstile=True)
    assert events(turnstile.input("door_contact", True, 1.0)) == ["door_opened"]
    assert turnstile.tick(1000.0) == [] and not turnstile.alarms
    turnstile.input("door_contact", False, 1001.0)
    turnstile.grant(1002.0)
    turnstile.input("door_contact", True, 1003.0)
    # A completed passage ends the release at once.
    assert locks(turnstile.input("door_contact", False, 1003.5)) == [Secure()]
    contactless = door(has_contact=False)
    with pytest.raises(ValueError, match="without a contact"):
        contactless.input("door_contact", True, 1.0)
    with pytest.raises(ValueError, match="without a contact"):
        contactless.levels({"door_contact": True}, 1.0)
    contactless.grant(2.0)
    assert contactless.state == "released" and events(contactless.tick(7.0)) == ["relocked"]
    assert contactless.snapshot()["door_open"] is None


def test_level_reads_replay_missed_edges_then_record_the_resync() -> None:
    machine = door()
    machine.grant(1.0)
    machine.tick(6.0)
    # The door opened during the release, but its edge was lost: legitimate, judged over
    # the whole time since the previous read.
    assert events(machine.levels({"door_contact": True}, 10.0)) == ["door_opened", "level_resync"]
    assert events(machine.levels({"door_contact": False}, 11.0)) == ["door_closed", "level_resync"]
    assert events(machine.levels({"door_contact": True}, 20.0)) == ["door_forced", "level_resync"]
    machine.input("door_contact", False, 21.0)
    fire = machine.levels({"fire": True, "tamper": True, "exit_button": False}, 22.0)
    assert fire[0] == HoldReleased(True)
    assert events(fire) == ["fire_release", "level_resync", "tamper", "level_resync"]
    assert machine.levels({"fire": True, "tamper": True}, 23.0) == []
    cleared = machine.levels({"fire": False, "tamper": False}, 24.0)
    assert events(cleared) == ["fire_cleared", "relocked", "level_resync", "tamper_cleared", "level_resync"]
    assert locks(machine.levels({"exit_button": True}, 25.0)) == [Release(5.0)]  # a missed press


def test_the_first_level_read_establishes_levels_without_a_resync() -> None:
    machine = DoorMachine(release_s=5, held_open_s=30, turnstile=False, has_contact=True, now=0.0)
    machine.start(0.0)
    first = machine.levels({"door_contact": True, "exit_button": True, "fire": False, "tamper": False}, 1.0)
    assert first == [Record("door_opened", "found open at the first level read")]  # not forced, no release
    assert machine.state == "open"
    assert events(machine.tick(31.0)) == ["door_held_open"]
    fire_first = DoorMachine(release_s=5, held_open_s=30, turnstile=False, has_contact=True, now=0.0)
    fire_first.start(0.0)
    assert fire_first.levels({"fire": True}, 1.0)[0] == HoldReleased(True)


def test_time_that_goes_back_or_stands_still_never_moves_timers_back() -> None:
    machine = door()
    machine.tick(10.0)
    assert machine.grant(9.0) == [Release(5.0), Indicate("grant")]
    assert machine.tick(14.9) == [] and events(machine.tick(15.0)) == ["relocked"]
    machine.grant(15.0)
    assert machine.tick(15.0) == [] and machine.grant(15.0)[0] == Release(5.0)


@pytest.mark.parametrize(
    ("call", "complaint"),
    [
        (lambda m: m.input("doorbell", True, 1.0), "unknown input 'doorbell'"),
        (lambda m: m.input("fire", 1, 1.0), "a level is True or False"),
        (lambda m: m.levels({"fire": "yes"}, 1.0), "a level is True or False"),
        (lambda m: m.levels({"smoke": True}, 1.0), "unknown input 'smoke'"),
        (lambda m: m.tick(math.nan), "a time must be a finite number"),
        (lambda m: m.grant(True), "a time must be a finite number"),
        (lambda m: m.set_lockdown(True, "", 1.0), "by must name the lockdown's source"),
        (lambda m: m.set_lockdown("on", "cli", 1.0), "on must be True or False"),
    ],
)
def test_bad_calls_are_refused_clearly(call: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        call(door())


@pytest.mark.parametrize("kwargs", [{"release_s": 0}, {"held_open_s": -1}, {"alarm_repeat_s": math.inf},
                                    {"release_s": True}, {"now": math.nan}])
def test_impossible_settings_are_refused(kwargs: dict[str, Any]) -> None:
    settings_ = {"release_s": 5.0, "held_open_s": 30.0, "turnstile": False, "has_contact": True, "now": 0.0}
    with pytest.raises(ValueError):
        DoorMachine(**{**settings_, **kwargs})


def test_journal_events_and_overlays_are_closed_sets() -> None:
    with pytest.raises(ValueError, match="unknown door event"):
        Record("door_exploded", "")
    with pytest.raises(ValueError, match="overlay must be grant, deny or alarm"):
        Indicate("party")


def test_the_snapshot_reports_the_door_for_status() -> None:
    machine = door()
    machine.grant(1.0)
    machine.input("door_contact", True, 2.0)
    machine.input("tamper", True, 2.5)
    machine.set_lockdown(True, "input", 3.0)
    assert machine.snapshot() == {
        "state": "open", "door_open": True, "open_for_s": 1.0, "release_remaining_s": 3.0, "exit_button": False,
        "fire": False, "tamper": True, "lockdown": True, "lockdown_by": ["input"], "alarms": ["tamper"],
        "turnstile": False, "has_contact": True, "stopped": False,
    }


# -- random sequences --------------------------------------------------------------


class FakeLock:
    """What DoorIO's lock output does with the actions (its own timer ends a release)."""

    def __init__(self) -> None:
        self.until = -math.inf
        self.hold = False

    def apply(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Release):
                self.until = max(self.until, now + (action.seconds or 0.0))
            elif isinstance(action, Secure):
                self.until = now
            elif isinstance(action, HoldReleased):
                self.hold = action.on

    def released(self, now: float) -> bool:
        return self.hold or self.until > now


class DoorMachineSequences(RuleBasedStateMachine):
    """Random events at random (non-decreasing, sometimes equal) times, edges up to 0.3 s
    late, periodic level reads, lockdowns, shutdowns and restarts."""

    @initialize(turnstile=st.booleans(), has_contact=st.booleans(),
                release_s=st.sampled_from([0.5, 3.0, 5.0]), held_open_s=st.sampled_from([1.0, 10.0, 30.0]))
    def setup(self, turnstile: bool, has_contact: bool, release_s: float, held_open_s: float) -> None:
        self.machine = DoorMachine(release_s=release_s, held_open_s=held_open_s, turnstile=turnstile,
                                   has_contact=has_contact, now=0.0)
        self.lock = FakeLock()
        self.clock = 0.0
        self.levels = dict(QUIET)
        self.stopped = False
        self.inputs = [n for n in INPUTS if has_contact or n != "door_contact"]
        self.apply(self.machine.start(0.0), fire_before=False)

    def apply(self, actions: list[Action], *, fire_before: bool) -> None:
        holds = [i for i, a in enumerate(actions) if a == HoldReleased(True)]
        # A fire hold comes before anything else, and nothing touches the lock after it
        # (nor at all while fire lasted through the call).
        assert holds in ([], [0])
        after = actions[1:] if holds else actions if fire_before and self.machine.fire else []
        assert not [a for a in after if isinstance(a, Release | Secure)]
        assert all(a.event in EVENTS for a in actions if isinstance(a, Record))
        if not self.machine._detect:
            assert not {"door_forced", "door_held_open"} & set(events(actions))
        self.lock.apply(actions, self.clock)

    def advance(self, dt: float) -> None:
        self.clock += dt

    @precondition(lambda self: not self.stopped)
    @rule(dt=st.sampled_from([0.0, 0.1, 1.0, 4.0, 40.0]), kind=st.sampled_from(["grant", "deny", "exit", "tick"]))
    def event(self, dt: float, kind: str) -> None:
        self.advance(dt)
        fire = self.machine.fire
        call = {"grant": self.machine.grant, "deny": self.machine.deny, "exit": self.machine.exit_request,
                "tick": self.machine.tick}[kind]
        actions = call(self.clock)
        self.apply(actions, fire_before=fire)
        if kind == "exit" and not fire:
            assert Release(self.machine.release_s) in actions  # never blocked, lockdown or not

    @precondition(lambda self: not self.stopped)
    @rule(dt=st.sampled_from([0.0, 0.05, 1.0, 10.0]), late=st.sampled_from([0.0, 0.1, 0.3]), data=st.data())
    def edge(self, dt: float, late: float, data: st.DataObject) -> None:
        self.advance(dt)
        name = data.draw(st.sampled_from(self.inputs))
        active = data.draw(st.booleans())
        fire, pressed = self.machine.fire, self.levels["exit_button"]
        actions = self.machine.input(name, active, self.clock - late)
        self.levels[name] = active
        self.apply(actions, fire_before=fire)
        if name == "exit_button" and active and not pressed and not fire:
            assert Release(self.machine.release_s) in actions

    @precondition(lambda self: not self.stopped)
    @rule(dt=st.sampled_from([0.0, 1.0, 5.0]), data=st.data())
    def level_read(self, dt: float, data: st.DataObject) -> None:
        self.advance(dt)
        read = data.draw(st.dictionaries(st.sampled_from(self.inputs), st.booleans()))
        fire = self.machine.fire
        self.apply(self.machine.levels(read, self.clock), fire_before=fire)
        self.levels.update(read)

    @precondition(lambda self: not self.stopped)
    @rule(on=st.booleans(), by=st.sampled_from(["cli", "input"]))
    def lockdown(self, on: bool, by: str) -> None:
        actions = self.machine.set_lockdown(on, by, self.clock)
        assert locks(actions) == []  # lockdown only flags

    @precondition(lambda self: not self.stopped)
    @rule()
    def shutdown(self) -> None:
        fire = self.machine.fire
        self.apply(self.machine.shutdown(self.clock), fire_before=fire)
        self.stopped = True
        # Never released at rest after shutdown, unless fire holds the door.
        assert self.lock.released(self.clock + 1e-9) == fire
        assert self.machine.state == ("open" if self.levels["door_contact"] else "released" if fire else "secured")

    @precondition(lambda self: self.stopped)
    @rule(dt=st.sampled_from([0.0, 1.0]))
    def restart(self, dt: float) -> None:
        self.advance(dt)
        fire = self.machine.fire
        self.apply(self.machine.start(self.clock), fire_before=fire)
        self.stopped = False

    @invariant()
    def the_machine_agrees_with_its_inputs_and_the_lock(self) -> None:
        if not hasattr(self, "machine"):
            return
        machine = self.machine
        assert machine.fire == self.levels["fire"] == self.lock.hold
        assert machine.tamper == self.levels["tamper"]
        assert (machine.state == "open") == self.levels["door_contact"]
        assert machine.alarms <= ALARMS
        assert ("fire" in machine.alarms) == machine.fire and ("tamper" in machine.alarms) == machine.tamper
        if {"door_forced", "door_held_open"} & machine.alarms:
            assert machine.state == "open" and machine._detect
        if self.stopped:
            return
        # After a tick at the present, the machine's view of the lock is the lock's.
        self.apply(machine.tick(self.clock), fire_before=machine.fire)
        if machine.state == "secured":
            assert not self.lock.released(self.clock)
        elif machine.state == "released":
            assert self.lock.released(self.clock)


DoorMachineSequences.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_random_door_sequences_keep_the_invariants = DoorMachineSequences.TestCase
